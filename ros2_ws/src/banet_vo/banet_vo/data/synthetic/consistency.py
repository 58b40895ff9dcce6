"""Photometric consistency of a rendered pair under its ground truth (the synthetic world's test of truth).

Warp frame j into frame i with frame i's depth and T_ji through `banet_vo.geometry.warp_image`; pixels
without depth (sky), outside frame j or occluded in frame j (its depth there disagrees with the warped
point's z) are masked.
"""

from __future__ import annotations

import numpy as np
import torch

from banet_vo.data.sequence import Sequence
from banet_vo.geometry import as_se3, relative_pose, warp_coordinates, warp_image


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def photometric_errors(
    seq: Sequence, i: int, j: int, T_ji: np.ndarray | None = None
) -> tuple[float, float, float]:
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
