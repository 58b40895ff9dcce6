"""Differentiable feature-metric bundle adjustment (paper §4.3): Levenberg-Marquardt over the relative pose
T_tgt_ref and the K depth-basis coefficients w, coarse to fine, with fixed iteration counts and a predicted
damping λ (no if-else anywhere, so gradients flow through every iteration).

Residual of reference pixel p at a level: e_p = F_tgt(π(T · D(p) K⁻¹ p̃)) − F_ref(p) ∈ R^C, with the
depth model either additive, D = floor(D0 + B·w) (the authors' code), or multiplicative, D = D0·exp(B·w)
(``depth_update``; log depth is linear in w, so a coefficient step is a relative depth change and no pixel
can be pushed onto a floor where it gets no gradient). Unknowns x = [δ (6, left perturbation, [ρ, φ]),
Δw (K)]. Per pixel the Jacobian is G_p J_p with G_p (C×2) the target feature gradient at the warped point
and J_p (2×(6+K)) the projection Jacobian, so the normal equations are assembled per pixel:

    AᵀA = Σ_p J_pᵀ (G_pᵀ G_p) J_p,    Aᵀb = Σ_p J_pᵀ (G_pᵀ e_p),

in O(N·(6+K)²) without ever forming the (N·C)×(6+K) Jacobian (that naive form is kept here only as the
reference for tests and the benchmark). The step solves (AᵀA + λ·diag(AᵀA) + εI) x = −Aᵀb, Jacobi-scaled so
fp32 stays well conditioned; the pose is updated as T ← Exp(δ)·T and w ← w + Δw.

Coarser levels use the depth model area-pooled to their grid (D0, or log D0 for the multiplicative model,
and B enter linearly, so pooling keeps the same coefficients meaningful on every level) and intrinsics
scaled by the resize rule. Every pixel of each level is used (no sub-sampling): 64x48 + 32x24 + 16x12 for
`small`, 160x120 + 80x60 + 40x30 for `paper`.
The BA always runs in float32 (float64 if its inputs are float64), with autocast disabled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pypose as pp
import torch
import torch.nn.functional as F
from torch import nn

from banet_vo.geometry.projection import (
    backproject,
    jacobian_project_wrt_pose,
    pixel_grid,
    project,
    scale_intrinsics,
    transform_points,
)
from banet_vo.geometry.sampling import bilinear_sample
from banet_vo.geometry.se3 import identity_se3, perturb_left
from banet_vo.model.config import DEPTH_UPDATES, BAOptions
from banet_vo.model.damping import DampingMLP, mean_abs_residual

__all__ = [
    "BALayer",
    "BALevel",
    "BAResult",
    "Damping",
    "Linearization",
    "bundle_adjust",
    "damped_solve",
    "depth_from_coefficients",
    "euclidean_pose",
    "linearize",
    "lm_step",
    "normal_equations",
    "normal_equations_dense",
    "normal_equations_structured",
    "positive_depth",
    "prepare_level",
]

# Bound on |B·w| of the multiplicative model (a factor of e^±7 ≈ 1100): only an overflow guard.
_MAX_LOG_RATIO = 7.0
# The bounded model's largest correction of D0: a factor of 4 either way, approached smoothly.
BOUNDED_LOG_FACTOR = math.log(4.0)

# A damping source: a module/callable mapping mean |e| per channel (B, C) → λ (B,) or per block (B, 2)
# [pose, depth coefficients], or a fixed λ.
Damping = Callable[[torch.Tensor], torch.Tensor] | float


@dataclass
class BALevel:
    """One pyramid level, flattened for the BA. N = h·w reference pixels in ``pixel_grid`` order."""

    features_ref: torch.Tensor  # (B, N, C) reference features at the pixel centres
    features_tgt: torch.Tensor  # (B, C, h, w) target feature map (sampled at the warped points)
    uv: torch.Tensor  # (B, N, 2) reference pixel centres
    basis: torch.Tensor  # (B, N, K) depth basis at this level
    depth0: torch.Tensor  # (B, N) initial depth at this level
    intrinsics: torch.Tensor  # (B, 4) at this level's resolution
    height: int
    width: int
    depth_update: str = "additive"  # see ``depth_from_coefficients``


@dataclass
class Linearization:
    """Residuals and per-pixel Jacobian factors at the current estimate.

    The projection Jacobian J_p = [∂uv/∂δ, ∂uv/∂D · B_p] is kept factored: ``pose_jacobian`` (2×6),
    ``depth_jacobian`` (2, including the floor's slope) and the level's ``basis`` rows (K).
    """

    residual: torch.Tensor  # (B, N, C), zero where invalid
    feature_gradient: torch.Tensor  # G: (B, N, C, 2), zero where invalid
    pose_jacobian: torch.Tensor  # (B, N, 2, 6) d uv_tgt / d δ
    depth_jacobian: torch.Tensor  # (B, N, 2) d uv_tgt / d raw depth
    basis: torch.Tensor  # (B, N, K)
    mask: torch.Tensor  # (B, N) bool: projects in front of the target camera and inside its image

    @property
    def jacobian(self) -> torch.Tensor:
        """The full J: (B, N, 2, 6+K) d uv_tgt / d x (materialised; for tests and the generic assembly)."""
        return torch.cat([self.pose_jacobian, self.depth_jacobian[..., None] * self.basis[:, :, None, :]], -1)

    def normal_equations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return normal_equations_structured(
            self.pose_jacobian, self.depth_jacobian, self.basis, self.feature_gradient, self.residual
        )


@dataclass
class BAResult:
    pose: pp.LieTensor  # SE3 (B,) T_tgt_ref
    coefficients: torch.Tensor  # w (B, K)
    depth: torch.Tensor  # (B, 1, h, w) final depth at the depth resolution
    hessian: torch.Tensor  # (B, 6+K, 6+K) AᵀA at the final estimate (finest level)
    gradient: torch.Tensor  # (B, 6+K) Aᵀb at the final estimate
    cost: torch.Tensor  # (B,) Σ|e|² / valid pixels at the final estimate (finest level)
    num_valid: torch.Tensor  # (B,) valid pixels in that cost
    poses_per_level: list[pp.LieTensor]  # after each level, coarse → fine
    depths_per_level: list[torch.Tensor]  # (B, 1, h, w) after each level
    lambdas: list[torch.Tensor]  # λ of every iteration, in order: (B,), or (B, 2) [pose, depth]


# Smallest D0 [m] the BA takes: far below any real depth, so only a zero or an underflow is raised to it.
DEPTH0_FLOOR = 1e-6


def positive_depth(raw: torch.Tensor, min_depth: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth positive floor: D = min_depth + softplus_β(raw − min_depth), β = 2 / min_depth.

    Equals raw (exactly, past softplus' linear threshold) when raw is well above the floor. Returns the
    depth and dD/d raw (needed for the analytic Jacobian).
    """
    beta = 2.0 / min_depth
    x = raw - min_depth
    depth = min_depth + F.softplus(x, beta=beta, threshold=20.0)
    slope = torch.where(x * beta > 20.0, torch.ones_like(x), torch.sigmoid(x * beta))
    return depth, slope


def depth_from_coefficients(
    depth0: torch.Tensor, offset: torch.Tensor, min_depth: float, depth_update: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth and dD/d(B·w) from D0 and the basis offset B·w (same shapes).

    additive: D = floor(D0 + B·w) with ``positive_depth``'s smooth floor at ``min_depth``.
    multiplicative: D = D0·exp(B·w) (D0 > 0, so D > 0 without a floor; ``min_depth`` is unused).
    bounded: D = D0·exp(b·tanh(B·w / b)), b = ln 4: the BA may correct D0 by at most a factor of 4, so a
    diverging pair cannot throw pixels a thousand times off (it did with the unbounded model, MODEL_CARD).
    """
    _check_depth_update(depth_update)
    if depth_update == "additive":
        return positive_depth(depth0 + offset, min_depth)
    if depth_update == "multiplicative":
        inside = offset.abs() < _MAX_LOG_RATIO
        depth = depth0 * torch.exp(offset.clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO))
        return depth, depth * inside.to(depth.dtype)
    squashed = torch.tanh(offset / BOUNDED_LOG_FACTOR)  # bounded
    depth = depth0 * torch.exp(BOUNDED_LOG_FACTOR * squashed)
    return depth, depth * (1.0 - squashed.square())


def _check_depth_update(depth_update: str) -> None:
    if depth_update not in DEPTH_UPDATES:
        raise ValueError(f"depth_update must be one of {DEPTH_UPDATES}, got {depth_update!r}")


def _pool_depth0(depth0: torch.Tensor, size: tuple[int, int], depth_update: str) -> torch.Tensor:
    # The coefficients act on D0 (additive) or on log D0 (multiplicative): pool what they act on.
    if depth_update != "additive":
        return torch.exp(F.adaptive_avg_pool2d(depth0.log(), size))
    return F.adaptive_avg_pool2d(depth0, size)


def prepare_level(
    features_ref: torch.Tensor,
    features_tgt: torch.Tensor,
    basis: torch.Tensor,
    depth0: torch.Tensor,
    intrinsics: torch.Tensor,
    depth_update: str = "additive",
) -> BALevel:
    """Flatten one level. Feature maps (B, C, h, w); basis (B, K, H, W) and depth0 (B, 1, H, W) at the depth
    resolution with ``intrinsics`` (B, 4) for it; they are area-pooled to (h, w) when the level is coarser.
    ``depth_update``: "additive" or "multiplicative" (``depth_from_coefficients``)."""
    _check_depth_update(depth_update)
    if features_ref.shape != features_tgt.shape:
        raise ValueError(
            f"features_ref {tuple(features_ref.shape)} and features_tgt {tuple(features_tgt.shape)} differ"
        )
    B, _, h, w = features_ref.shape
    H, W = basis.shape[-2:]
    if depth0.shape != (B, 1, H, W):
        raise ValueError(f"depth0 must have shape {(B, 1, H, W)} to match basis, got {tuple(depth0.shape)}")
    if (h, w) != (H, W):
        basis = F.adaptive_avg_pool2d(basis, (h, w))
        depth0 = _pool_depth0(depth0, (h, w), depth_update)
        intrinsics = scale_intrinsics(intrinsics, w / W, h / H)
    N = h * w
    uv = pixel_grid(h, w, dtype=features_ref.dtype, device=features_ref.device).expand(B, N, 2)
    return BALevel(
        features_ref=features_ref.flatten(2).transpose(1, 2),
        # Channels-last storage makes bilinear_sample's per-tap gather read contiguous rows (~2x faster on
        # the small preset); values are identical.
        features_tgt=features_tgt.contiguous(memory_format=torch.channels_last),
        uv=uv,
        basis=basis.flatten(2).transpose(1, 2),
        depth0=depth0.reshape(B, N),
        intrinsics=intrinsics,
        height=h,
        width=w,
        depth_update=depth_update,
    )


def linearize(
    level: BALevel, pose: pp.LieTensor, coefficients: torch.Tensor, min_depth: float
) -> Linearization:
    """Residuals, feature gradients and the 2×(6+K) projection Jacobian of every reference pixel."""
    offset = torch.einsum("bnk,bk->bn", level.basis, coefficients)
    depth, slope = depth_from_coefficients(level.depth0, offset, min_depth, level.depth_update)
    matrix = pose.matrix()
    points_ref = backproject(level.uv, depth, level.intrinsics)
    points_tgt = transform_points(matrix, points_ref)
    uv_tgt, _, in_front = project(points_tgt, level.intrinsics)
    values, gradients, inside = bilinear_sample(level.features_tgt, uv_tgt)
    mask = in_front & inside
    weight = mask.to(values.dtype)
    residual = (values - level.features_ref) * weight[..., None]
    gradients = gradients * weight[..., None, None]

    j_pose = jacobian_project_wrt_pose(points_tgt, level.intrinsics)  # (B, N, 2, 6)
    # d uv/d depth = (d uv/d p_tgt)·R·K⁻¹p̃; the translation block of the left pose Jacobian is d uv/d p_tgt,
    # so this reuses it instead of a second projection (same value as jacobian_project_wrt_depth).
    ray_tgt = (points_ref / depth[..., None]) @ matrix[:, :3, :3].mT  # R·K⁻¹p̃, depth >= the floor > 0
    j_depth = (j_pose[..., :3] * ray_tgt[:, :, None, :]).sum(-1) * slope[..., None]  # (B, N, 2)
    return Linearization(residual, gradients, j_pose, j_depth, level.basis, mask)


def normal_equations(
    jacobian: torch.Tensor, feature_gradient: torch.Tensor, residual: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel assembly: AᵀA = Σ Jᵀ(GᵀG)J and Aᵀb = Σ Jᵀ(Gᵀe) → (B, P, P), (B, P).

    GᵀG (2×2 per pixel) and Gᵀe (2 per pixel) are channel reductions; then one (P × 2N)·(2N × P) matrix
    product. Cost O(N·C + N·P²); the N·C rows of the dense Jacobian are never formed.
    """
    gu, gv = feature_gradient.unbind(-1)  # (B, N, C) each
    a = (gu * gu).sum(-1, keepdim=True)  # GᵀG = [[a, b], [b, c]]
    b = (gu * gv).sum(-1, keepdim=True)
    c = (gv * gv).sum(-1, keepdim=True)
    ju, jv = jacobian.unbind(-2)  # (B, N, P) each: rows of J for u and v
    left = torch.cat([ju, jv], dim=1)  # (B, 2N, P)
    right = torch.cat([a * ju + b * jv, b * ju + c * jv], dim=1)  # (GᵀG J) rows
    gte = torch.cat([(gu * residual).sum(-1), (gv * residual).sum(-1)], dim=1)  # (B, 2N)
    hessian = left.mT @ right
    gradient = (left.mT @ gte[..., None]).squeeze(-1)
    return hessian, gradient


def normal_equations_structured(
    pose_jacobian: torch.Tensor,
    depth_jacobian: torch.Tensor,
    basis: torch.Tensor,
    feature_gradient: torch.Tensor,
    residual: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``normal_equations`` for J_p = [J_pose (2×6), j_d (2) ⊗ b_p (K)], exploiting the rank-one depth block.

    With M_p = G_pᵀG_p and s_p = j_dᵀ M_p j_d: H_ww = Σ s_p b_p b_pᵀ = Bᵀ diag(s) B (N·K² instead of
    2N·(6+K)²), H_δw = Σ (J_poseᵀ M_p j_d) b_pᵀ, H_δδ = Σ J_poseᵀ M_p J_pose; the gradient likewise. The
    (B, N, 2, 6+K) Jacobian is never formed.
    Shapes: (B, N, 2, 6), (B, N, 2), (B, N, K), (B, N, C, 2), (B, N, C).
    """
    gu, gv = feature_gradient.unbind(-1)  # (B, N, C) each
    a = (gu * gu).sum(-1)  # M = GᵀG = [[a, b], [b, c]], (B, N) each
    b = (gu * gv).sum(-1)
    c = (gv * gv).sum(-1)
    ru, rv = (gu * residual).sum(-1), (gv * residual).sum(-1)  # Gᵀe
    pu, pv = pose_jacobian.unbind(-2)  # (B, N, 6)
    du, dv = depth_jacobian.unbind(-1)  # (B, N)
    mdu, mdv = a * du + b * dv, b * du + c * dv  # M j_d
    h_pp = torch.cat([pu, pv], 1).mT @ torch.cat(
        [a[..., None] * pu + b[..., None] * pv, b[..., None] * pu + c[..., None] * pv], 1
    )
    cross = pu * mdu[..., None] + pv * mdv[..., None]  # J_poseᵀ M j_d, (B, N, 6)
    h_pw = cross.mT @ basis  # (B, 6, K)
    h_ww = basis.mT @ ((du * mdu + dv * mdv)[..., None] * basis)  # (B, K, K)
    g_p = (pu.mT @ ru[..., None] + pv.mT @ rv[..., None]).squeeze(-1)
    g_w = (basis.mT @ (du * ru + dv * rv)[..., None]).squeeze(-1)
    hessian = torch.cat([torch.cat([h_pp, h_pw], -1), torch.cat([h_pw.mT, h_ww], -1)], -2)
    return hessian, torch.cat([g_p, g_w], -1)


def normal_equations_dense(
    jacobian: torch.Tensor, feature_gradient: torch.Tensor, residual: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference only (tests, benchmark): form the dense (N·C)×P Jacobian A = G·J, then AᵀA and Aᵀb."""
    B, N, C, _ = feature_gradient.shape
    ju, jv = jacobian[:, :, None, 0, :], jacobian[:, :, None, 1, :]  # (B, N, 1, P)
    dense = (feature_gradient[..., 0:1] * ju + feature_gradient[..., 1:2] * jv).reshape(B, N * C, -1)
    return dense.mT @ dense, (dense.mT @ residual.reshape(B, N * C, 1)).squeeze(-1)


def damped_solve(
    hessian: torch.Tensor, gradient: torch.Tensor, lam: torch.Tensor, epsilon: float
) -> torch.Tensor:
    """LM step x = −(H + Λ·diag(H) + εI)⁻¹ g, solved in Jacobi-scaled form. ``lam`` (B,) damps every
    parameter alike (Λ = λI, the paper); (B, 2) damps the 6 pose parameters with λ[:, 0] and the depth
    coefficients with λ[:, 1].

    With S = diag(H + ε)^(−½) the system S(H + λ diag H + εI)S has a diagonal of 1 + λ·h/(h+ε) and
    off-diagonals bounded by 1, so fp32 solves it accurately whatever the units of pose and depth
    coefficients; a zero Hessian (textureless input) gives a zero step, not NaN.
    """
    diag = hessian.diagonal(dim1=-2, dim2=-1)
    scale = torch.rsqrt(diag + epsilon)  # (B, P)
    scaled = hessian * scale[..., :, None] * scale[..., None, :]
    ratio = diag * scale * scale  # h / (h + ε)
    if lam.dim() == 2:  # per block: pose, depth coefficients
        lam = torch.cat([lam[:, :1].expand(-1, 6), lam[:, 1:2].expand(-1, diag.shape[-1] - 6)], dim=1)
    else:
        lam = lam[..., None]
    damping = lam * ratio + epsilon * scale * scale
    system = scaled + torch.diag_embed(damping)
    # solve_ex: linalg.solve checks for singularity on the host, a wait for the device on a GPU; the
    # system is positive definite here (ε > 0), so the check is never needed.
    y, _ = torch.linalg.solve_ex(system, -(scale * gradient))
    return scale * y


def lm_step(
    level: BALevel,
    pose: pp.LieTensor,
    coefficients: torch.Tensor,
    damping: Damping,
    min_depth: float,
    epsilon: float,
) -> tuple[pp.LieTensor, torch.Tensor, torch.Tensor]:
    """One differentiable LM iteration → (pose, coefficients, λ used). The pose is pypose's chain: read it
    through ``.matrix()`` or ``euclidean_pose`` before using ``.tensor()`` in a loss."""
    lin = linearize(level, pose, coefficients, min_depth)
    hessian, gradient = lin.normal_equations()
    if callable(damping):
        lam = damping(mean_abs_residual(lin.residual, lin.mask))
    else:
        lam = torch.full_like(gradient[:, 0], float(damping))
    step = damped_solve(hessian, gradient, lam, epsilon)
    return perturb_left(pose, step[:, :6]), coefficients + step[:, 6:], lam


def euclidean_pose(T: pp.LieTensor) -> pp.LieTensor:
    """The same pose, rebuilt from its matrix with plain torch ops.

    pypose's group operations (Exp, Mul, ...) back-propagate in their own tangent-space convention, so the raw
    [t, q] of their outputs does not carry Euclidean gradients (gradcheck fails on it, while the chain read
    out through ``.matrix()`` is exact). Every pose this layer returns goes through here, so losses on
    ``.tensor()`` (quaternion, translation) get true gradients. Never feed the result back into pypose ops
    that need gradients: the BA keeps its own pypose chain internally.
    """
    return pp.mat2SE3(T.matrix(), check=False)


def _depth_map(
    basis: torch.Tensor, depth0: torch.Tensor, coefficients: torch.Tensor, min_depth: float, depth_update: str
) -> torch.Tensor:
    offset = torch.einsum("bkhw,bk->bhw", basis, coefficients)[:, None]
    return depth_from_coefficients(depth0, offset, min_depth, depth_update)[0]


def bundle_adjust(
    features_ref: Sequence[torch.Tensor],
    features_tgt: Sequence[torch.Tensor],
    basis: torch.Tensor,
    depth0: torch.Tensor,
    intrinsics: torch.Tensor,
    options: BAOptions,
    damping: Sequence[Damping],
    pose_init: pp.LieTensor | None = None,
    coefficients_init: torch.Tensor | None = None,
) -> BAResult:
    """Coarse-to-fine LM. ``features_*``: per level (B, C, h_l, w_l), coarse → fine, the finest usually at
    the depth resolution; ``basis`` (B, K, H, W), ``depth0`` (B, 1, H, W) and ``intrinsics`` (B, 4) at the
    depth resolution. ``options.iterations`` and ``damping`` per level; ``options.depth_update``:
    "additive" (D0 + B·w, floored at ``options.min_depth``), "multiplicative" (D0·exp(B·w)) or "bounded".
    Runs in float32 (float64 if ``basis`` is)."""
    iterations, min_depth, epsilon = options.iterations, options.min_depth, options.epsilon
    depth_update = options.depth_update
    L = len(features_ref)
    if not (len(features_tgt) == L == len(iterations) == len(damping)) or L == 0:
        raise ValueError(
            f"features_ref ({L}), features_tgt ({len(features_tgt)}), iterations ({len(iterations)}) and "
            f"damping ({len(damping)}) must have the same non-zero number of levels"
        )
    if basis.dim() != 4:
        raise ValueError(f"basis must have shape (B, K, H, W), got {tuple(basis.shape)}")
    B, K = basis.shape[:2]
    if intrinsics.shape != (B, 4):
        raise ValueError(f"intrinsics must have shape ({B}, 4), got {tuple(intrinsics.shape)}")
    dtype = torch.float64 if basis.dtype == torch.float64 else torch.float32
    device = basis.device
    with torch.autocast(device_type=device.type, enabled=False):
        basis = basis.to(dtype)
        # A zero in D0 (a hole in a depth given as D0, exp underflowing in the head) is log −inf and 0/0 in
        # the Jacobian, and a masked NaN still poisons the normal equations: one pixel made the solve NaN.
        depth0 = depth0.to(dtype).clamp_min(DEPTH0_FLOOR)
        intrinsics = intrinsics.to(dtype)
        pose = identity_se3(B, dtype=dtype, device=device) if pose_init is None else pose_init
        pose = pp.SE3(pose.tensor().to(dtype=dtype, device=device))
        if coefficients_init is None:
            coefficients = torch.zeros(B, K, dtype=dtype, device=device)
        else:
            coefficients = coefficients_init.to(dtype)
            if coefficients.shape != (B, K):
                raise ValueError(
                    f"coefficients_init must have shape ({B}, {K}), got {tuple(coefficients.shape)}"
                )

        poses, depths, lambdas = [], [], []
        level = None
        for f_ref, f_tgt, n_iter, damp in zip(features_ref, features_tgt, iterations, damping, strict=True):
            level = prepare_level(f_ref.to(dtype), f_tgt.to(dtype), basis, depth0, intrinsics, depth_update)
            for _ in range(n_iter):
                pose, coefficients, lam = lm_step(level, pose, coefficients, damp, min_depth, epsilon)
                lambdas.append(lam)
            poses.append(euclidean_pose(pose))
            depths.append(_depth_map(basis, depth0, coefficients, min_depth, depth_update))

        # The Hessian and cost at the final estimate (finest level): a covariance needs them there.
        lin = linearize(level, pose, coefficients, min_depth)
        hessian, gradient = lin.normal_equations()
        num_valid = lin.mask.sum(dim=1).to(dtype)
        cost = lin.residual.square().sum(dim=(1, 2)) / num_valid.clamp_min(1.0)
    return BAResult(
        pose=poses[-1],
        coefficients=coefficients,
        depth=depths[-1],
        hessian=hessian,
        gradient=gradient,
        cost=cost,
        num_valid=num_valid,
        poses_per_level=poses,
        depths_per_level=depths,
        lambdas=lambdas,
    )


class BALayer(nn.Module):
    """The BA layer with its learned damping: one 4-layer MLP per pyramid level."""

    def __init__(
        self,
        channels: int,
        options: BAOptions,
        damping_hidden: int = 128,
        separate_depth_damping: bool = False,
    ) -> None:
        super().__init__()
        self.options = options
        outputs = 2 if separate_depth_damping else 1
        self.damping = nn.ModuleList(
            DampingMLP(channels, damping_hidden, outputs=outputs) for _ in options.iterations
        )

    def forward(
        self,
        features_ref: Sequence[torch.Tensor],
        features_tgt: Sequence[torch.Tensor],
        basis: torch.Tensor,
        depth0: torch.Tensor,
        intrinsics: torch.Tensor,
        pose_init: pp.LieTensor | None = None,
    ) -> BAResult:
        return bundle_adjust(
            features_ref,
            features_tgt,
            basis,
            depth0,
            intrinsics,
            self.options,
            list(self.damping),
            pose_init=pose_init,
        )
