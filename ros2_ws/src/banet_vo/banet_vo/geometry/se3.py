"""SE(3) poses through pypose LieTensors, plus the few numpy helpers host code needs.

Layout (pypose 0.9.5): SE3 data ``[tx, ty, tz, qx, qy, qz, qw]``; tangent ``se3`` ``[ρ, φ]``.
Perturbations are on the left: ``T ← Exp(δ) · T`` (docs/CONVENTIONS.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pypose as pp
import torch
from pypose.lietensor.operation import se3_Jl

from banet_vo.geometry import rigid

__all__ = [
    "as_se3",
    "exp_se3",
    "identity_se3",
    "perturb_left",
    "relative_pose",
    "rotation_angle_deg",
    "to_matrix",
]

_RIGID_ATOL = 1e-4  # loose enough for float32 poses and KITTI's 9-digit text files


def _is_se3(T) -> bool:
    return isinstance(T, pp.LieTensor) and T.ltype == pp.SE3_type


def _check_rigid(M: torch.Tensor, name: str, atol: float) -> None:
    """Raise ValueError unless M (..., 3|4, 4) is a finite rigid transform (one host sync)."""
    if not bool(torch.isfinite(M).all()):
        raise ValueError(f"{name} has non-finite entries")
    R = M[..., :3, :3]
    eye = torch.eye(3, dtype=M.dtype, device=M.device)
    if not torch.allclose(R @ R.mT, eye.expand_as(R), atol=atol, rtol=0.0):
        raise ValueError(f"{name} rotation block is not orthonormal (tolerance {atol})")
    if not bool((torch.linalg.det(R) > 0).all()):
        raise ValueError(f"{name} rotation block has determinant -1 (a reflection, not a rotation)")
    if M.shape[-2] == 4:
        last = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=M.dtype, device=M.device)
        if not torch.allclose(M[..., 3, :], last.expand_as(M[..., 3, :]), atol=atol, rtol=0.0):
            raise ValueError(f"{name} last row must be [0, 0, 0, 1]")


def as_se3(T, dtype=None, device=None, check: bool = True, name: str = "T") -> pp.LieTensor:
    """Any pose → ``pp.SE3`` with batch shape ``(...)``.

    Accepts a ``pp.SE3`` LieTensor (returned as is, cast if dtype/device given), a numpy array or torch
    tensor of shape (..., 4, 4) or (..., 3, 4) (rigid transforms), or a plain (..., 7) tensor/array in
    pypose's SE3 layout (quaternion re-normalised). Numpy float64 stays float64. With ``check`` the
    matrices are validated (finite, orthonormal rotation, det +1, last row [0 0 0 1]); that costs one
    host sync, so hot loops should pass LieTensors.
    """
    if isinstance(T, pp.LieTensor):
        if not _is_se3(T):
            raise ValueError(f"{name} must be an SE3 LieTensor, got ltype {T.ltype.__class__.__name__}")
        return T if dtype is None and device is None else T.to(dtype=dtype, device=device)
    if isinstance(T, np.ndarray | list | tuple):
        T = torch.as_tensor(np.asarray(T))
    if not isinstance(T, torch.Tensor):
        raise ValueError(f"{name} must be a pp.SE3, a torch tensor or a numpy array, got {type(T).__name__}")
    if not T.is_floating_point():
        T = T.to(torch.get_default_dtype())
    if dtype is not None or device is not None:
        T = T.to(dtype=dtype, device=device)
    if T.dim() >= 1 and T.shape[-1] == 7 and not (T.dim() >= 2 and T.shape[-2:] in ((4, 4), (3, 4))):
        if check and not bool(torch.isfinite(T).all()):
            raise ValueError(f"{name} has non-finite entries")
        q = T[..., 3:]
        q = q / q.norm(dim=-1, keepdim=True)
        return pp.SE3(torch.cat([T[..., :3], q], dim=-1))
    if T.dim() < 2 or T.shape[-2:] not in ((4, 4), (3, 4)):
        raise ValueError(f"{name} must have shape (..., 4, 4), (..., 3, 4) or (..., 7), got {tuple(T.shape)}")
    if check:
        _check_rigid(T, name, _RIGID_ATOL)
    X = pp.mat2SE3(T, check=False)
    q = X.tensor()[..., 3:]
    q = q / q.norm(dim=-1, keepdim=True)
    return pp.SE3(torch.cat([X.tensor()[..., :3], q], dim=-1))


def to_matrix(T) -> torch.Tensor:
    """``pp.SE3`` (...) → homogeneous matrices (..., 4, 4); differentiable."""
    return as_se3(T, check=False).matrix()


def identity_se3(*batch: int, dtype=None, device=None) -> pp.LieTensor:
    """Identity poses with batch shape ``batch``."""
    return pp.identity_SE3(*batch, dtype=dtype or torch.get_default_dtype(), device=device)


# Below this rotation angle [rad] the exponential's coefficients are read from their Taylor series (to
# theta^6: error under 1e-15 here); above it the closed forms lose no accuracy, even in float32.
_SERIES_BELOW = 0.1


def _series(theta2: torch.Tensor, c0: float, c1: float, c2: float, c3: float) -> torch.Tensor:
    return c0 + theta2 * (c1 + theta2 * (c2 + theta2 * c3))


class _Se3Exp(torch.autograd.Function):
    """pypose's se3 Exp without its data-dependent branches: pypose picks the small-angle formulas by
    boolean indexing, a host sync per call on a GPU (about 170 per BA-Net pair); here both branches are
    computed and torch.where selects, so BA-Net's inference never waits on the device. The backward is
    pypose's own (its Lie-algebra gradient convention, which pypose's composition and Act expect
    downstream), so training gradients are pypose's (to the ~1e-9 its small-angle values differ by)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(delta: torch.Tensor) -> torch.Tensor:
        rho, phi = delta[..., :3], delta[..., 3:]
        theta2 = (phi * phi).sum(-1, keepdim=True)
        small = theta2 < _SERIES_BELOW**2
        # The closed forms get a harmless angle where the series is used, so neither branch makes a NaN
        # (torch.where would pass it on to the gradient).
        safe2 = torch.where(small, torch.ones_like(theta2), theta2)
        theta = safe2.sqrt()
        sin_half = torch.where(
            small, _series(theta2, 0.5, -1 / 48, 1 / 3840, -1 / 645120), torch.sin(0.5 * theta) / theta
        )
        cos_half = torch.where(
            small, _series(theta2, 1.0, -1 / 8, 1 / 384, -1 / 46080), torch.cos(0.5 * theta)
        )
        b = torch.where(
            small, _series(theta2, 0.5, -1 / 24, 1 / 720, -1 / 40320), (1 - torch.cos(theta)) / safe2
        )
        c = torch.where(
            small,
            _series(theta2, 1 / 6, -1 / 120, 1 / 5040, -1 / 362880),
            (theta - torch.sin(theta)) / (safe2 * theta),
        )
        # t = J_l(phi) rho, with J_l = I + b [phi]x + c [phi]x^2; q = (sin(theta/2) phi / theta, cos(theta/2))
        phi_rho = torch.linalg.cross(phi, rho, dim=-1)
        t = rho + b * phi_rho + c * torch.linalg.cross(phi, phi_rho, dim=-1)
        return torch.cat([t, sin_half * phi, cos_half], dim=-1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        (delta,) = inputs
        ctx.save_for_backward(delta)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (delta,) = ctx.saved_tensors
        return (grad_output[..., :-1].unsqueeze(-2) @ se3_Jl(delta)).squeeze(-2)


def exp_se3(delta: torch.Tensor) -> pp.LieTensor:
    """``Exp(δ)`` of ``δ = [ρ, φ]`` (..., 6) as a ``pp.SE3``: pypose's se3 Exp without host syncs
    (``_Se3Exp``); its gradients, and its values except below 1e-3 rad, where pypose drops terms of the
    series (off by up to ~4e-10) and this one keeps them."""
    if delta.shape[-1] != 6:
        raise ValueError(f"delta must have last dimension 6 ([rho, phi]), got {tuple(delta.shape)}")
    return pp.SE3(_Se3Exp.apply(delta))


def perturb_left(T: pp.LieTensor, delta: torch.Tensor) -> pp.LieTensor:
    """``Exp(δ) · T`` with ``δ = [ρ, φ]`` (..., 6): the update every Jacobian here is taken w.r.t."""
    return exp_se3(delta) @ as_se3(T, check=False)


def relative_pose(T_wi, T_wj):
    """``T_ji = inv(T_wj) · T_wi``: maps points from camera i into camera j.

    numpy (..., 4, 4) in → numpy float64 (..., 4, 4) out; ``pp.SE3`` in → ``pp.SE3`` out; plain torch
    (..., 4, 4) matrices in → torch (..., 4, 4) out. Batch shapes broadcast.
    """
    if isinstance(T_wi, np.ndarray) and isinstance(T_wj, np.ndarray):
        for name, T in (("T_wi", T_wi), ("T_wj", T_wj)):
            if T.ndim < 2 or T.shape[-2:] != (4, 4):
                raise ValueError(f"{name} must have shape (..., 4, 4), got {T.shape}")
            if not np.all(np.isfinite(T)):
                raise ValueError(f"{name} has non-finite entries")
        T_wi = T_wi.astype(np.float64)
        T_wj = T_wj.astype(np.float64)
        return rigid.invert(T_wj) @ T_wi
    if isinstance(T_wi, pp.LieTensor) or isinstance(T_wj, pp.LieTensor):
        A = as_se3(T_wi, name="T_wi")
        B = as_se3(T_wj, dtype=A.dtype, device=A.device, name="T_wj")
        return B.Inv() @ A
    if isinstance(T_wi, torch.Tensor) and isinstance(T_wj, torch.Tensor):
        A = as_se3(T_wi, name="T_wi")
        B = as_se3(T_wj, dtype=A.dtype, device=A.device, name="T_wj")
        return (B.Inv() @ A).matrix()
    raise ValueError(
        "T_wi and T_wj must both be numpy arrays, both torch tensors, or pp.SE3, got "
        f"{type(T_wi).__name__} and {type(T_wj).__name__}"
    )


def rotation_angle_deg(T):
    """Rotation angle (degrees, in [0, 180]) of poses or rotation matrices.

    numpy (..., 4, 4) / (..., 3, 3) → numpy; torch matrices or ``pp.SE3`` → torch tensor of shape (...).
    Uses atan2 of the sine and cosine parts, so small angles stay accurate (arccos of the trace does not).
    """
    if isinstance(T, pp.LieTensor):
        q = as_se3(T, check=False).tensor()[..., 3:]
        angle = 2.0 * torch.atan2(q[..., :3].norm(dim=-1), q[..., 3].abs())
        return torch.rad2deg(angle)
    if isinstance(T, np.ndarray):
        return rigid.rotation_angle_deg(T)
    if isinstance(T, torch.Tensor):
        if T.dim() < 2 or T.shape[-2:] not in ((4, 4), (3, 3), (3, 4)):
            raise ValueError(f"T must have shape (..., 4, 4) or (..., 3, 3), got {tuple(T.shape)}")
        R = T[..., :3, :3]
        axis = torch.stack(
            [R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1
        )
        s = 0.5 * axis.norm(dim=-1)
        c = 0.5 * (R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0)
        return torch.rad2deg(torch.atan2(s, c))
    raise ValueError(f"T must be a numpy array, torch tensor or pp.SE3, got {type(T).__name__}")
