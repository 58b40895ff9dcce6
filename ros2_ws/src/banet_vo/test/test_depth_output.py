"""Depth resampled to the input camera and back-projected to points, checked on known geometry."""

from __future__ import annotations

import numpy as np
import pytest
from banet_vo.geometry import PinholeCamera
from banet_vo.odometry.depth_output import depth_to_points, upsample_depth

INPUT = PinholeCamera(200.0, 190.0, 159.5, 119.5, 320, 240)
LOW = INPUT.resized(80, 60)


def _plane_depth(camera: PinholeCamera, normal, offset) -> np.ndarray:
    """Depth along z of the plane n·X = offset seen by `camera` (exact, per pixel centre)."""
    vs, us = np.mgrid[0 : camera.height, 0 : camera.width].astype(np.float64)
    rays = np.stack([(us - camera.cx) / camera.fx, (vs - camera.cy) / camera.fy, np.ones_like(us)], -1)
    return offset / (rays @ np.asarray(normal, dtype=np.float64))


def test_nearest_takes_the_closest_sample_centre():
    low = np.arange(80 * 60, dtype=np.float32).reshape(60, 80) + 1.0
    up = upsample_depth(low, LOW, INPUT, method="nearest")
    assert up.shape == (240, 320) and up.dtype == np.float32
    # scale 4: target pixel u maps to (u + 0.5) / 4 - 0.5, so u = 0 .. 3 -> sample 0; u = 4 .. 7 -> sample 1
    assert up[0, 0] == up[0, 3] == low[0, 0] and up[0, 4] == up[0, 7] == low[0, 1] and up[0, 8] == low[0, 2]
    assert up[5, 0] == low[1, 0]
    assert up[239, 319] == low[59, 79]
    assert set(np.unique(up)) <= set(np.unique(low))  # nothing invented


def test_edge_aware_follows_a_tilted_plane_closely():
    normal, offset = (0.1, -0.4, 1.0), 3.0
    up = upsample_depth(_plane_depth(LOW, normal, offset), LOW, INPUT, method="edge_aware")
    truth = _plane_depth(INPUT, normal, offset)
    inner = np.s_[4:-4, 4:-4]
    np.testing.assert_allclose(up[inner], truth[inner], rtol=2e-3)
    near = upsample_depth(_plane_depth(LOW, normal, offset), LOW, INPUT, method="nearest")
    assert np.abs(near - truth)[inner].max() > 5 * np.abs(up - truth)[inner].max()  # better than nearest


def test_edge_aware_makes_no_flying_pixels_and_keeps_invalid_invalid():
    low = np.full((60, 80), 10.0, np.float32)
    low[:, :40] = 2.0  # a foreground object on the left
    low[10, 60] = 0.0  # invalid (the pipeline marks invalid depth 0)
    low[20, 60] = np.nan
    up = upsample_depth(low, LOW, INPUT)
    finite = up[np.isfinite(up)]
    assert set(np.unique(finite)) == {2.0, 10.0}  # never a value between the two surfaces
    assert np.isnan(up[10 * 4 + 1, 60 * 4 + 1]) and np.isnan(up[20 * 4 + 2, 60 * 4 + 2])


def test_a_cropped_target_maps_through_the_rays_and_outside_is_nan():
    low = _plane_depth(LOW, (0.0, 0.0, 1.0), 5.0).astype(np.float32)
    crop = INPUT.cropped(40, 30, 200, 150)
    up = upsample_depth(low, LOW, crop)
    assert up.shape == (150, 200) and np.allclose(up, 5.0)
    wider = PinholeCamera(INPUT.fx, INPUT.fy, INPUT.cx + 20, INPUT.cy, 360, 240)  # 20 px beyond each side
    out = upsample_depth(low, LOW, wider)
    assert (
        np.all(np.isnan(out[:, :18]))
        and np.all(np.isfinite(out[:, 22:338]))
        and np.all(np.isnan(out[:, -18:]))
    )


def test_points_lie_on_the_plane_and_follow_the_optical_axes():
    normal, offset = np.array([0.1, -0.4, 1.0]), 3.0
    depth = _plane_depth(INPUT, normal, offset)
    depth[0, :] = np.nan
    points = depth_to_points(depth, INPUT, stride=2)
    assert points.dtype == np.float32 and len(points) == 120 * 160 - 160
    np.testing.assert_allclose(points @ normal, offset, rtol=1e-5)
    # pixel (u=300, v=10) is right of and above the centre: x > 0, y < 0 (x right, y down)
    single = np.full((240, 320), np.nan)
    single[10, 300] = 2.0
    ((x, y, z),) = depth_to_points(single, INPUT)
    assert (x, y, z) == pytest.approx(((300 - 159.5) * 2.0 / 200.0, (10 - 119.5) * 2.0 / 190.0, 2.0))
    with pytest.raises(ValueError, match="stride"):
        depth_to_points(depth, INPUT, stride=0)


def test_upsampling_refuses_a_bad_method_jump_or_depth_shape():
    low = np.ones((60, 80), np.float32)
    with pytest.raises(ValueError, match="method must be one of"):
        upsample_depth(low, LOW, INPUT, method="bicubic")
    for jump in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="max_relative_jump must be positive"):
            upsample_depth(low, LOW, INPUT, max_relative_jump=jump)
    for bad in (low.T, low[None], np.ones((61, 80), np.float32)):
        with pytest.raises(ValueError, match="depth must be 60x80"):
            upsample_depth(bad, LOW, INPUT)
