"""Synthetic world: trajectories (motion ranges, optical convention, rates), scenes (variety, closure),
sequences (intrinsics, depth, determinism, blur), the sensor model and the banet-vo-synth CLI."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from banet_vo.data.readers import open_sequence
from banet_vo.data.synthetic import (
    SensorModel,
    camera_from_fov,
    cast_rays,
    make_scene,
    make_trajectory,
    motion_per_frame,
    render_sequence,
)
from banet_vo.data.synthetic.cli import main as synth_main
from banet_vo.data.synthetic.generate import torch_threads
from banet_vo.data.synthetic.sensor import Sensor
from banet_vo.data.synthetic.trajectory import HANDHELD_STEP_DEG, HANDHELD_STEP_M


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small tensors: one thread is much faster than two on this shared machine (see docs/synthetic.md)."""
    with torch_threads(1):
        yield


def _euler_zyx(rotation: np.ndarray) -> tuple[float, float, float]:
    """yaw, pitch, roll of a body rotation (x forward, y left, z up)."""
    return (
        float(np.arctan2(rotation[1, 0], rotation[0, 0])),
        float(-np.arcsin(rotation[2, 0])),
        float(np.arctan2(rotation[2, 1], rotation[2, 2])),
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_driving_trajectory_ranges_and_optical_frame(seed: int) -> None:
    traj = make_trajectory("driving", 60, seed)
    assert traj.poses.shape == (60, 4, 4) and traj.poses.dtype == np.float64
    np.testing.assert_allclose(np.diff(traj.timestamps), 0.1, atol=1e-9)
    steps, angles = motion_per_frame(traj.poses)
    assert steps.min() >= 0.5 and steps.max() <= 1.5
    assert angles.max() < 1.5  # gentle
    scene = make_scene("driving", seed, length=100.0)
    lo, hi = scene.free_space
    assert np.all(traj.poses[:, :3, 3] >= lo) and np.all(traj.poses[:, :3, 3] <= hi)
    velocity = np.diff(traj.poses[:, :3, 3], axis=0)
    forward = traj.poses[:-1, :3, 2]  # optical z axis in the world
    cos = np.sum(forward * velocity, axis=1) / np.linalg.norm(velocity, axis=1)
    assert cos.min() > 0.99  # the camera looks where it drives
    assert np.all(traj.poses[:, 2, 1] < -0.99)  # optical y points down (world z up)
    assert np.all(traj.poses[:, :3, 0] @ np.array([0.0, 1.0, 0.0]) < -0.99)  # optical x is right = -y
    body = traj.poses[:, :3, :3] @ np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]])  # optical -> body axes
    pitch_roll = np.degrees(np.array([_euler_zyx(r)[1:] for r in body]))
    assert np.abs(pitch_roll).max() < 3.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_handheld_trajectory_ranges(seed: int) -> None:
    traj = make_trajectory("indoor", 90, seed)
    np.testing.assert_allclose(np.diff(traj.timestamps), 1 / 30, atol=1e-9)
    steps, angles = motion_per_frame(traj.poses)
    assert HANDHELD_STEP_M[0] <= steps.min() and steps.max() <= HANDHELD_STEP_M[1]
    assert HANDHELD_STEP_DEG[0] <= angles.min() and angles.max() <= HANDHELD_STEP_DEG[1]
    lo, hi = make_scene("indoor", seed).free_space
    assert np.all(traj.poses[:, :3, 3] >= lo - 1e-9) and np.all(traj.poses[:, :3, 3] <= hi + 1e-9)
    # Smooth: the per-frame velocity changes little from frame to frame.
    velocity = np.diff(traj.poses[:, :3, 3], axis=0)
    assert np.linalg.norm(np.diff(velocity, axis=0), axis=1).max() < 0.06


def test_trajectories_are_deterministic_and_pose_at_interpolates() -> None:
    a, b, c = (
        make_trajectory("indoor", 20, 7),
        make_trajectory("indoor", 20, 7),
        make_trajectory("indoor", 20, 8),
    )
    np.testing.assert_array_equal(a.poses, b.poses)
    assert np.abs(a.poses - c.poses).max() > 0.01
    for k in (0, 5, 19):
        np.testing.assert_allclose(a.pose_at(a.timestamps[k]), a.poses[k], atol=1e-12)
    mid = a.pose_at((a.timestamps[3] + a.timestamps[4]) / 2)[:3, 3]
    assert np.linalg.norm(mid - (a.poses[3, :3, 3] + a.poses[4, :3, 3]) / 2) < 0.01
    with pytest.raises(ValueError, match="outside"):
        a.pose_at(10.0)
    with pytest.raises(ValueError, match="kind"):
        make_trajectory("flying", 3, 0)
    with pytest.raises(ValueError, match="n must"):
        make_trajectory("driving", 0, 0)


def test_scenes_vary_by_seed_and_are_reproducible() -> None:
    s0, s0b, s1 = make_scene("indoor", 0), make_scene("indoor", 0), make_scene("indoor", 1)
    assert torch.equal(s0.origin, s0b.origin) and torch.equal(s0.atlas.buffer, s0b.atlas.buffer)
    assert s0.num_quads != s1.num_quads or not torch.equal(s0.origin, s1.origin)
    d0, d1 = make_scene("driving", 0, length=50.0), make_scene("driving", 1, length=50.0)
    assert d0.num_quads > 100 and d1.num_quads > 100
    assert d0.atlas.buffer.shape != d1.atlas.buffer.shape or not torch.equal(d0.atlas.buffer, d1.atlas.buffer)
    with pytest.raises(ValueError, match="kind"):
        make_scene("forest", 0)


def test_street_is_closed_so_only_sky_pixels_lack_depth() -> None:
    scene = make_scene("driving", 2, length=40.0)
    traj = make_trajectory("driving", 20, 2)
    camera = camera_from_fov(64, 48, 80.0)
    for pose in traj.poses[::6]:
        depth, _, dirs = cast_rays(scene, pose, camera)
        sky = depth == 0
        assert 0.01 < float(sky.float().mean()) < 0.6
        assert float(dirs[sky][:, 2].min()) > 0  # rays without a hit all point above the horizon
        assert float(depth[~sky].min()) > 0.5 and float(depth.max()) < 200.0


@pytest.fixture(scope="module")
def indoor_seq():
    return render_sequence("indoor", 3, (64, 48), seed=3)


def test_render_sequence_frames(indoor_seq) -> None:
    seq = indoor_seq
    assert len(seq) == 3 and seq.has_depth and seq.poses.shape == (3, 4, 4)
    cam = seq.camera
    assert (cam.width, cam.height) == (64, 48)
    assert cam.fx == pytest.approx(32 / np.tan(np.radians(65.0) / 2)) and cam.cx == 31.5 and cam.cy == 23.5
    np.testing.assert_allclose(seq.timestamps, np.arange(3) / 30)
    for frame in seq:
        assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
        assert frame.depth.dtype == np.float32 and frame.depth.min() > 0.3  # closed room: depth everywhere
        assert frame.depth.max() < 12.0 and 40 < frame.image.mean() < 200 and frame.image.std() > 10
    np.testing.assert_array_equal(seq.poses, make_trajectory("indoor", 3, 3).poses)


def test_render_sequence_is_deterministic_by_seed(indoor_seq) -> None:
    again = render_sequence("indoor", 3, (64, 48), seed=3)
    other = render_sequence("indoor", 3, (64, 48), seed=4)
    for a, b, c in zip(indoor_seq, again, other, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.depth, b.depth)
        assert np.abs(a.image.astype(int) - c.image).mean() > 5


def test_motion_blur_keeps_depth_and_smooths_the_image() -> None:
    sharp = render_sequence("driving", 2, (80, 60), seed=5, sensor=None)
    blurred = render_sequence("driving", 2, (80, 60), seed=5, blur=True, sensor=None)
    for s, b in zip(sharp, blurred, strict=True):
        np.testing.assert_array_equal(s.depth, b.depth)
        np.testing.assert_array_equal(s.pose, b.pose)
        gs = np.abs(np.diff(s.image.astype(float), axis=1)).mean()
        gb = np.abs(np.diff(b.image.astype(float), axis=1)).mean()
        assert gb < gs and np.abs(s.image.astype(float) - b.image).mean() < 10


def test_torch_threads_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(before + 2):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_render_sequence_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="scene"):
        render_sequence("space", 2)
    with pytest.raises(ValueError, match="frames"):
        render_sequence("indoor", 0)
    with pytest.raises(ValueError, match="size"):
        render_sequence("indoor", 1, (4, 4))
    with pytest.raises(ValueError, match="threads"):
        render_sequence("indoor", 1, (16, 12), threads=0)
    with pytest.raises(ValueError, match="supersample"):
        render_sequence("indoor", 1, (16, 12), supersample=0)


def test_sensor_noise_level_and_auto_exposure() -> None:
    model = SensorModel(exposure_jitter=0.0)
    sensor = Sensor(model, seed=0, frames=6)
    flat = torch.full((100, 100, 3), 0.2)
    image, gain = sensor.expose(flat)
    assert gain == pytest.approx(1.0)  # target 0.2 reached at once on the first frame
    # Linear std sqrt(4e-4 * 0.2 + 2e-3²) through the display curve x^(1/2.2), in 8-bit units.
    slope = (1 / 2.2) * 0.2 ** (1 / 2.2 - 1)
    expected_std = 255 * slope * np.sqrt(4e-4 * 0.2 + 2e-3**2)
    assert image.astype(float).std() == pytest.approx(expected_std, rel=0.15)
    assert image.astype(float).mean() == pytest.approx(255 * 0.2 ** (1 / 2.2), abs=1.0)
    # A 4x brighter scene: exposure adapts with a lag, so the image is too bright first, then converges.
    means = [sensor.expose(flat * 4)[0].astype(float).mean() for _ in range(5)]
    assert means[0] > means[-1] + 20 and abs(means[-1] - 255 * 0.2 ** (1 / 2.2)) < 15
    assert all(a >= b for a, b in itertools.pairwise(means))
    with pytest.raises(ValueError, match="set up for 6"):
        sensor.expose(flat)
    with pytest.raises(ValueError, match="read_noise"):
        SensorModel(read_noise=-1.0)


def test_cli_writes_our_format(tmp_path, capsys) -> None:
    out = tmp_path / "room"
    assert synth_main([str(out), "--scene", "indoor", "--frames", "2", "--size", "48x36", "--seed", "6"]) == 0
    assert "wrote 2 frames" in capsys.readouterr().err
    seq = open_sequence(out)
    ref = render_sequence("indoor", 2, (48, 36), seed=6)
    assert len(seq) == 2 and seq.camera.width == 48 and seq.has_depth
    for got, want in zip(seq, ref, strict=True):
        np.testing.assert_array_equal(got.image, want.image)
        np.testing.assert_allclose(got.depth, want.depth, atol=0.00051)
        np.testing.assert_allclose(got.pose, want.pose, atol=1e-6)
    np.testing.assert_allclose(seq.timestamps, ref.timestamps, atol=1e-6)
    assert synth_main([str(out), "--scene", "indoor", "--frames", "2", "--size", "48x36"]) == 1  # exists
    err = capsys.readouterr().err
    assert "already holds a sequence" in err and "rendered frame" not in err  # refused before rendering


def test_cli_driving_clips_far_depth_and_validates(tmp_path, cli_help) -> None:
    out = tmp_path / "street"
    args = [str(out), "--frames", "2", "--size", "64x48", "--seed", "1", "--max-depth", "20", "--no-noise"]
    assert synth_main(args) == 0
    seq = open_sequence(out)
    for frame in seq:
        assert frame.depth.max() <= 20.0 and (frame.depth == 0).mean() > 0.05
    with pytest.raises(SystemExit) as exc:
        synth_main([str(out), "--size", "64by48"])
    assert exc.value.code == 2
    assert synth_main([str(tmp_path / "x"), "--max-depth", "100"]) == 2
    help_text = cli_help(synth_main)
    for option in (
        "--scene",
        "--frames",
        "--size",
        "--seed",
        "--fov",
        "--blur",
        "--supersample",
        "--no-noise",
        "--max-depth",
        "--threads",
        "--overwrite",
    ):
        assert option in help_text
