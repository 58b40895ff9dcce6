"""depth_output.landmark_corrected_depth: a keyframe's depth put onto its landmarks by a smooth per-pixel
factor, checked against the kernel regression written out in float64 and on known geometry (on a real clip
through the pipeline: tests/test_depth_correction_real.py)."""

from __future__ import annotations

import numpy as np
import pytest
from banet_vo.geometry import PinholeCamera
from banet_vo.odometry.depth_output import (
    CORRECTION_MAX_FACTOR,
    MIN_CORRECTION_LANDMARKS,
    landmark_corrected_depth,
)

CAMERA = PinholeCamera(50.0, 50.0, 31.5, 23.5, 64, 48)


def _points_at(u, v, z, camera=CAMERA) -> np.ndarray:
    """Camera-frame points that project onto pixels (u, v) at depths z."""
    u, v, z = (np.asarray(a, dtype=np.float64) for a in (u, v, z))
    return np.c_[(u - camera.cx) * z / camera.fx, (v - camera.cy) * z / camera.fy, z]


def _explicit(depth, u, v, z, sigma_fraction=0.1, prior=1.0, max_factor=CORRECTION_MAX_FACTOR):
    """The same regression as plain sums over landmarks (float64), over the blur's square window."""
    h, w = depth.shape
    sigma = sigma_fraction * np.hypot(w, h)
    radius = int(np.ceil(3 * sigma))
    log_ratio = np.clip(np.log(z / depth[v, u]), -np.log(max_factor), np.log(max_factor))
    out = depth.astype(np.float64).copy()
    for y in range(h):
        for x in range(w):
            near = (np.abs(u - x) <= radius) & (np.abs(v - y) <= radius)
            wts = np.exp(-((u[near] - x) ** 2 + (v[near] - y) ** 2) / (2 * sigma**2))
            out[y, x] *= np.exp((wts @ log_ratio[near]) / (wts.sum() + prior))
    return out


def test_the_field_is_the_kernel_regression_of_the_log_ratios():
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 5.0, (48, 64)).astype(np.float32)
    u, v = rng.integers(0, 64, 40), rng.integers(0, 48, 40)
    z = depth[v, u] * rng.uniform(0.5, 2.0, 40)
    z[0] = depth[v[0], u[0]] * 50.0  # clipped to the largest factor
    got = landmark_corrected_depth(depth, CAMERA, _points_at(u, v, z))
    want = _explicit(depth.astype(np.float64), u, v, z)
    np.testing.assert_allclose(got, want, rtol=2e-5)


def test_known_geometry_far_points_clipping_and_invalid_pixels():
    depth = np.full((48, 64), 2.0, np.float32)
    depth[0, :] = 0.0  # invalid stays invalid
    # A dense patch of landmarks at twice the map's depth on the left: the left moves up by nearly 2x,
    # the right edge, ~5 sigma away, stays.
    uu, vv = np.meshgrid(np.arange(2, 14), np.arange(10, 40))
    u, v = uu.ravel(), vv.ravel()
    got = landmark_corrected_depth(depth, CAMERA, _points_at(u, v, np.full(u.size, 4.0)))
    assert 3.8 < got[25, 8] <= 4.0 and abs(got[25, 63] - 2.0) < 0.01
    assert np.all(got[0] == 0.0)
    # One landmark asking for 100x is clipped to CORRECTION_MAX_FACTOR, and weighted as the depth itself:
    # half the log at its own pixel when alone among MIN_CORRECTION_LANDMARKS spread out far apart.
    u = np.array([32, 0, 63, 0, 63])
    v = np.array([24, 1, 1, 47, 47])
    z = np.array([200.0, 2.0, 2.0, 2.0, 2.0])
    got = landmark_corrected_depth(depth, CAMERA, _points_at(u, v, z))
    assert got[24, 32] == pytest.approx(2.0 * np.sqrt(CORRECTION_MAX_FACTOR), rel=1e-3)
    # Too few landmarks, or all behind the camera or off the map: the depth as it is (a copy).
    few = _points_at(u[: MIN_CORRECTION_LANDMARKS - 1], v[: MIN_CORRECTION_LANDMARKS - 1], z[:4])
    same = landmark_corrected_depth(depth, CAMERA, few)
    assert np.array_equal(same, depth) and same is not depth
    behind = _points_at(u, v, z) * -1.0
    assert np.array_equal(landmark_corrected_depth(depth, CAMERA, behind), depth)
