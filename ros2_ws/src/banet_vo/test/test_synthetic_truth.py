"""Test of truth for the synthetic world: on every generated pair, warping frame j into frame i with the
ground-truth depth of i and the pose T_ji (banet_vo.geometry.warp_image) must cut the photometric error
well below the no-motion error. Occluded pixels (the warped point is behind another surface in frame j)
and pixels without depth (sky) are masked."""

from __future__ import annotations

import pytest
from banet_vo.data.synthetic import render_sequence
from banet_vo.data.synthetic.consistency import photometric_errors
from banet_vo.data.synthetic.generate import torch_threads
from banet_vo.geometry import relative_pose

PAIRS = [(0, 1), (1, 0), (1, 2), (2, 3), (3, 2), (0, 2), (1, 3)]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small tensors: one thread is much faster than two on this shared machine (see docs/synthetic.md)."""
    with torch_threads(1):
        yield


@pytest.mark.parametrize(("scene", "seed"), [("driving", 0), ("driving", 11), ("indoor", 0), ("indoor", 12)])
def test_gt_depth_and_pose_explain_every_pair(scene: str, seed: int) -> None:
    seq = render_sequence(scene, 4, (160, 120), seed=seed)
    for i, j in PAIRS:
        warp_err, still_err, visible = photometric_errors(seq, i, j)
        assert visible > 0.3, (i, j, visible)
        assert warp_err < 0.5 * still_err, (i, j, warp_err, still_err)
        # Control: the inverse (wrong-way) relative pose must not explain the pair.
        wrong_err, _, _ = photometric_errors(seq, i, j, T_ji=relative_pose(seq[j].pose, seq[i].pose))
        assert warp_err < 0.6 * wrong_err, (i, j, warp_err, wrong_err)


def test_noise_free_frames_are_even_more_consistent() -> None:
    seq = render_sequence("indoor", 3, (160, 120), seed=5, sensor=None)
    for i, j in [(0, 1), (2, 1), (0, 2)]:
        warp_err, still_err, _ = photometric_errors(seq, i, j)
        assert warp_err < 0.25 * still_err, (i, j, warp_err, still_err)
