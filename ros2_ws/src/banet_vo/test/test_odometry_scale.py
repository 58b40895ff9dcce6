"""Scale from learned depth and from the ground plane, against known geometry."""

from __future__ import annotations

import numpy as np
import pytest
from banet_vo.geometry import PinholeCamera
from banet_vo.odometry.scale import ScaleFilter, depth_at_pixels, ground_plane_height, learned_scale
from scipy.spatial.transform import Rotation

UP_OPTICAL = np.array([0.0, -1.0, 0.0])  # a level camera: up is -y in optical coordinates


def _ground(height, n=300, pitch_deg=0.0, seed=0):
    rng = np.random.default_rng(seed)
    P = np.c_[rng.uniform(-5, 5, n), np.full(n, height), rng.uniform(3, 30, n)]  # y down: the road
    R = Rotation.from_euler("x", pitch_deg, degrees=True).as_matrix()
    return P @ R.T, R


@pytest.mark.parametrize("height", [0.3, 1.65, 12.0])
def test_ground_height_is_found_at_any_scale(height):
    P, _ = _ground(height)
    rng = np.random.default_rng(1)
    clutter = np.c_[rng.uniform(-5, 5, 150), rng.uniform(-2, 0.9, 150) * height, rng.uniform(3, 30, 150)]
    found = ground_plane_height(np.r_[P, clutter], UP_OPTICAL, inlier_fraction=0.03)
    assert found is not None
    assert found[0] == pytest.approx(height, rel=1e-6)
    assert found[1] >= 300


def test_tilted_camera_within_the_limit():
    P, _ = _ground(1.65, pitch_deg=3.0)
    found = ground_plane_height(P, UP_OPTICAL, max_normal_deg=5.0)
    assert found is not None and found[0] == pytest.approx(1.65, rel=1e-6)
    assert ground_plane_height(P, UP_OPTICAL, max_normal_deg=2.0) is None


def test_no_ground_below_gives_none():
    P, _ = _ground(-1.0)  # the "plane" is above the camera: a ceiling
    assert ground_plane_height(P, UP_OPTICAL) is None
    assert ground_plane_height(np.zeros((5, 3)), UP_OPTICAL) is None


@pytest.mark.parametrize("height", [0.05, 1.65])
def test_two_similar_planes_are_ambiguous_and_a_weak_second_is_not(height):
    """The road at `height` and a plane 30 % nearer the camera (car sills) with 0.8x its points: the draw
    could take either, so with the ambiguity check there is no answer; with a second plane of 0.3x the
    points, or with the check off, the road's height is found as before."""
    road, _ = _ground(height, n=100, seed=2)
    sills, _ = _ground(0.7 * height, n=80, seed=3)
    both = np.r_[road, sills]
    assert ground_plane_height(both, UP_OPTICAL, inlier_fraction=0.05, ambiguity_ratio=0.7) is None
    off = ground_plane_height(both, UP_OPTICAL, inlier_fraction=0.05)
    assert off is not None and off[0] == pytest.approx(height, rel=1e-6)
    weak = np.r_[road, sills[:30]]
    found = ground_plane_height(weak, UP_OPTICAL, inlier_fraction=0.05, ambiguity_ratio=0.7)
    assert found is not None and found[0] == pytest.approx(height, rel=1e-6) and found[1] == 100
    # A second plane at nearly the same height (the road's own noise) is not a rival.
    close, _ = _ground(1.08 * height, n=90, seed=4)
    found = ground_plane_height(np.r_[road, close], UP_OPTICAL, inlier_fraction=0.03, ambiguity_ratio=0.7)
    assert found is not None


def test_learned_scale_is_the_depth_ratio():
    cam = PinholeCamera(50.0, 60.0, 31.5, 23.5, 64, 48)
    depth = np.full((48, 64), 6.0, np.float32)
    rng = np.random.default_rng(0)
    P_map = np.c_[rng.uniform(-1, 1, 100), rng.uniform(-0.8, 0.8, 100), np.full(100, 2.0)]  # z = 2 map units
    assert learned_scale(P_map, depth, cam) == pytest.approx(3.0)
    depth[:] = 0.0  # invalid everywhere
    assert learned_scale(P_map, depth, cam) is None


def test_depth_at_pixels_reads_the_same_ray_at_another_resolution():
    """Pixels of a full-size camera read a depth map of the same view at a smaller, anisotropic size:
    each pixel lands where its ray does (a ramp in u and v tells a wrong axis or offset apart)."""
    cam = PinholeCamera(400.0, 380.0, 319.5, 239.5, 640, 480)
    small = cam.resized(64, 40)
    v, u = np.mgrid[0:40, 0:64]
    depth = (1.0 + u + 100.0 * v).astype(np.float32)  # a unique value per depth pixel
    rng = np.random.default_rng(1)
    pix = np.c_[rng.uniform(0, 639, 50), rng.uniform(0, 479, 50)]
    X = np.c_[(pix[:, 0] - cam.cx) / cam.fx, (pix[:, 1] - cam.cy) / cam.fy, np.ones(50)]
    ud = np.rint(small.fx * X[:, 0] + small.cx)
    vd = np.rint(small.fy * X[:, 1] + small.cy)
    inside = (ud >= 0) & (ud < 64) & (vd >= 0) & (vd < 40)
    got = depth_at_pixels(depth, small, cam, pix)
    np.testing.assert_array_equal(got[inside], 1.0 + ud[inside] + 100.0 * vd[inside])
    assert np.isnan(got[~inside]).all()
    # A ray off the map and an invalid depth read NaN, not 0.
    depth[:] = 0.0
    outside = np.array([[-500.0, 10.0], [100.0, 100.0]])
    assert np.isnan(depth_at_pixels(depth, small, cam, outside)).all()


def test_scale_filter_is_a_running_median():
    f = ScaleFilter(window=3)
    assert f.value is None and f.last is None
    for v in (1.0, 100.0, 2.0, None, float("nan"), -1.0):
        f.add(v)
    assert len(f) == 3 and f.value == pytest.approx(2.0)
    assert f.last == 2.0  # the refused values are not measurements
    f.add(3.0)
    assert f.value == pytest.approx(3.0) and f.last == 3.0  # window (100, 2, 3)
    with pytest.raises(ValueError):
        ScaleFilter(0)


def test_scale_filter_without_a_window_keeps_every_measurement():
    f = ScaleFilter(window=None)
    values = [1.0, 5.0, 5.0, 5.0, 0.5, 0.6, 0.7, 0.8]
    for v in values:
        f.add(v)
    assert len(f) == len(values)
    assert f.value == pytest.approx(np.median(values))  # a 3-window would give 0.7
    logs = np.log(values)
    assert f.relative_spread == pytest.approx(1.4826 * np.median(np.abs(logs - np.median(logs))))


def test_scale_filter_without_a_window_keeps_at_most_the_newest_max_measurements(monkeypatch):
    """A drive of days must not make every keyframe's median slower and slower: the newest
    MAX_SCALE_MEASUREMENTS stay (4 here, the same code path)."""
    from banet_vo.odometry import scale

    monkeypatch.setattr(scale, "MAX_SCALE_MEASUREMENTS", 4)
    f = scale.ScaleFilter(window=None)
    for v in (100.0, 100.0, 1.0, 2.0, 3.0, 4.0):
        f.add(v)
    assert len(f) == 4 and f.value == pytest.approx(2.5)
    with pytest.raises(ValueError):
        scale.ScaleFilter(5)  # a window over the cap is refused, as the parameter's range does


def test_scale_filter_relative_spread():
    f = ScaleFilter(5)
    f.add(2.0)
    f.add(2.2)
    assert f.relative_spread == 0.0  # fewer than three: not known
    for value in (1.8, 2.0, 4.0):
        f.add(value)
    logs = np.log([2.0, 2.2, 1.8, 2.0, 4.0])
    expected = 1.4826 * np.median(np.abs(logs - np.median(logs)))
    assert f.relative_spread == pytest.approx(expected)
    assert ScaleFilter(5).relative_spread == 0.0
    same = ScaleFilter(3)
    for _ in range(3):
        same.add(0.5)
    assert same.relative_spread == 0.0
