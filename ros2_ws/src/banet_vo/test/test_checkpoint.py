"""Checkpoint format: round trips, atomic writes, and a clear error for every way a file can be unusable."""

from __future__ import annotations

import json

import pytest
import torch
from banet_vo.model import BANet
from banet_vo.model.checkpoint import (
    FORMAT,
    CheckpointError,
    load_banet,
    load_checkpoint,
    save_checkpoint,
)
from safetensors import safe_open
from safetensors.torch import save_file


@pytest.fixture
def tiny_model(tiny_banet_config) -> BANet:
    torch.manual_seed(0)
    return BANet(tiny_banet_config(iterations=(1, 1, 1))).eval()


def test_round_trip_keeps_tensors_config_and_meta(tmp_path):
    state = {"a.weight": torch.randn(3, 4), "b": torch.arange(5), "view": torch.randn(6)[::2]}
    meta = {"steps": 12, "metrics": {"rot_deg": 0.5}, "data": "unit"}
    path = save_checkpoint(tmp_path / "sub" / "m.safetensors", state, "matcher", {"k": [1, 2]}, meta)
    loaded, config, meta_out = load_checkpoint(path, expected_kind="matcher")
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value)
    assert config == {"k": [1, 2]}
    assert meta_out["steps"] == 12 and meta_out["metrics"] == {"rot_deg": 0.5}
    assert isinstance(meta_out["code_version"], str) and meta_out["code_version"]  # added when absent
    with safe_open(str(path), framework="pt") as f:  # the raw layout other tools see
        raw = f.metadata()
    assert raw["format"] == FORMAT and raw["kind"] == "matcher" and json.loads(raw["config"]) == config
    assert [p.name for p in path.parent.iterdir()] == ["m.safetensors"]  # no temporary file left behind
    # Overwriting is atomic too, and the caller's code_version wins.
    save_checkpoint(path, {"x": torch.zeros(1)}, "matcher", {}, {"code_version": "v1"})
    assert load_checkpoint(path)[2]["code_version"] == "v1"


def test_save_rejects_bad_arguments(tmp_path):
    path = tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match="kind"):
        save_checkpoint(path, {}, "detector", {}, {})
    with pytest.raises(ValueError, match=r"state_dict\['w'\]"):
        save_checkpoint(path, {"w": [1, 2]}, "banet", {}, {})
    with pytest.raises(ValueError, match="meta must be JSON"):
        save_checkpoint(path, {}, "banet", {}, {"t": object()})
    with pytest.raises(ValueError, match="config must be a dict"):
        save_checkpoint(path, {}, "banet", "paper", {})
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_unusable_files_raise_clear_errors(tmp_path):
    missing = tmp_path / "none.safetensors"
    with pytest.raises(CheckpointError, match="does not exist") as info:
        load_checkpoint(missing)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(garbage)

    good = save_checkpoint(tmp_path / "good.safetensors", {"w": torch.randn(64, 64)}, "banet", {}, {})
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"truncated\.safetensors is not a readable safetensors"):
        load_checkpoint(truncated)

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="format tag 'pt'"):
        load_checkpoint(foreign)

    with pytest.raises(CheckpointError, match="holds a 'banet' model, expected 'matcher'"):
        load_checkpoint(good, expected_kind="matcher")
    with pytest.raises(ValueError, match="expected_kind"):
        load_checkpoint(good, expected_kind="other")


def test_load_banet_round_trip_gives_the_same_outputs(tmp_path, tiny_model):
    config = tiny_model.config
    path = save_checkpoint(tmp_path / "b.safetensors", tiny_model.state_dict(), "banet", config.to_dict(), {})
    loaded = load_banet(path, "cpu")
    assert isinstance(loaded, BANet) and not loaded.training and loaded.config == config
    ref, tgt = torch.rand(1, 3, 48, 64), torch.rand(1, 3, 48, 64)
    intr = torch.tensor([[60.0, 60.0, 31.5, 23.5]])
    with torch.no_grad():
        a, b = tiny_model(ref, tgt, intr), loaded(ref, tgt, intr)
    assert torch.equal(a.pose.tensor(), b.pose.tensor()) and torch.equal(a.depth, b.depth)


def test_load_banet_names_what_does_not_fit(tmp_path, tiny_model):
    config = tiny_model.config
    state = tiny_model.state_dict()

    wrong_k = BANet(config.replace(num_basis=6)).state_dict()
    path = save_checkpoint(tmp_path / "k.safetensors", wrong_k, "banet", config.to_dict(), {})
    with pytest.raises(CheckpointError, match=r"shape mismatches \['decoder.basis_head.bias: stored \(6,\)"):
        load_banet(path)

    partial = {k: v for k, v in state.items() if not k.startswith("ba.damping.0")}
    partial["extra.weight"] = torch.zeros(1)
    path = save_checkpoint(tmp_path / "p.safetensors", partial, "banet", config.to_dict(), {})
    with pytest.raises(
        CheckpointError, match=r"missing keys \['ba.damping.0.net.0.bias'.*unexpected keys \['extra.weight'\]"
    ):
        load_banet(path)

    path = save_checkpoint(tmp_path / "c.safetensors", state, "banet", {**config.to_dict(), "colour": 1}, {})
    with pytest.raises(CheckpointError, match=r"invalid BA-Net config: .*unknown keys"):
        load_banet(path)

    path = save_checkpoint(tmp_path / "m.safetensors", state, "matcher", config.to_dict(), {})
    with pytest.raises(CheckpointError, match="expected 'banet'"):
        load_banet(path)
