"""Pinhole projection, back-projection and their analytic Jacobians (batched torch, any device/dtype).

Intrinsics are ``[fx, fy, cx, cy]`` with shape (B, 4) or (4,) (shared by the batch). Pixels are (u, v) =
(column, row) with the top-left pixel centre at (0, 0). Pose Jacobians use the left perturbation
``T ← Exp(δ) · T``, ``δ = [ρ, φ]`` (docs/CONVENTIONS.md).

Degenerate inputs never produce NaN/Inf: invalid points (z <= min_depth, non-finite) are replaced by safe
values *before* any division, so neither the forward nor the backward pass can leak NaN into sums.
"""

from __future__ import annotations

import pypose as pp
import torch

__all__ = [
    "backproject",
    "backproject_depth",
    "jacobian_point_wrt_pose",
    "jacobian_project_wrt_depth",
    "jacobian_project_wrt_point",
    "jacobian_project_wrt_pose",
    "pixel_grid",
    "project",
    "scale_intrinsics",
    "skew",
    "transform_points",
]


def _check_last(x: torch.Tensor, name: str, size: int, ndim: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if x.dim() != ndim or x.shape[-1] != size:
        dims = ", ".join([*["B", "N"][: ndim - 1], str(size)])
        raise ValueError(f"{name} must have shape ({dims}), got {tuple(x.shape)}")


def _intrinsics(intrinsics: torch.Tensor, batch: int) -> tuple[torch.Tensor, ...]:
    """(B, 4) or (4,) → fx, fy, cx, cy, each (B, 1) so they broadcast over N."""
    if not isinstance(intrinsics, torch.Tensor):
        kind = type(intrinsics).__name__
        raise ValueError(f"intrinsics must be a torch tensor [fx, fy, cx, cy], got {kind}")
    if intrinsics.shape == (4,):
        intrinsics = intrinsics.expand(batch, 4)
    if intrinsics.dim() != 2 or intrinsics.shape[-1] != 4 or intrinsics.shape[0] not in (1, batch):
        raise ValueError(f"intrinsics must have shape ({batch}, 4) or (4,), got {tuple(intrinsics.shape)}")
    intrinsics = intrinsics.expand(batch, 4)
    return tuple(intrinsics[:, k : k + 1] for k in range(4))


def scale_intrinsics(intrinsics: torch.Tensor, sx: float, sy: float | None = None) -> torch.Tensor:
    """Intrinsics of the image resized by (sx, sy): ``f' = s·f``, ``c' = s·(c + 0.5) − 0.5``.

    Same rule as ``PinholeCamera.resized``; use it for feature pyramids (e.g. sx = 0.5 per level).
    """
    if intrinsics.shape[-1] != 4:
        raise ValueError(f"intrinsics must have last dimension 4, got {tuple(intrinsics.shape)}")
    sy = sx if sy is None else sy
    if not (sx > 0 and sy > 0):
        raise ValueError(f"scale factors must be positive, got sx={sx}, sy={sy}")
    fx, fy, cx, cy = intrinsics.unbind(-1)
    return torch.stack([fx * sx, fy * sy, sx * (cx + 0.5) - 0.5, sy * (cy + 0.5) - 0.5], dim=-1)


def pixel_grid(height: int, width: int, dtype=None, device=None) -> torch.Tensor:
    """All pixel centres (u, v), row-major: row index ``v * width + u``. Shape (H*W, 2)."""
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"pixel_grid size must be positive, got height={height}, width={width}")
    dtype = dtype or torch.get_default_dtype()
    v, u = torch.meshgrid(
        torch.arange(int(height), dtype=dtype, device=device),
        torch.arange(int(width), dtype=dtype, device=device),
        indexing="ij",
    )
    return torch.stack([u.reshape(-1), v.reshape(-1)], dim=-1)


def backproject(uv: torch.Tensor, depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Pixels (B, N, 2) with z-depth (B, N) → camera points (B, N, 3) = depth · K⁻¹ [u, v, 1].

    Non-finite uv or depth give the point (0, 0, 0), which ``project`` marks invalid (z = 0), so
    missing depth cannot poison gradients of the other inputs. Zero/negative depth is kept as is.
    """
    _check_last(uv, "uv", 2, 3)
    if depth.shape != uv.shape[:-1]:
        expected = tuple(uv.shape[:-1])
        raise ValueError(f"depth must have shape {expected} to match uv, got {tuple(depth.shape)}")
    fx, fy, cx, cy = _intrinsics(intrinsics, uv.shape[0])
    ok = torch.isfinite(depth) & torch.isfinite(uv).all(dim=-1)
    d = torch.where(ok, depth, torch.zeros_like(depth))
    u = torch.where(ok, uv[..., 0], cx.expand_as(d))
    v = torch.where(ok, uv[..., 1], cy.expand_as(d))
    return torch.stack([(u - cx) / fx * d, (v - cy) / fy * d, d], dim=-1)


def backproject_depth(depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Depth map (B, H, W) → points (B, H*W, 3) of every pixel, in ``pixel_grid`` order."""
    if not isinstance(depth, torch.Tensor) or depth.dim() != 3:
        raise ValueError(f"depth must have shape (B, H, W), got {tuple(getattr(depth, 'shape', ()))}")
    B, H, W = depth.shape
    uv = pixel_grid(H, W, dtype=depth.dtype, device=depth.device).expand(B, H * W, 2)
    return backproject(uv, depth.reshape(B, H * W), intrinsics)


def _pose_matrix(T, batch: int, dtype, name: str) -> torch.Tensor:
    """pp.SE3 (B,) / (1,) / () or a (B, 4, 4) tensor → (B, 4, 4) matrices in ``dtype``."""
    if isinstance(T, pp.LieTensor):
        if T.ltype != pp.SE3_type:
            raise ValueError(f"{name} must be an SE3 LieTensor, got {T.ltype.__class__.__name__}")
        M = T.matrix()
    elif isinstance(T, torch.Tensor) and T.dim() >= 2 and T.shape[-2:] == (4, 4):
        M = T
    else:
        raise ValueError(f"{name} must be a pp.SE3 of batch shape ({batch},) or (B, 4, 4) matrices")
    if M.dim() == 2:
        M = M.unsqueeze(0)
    if M.dim() != 3 or M.shape[0] not in (1, batch):
        raise ValueError(f"{name} must have batch shape ({batch},), got {tuple(M.shape[:-2])}")
    return M.to(dtype).expand(batch, 4, 4)


def transform_points(T, points: torch.Tensor) -> torch.Tensor:
    """Apply poses T (pp.SE3 of batch shape (B,), or (B, 4, 4)) to points (B, N, 3) → (B, N, 3)."""
    _check_last(points, "points", 3, 3)
    M = _pose_matrix(T, points.shape[0], points.dtype, "T")
    return points @ M[:, :3, :3].mT + M[:, None, :3, 3]


def _valid_points(points: torch.Tensor, min_depth: float) -> torch.Tensor:
    return torch.isfinite(points).all(dim=-1) & (points[..., 2] > min_depth)


def project(
    points: torch.Tensor, intrinsics: torch.Tensor, min_depth: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Camera points (B, N, 3) → (uv (B, N, 2), z (B, N), valid (B, N)).

    Invalid points (non-finite, or z <= min_depth: behind or on the camera) get uv = 0, z = 0 and
    valid False; their gradients are exactly zero.
    """
    _check_last(points, "points", 3, 3)
    fx, fy, cx, cy = _intrinsics(intrinsics, points.shape[0])
    valid = _valid_points(points, min_depth)
    safe = torch.where(valid[..., None], points, torch.ones_like(points))
    x, y, z = safe.unbind(-1)
    u = fx * (x / z) + cx
    v = fy * (y / z) + cy
    uv = torch.where(valid[..., None], torch.stack([u, v], dim=-1), torch.zeros_like(safe[..., :2]))
    return uv, torch.where(valid, z, torch.zeros_like(z)), valid


def jacobian_project_wrt_point(
    points: torch.Tensor, intrinsics: torch.Tensor, min_depth: float = 1e-6
) -> torch.Tensor:
    """d(u, v)/d(x, y, z) at camera points (B, N, 3) → (B, N, 2, 3); zero rows for invalid points."""
    _check_last(points, "points", 3, 3)
    fx, fy, _, _ = _intrinsics(intrinsics, points.shape[0])
    valid = _valid_points(points, min_depth)
    safe = torch.where(valid[..., None], points, torch.ones_like(points))
    x, y, z = safe.unbind(-1)
    inv_z = 1.0 / z
    zero = torch.zeros_like(z)
    row_u = torch.stack([fx * inv_z, zero, -fx * x * inv_z * inv_z], dim=-1)
    row_v = torch.stack([zero, fy * inv_z, -fy * y * inv_z * inv_z], dim=-1)
    J = torch.stack([row_u, row_v], dim=-2)
    return torch.where(valid[..., None, None], J, torch.zeros_like(J))


def skew(w: torch.Tensor) -> torch.Tensor:
    """[w]× for w (..., 3) → (..., 3, 3), so that skew(a) @ b = a × b."""
    x, y, z = w.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*w.shape, 3)


def jacobian_point_wrt_pose(points_transformed: torch.Tensor) -> torch.Tensor:
    """d(Exp(δ)·p')/dδ at δ = 0 = [I, −[p']×] for transformed points p' (B, N, 3) → (B, N, 3, 6).

    Non-finite points give zero rows.
    """
    _check_last(points_transformed, "points_transformed", 3, 3)
    ok = torch.isfinite(points_transformed).all(dim=-1, keepdim=True)
    p = torch.where(ok, points_transformed, torch.zeros_like(points_transformed))
    eye = torch.eye(3, dtype=p.dtype, device=p.device).expand(*p.shape[:-1], 3, 3)
    J = torch.cat([eye, -skew(p)], dim=-1)
    return torch.where(ok[..., None], J, torch.zeros_like(J))


def jacobian_project_wrt_pose(
    points_transformed: torch.Tensor, intrinsics: torch.Tensor, min_depth: float = 1e-6
) -> torch.Tensor:
    """d uv / dδ (left perturbation of the pose that produced p') → (B, N, 2, 6); zero if invalid.

    Written out in closed form (no 2x3 @ 3x6 matmul): with a = x/z, b = y/z,
    du/dδ = fx/z · [1, 0, −a, −a·y, z + a·x, −y], dv/dδ = fy/z · [0, 1, −b, −z − b·y, b·x, x].
    """
    _check_last(points_transformed, "points_transformed", 3, 3)
    fx, fy, _, _ = _intrinsics(intrinsics, points_transformed.shape[0])
    valid = _valid_points(points_transformed, min_depth)
    safe = torch.where(valid[..., None], points_transformed, torch.ones_like(points_transformed))
    x, y, z = safe.unbind(-1)
    a, b = x / z, y / z
    one, zero = torch.ones_like(z), torch.zeros_like(z)
    ku, kv = (fx / z)[..., None], (fy / z)[..., None]
    row_u = ku * torch.stack([one, zero, -a, -a * y, z + a * x, -y], dim=-1)
    row_v = kv * torch.stack([zero, one, -b, -z - b * y, b * x, x], dim=-1)
    J = torch.stack([row_u, row_v], dim=-2)
    return torch.where(valid[..., None, None], J, torch.zeros_like(J))


def jacobian_project_wrt_depth(
    uv_ref: torch.Tensor,
    depth: torch.Tensor,
    T_tgt_ref,
    intrinsics: torch.Tensor,
    min_depth: float = 1e-6,
) -> torch.Tensor:
    """d uv_tgt / d depth_ref (B, N, 2) where ``p_tgt = T · (depth · K⁻¹ [u, v, 1])``.

    By the chain rule, J_proj(p_tgt) · R · K⁻¹[u, v, 1]. Zero where the depth is not a finite positive
    number, uv is non-finite, or the target point is invalid.
    """
    p_ref = backproject(uv_ref, depth, intrinsics)
    p_tgt = transform_points(T_tgt_ref, p_ref)
    M = _pose_matrix(T_tgt_ref, uv_ref.shape[0], uv_ref.dtype, "T_tgt_ref")
    ray = backproject(uv_ref, torch.ones_like(depth), intrinsics)
    d_point = ray @ M[:, :3, :3].mT
    J = jacobian_project_wrt_point(p_tgt, intrinsics, min_depth)
    J_depth = (J @ d_point[..., None]).squeeze(-1)
    ok = torch.isfinite(uv_ref).all(dim=-1) & torch.isfinite(depth) & (depth > 0)
    return torch.where(ok[..., None], J_depth, torch.zeros_like(J_depth))
