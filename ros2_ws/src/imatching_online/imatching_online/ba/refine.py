"""Robust iterative refinement: pypose LM passes, each followed by outlier pruning (≈2 px) and
re-triangulation of the surviving landmarks (COLMAP-style alternation, as in iMatching).

Parametrisation. Poses are world-to-camera pp.SE3 (frame 0 a fixed buffer, frames 1..N-1 one
pp.Parameter, left updates). A landmark is one inverse depth rho on the ray of its query pixel in its
anchor frame: the query pixel is where the matcher was asked, not a measurement, so it has no error and
only matched pixels enter the cost. One unknown per landmark instead of three also shrinks the dense LM
system threefold, and the homogeneous point [ray, rho] keeps far points (rho -> 0) well conditioned.

Gauge. Frame 0 is fixed (the identity). Scale is free inside a pass (LM's damping keeps the system
regular along it) and fixed after every pass by rescaling so that the camera farthest from frame 0 is at
distance 1.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pypose as pp
import torch
from banet_vo.geometry import PinholeCamera, skew
from torch import nn

from imatching_online.ba.config import WindowConfig
from imatching_online.ba.failures import FailureReason, WindowFailure
from imatching_online.ba.multiview import (
    anchored_inverse_depth,
    anchored_points,
    anchored_reprojection_errors,
    camera_centres,
    max_ray_angle_deg,
    rays,
)
from imatching_online.ba.tracks import ANCHOR, Tracks

log = logging.getLogger(__name__)


class _AnchoredProjection(torch.autograd.Function):
    """Pixels (L, N, 2) of anchored landmarks in every frame, with an analytic Jacobian.

    pypose's LM builds its dense Jacobian by one vmapped backward pass per residual; through plain
    autograd each pass walks the whole graph, which costs seconds for a few hundred landmarks. Here the
    forward pass also writes the Jacobian (it is block sparse and small), so each backward pass is a
    product with it. Pose gradients follow pypose's convention for SE3 LieTensors: left-tangent
    [rho, phi] in the first 6 entries, 0 in the 7th, matching LM's update X <- Exp(delta) * X.
    """

    @staticmethod
    def forward(ctx, pose7, rho, ray, anchor, mask, target, intrinsics):
        num_frames = pose7.shape[0]
        T = pp.SE3(pose7).matrix()  # (N, 4, 4) world -> camera
        R, t = T[:, :3, :3], T[:, :3, 3]
        R_ba = R[None] @ R[anchor].transpose(-1, -2)[:, None]  # R_b R_a^T: (L, N, 3, 3)
        t_ba = t[None] - (R_ba @ t[anchor][:, None, :, None])[..., 0]
        P = (R_ba @ ray[:, None, :, None])[..., 0] + rho[:, None, None] * t_ba  # ∝ point in frame b
        # A trial step that pushes a point behind a camera must not give NaN; its huge residual
        # makes LM reject the step.
        z = P[..., 2].clamp(min=1e-6)
        fx, fy, cx, cy = intrinsics
        x, y = P[..., 0] / z, P[..., 1] / z
        # Entries without an inlier observation are pinned to their target: zero residual and Jacobian.
        uv = torch.where(mask, torch.stack([fx * x + cx, fy * y + cy], -1), target)

        zero = torch.zeros_like(z)
        J_proj = torch.stack(
            [torch.stack([fx / z, zero, -fx * x / z], -1), torch.stack([zero, fy / z, -fy * y / z], -1)], -2
        )  # d uv / d P: (L, N, 2, 3)
        J_proj = J_proj * mask[..., None]
        J_rho = (J_proj @ t_ba[..., None])[..., 0]
        r = rho[:, None, None, None].expand(*P.shape[:2], 1, 1)
        eye = torch.eye(3, dtype=P.dtype, device=P.device).expand(*P.shape[:2], 3, 3)
        # Frame b: d P / d delta_b = [rho I, -[P]x]; anchor a: d P / d delta_a = -R_ba [rho I, -[f]x].
        J_b = J_proj @ torch.cat([r * eye, -skew(P)], -1)
        f = ray[:, None, :].expand_as(P)
        J_a = -(J_proj @ R_ba) @ torch.cat([r * eye, -skew(f)], -1)
        J_pose = P.new_zeros(*P.shape[:2], 2, num_frames, 7)
        frames = torch.arange(num_frames, device=P.device)
        J_pose[:, frames, :, frames, :6] = J_b.transpose(0, 1)
        lms = torch.arange(len(anchor), device=P.device)
        J_pose[lms, :, :, anchor, :6] += J_a
        ctx.save_for_backward(J_rho, J_pose.reshape(-1, num_frames * 7))
        ctx.num_frames = num_frames
        return uv

    @staticmethod
    def backward(ctx, g_uv):
        J_rho, J_pose = ctx.saved_tensors
        # Only products and sums: the Jacobian runs this under torch's (legacy) vmap.
        grad_rho = (g_uv * J_rho).sum((-1, -2))
        grad_pose = (g_uv.reshape(1, -1) @ J_pose).reshape(ctx.num_frames, 7)
        return grad_pose, grad_rho, None, None, None, None, None


class AnchoredReprojection(nn.Module):
    """Residual model for pp.optim.LM: predicted pixels (L, N, 2) of L landmarks in all N frames;
    entries where mask (L, N, 1) is False are pinned to the target (zero residual)."""

    def __init__(self, T_cw: torch.Tensor, rho: torch.Tensor, intrinsics: torch.Tensor) -> None:
        super().__init__()
        poses = pp.mat2SE3(T_cw, check=False)
        self.register_buffer("fixed", poses[:1].tensor())
        self.free = pp.Parameter(poses[1:])
        self.rho = nn.Parameter(rho.clone())
        self.register_buffer("intrinsics", intrinsics)  # [fx, fy, cx, cy]

    def poses(self) -> pp.LieTensor:
        return pp.SE3(torch.cat([self.fixed, self.free.tensor()]))

    def forward(self, ray: torch.Tensor, anchor: torch.Tensor, mask: torch.Tensor, observed: torch.Tensor):
        pose7 = torch.cat([self.fixed, self.free.tensor()])
        return _AnchoredProjection.apply(pose7, self.rho, ray, anchor, mask, observed, self.intrinsics)


@dataclass
class PassStats:
    """One LM pass: robust cost before and after, LM steps, observations and landmarks in the problem."""

    cost_before: float
    cost_after: float
    steps: int
    observations: int
    landmarks: int


@dataclass
class Refined:
    """T_cw (N, 4, 4) at the gauge of refine.py, inverse depths (T,) (NaN for dropped tracks), the
    landmark mask (T,) and inlier observations (T, N) (the query pixel counts as one)."""

    T_cw: np.ndarray
    rho: np.ndarray
    active: np.ndarray
    inliers: np.ndarray
    passes: list[PassStats] = field(default_factory=list)
    points: np.ndarray | None = None  # (T, 3) world landmarks when the solver keeps 3-D points (gtsam)


def unit_extent(T_cw: np.ndarray) -> tuple[np.ndarray, float]:
    """T_cw rescaled so the camera farthest from frame 0 is at distance 1, and the factor divided out
    (frame 0 must be the origin)."""
    extent = np.linalg.norm(camera_centres(T_cw), axis=1).max()
    if not np.isfinite(extent) or extent <= 0:
        raise WindowFailure(FailureReason.LOW_PARALLAX, "all cameras of the window coincide after BA")
    T_cw = T_cw.copy()
    T_cw[:, :3, 3] /= extent
    return T_cw, extent


def normalise_scale(T_cw: np.ndarray, rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rescale so the camera farthest from frame 0 is at distance 1 (frame 0 must be the origin)."""
    T_cw, extent = unit_extent(T_cw)
    return T_cw, rho * extent


def initial_map(
    T_cw: np.ndarray, inliers: np.ndarray, tracks: Tracks, camera: PinholeCamera
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where both solvers start: inverse depths triangulated from the initial inliers, the window at unit
    scale, and the inliers with each track's query pixel added."""
    rho = anchored_inverse_depth(T_cw, tracks.uv, tracks.anchor, inliers, camera)
    T_cw, rho = normalise_scale(T_cw, rho)
    # The query pixel is exact by construction: it counts for every track that has a consistent match.
    inliers = inliers | ((tracks.match_id == ANCHOR) & inliers.any(1, keepdims=True))
    return T_cw, rho, inliers


def ba_subset(active: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """The landmarks one pass solves: all active ones, or a random `cap` of them (bounded problem size;
    the rest follow the new poses by triangulation)."""
    in_ba = active.copy()
    if active.sum() > cap:
        in_ba[:] = False
        in_ba[rng.choice(np.flatnonzero(active), cap, replace=False)] = True
    return in_ba


def require_landmarks(active: np.ndarray) -> np.ndarray:
    """`active`, or WindowFailure when no landmark is left to refine."""
    if not active.any():
        raise WindowFailure(FailureReason.TOO_FEW_LANDMARKS, "no landmark survived pruning")
    return active


def record_pass(passes: list[PassStats], stats: PassStats) -> None:
    """Append one pass's stats; the first pass must lower the cost (check_first_pass)."""
    passes.append(stats)
    if len(passes) == 1:
        check_first_pass(stats)


def is_last_pass(
    p: int, config: WindowConfig, pruned: np.ndarray, inliers: np.ndarray, in_ba: np.ndarray
) -> bool:
    """Whether pass p ends the refinement: the pass budget is spent, or pruning left the inliers of the
    solved landmarks unchanged (another pass would land on the same optimum)."""
    return p == config.passes - 1 or np.array_equal(pruned & in_ba[:, None], inliers & in_ba[:, None])


def check_first_pass(stats: PassStats) -> None:
    """WindowFailure when the first pass did not lower the robust cost (exact data, at the noise floor,
    has nothing to reduce)."""
    at_noise_floor = stats.cost_before <= 1e-12 * stats.observations
    if not stats.cost_after < stats.cost_before and not at_noise_floor:
        raise WindowFailure(
            FailureReason.COST_NOT_REDUCED,
            f"LM left the robust cost at {stats.cost_after:.4g} (start {stats.cost_before:.4g})",
        )


@contextmanager
def _torch_threads(threads: int):
    """Run the small LM problems single-threaded: on a busy machine OpenMP workers spinning on
    barriers made each step 100x slower in our measurements (docs/imatching-ba.md)."""
    previous = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def lm_pass(
    T_cw: np.ndarray, rho: np.ndarray, inliers: np.ndarray, tracks: Tracks, camera: PinholeCamera,
    config: WindowConfig,
) -> tuple[np.ndarray, np.ndarray, PassStats]:  # fmt: skip
    """Optimise poses 1..N-1 and the inverse depths of the tracks with inlier matched observations."""
    matched = inliers & (tracks.match_id >= 0)
    lms = np.flatnonzero(matched.any(1))
    anchor = tracks.anchor[lms]
    ray = torch.from_numpy(rays(tracks.uv[lms, anchor], camera))
    mask = torch.from_numpy(matched[lms, :, None])
    target = torch.from_numpy(np.where(matched[lms, :, None], tracks.uv[lms], 0.0))
    intr = torch.tensor([camera.fx, camera.fy, camera.cx, camera.cy], dtype=torch.float64)
    model = AnchoredReprojection(torch.from_numpy(T_cw), torch.from_numpy(rho[lms]), intr)
    inputs = (ray, torch.from_numpy(anchor), mask, target)
    num_obs = int(matched[lms].sum())
    kernel_cls = pp.optim.kernel.Cauchy if config.kernel == "cauchy" else pp.optim.kernel.Huber
    kernel = kernel_cls(delta=config.kernel_delta_px)
    optimizer = pp.optim.LM(model, kernel=kernel, vectorize=True)
    with _torch_threads(config.torch_threads):
        with torch.no_grad():
            before = float(optimizer.model.loss(inputs, target))
        cost, steps = before, 0
        for _ in range(config.lm_iterations):
            new = float(optimizer.step(inputs, target))
            log.debug("LM step %d: cost %.6g", steps, new)
            steps += 1
            decrease = cost - new
            cost = new
            if decrease <= config.lm_tolerance * max(cost, 1e-300):
                break
    with torch.no_grad():
        T_new = model.poses().matrix().numpy().copy()
        rho_new = rho.copy()
        rho_new[lms] = model.rho.detach().numpy()
    stats = PassStats(before, cost, steps, num_obs, len(lms))
    log.debug("LM pass: cost %.4g -> %.4g in %d steps (%d obs)", before, cost, steps, num_obs)
    return T_new, rho_new, stats


def select_landmarks(
    T_cw: np.ndarray, rho: np.ndarray, inliers: np.ndarray, tracks: Tracks, camera: PinholeCamera,
    config: WindowConfig,
) -> np.ndarray:  # fmt: skip
    """Landmarks worth keeping: long enough inlier track, enough parallax, in front (rho > 0)."""
    ok = np.isfinite(rho) & (rho > 0) & (inliers.sum(1) >= config.min_track_length)
    ok &= inliers[np.arange(len(rho)), tracks.anchor]
    if ok.any():
        X = anchored_points(T_cw, tracks.uv[ok], tracks.anchor[ok], rho[ok], camera)
        ok[ok] = max_ray_angle_deg(T_cw, X, inliers[ok]) >= config.min_landmark_parallax_deg
    return ok


def refine_window(
    T_cw: np.ndarray, inliers: np.ndarray, tracks: Tracks, camera: PinholeCamera, config: WindowConfig
) -> Refined:
    """Alternate LM and pruning / re-triangulation, at most ``config.passes`` LM runs.

    T_cw: (N, 4, 4) with frame 0 the identity; inliers: (T, N) observations consistent with the
    initial map. Stops early once pruning leaves the inlier set unchanged: another pass would land on
    the same optimum. The landmarks that were in the last LM problem are returned at its optimum (the
    stationary point the adaptation step relies on), not re-triangulated. Raises WindowFailure when
    the first pass cannot lower the cost or no landmark survives.
    """
    rng = np.random.default_rng(config.seed)
    thr = config.outlier_threshold_px
    T_cw, rho, inliers = initial_map(T_cw, inliers, tracks, camera)
    active = require_landmarks(select_landmarks(T_cw, rho, inliers, tracks, camera, config))
    inliers &= active[:, None]
    passes: list[PassStats] = []
    for p in range(config.passes):
        in_ba = ba_subset(active, config.max_ba_landmarks, rng)
        T_cw, rho, stats = lm_pass(T_cw, rho, inliers & in_ba[:, None], tracks, camera, config)
        record_pass(passes, stats)
        T_cw, rho = normalise_scale(T_cw, rho)
        err = anchored_reprojection_errors(T_cw, tracks.uv, tracks.anchor, rho, camera)
        pruned = tracks.observed & (err < thr) & active[:, None]
        last = is_last_pass(p, config, pruned, inliers, in_ba)
        # Re-triangulate the survivors with the new poses; on the last pass only those left out of LM.
        retri = active & ~in_ba if last else active
        if retri.any():
            rho[retri] = anchored_inverse_depth(T_cw, tracks.uv, tracks.anchor, pruned, camera)[retri]
            err = anchored_reprojection_errors(T_cw, tracks.uv, tracks.anchor, rho, camera)
            pruned = tracks.observed & (err < thr) & active[:, None]
        active = require_landmarks(select_landmarks(T_cw, rho, pruned, tracks, camera, config))
        inliers = pruned & active[:, None]
        rho = np.where(active, rho, np.nan)
        if last:
            break
    return Refined(T_cw, rho, active, inliers, passes)
