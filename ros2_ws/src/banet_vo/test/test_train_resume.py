"""Resuming a training run (banet_vo.train.loop): config changes applied or refused, units written before a
model config key existed, a finished run left as it is, and a resumed run that draws, logs and learns
exactly what the uninterrupted one would, across an epoch boundary too."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest
import torch
from banet_vo.model.checkpoint import load_checkpoint, save_checkpoint
from banet_vo.model.config import BANetConfig
from banet_vo.train import loop
from banet_vo.train.checkpoints import _sha256, find_latest_unit
from banet_vo.train.config import TrainConfig
from banet_vo.train.data import CachedPairs, load_cache, make_specs, render_cache, save_cache
from banet_vo.train.loop import RunDirectoryError, epoch_batch, train

TINY_MODEL = dict(
    image_width=64, image_height=48, channels=8, num_basis=4, iterations=[1, 1], stem_channels=8,
    level2_channels=8, bottleneck_planes=[8, 8, 8, 8], decoder_channels=[8, 8, 8, 8], damping_hidden=8,
)  # fmt: skip


def tiny_config(**changes) -> TrainConfig:
    values = dict(
        model_preset="small", model_overrides=TINY_MODEL, data={"scenes": [], "sequences_per_scene": 0},
        batch_size=2, steps=4, lr=1e-3, log_every=1, num_threads=1, checkpoint_every_s=1e9,
    )  # fmt: skip
    values.update(changes)
    return TrainConfig.from_dict(values)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache") / "tiny.pt"
    save_cache(render_cache(make_specs(["indoor"], 1, 0, 3, (64, 48)), progress=False, workers=1), path)
    return CachedPairs(load_cache(path), {"indoor": [1, 2]})  # 3 pairs


def _state(run: Path) -> dict:
    unit, _ = find_latest_unit(run / "checkpoints")
    return torch.load(unit.file("state.pt"), weights_only=True)


def test_resume_applies_a_new_lr_and_plateau_patience_and_records_what_it_applied(
    tiny_data, tmp_path, caplog
):
    multipliers = {"decoder.depth_head": 10.0}
    train(tiny_config(steps=2, lr_multipliers=multipliers), tmp_path, dataset=tiny_data, progress=False)
    changed = tiny_config(steps=3, lr=0.05, plateau_patience=7, lr_multipliers=multipliers)
    with caplog.at_level(logging.WARNING):
        train(changed, tmp_path, resume=True, dataset=tiny_data, progress=False)
    state = _state(tmp_path)
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == pytest.approx([0.05, 0.5])
    assert state["scheduler"]["patience"] == 7
    assert state["train_config"]["lr"] == 0.05 and state["train_config"]["plateau_patience"] == 7
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "lr 0.001 -> 0.05" in said and "plateau_patience 3 -> 7" in said
    # Unchanged on the next resume: the decayed or applied lr is kept, nothing said.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        train(tiny_config(**{**changed.to_dict(), "steps": 4}), tmp_path, resume=True, dataset=tiny_data)
    assert [g["lr"] for g in _state(tmp_path)["optimizer"]["param_groups"]] == pytest.approx([0.05, 0.5])
    assert "applied" not in " ".join(r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"batch_size": 1}, "batch_size (stored 2, now 1)"),
        ({"seed": 3}, "seed (stored 0, now 3)"),
        ({"data": {"scenes": [], "sequences_per_scene": 0, "frames_per_sequence": 5}}, "data ("),
        ({"lr_multipliers": {"decoder": 2.0}}, "lr_multipliers ("),
    ],
)
def test_resume_refuses_to_change_what_the_run_is_naming_the_key(tiny_data, tmp_path, changes, named):
    train(tiny_config(steps=2), tmp_path, dataset=tiny_data, progress=False)
    before = _sha256(tmp_path / "checkpoints" / "step-000000002" / "state.pt")
    with pytest.raises(ValueError, match="changes what the run") as refused:
        train(tiny_config(steps=3, **changes), tmp_path, resume=True, dataset=tiny_data, progress=False)
    assert named in str(refused.value)
    assert _sha256(tmp_path / "checkpoints" / "step-000000002" / "state.pt") == before


def _rewrite_model_config(unit: Path, change) -> None:
    """Replace the unit's stored model config by change(config), keeping its manifest consistent."""
    weights, config, meta = load_checkpoint(unit / "model.safetensors")
    (unit / "model.safetensors").unlink()
    save_checkpoint(unit / "model.safetensors", weights, "banet", change(config), meta)
    manifest = json.loads((unit / "manifest.json").read_text())
    manifest["files"]["model.safetensors"] = {
        "bytes": (unit / "model.safetensors").stat().st_size,
        "sha256": _sha256(unit / "model.safetensors"),
    }
    (unit / "manifest.json").write_text(json.dumps(manifest))


def test_a_unit_written_before_a_model_config_key_existed_resumes(tiny_data, tmp_path):
    train(tiny_config(steps=2), tmp_path, dataset=tiny_data, progress=False)
    unit = tmp_path / "checkpoints" / "step-000000002"
    full = load_checkpoint(unit / "model.safetensors")[1]
    # Keys whose absence means today's value (STORED_CONFIG_DEFAULTS): what an older unit lacks.
    newer = [
        k for k in full if BANetConfig.from_dict({x: v for x, v in full.items() if x != k}).to_dict() == full
    ]
    assert {"input_geometry", "canonical_focal"} <= set(newer)
    _rewrite_model_config(unit, lambda c: {k: v for k, v in c.items() if k not in newer})
    result = train(tiny_config(steps=3), tmp_path, resume=True, dataset=tiny_data, progress=False)
    assert result.step == 3


def test_a_different_model_is_refused_naming_the_keys(tiny_data, tmp_path):
    train(tiny_config(steps=2), tmp_path, dataset=tiny_data, progress=False)
    other = tiny_config(steps=3, model_overrides={**TINY_MODEL, "num_basis": 6})
    with pytest.raises(ValueError, match=r"model config differs .* num_basis \(stored 4, now 6\)"):
        train(other, tmp_path, resume=True, dataset=tiny_data, progress=False)


def test_resuming_a_finished_run_leaves_its_unit_as_it_was(tiny_data, tmp_path):
    train(tiny_config(steps=3), tmp_path, dataset=tiny_data, progress=False)
    unit = tmp_path / "checkpoints" / "step-000000003"
    files = {name: (unit / name).read_bytes() for name in ("model.safetensors", "state.pt", "manifest.json")}
    (tmp_path / "last.safetensors").unlink()
    result = train(tiny_config(steps=3), tmp_path, resume=True, dataset=tiny_data, progress=False)
    assert result.step == 3 and result.checkpoint == tmp_path / "last.safetensors"
    assert {name: (unit / name).read_bytes() for name in files} == files  # not rewritten
    meta = load_checkpoint(tmp_path / "last.safetensors")[2]
    assert meta["steps"] == 3 and meta["metrics"]["train_loss"] > 0


def test_epoch_batch_takes_every_pair_once_per_epoch():
    n, per_rank = 10, 4
    drawn = [k for step in range(5) for k in epoch_batch(n, 0, step, per_rank, 0, 1)]  # two epochs
    assert Counter(drawn) == {k: 2 for k in range(n)}
    assert sorted(drawn[:10]) == list(range(n)) and sorted(drawn[10:]) == list(range(n))
    # Ranks: rank r of world 2 takes the positions rank 0 of world 1 would take for (2 steps)[r].
    for step in range(4):
        both = epoch_batch(n, 0, step, 2, 0, 2) + epoch_batch(n, 0, step, 2, 1, 2)
        assert both == epoch_batch(n, 0, step, 4, 0, 1)


def test_the_loop_crosses_epoch_boundaries_without_repeating_pairs(tiny_data, tmp_path, monkeypatch):
    drawn = []
    real = loop.stack_batch
    monkeypatch.setattr(
        loop,
        "stack_batch",
        lambda data, indices, device: drawn.extend(indices) or real(data, indices, device),
    )
    train(tiny_config(steps=3), tmp_path, dataset=tiny_data, progress=False)  # 3 pairs, batches of 2
    assert Counter(drawn) == {0: 2, 1: 2, 2: 2}
    assert sorted(drawn[:3]) == sorted(drawn[3:]) == [0, 1, 2]


def _weights(run: Path) -> dict:
    return load_checkpoint(run / "last.safetensors")[0]


def _log(run: Path) -> list[str]:
    return [
        ",".join(row.split(",")[:1] + row.split(",")[2:])
        for row in (run / "log.csv").read_text().splitlines()
    ]


def test_a_resumed_run_is_the_uninterrupted_run_across_an_epoch_boundary(tiny_data, tmp_path):
    """Steps 1-2 then 3-5 resumed equal 1-5 at once, bit for bit: weights, optimiser state and the log
    (wall time aside), with a plateau scheduler that acts and log rows that average two steps."""
    config = dict(plateau_window=1, plateau_patience=0, log_every=2)
    straight = train(tiny_config(steps=5, **config), tmp_path / "a", dataset=tiny_data, progress=False)
    train(tiny_config(steps=2, **config), tmp_path / "b", dataset=tiny_data, progress=False)
    resumed = train(tiny_config(steps=5, **config), tmp_path / "b", resume=True, dataset=tiny_data)
    assert straight.step == resumed.step == 5
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = _state(tmp_path / "a"), _state(tmp_path / "b")
    assert sa["scheduler"] == sb["scheduler"] and torch.equal(sa["rng_torch"], sb["rng_torch"])
    assert [g["lr"] for g in sa["optimizer"]["param_groups"]] == [
        g["lr"] for g in sb["optimizer"]["param_groups"]
    ]
    assert _log(tmp_path / "a") == _log(tmp_path / "b")


def test_a_run_resumes_from_the_unit_a_killed_rewrite_set_aside(tiny_data, tmp_path):
    train(tiny_config(steps=2), tmp_path, dataset=tiny_data, progress=False)
    units = tmp_path / "checkpoints"
    aside = units / ".step-000000002.old.k1ll3d.tmp"  # SIGKILL between moving it aside and the rename
    aside.mkdir()
    (units / "step-000000002").rename(aside / "step-000000002")
    result = train(tiny_config(steps=3), tmp_path, resume=True, dataset=tiny_data, progress=False)
    assert result.step == 3 and not aside.exists()
    assert load_checkpoint(tmp_path / "last.safetensors")[2]["steps"] == 3


def test_resume_takes_another_spelling_of_the_same_data_and_a_moved_cache(tiny_data, tmp_path, monkeypatch):
    """A relative and an absolute path to one sequence (or to the init weights) are the same run, and the
    cache's place and the real frames' memory budget say nothing about what is trained: a resume with
    them changed goes on (it was refused as a change of `data`). Another range of frames is still refused."""
    (tmp_path / "seq").mkdir()
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    data = {"scenes": [], "sequences_per_scene": 0, "real_sequences": ["seq@0-3"]}
    train(tiny_config(steps=2, data=data), run, dataset=tiny_data, progress=False)
    moved = {**data, "real_sequences": [f"{tmp_path / 'seq'}@0-3"], "cache": "/tmp/x.pt", "real_cache_mb": 64}
    result = train(tiny_config(steps=3, data=moved), run, resume=True, dataset=tiny_data, progress=False)
    assert result.step == 3
    other = {**data, "real_sequences": ["seq@0-2"]}
    with pytest.raises(ValueError, match="changes what the run"):
        train(tiny_config(steps=4, data=other), run, resume=True, dataset=tiny_data, progress=False)


def test_resume_with_another_process_count_is_refused_naming_both(tiny_data, tmp_path, monkeypatch):
    """batch_size is per process and each step's pairs are dealt out by rank: a unit written by one
    process resumed by two (torchrun on another machine) would be another run, so it is refused before
    anything is loaded or wrapped in DDP."""
    train(tiny_config(steps=2), tmp_path, dataset=tiny_data, progress=False)
    before = _state(tmp_path)["step"]
    monkeypatch.setattr(loop, "_distributed", lambda: (0, 2))
    refused = r"1 process\(es\), this one has 2.*with 1 process\(es\) in all"
    with pytest.raises(RunDirectoryError, match=refused):
        train(tiny_config(steps=4), tmp_path, resume=True, dataset=tiny_data, progress=False)
    monkeypatch.undo()
    assert _state(tmp_path)["step"] == before  # nothing written
    train(tiny_config(steps=4), tmp_path, resume=True, dataset=tiny_data, progress=False)
    assert _state(tmp_path)["step"] == 4
