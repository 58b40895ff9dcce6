"""banet-vo-adapt-stream: the stream it trains on carries the odometry's poses and no labels, the guard
keeps or rolls back, an interrupted run resumes, bad input is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from banet_vo.data import open_sequence
from banet_vo.geometry.rigid import pose_from_rotvec
from banet_vo.model import BANet
from banet_vo.model.checkpoint import save_checkpoint
from banet_vo.train import stream_adapt
from banet_vo.train.stream_adapt import StreamAdaptConfig, adapt_stream, held_back_error, write_stream

ROOT = Path(__file__).resolve().parents[4]


def _odometry_like(n: int) -> np.ndarray:
    """Poses unlike any ground truth: a slow arc, so a written pose can only have come from here."""
    return np.stack([pose_from_rotvec([0.0, 0.01 * k, 0.0], [0.03 * k, 0.0, 0.01 * k]) for k in range(n)])


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_banet_config) -> Path:
    torch.manual_seed(0)
    model = BANet(tiny_banet_config())
    return save_checkpoint(
        tmp_path / "tiny.safetensors", model.state_dict(), "banet", model.config.to_dict(), {}
    )


def test_the_stream_holds_the_given_poses_and_no_depth(hololens_dir, tmp_path):
    source = open_sequence(hololens_dir)
    assert source.has_depth and source.has_poses  # the labels exist and must not travel
    positions = np.array([2, 3, 5, 8, 9])
    poses = _odometry_like(len(positions))
    stream = open_sequence(write_stream(source, positions, poses, tmp_path / "stream"))
    assert len(stream) == 5 and not stream.has_depth
    np.testing.assert_allclose(stream.poses, poses, atol=1e-12)
    np.testing.assert_array_equal(stream.timestamps, source.timestamps[positions])
    np.testing.assert_array_equal(stream[2].image, source[5].image)
    assert stream.camera == source.camera


@pytest.mark.parametrize(("after", "decision"), [(0.5, "adapted"), (2.0, "rolled back")])
def test_the_guard_keeps_or_rolls_back(hololens_dir, tiny_checkpoint, tmp_path, monkeypatch, after, decision):
    """A short real training run on a stream of real frames; the held-back error is stubbed to steer the
    guard, and model.safetensors must then be the adapted or the original file."""
    n = 14
    monkeypatch.setattr(stream_adapt, "odometry_poses", lambda *args: (np.arange(n), _odometry_like(n)))
    scores = iter([(1.0, 3), (after, 3)])
    monkeypatch.setattr(stream_adapt, "held_back_error", lambda *a: next(scores))
    out = tmp_path / "out"
    config = StreamAdaptConfig(steps=2, synthetic_weight=0.0, held_back=0.2)
    report = adapt_stream(hololens_dir, (0, 20), tiny_checkpoint, out, config)
    assert report["decision"].startswith(decision)
    assert report["steps"] == 2 and report["stream_frames"] == n
    assert report["trained_on_stream_positions"] == [0, 10] and report["held_back_stream_positions"] == [
        11,
        13,
    ]
    kept = (out / "model.safetensors").read_bytes()
    adapted = (out / "run" / "last.safetensors").read_bytes()
    assert kept == (adapted if decision == "adapted" else tiny_checkpoint.read_bytes())
    assert adapted != tiny_checkpoint.read_bytes()  # two Adam steps moved the weights
    assert json.loads((out / "report.json").read_text())["decision"] == report["decision"]


def test_held_back_error_is_the_models_own_warp(hololens_dir, tiny_checkpoint, tmp_path):
    from banet_vo.model.checkpoint import load_banet

    stream = write_stream(open_sequence(hololens_dir), np.arange(6), _odometry_like(6), tmp_path / "s")
    model = load_banet(tiny_checkpoint)
    error, pairs = held_back_error(model, stream, (2, 5), (1, 2))
    assert pairs == 5 and np.isfinite(error) and 0.0 < error < 1.0  # SSIM/L1 mix of [0, 1] images
    with pytest.raises(ValueError, match="no pairs"):
        held_back_error(model, stream, (5, 5), (1,))


def test_resume_continues_the_interrupted_run(hololens_dir, tiny_checkpoint, tmp_path, monkeypatch):
    n = 14
    calls = []

    def poses(*a):
        calls.append(a)
        return np.arange(n), _odometry_like(n)

    monkeypatch.setattr(stream_adapt, "odometry_poses", poses)
    monkeypatch.setattr(stream_adapt, "held_back_error", lambda *a: (1.0, 3))
    out = tmp_path / "out"
    adapt_stream(
        hololens_dir, (0, 20), tiny_checkpoint, out, StreamAdaptConfig(steps=1, synthetic_weight=0.0)
    )
    report = adapt_stream(
        hololens_dir,
        (0, 20),
        tiny_checkpoint,
        out,
        StreamAdaptConfig(steps=3, synthetic_weight=0.0),
        resume=True,
    )
    assert len(calls) == 1  # the stream was kept: the odometry did not run again
    assert report["steps"] == 3
    log = (out / "run" / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["1", "3"]  # steps 2-3 continued from step 1


def test_real_odometry_gives_metric_poses_without_reading_labels(hololens_dir):
    """The shipped default odometry on 20 real frames: increasing positions, rigid finite poses."""
    model = ROOT / "models" / "banet_small_synthetic.safetensors"
    positions, poses = stream_adapt.odometry_poses(open_sequence(hololens_dir), 0, 19, model)
    assert len(positions) >= 10 and np.all(np.diff(positions) > 0) and positions.max() <= 19
    assert np.isfinite(poses).all()
    R = poses[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-6)
    assert np.linalg.norm(poses[-1, :3, 3] - poses[0, :3, 3]) > 0.01  # it moved (metres)


def test_cli_refuses_bad_input(hololens_dir, tiny_checkpoint, tmp_path, capsys, cli_help):
    assert "--frames" in cli_help(stream_adapt.main)
    code = stream_adapt.main(
        [
            str(hololens_dir),
            "--frames",
            "10-400",
            "--model",
            str(tiny_checkpoint),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "outside the sequence" in capsys.readouterr().err
    code = stream_adapt.main(
        [str(hololens_dir), "--frames", "0-20", "--model", str(tiny_checkpoint), "--out", str(tmp_path / "o"),
         "--held-back", "0.95"]
    )  # fmt: skip
    assert code == 2 and "held_back" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        stream_adapt.main([str(hololens_dir), "--frames", "x", "--model", "m", "--out", "o"])


def test_sparse_depth_survives_the_resizes_to_the_depth_grid():
    """Each point's depth reaches its cell of the model's depth grid through the two nearest-neighbour
    resizes training applies (to the input size, then to the depth grid); the nearest point wins a shared
    cell, cells without points stay 0."""
    from banet_vo.model.input_image import resize_depth_nearest
    from banet_vo.train.losses import downsample_depth_nearest

    rng = np.random.default_rng(0)
    W, H, grid = 540, 360, (64, 48)
    pixels = np.c_[rng.uniform(-0.5, W - 0.5, 300), rng.uniform(-0.5, H - 0.5, 300)]
    depth = rng.uniform(0.5, 20.0, 300)
    depth[:3] = [np.nan, -1.0, 70.0]  # not stored: invalid, behind, beyond uint16 millimetres
    image = stream_adapt.sparse_depth_image(pixels, depth, (W, H), grid)
    assert image.shape == (H, W) and image.dtype == np.float32
    at_input = resize_depth_nearest(image, 128, 96)
    cells = downsample_depth_nearest(torch.from_numpy(at_input)[None, None], (48, 64))[0, 0].numpy()
    expect = np.zeros((48, 64))
    for (x, y), d in zip(pixels[3:], depth[3:], strict=True):
        cu, cv = int((x + 0.5) * 64 / W), int((y + 0.5) * 48 / H)
        expect[cv, cu] = d if expect[cv, cu] == 0 else min(expect[cv, cu], d)
    np.testing.assert_allclose(cells, expect, rtol=1e-6)


def test_landmark_targets_are_written_as_depth(hololens_dir, tiny_checkpoint, tmp_path, monkeypatch):
    n = 14

    def poses(seq, a, b, m, t, landmarks):
        for k in range(n):  # every other frame tracked something
            landmarks.append(
                (np.array([[100.0, 50.0], [300.0, 200.0]]), np.array([2.0, 3.5])) if k % 2 else None
            )
        return np.arange(n), _odometry_like(n)

    monkeypatch.setattr(stream_adapt, "odometry_poses", poses)
    monkeypatch.setattr(stream_adapt, "held_back_error", lambda *a: (1.0, 3))
    out = tmp_path / "out"
    config = StreamAdaptConfig(steps=1, synthetic_weight=0.0, depth_targets="landmarks")
    adapt_stream(hololens_dir, (0, 20), tiny_checkpoint, out, config)
    stream = open_sequence(out / "stream")
    assert stream.has_depth
    assert not (stream[0].depth > 0).any()  # untracked frame: no targets
    d = stream[1].depth
    assert set(np.unique(d[d > 0]).round(3)) == {2.0, 3.5}
    assert d[50, 100] == pytest.approx(2.0, abs=1e-3) and d[200, 300] == pytest.approx(3.5, abs=1e-3)
    with pytest.raises(ValueError, match="depth_targets"):
        StreamAdaptConfig(depth_targets="gt")


def test_landmark_guard_scores_depth_and_rotation_against_the_stream(hololens_dir, tiny_checkpoint, tmp_path):
    """Held-back score with landmark targets: the depth error is measured on the target cells only, and
    scaling every target by 2 changes it as |d - 2t| / 2t predicts from |d - t| / t."""
    from banet_vo.model.checkpoint import load_banet

    model = load_banet(tiny_checkpoint)
    source = open_sequence(hololens_dir)
    scores = []
    for k in (1.0, 2.0):
        depths = [(np.array([[100.0, 50.0], [300.0, 200.0]]), k * np.array([2.0, 3.5]))] * 6
        stream = write_stream(source, np.arange(6), _odometry_like(6), tmp_path / f"s{k}", depths, (32, 24))
        scores.append(stream_adapt.held_back_agreement(model, stream, (2, 5), (1, 2)))
    (rel1, rot1, n1), (rel2, rot2, n2) = scores
    assert n1 == n2 == 5 and np.isfinite([rel1, rel2]).all() and rel1 > 0
    assert rot1 == pytest.approx(rot2) and 0.0 <= rot1 < 180.0  # poses untouched by the depth targets
    assert rel1 != pytest.approx(rel2)
    with pytest.raises(ValueError, match="no held-back pairs with landmark targets"):
        empty = write_stream(source, np.arange(6), _odometry_like(6), tmp_path / "e", [None] * 6, (32, 24))
        stream_adapt.held_back_agreement(model, empty, (2, 5), (1,))
