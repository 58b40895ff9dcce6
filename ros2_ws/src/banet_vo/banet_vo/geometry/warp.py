"""Warp a source frame into the reference frame with the reference depth and the relative pose.

Each reference pixel p is back-projected with its depth D(p), moved by T_src_ref into the source
camera, projected, and the source image is sampled there: warped(p) = I_src(π(T_src_ref · D(p) K⁻¹ p̃)).
"""

from __future__ import annotations

import torch

from banet_vo.geometry.projection import backproject_depth, project, transform_points
from banet_vo.geometry.sampling import bilinear_sample

__all__ = ["warp_coordinates", "warp_image"]


def warp_coordinates(
    depth_ref: torch.Tensor, T_src_ref, intrinsics: torch.Tensor, min_depth: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where every reference pixel lands in the source camera.

    depth_ref (B, H, W), T_src_ref pp.SE3 (B,) or (B, 4, 4), intrinsics (B, 4) or (4,) →
    ``uv_src`` (B, H*W, 2), ``points_src`` (B, H*W, 3) in the source camera frame, ``valid`` (B, H*W):
    depth finite and > 0 and the point in front of the source camera (not yet checked against the
    image bounds; ``bilinear_sample`` does that). Pixel order is ``pixel_grid``'s (row-major).
    """
    if not isinstance(depth_ref, torch.Tensor) or depth_ref.dim() != 3:
        raise ValueError(f"depth_ref must have shape (B, H, W), got {tuple(getattr(depth_ref, 'shape', ()))}")
    B, H, W = depth_ref.shape
    depth_ok = (torch.isfinite(depth_ref) & (depth_ref > 0)).reshape(B, H * W)
    depth = torch.where(torch.isfinite(depth_ref) & (depth_ref > 0), depth_ref, torch.zeros_like(depth_ref))
    points_src = transform_points(T_src_ref, backproject_depth(depth, intrinsics))
    uv, _, in_front = project(points_src, intrinsics, min_depth)
    return uv, points_src, depth_ok & in_front


def warp_image(
    source: torch.Tensor,
    depth_ref: torch.Tensor,
    T_src_ref,
    intrinsics: torch.Tensor,
    min_depth: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source image/features (B, C, H, W) seen from the reference camera.

    Returns ``warped`` (B, C, H, W) and ``valid`` (B, H, W).

    Both frames share one camera (same size and intrinsics). valid is False where the reference depth is
    <= 0 or non-finite, where the point falls behind the source camera, or outside the source image;
    warped is 0 there.
    """
    if not isinstance(source, torch.Tensor) or source.dim() != 4:
        raise ValueError(f"source must have shape (B, C, H, W), got {tuple(getattr(source, 'shape', ()))}")
    if not isinstance(depth_ref, torch.Tensor) or depth_ref.dim() != 3:
        raise ValueError(f"depth_ref must have shape (B, H, W), got {tuple(getattr(depth_ref, 'shape', ()))}")
    B, C, H, W = source.shape
    if depth_ref.shape != (B, H, W):
        got = tuple(depth_ref.shape)
        raise ValueError(f"depth_ref must have shape ({B}, {H}, {W}) to match source, got {got}")
    uv, _, valid = warp_coordinates(depth_ref.to(source.dtype), T_src_ref, intrinsics, min_depth)
    values, _, inside = bilinear_sample(source, uv)
    valid = valid & inside
    values = torch.where(valid[..., None], values, torch.zeros_like(values))
    warped = values.transpose(1, 2).reshape(B, C, H, W)
    return warped, valid.reshape(B, H, W)
