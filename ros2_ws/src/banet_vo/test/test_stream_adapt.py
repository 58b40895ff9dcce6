"""banet-vo-adapt-stream: the stream it trains on carries the odometry's poses and no labels, the guard
keeps or rolls back, an interrupted run resumes, bad input is refused."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pypose as pp
import pytest
import torch
from banet_vo.data import PairDataset, open_sequence
from banet_vo.geometry.rigid import pose_from_rotvec
from banet_vo.model import BANet
from banet_vo.model.checkpoint import load_checkpoint, save_checkpoint
from banet_vo.model.input_image import input_geometry
from banet_vo.train import stream_adapt
from banet_vo.train.stream_adapt import StreamAdaptConfig, adapt_stream, held_back_error, write_stream

ROOT = Path(__file__).resolve().parents[4]


def _odometry_like(n: int) -> np.ndarray:
    """Poses unlike any ground truth: a slow arc, so a written pose can only have come from here."""
    return np.stack([pose_from_rotvec([0.0, 0.01 * k, 0.0], [0.03 * k, 0.0, 0.01 * k]) for k in range(n)])


def _same_checkpoint(a: Path, b: Path) -> bool:
    """Same weights, config and meta (model.safetensors is written anew, atomically, not copied)."""
    (wa, ca, ma), (wb, cb, mb) = load_checkpoint(a), load_checkpoint(b)
    return ca == cb and ma == mb and wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


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
    adapted = out / "run" / "last.safetensors"
    assert _same_checkpoint(out / "model.safetensors", adapted if decision == "adapted" else tiny_checkpoint)
    assert not _same_checkpoint(adapted, tiny_checkpoint)  # two Adam steps moved the weights
    assert json.loads((out / "report.json").read_text())["decision"] == report["decision"]


@pytest.fixture(scope="module")
def rendered_pair() -> dict:
    """One rendered indoor pair (images, true depth at the depth grid, true pose, depth intrinsics)."""
    from banet_vo.geometry.projection import scale_intrinsics
    from banet_vo.train.data import CachedPairs, make_specs, render_cache

    cache = render_cache(make_specs(["indoor"], 1, 7, 3, (128, 96)), progress=False)
    b = CachedPairs(cache, {"indoor": [2]}).stacked([0])
    depth = torch.nn.functional.interpolate(b["depth_ref"], size=(48, 64), mode="nearest-exact")
    pose = pp.mat2SE3(b["pose_tgt_ref"].double(), check=False).float()
    return {"item": {k: b[k][0] for k in ("image_ref", "image_tgt")}, "depth": depth, "pose": pose,
            "intrinsics": scale_intrinsics(b["intrinsics"], 0.5)}  # fmt: skip


def test_the_guard_rolls_back_a_model_whose_warp_throws_every_pixel_away(
    hololens_dir, tiny_checkpoint, tmp_path, monkeypatch, rendered_pair
):
    """The real held-back score (not stubbed): before adaptation the model's estimate of the held-back pair
    is the truth; after, its pose is 500 m behind, so no pixel stays in view. Such a model explains the
    pair no better than "no motion" and must be rolled back, not scored perfect."""
    n = 14
    monkeypatch.setattr(stream_adapt, "odometry_poses", lambda *args: (np.arange(n), _odometry_like(n)))
    behind = pp.SE3(torch.tensor([[0.0, 0.0, -500.0, 0.0, 0.0, 0.0, 1.0]]))
    poses = iter([rendered_pair["pose"], behind])  # before, after

    def estimates(model, stream_dir, frames, strides):
        out = SimpleNamespace(
            depths_per_level=[rendered_pair["depth"]], poses_per_level=[next(poses)],
            depth_intrinsics=rendered_pair["intrinsics"],
        )  # fmt: skip
        yield rendered_pair["item"], out

    monkeypatch.setattr(stream_adapt, "_held_back_estimates", estimates)
    config = StreamAdaptConfig(steps=1, synthetic_weight=0.0, held_back=0.2)
    report = adapt_stream(hololens_dir, (0, 20), tiny_checkpoint, tmp_path / "out", config)
    (before,), (after,) = report["held_back_before"], report["held_back_after"]
    assert 0.0 < before < after
    assert report["decision"].startswith("rolled back")
    assert _same_checkpoint(tmp_path / "out" / "model.safetensors", tiny_checkpoint)


def test_a_signal_during_training_leaves_no_decision_and_no_model(
    hololens_dir, tiny_checkpoint, tmp_path, monkeypatch
):
    """SIGINT in training: the run stops with a checkpoint but is not finished, so the guard does not
    judge it, no model.safetensors is left (not even an earlier run's), the CLI exits 130 as
    banet-vo-train does, and --resume finishes it."""
    import banet_vo.train.loop as loop

    n = 14
    monkeypatch.setattr(stream_adapt, "odometry_poses", lambda *args: (np.arange(n), _odometry_like(n)))
    monkeypatch.setattr(stream_adapt, "held_back_error", lambda *a: (1.0, 3))
    out = tmp_path / "out"
    argv = [str(hololens_dir), "--frames", "0-20", "--model", str(tiny_checkpoint), "--out", str(out),
            "--steps", "3", "--synthetic-weight", "0"]  # fmt: skip
    assert stream_adapt.main(argv) == 0 and (out / "model.safetensors").is_file()  # an earlier, whole run
    real_batch = loop.stack_batch

    def interrupted(*args):
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C during the first step
        monkeypatch.setattr(loop, "stack_batch", real_batch)
        return real_batch(*args)

    monkeypatch.setattr(loop, "stack_batch", interrupted)
    assert stream_adapt.main(argv) == 130
    report = json.loads((out / "report.json").read_text())
    assert report["stopped_by"] == "SIGINT" and report["steps"] == 1 and report["held_back_after"] is None
    assert report["decision"].startswith("none") and not (out / "model.safetensors").exists()
    assert stream_adapt.main([*argv, "--resume"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == 3 and report["decision"] == "adapted"
    assert _same_checkpoint(out / "model.safetensors", out / "run" / "last.safetensors")


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


def test_cli_help_says_what_each_option_does(cli_help):
    import re

    text = " ".join(cli_help(stream_adapt.main).split())
    assert "docstring" not in text
    # Every option's help says more than its default: some words before "(default ...)".
    for option in ("--depth-targets", "--steps", "--lr", "--held-back", "--synthetic-weight", "--tolerance"):
        found = re.search(re.escape(option) + r" [A-Z_{},a-z]+ (.*?)\(default", text)
        assert found and len(found.group(1).split()) >= 3, option


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


def _depth_grid_cell(geometry, camera, x: float, y: float) -> tuple[int, int] | None:
    """(column, row) of the depth-grid cell that sees source pixel (x, y), through the model input's own
    intrinsics (geometry.camera), or None when the pixel is cropped away: a path independent of the
    resize arithmetic."""
    inner = geometry.camera(camera)
    u = inner.fx * (x - camera.cx) / camera.fx + inner.cx  # model-input pixel (centres at integers)
    v = inner.fy * (y - camera.cy) / camera.fy + inner.cy
    cu, cv = int(np.floor((u + 0.5) / 2)), int(np.floor((v + 0.5) / 2))  # two input pixels a cell
    w, h = geometry.size[0] // 2, geometry.size[1] // 2
    return (cu, cv) if 0 <= cu < w and 0 <= cv < h else None


@pytest.mark.parametrize("input_geometry_rule", ["stretch", "keep_aspect"])
def test_sparse_depth_survives_the_resizes_to_the_depth_grid(tiny_banet_config, input_geometry_rule):
    """Each point's depth reaches its cell of the model's depth grid through the nearest-neighbour resizes
    training applies (to the model input, cropped when the aspect is kept, then to the depth grid); the
    nearest point wins a shared cell, cells without points stay 0."""
    from banet_vo.geometry import PinholeCamera
    from banet_vo.train.losses import downsample_depth_nearest

    rng = np.random.default_rng(0)
    W, H = 540, 360
    camera = PinholeCamera(400.0, 400.0, W / 2 - 0.5, H / 2 - 0.5, W, H)
    config = tiny_banet_config(image_width=128, image_height=96, input_geometry=input_geometry_rule)
    geometry = input_geometry(config, W, H)
    pixels = np.c_[rng.uniform(-0.5, W - 0.5, 300), rng.uniform(-0.5, H - 0.5, 300)]
    depth = rng.uniform(0.5, 20.0, 300)
    depth[:3] = [np.nan, -1.0, 70.0]  # not stored: invalid, behind, beyond uint16 millimetres
    image = stream_adapt.sparse_depth_image(pixels, depth, geometry)
    assert image.shape == (H, W) and image.dtype == np.float32
    grid = (geometry.size[1] // 2, geometry.size[0] // 2)
    cells = downsample_depth_nearest(torch.from_numpy(geometry.depth(image))[None, None], grid)[0, 0].numpy()
    expect = np.zeros(grid)
    for (x, y), d in zip(pixels[3:], depth[3:], strict=True):
        cell = _depth_grid_cell(geometry, camera, x, y)
        if cell is not None:
            held = expect[cell[1], cell[0]]
            expect[cell[1], cell[0]] = d if held == 0 else min(held, d)
    assert (expect > 0).sum() > 150
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


def test_landmark_targets_land_on_the_depth_grid_of_an_aspect_keeping_model(
    hololens_dir, tmp_path, monkeypatch, tiny_banet_config
):
    """A keep_aspect model prepares HoloLens' 540x360 frames as 136x88 (a 68x44 depth grid, one row
    cropped), not its config's 128x96: each landmark must reach, in the pairs training reads, the cell of
    that grid which sees it."""
    torch.manual_seed(0)
    config = tiny_banet_config(image_width=128, image_height=96, input_geometry="keep_aspect")
    weights = BANet(config).state_dict()
    checkpoint = save_checkpoint(tmp_path / "k.safetensors", weights, "banet", config.to_dict(), {})
    pixels = np.array([[40.0, 30.0], [140.0, 300.0], [270.0, 180.0], [400.0, 90.0], [500.0, 330.0]])
    metres = np.array([1.5, 2.5, 4.0, 6.5, 9.0])
    n = 14

    def poses(seq, a, b, m, t, landmarks):
        landmarks.extend([(pixels, metres)] * n)
        return np.arange(n), _odometry_like(n)

    monkeypatch.setattr(stream_adapt, "odometry_poses", poses)
    out = tmp_path / "out"
    stream_config = StreamAdaptConfig(steps=1, synthetic_weight=0.0, depth_targets="landmarks")
    adapt_stream(hololens_dir, (0, 20), checkpoint, out, stream_config)
    stream = open_sequence(out / "stream")
    geometry = input_geometry(config, *stream.camera.size)
    assert geometry.size == (136, 88)
    item = PairDataset(stream, strides=(1,), model_config=config, shuffle=False)[0]
    from banet_vo.train.losses import downsample_depth_nearest

    cells = downsample_depth_nearest(item["depth_ref"][None], (44, 68))[0, 0].numpy()
    expect = np.zeros((44, 68))
    for (x, y), d in zip(pixels, metres, strict=True):
        cu, cv = _depth_grid_cell(geometry, stream.camera, x, y)
        expect[cv, cu] = d
    np.testing.assert_allclose(cells, expect, atol=1e-3)  # millimetres as stored


def test_landmark_guard_scores_depth_and_rotation_against_the_stream(hololens_dir, tiny_checkpoint, tmp_path):
    """Held-back score with landmark targets: the depth error is measured on the target cells only, and
    scaling every target by 2 changes it as |d - 2t| / 2t predicts from |d - t| / t."""
    from banet_vo.model.checkpoint import load_banet

    model = load_banet(tiny_checkpoint)
    source, config = open_sequence(hololens_dir), model.config
    scores = []
    for k in (1.0, 2.0):
        depths = [(np.array([[100.0, 50.0], [300.0, 200.0]]), k * np.array([2.0, 3.5]))] * 6
        stream = write_stream(source, np.arange(6), _odometry_like(6), tmp_path / f"s{k}", depths, config)
        scores.append(stream_adapt.held_back_agreement(model, stream, (2, 5), (1, 2)))
    (rel1, rot1, n1), (rel2, rot2, n2) = scores
    assert n1 == n2 == 5 and np.isfinite([rel1, rel2]).all() and rel1 > 0
    assert rot1 == pytest.approx(rot2) and 0.0 <= rot1 < 180.0  # poses untouched by the depth targets
    assert rel1 != pytest.approx(rel2)
    with pytest.raises(ValueError, match="no held-back pairs with landmark targets"):
        empty = write_stream(source, np.arange(6), _odometry_like(6), tmp_path / "e", [None] * 6, config)
        stream_adapt.held_back_agreement(model, empty, (2, 5), (1,))
