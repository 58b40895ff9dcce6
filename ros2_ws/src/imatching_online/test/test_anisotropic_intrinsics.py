"""fx ≠ fy through the window BA and the adaptation targets.

Every synthetic window has fx = fy, where swapping the two anywhere goes unnoticed. Stretching a window's
pixel rows about cy by s (v' = cy + s·(v − cy)) with fy' = s·fy is the same scene seen by a camera with
anisotropic pixels, so the BA must recover the same poses and depths, and its reprojections must land on
the stretched true pixels. A swap of fx and fy moves rays and targets by tens of pixels at s = 1.3.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from imatching_online.adapt import ba_targets
from imatching_online.ba import PairMatches, WindowConfig, solve_window
from imatching_online.ba.synthetic import make_window

STRETCH = 1.3


def _stretched(window, s: float = STRETCH):
    camera = dataclasses.replace(window.camera, fy=window.camera.fy * s, height=int(window.height * s))
    cy = camera.cy

    def rows(uv: np.ndarray) -> np.ndarray:
        out = np.array(uv, dtype=np.float64, copy=True)
        out[:, 1] = cy + s * (out[:, 1] - cy)
        return out

    matches = {
        pair: PairMatches(rows(m.uv_a), rows(m.uv_b), m.conf, m.query_ids)
        for pair, m in window.matches.items()
    }
    true_uv = {pair: rows(uv) for pair, uv in window.true_uv_b.items()}
    return dataclasses.replace(
        window, camera=camera, matches=matches, true_uv_b=true_uv, height=int(window.height * s)
    )


@pytest.fixture(scope="module")
def solved():
    window = _stretched(
        make_window(motion="sideways", queries_per_anchor=100, noise_px=0.3, outlier_ratio=0.2, seed=5)
    )
    assert window.camera.fx != window.camera.fy
    return window, solve_window(window.camera, window.matches, config=WindowConfig())


def _angle_deg(R_a: np.ndarray, R_b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R_a.T @ R_b) - 1) / 2, -1.0, 1.0))))


def test_window_ba_recovers_poses_with_anisotropic_pixels(solved):
    window, result = solved
    assert result.success, (result.reason, result.detail)
    for k in range(len(window.poses)):
        assert _angle_deg(result.poses[k, :3, :3], window.poses[k, :3, :3]) < 0.5
    c_est, c_true = result.poses[:, :3, 3], window.poses[:, :3, 3]
    scale = np.linalg.norm(c_true, axis=1).max()
    assert np.abs(scale * c_est - c_true).max() < 0.01 * scale
    assert result.rms_px < 1.0


def test_adaptation_targets_land_on_the_true_pixels_with_anisotropic_pixels(solved):
    window, result = solved
    errors = []
    for pair, (idx, uv) in ba_targets(result, window.camera).items():
        inlier = ~window.outlier[pair][idx]
        errors.append(np.linalg.norm(uv[inlier] - window.true_uv_b[pair][idx[inlier]], axis=1))
    errors = np.concatenate(errors)
    assert len(errors) > 100
    assert np.median(errors) < 0.5 and np.percentile(errors, 99) < 2.0  # noise 0.3 px; a swap: tens of px
