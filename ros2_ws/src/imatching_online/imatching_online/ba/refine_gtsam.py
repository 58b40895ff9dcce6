"""Robust iterative refinement on the shared sparse back end (banet_vo.backend.WindowBundleAdjuster, GTSAM):
Huber reprojection factors over poses and 3-D landmarks, each LM pass followed by pruning (> outlier
threshold) and re-triangulation of the landmarks left out of the problem.

Why not the anchored inverse depth of refine.py: the shared back end's landmarks are 3-D points, and the
anchor's query pixel enters as an observation like any other (it is where the matcher was asked, so it
fits to well below a pixel). The returned landmarks are the solver's optimum itself, so the adaptation's
stationary-point loss sees the exact solution it assumes.

Gauge. Frame 0 is held fixed (a tight prior). Scale is free inside a pass (LM's damping regularises the
one null direction) and fixed after every pass by rescaling so that the camera farthest from frame 0 is at
distance 1 — the same output gauge as refine.py.
"""

from __future__ import annotations

import numpy as np
from banet_vo.backend import Observation, WindowBAConfig, WindowBundleAdjuster
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.rigid import invert

from imatching_online.ba.config import WindowConfig
from imatching_online.ba.multiview import (
    anchored_inverse_depth,
    anchored_points,
    max_ray_angle_deg,
    reprojection_errors,
)
from imatching_online.ba.refine import (
    PassStats,
    Refined,
    ba_subset,
    initial_map,
    is_last_pass,
    record_pass,
    require_landmarks,
    unit_extent,
)
from imatching_online.ba.tracks import Tracks


def _select(
    T_cw: np.ndarray, X: np.ndarray, inliers: np.ndarray, tracks: Tracks, config: WindowConfig
) -> np.ndarray:
    """Landmarks worth keeping: finite, in front of their anchor, long enough inlier track that includes the
    anchor, enough parallax."""
    ok = np.isfinite(X).all(1) & (inliers.sum(1) >= config.min_track_length)
    ok &= inliers[np.arange(len(X)), tracks.anchor]
    if ok.any():
        anchor_depth = (
            np.einsum("tj,tj->t", T_cw[tracks.anchor[ok], 2, :3], X[ok]) + T_cw[tracks.anchor[ok], 2, 3]
        )
        ok[ok] = anchor_depth > 0
    if ok.any():
        ok[ok] = max_ray_angle_deg(T_cw, X[ok], inliers[ok]) >= config.min_landmark_parallax_deg
    return ok


def gtsam_pass(
    T_cw: np.ndarray, X: np.ndarray, inliers: np.ndarray, tracks: Tracks, camera: PinholeCamera,
    config: WindowConfig,
) -> tuple[np.ndarray, np.ndarray, PassStats]:  # fmt: skip
    """One LM pass of the shared back end over all frames and the landmarks with inlier observations."""
    lms = np.flatnonzero(inliers.any(1))
    lm, frame = np.nonzero(inliers[lms])
    observations = [
        Observation(int(f), int(lms[t]), (float(u), float(v)))
        for t, f, (u, v) in zip(lm, frame, tracks.uv[lms[lm], frame], strict=True)
    ]
    solver = WindowBundleAdjuster(
        camera,
        WindowBAConfig(
            pixel_sigma=1.0,
            huber_k=config.kernel_delta_px,
            outlier_px=config.outlier_threshold_px,
            passes=1,
            max_iterations=config.lm_iterations,
            # One fixed frame leaves the window's scale to the damping; the adaptation's figures were
            # measured with GTSAM's LM, whatever solver the odometry's windows use.
            solver="gtsam",
        ),
    )
    T_wc = invert(T_cw)
    result = solver.solve(
        {k: T_wc[k] for k in range(len(T_cw))}, {int(j): X[j] for j in lms}, observations, fixed={0}
    )
    T_new = invert(np.stack([result.poses[k] for k in range(len(T_cw))]))
    X_new = X.copy()
    for j, P in result.points.items():
        X_new[j] = P
    stats = PassStats(
        result.initial_error, result.final_error, result.iterations, len(observations), len(lms)
    )
    return T_new, X_new, stats


def _normalise(T_cw: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    T_cw, extent = unit_extent(T_cw)
    return T_cw, X / extent


def refine_window_gtsam(
    T_cw: np.ndarray, inliers: np.ndarray, tracks: Tracks, camera: PinholeCamera, config: WindowConfig
) -> Refined:
    """refine.refine_window's contract on the shared back end; Refined.points holds the 3-D landmarks."""
    rng = np.random.default_rng(config.seed)
    thr = config.outlier_threshold_px
    T_cw, rho, inliers = initial_map(T_cw, inliers, tracks, camera)
    X = anchored_points(T_cw, tracks.uv, tracks.anchor, rho, camera)
    active = require_landmarks(_select(T_cw, X, inliers, tracks, config))
    inliers &= active[:, None]
    passes: list[PassStats] = []
    for p in range(config.passes):
        in_ba = ba_subset(active, config.max_ba_landmarks, rng)
        T_cw, X, stats = gtsam_pass(T_cw, X, inliers & in_ba[:, None], tracks, camera, config)
        record_pass(passes, stats)
        T_cw, X = _normalise(T_cw, X)
        out = active & ~in_ba  # landmarks left out of the solve follow the new poses by triangulation
        if out.any():
            rho_out = anchored_inverse_depth(T_cw, tracks.uv, tracks.anchor, inliers, camera)
            X[out] = anchored_points(T_cw, tracks.uv[out], tracks.anchor[out], rho_out[out], camera)
        err, _ = reprojection_errors(T_cw, X, tracks.uv, camera)
        pruned = tracks.observed & (np.nan_to_num(err, nan=np.inf) < thr) & active[:, None]
        last = is_last_pass(p, config, pruned, inliers, in_ba)
        active = require_landmarks(_select(T_cw, X, pruned, tracks, config))
        inliers = pruned & active[:, None]
        if last:
            break
    X = np.where(active[:, None], X, np.nan)
    return Refined(T_cw, np.full(len(X), np.nan), active, inliers, passes, points=X)
