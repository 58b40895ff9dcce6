"""Map initialisation: pick the frame pair with the most essential-matrix inliers and enough parallax,
recover its relative pose and triangulate the tracks it sees (OpenCV 5-point RANSAC, recoverPose)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from banet_vo.geometry import PinholeCamera

from imatching_online.ba.config import WindowConfig
from imatching_online.ba.failures import FailureReason, WindowFailure
from imatching_online.ba.multiview import rays, rotation_compensated_parallax_deg, triangulate_pair
from imatching_online.ba.tracks import Tracks


@dataclass(frozen=True)
class PairCandidate:
    """Two-view statistics of one frame pair."""

    i: int
    j: int
    matches: int
    median_flow_px: float
    inliers: int = 0
    parallax_deg: float = 0.0


@dataclass(frozen=True)
class InitialMap:
    """Poses T_cw (N, 4, 4) with only the pair's two set (frame i at the origin, |t_ij| = 1), the posed
    mask, world points (T, 3) (NaN where not triangulated) and the statistics of every pair tried."""

    pair: PairCandidate
    T_cw: np.ndarray
    posed: np.ndarray
    points: np.ndarray
    candidates: tuple[PairCandidate, ...]


def _at_least(
    candidates: list[PairCandidate], field: str, threshold: float, reason: FailureReason, detail: str
) -> list[PairCandidate]:
    """The candidates whose `field` is at least `threshold`; when none is, WindowFailure(reason) with
    `detail` formatted with the best value and the threshold."""
    kept = [c for c in candidates if getattr(c, field) >= threshold]
    if not kept:
        best = max(getattr(c, field) for c in candidates)
        raise WindowFailure(reason, detail.format(best=best, threshold=threshold))
    return kept


def initialise_map(tracks: Tracks, camera: PinholeCamera, config: WindowConfig) -> InitialMap:
    """Two-view initialisation of a window; raises WindowFailure with the reason when it cannot."""
    observed = tracks.observed
    n = tracks.num_frames
    counts = {(i, j): int((observed[:, i] & observed[:, j]).sum()) for i in range(n) for j in range(i + 1, n)}
    enough = [p for p, c in counts.items() if c >= config.min_pair_matches]
    if not enough:
        raise WindowFailure(
            FailureReason.TOO_FEW_MATCHES,
            f"no frame pair has {config.min_pair_matches} matches (most: {max(counts.values(), default=0)})",
        )

    cv2.setRNGSeed(config.seed)
    candidates: list[PairCandidate] = []
    solutions = {}
    for i, j in enough:
        sel = np.flatnonzero(observed[:, i] & observed[:, j])
        uv_i, uv_j = tracks.uv[sel, i], tracks.uv[sel, j]
        E, mask = cv2.findEssentialMat(
            uv_i, uv_j, camera.K, method=cv2.RANSAC, prob=config.essential_confidence,
            threshold=config.essential_threshold_px,
        )  # fmt: skip
        inl = np.zeros(len(sel), dtype=bool)
        if E is not None and E.shape[0] >= 3 and mask is not None:
            inl = mask.reshape(-1).astype(bool)
        # Motion and parallax are measured on the essential inliers: outliers would fake both. (For a
        # static camera every true match fits any E = [t]x, so the inliers are still the true matches.)
        use = inl if inl.sum() >= 5 else np.ones(len(sel), dtype=bool)
        flow = float(np.median(np.linalg.norm(uv_j[use] - uv_i[use], axis=1)))
        parallax = rotation_compensated_parallax_deg(rays(uv_i[use], camera), rays(uv_j[use], camera))
        candidates.append(PairCandidate(i, j, len(sel), flow, int(inl.sum()), parallax))
        # The 5-point solver may return several stacked solutions; recoverPose picks by cheirality.
        solutions[(i, j)] = (E[:3] if inl.any() else None, sel, inl)

    moving = _at_least(
        candidates, "median_flow_px", config.init_min_flow_px, FailureReason.NO_MOTION,
        "median flow {best:.2f} px < {threshold} px in every pair",
    )  # fmt: skip
    wide = _at_least(
        moving, "parallax_deg", config.min_parallax_deg, FailureReason.LOW_PARALLAX,
        "best rotation-compensated parallax {best:.3f} deg < {threshold} deg",
    )  # fmt: skip
    best = max(wide, key=lambda c: (c.inliers, c.parallax_deg))
    if best.inliers < config.min_init_inliers:
        raise WindowFailure(
            FailureReason.TOO_FEW_INLIERS,
            f"best pair ({best.i}, {best.j}): {best.inliers} essential inliers < {config.min_init_inliers}",
        )

    E, sel, inl = solutions[(best.i, best.j)]
    uv_i, uv_j = tracks.uv[sel[inl], best.i], tracks.uv[sel[inl], best.j]
    good, R, t, pose_mask = cv2.recoverPose(E, uv_i, uv_j, camera.K)
    if good < config.min_init_inliers:
        raise WindowFailure(
            FailureReason.TOO_FEW_INLIERS,
            f"pair ({best.i}, {best.j}): only {good} essential inliers in front of both cameras",
        )
    T_cw = np.tile(np.eye(4), (n, 1, 1))
    T_cw[best.j, :3, :3], T_cw[best.j, :3, 3] = R, t.reshape(3)
    posed = np.zeros(n, dtype=bool)
    posed[[best.i, best.j]] = True

    front = pose_mask.reshape(-1) > 0
    points = np.full((tracks.num_tracks, 3), np.nan)
    idx = sel[inl][front]
    points[idx] = triangulate_pair(T_cw[best.i], T_cw[best.j], uv_i[front], uv_j[front], camera)
    return InitialMap(best, T_cw, posed, points, tuple(candidates))
