"""Test of truth for the synthetic world: on every generated pair, warping frame j into frame i with the
ground-truth depth of i and the pose T_ji (banet_vo.geometry.warp_image) must cut the photometric error
well below the no-motion error. Occluded pixels (the warped point is behind another surface in frame j)
and pixels without depth (sky) are masked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from banet_vo.data.synthetic import render_sequence
from banet_vo.data.synthetic.generate import torch_threads
from banet_vo.geometry import as_se3, relative_pose, warp_coordinates, warp_image

PAIRS = [(0, 1), (1, 0), (1, 2), (2, 3), (3, 2), (0, 2), (1, 3)]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small tensors: one thread is much faster than two on this shared machine (see docs/synthetic.md)."""
    with torch_threads(1):
        yield


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def photometric_errors(seq, i: int, j: int, T_ji: np.ndarray | None = None) -> tuple[float, float, float]:
    """(mean |warped_j - image_i| over visible pixels, mean |image_j - image_i|, visible fraction)."""
    fi, fj = seq[i], seq[j]
    if T_ji is None:
        T_ji = relative_pose(fi.pose, fj.pose)
    intrinsics = fi.camera.as_tensor()[None]
    T = as_se3(T_ji[None])
    depth_i = torch.from_numpy(fi.depth)[None]
    image_i, image_j = _to_tensor(fi.image), _to_tensor(fj.image)
    warped, valid = warp_image(image_j, depth_i, T, intrinsics)
    # Occlusion: the point's depth in camera j must agree with what camera j sees at that pixel.
    uv, points_j, _ = warp_coordinates(depth_i, T, intrinsics)
    h, w = fi.depth.shape
    col = uv[0, :, 0].round().long().clamp(0, w - 1)
    row = uv[0, :, 1].round().long().clamp(0, h - 1)
    seen = torch.from_numpy(fj.depth)[row, col]
    z = points_j[0, :, 2]
    visible = ((seen > 0) & ((z - seen).abs() < 0.02 * z + 0.01)).reshape(h, w)
    mask = valid[0] & visible
    warp_err = (warped[0] - image_i[0]).abs().mean(0)[mask].mean().item()
    still_err = (image_j[0] - image_i[0]).abs().mean().item()
    return warp_err, still_err, mask.float().mean().item()


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
