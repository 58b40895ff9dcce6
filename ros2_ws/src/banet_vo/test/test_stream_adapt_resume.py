"""banet-vo-adapt-stream --resume reuses its stream only for the sequence, frames, model and depth targets
it was made from; bad input is a one-line error with exit status 2 before any odometry runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from banet_vo.geometry.rigid import pose_from_rotvec
from banet_vo.model import BANet
from banet_vo.model.checkpoint import save_checkpoint
from banet_vo.train import stream_adapt
from banet_vo.train.stream_adapt import StreamAdaptConfig, adapt_stream


def _odometry_like(n: int) -> np.ndarray:
    return np.stack([pose_from_rotvec([0.0, 0.01 * k, 0.0], [0.03 * k, 0.0, 0.01 * k]) for k in range(n)])


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_banet_config) -> Path:
    torch.manual_seed(0)
    model = BANet(tiny_banet_config())
    return save_checkpoint(
        tmp_path / "tiny.safetensors", model.state_dict(), "banet", model.config.to_dict(), {}
    )


@pytest.fixture
def adapted_once(hololens_dir, tiny_checkpoint, tmp_path, monkeypatch):
    """An out folder adapted on frames 0-20 (odometry and guard stubbed); returns (out, odometry calls)."""
    calls = []

    def poses(sequence, first, last, *args):
        calls.append((first, last))
        return np.arange(first, first + 14), _odometry_like(14)

    monkeypatch.setattr(stream_adapt, "odometry_poses", poses)
    monkeypatch.setattr(stream_adapt, "held_back_error", lambda *a: (1.0, 3))
    out = tmp_path / "out"
    adapt_stream(
        hololens_dir, (0, 20), tiny_checkpoint, out, StreamAdaptConfig(steps=1, synthetic_weight=0.0)
    )
    return out, calls


@pytest.mark.parametrize(
    ("frames", "other_model", "depth_targets", "named"),
    [
        ((5, 30), False, "photometric", "frames (the stream's [0, 20], asked [5, 30])"),
        ((0, 20), True, "photometric", "model (the stream's"),
        ((0, 20), False, "landmarks", "depth_targets (the stream's 'photometric', asked 'landmarks')"),
    ],
)
def test_resume_with_other_inputs_is_refused_naming_them(
    hololens_dir, tiny_checkpoint, adapted_once, tmp_path, frames, other_model, depth_targets, named
):
    out, calls = adapted_once
    model = tiny_checkpoint
    if other_model:
        model = tmp_path / "other.safetensors"
        model.write_bytes(tiny_checkpoint.read_bytes())
    config = StreamAdaptConfig(steps=2, synthetic_weight=0.0, depth_targets=depth_targets)
    with pytest.raises(ValueError, match="made from other inputs") as refused:
        adapt_stream(hololens_dir, frames, model, out, config, resume=True)
    assert named in str(refused.value) and calls == [(0, 20)]  # the odometry did not run again


def test_resume_with_the_same_inputs_continues(hololens_dir, tiny_checkpoint, adapted_once):
    out, calls = adapted_once
    config = StreamAdaptConfig(steps=2, synthetic_weight=0.0)
    report = adapt_stream(hololens_dir, (0, 20), tiny_checkpoint, out, config, resume=True)
    assert report["steps"] == 2 and report["frames"] == [0, 20] and calls == [(0, 20)]


def test_a_stream_without_its_record_is_not_resumed(hololens_dir, tiny_checkpoint, adapted_once):
    out, _ = adapted_once
    (out / "stream_source.json").unlink()  # a stream written before the record existed
    with pytest.raises(ValueError, match="run again without --resume"):
        adapt_stream(hololens_dir, (0, 20), tiny_checkpoint, out, StreamAdaptConfig(steps=2), resume=True)


def _argv(sequence, model, out, *extra: str) -> list[str]:
    """banet-vo-adapt-stream's arguments on frames 0-20."""
    return [str(sequence), "--frames", "0-20", "--model", str(model), "--out", str(out), *extra]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "0"], "threads must be an int >= 1, got 0"),
        (["--lr", "nan"], "lr must be a finite number"),
        (["--max-wall-s", "inf"], "max_wall_s must be a finite number"),
        (["--steps", "0"], "steps must be an int >= 1"),
    ],
)
def test_cli_bad_settings_are_one_line_and_exit_2(tmp_path, tiny_checkpoint, capsys, args, message):
    code = stream_adapt.main(_argv(tmp_path, tiny_checkpoint, tmp_path / "o", *args))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1] and "Traceback" not in "".join(err)


def test_cli_missing_sequence_is_one_line_and_exit_2(tmp_path, tiny_checkpoint, capsys):
    code = stream_adapt.main(_argv(tmp_path / "gone", tiny_checkpoint, tmp_path / "o"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1] == f"banet-vo-adapt-stream: sequence {tmp_path / 'gone'} does not exist"
