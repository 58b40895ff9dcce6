"""Mean matching accuracy (MMA) from ground-truth depth and relative pose (iMatching's evaluation).

For each query pixel p in image A (pixel centres at integer coordinates), the ground-truth depth of A
is read at the nearest pixel (no interpolation: bilinear depth would invent points across occlusion
edges); the point K_A^-1 [p, 1] * z is moved by T_BA (A -> B, docs/CONVENTIONS.md) and projected with
K_B. The match error is the pixel distance between the predicted match and that projection.

A query is left out of the denominator (it has no ground truth) when: it lies outside image A; its
depth is non-finite or <= 0; the point lands at z <= 0 in B; with `require_in_view_b` (default), it
projects outside image B; with `depth_b` given, B's own depth there disagrees by more than
`occlusion_rel_tol` (occluded). Predicted matches that are non-finite count as wrong, not as invalid.
MMA@t = (valid queries with error <= t) / (valid queries).

Beyond the error's size, its direction: `along_flow_error` is the signed error along the part of the true
displacement that the translation makes (`translational_flow`), negative for a match that lags behind the
motion. A lag shrinks every parallax and so biases depth and step length; a symmetric error does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from banet_vo.evaluation.pose import as_pose_matrices

if TYPE_CHECKING:  # importing banet_vo.geometry pulls in torch; the metrics only need the attributes
    from banet_vo.geometry.camera import PinholeCamera

MMA_THRESHOLDS_PX: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0)


@dataclass
class MatchAccuracy:
    mma: dict[float, float]  # threshold (px) -> fraction of valid queries within it (NaN if none valid)
    n_valid: int
    n_queries: int
    errors_px: np.ndarray = field(repr=False)  # per query; NaN where the query has no ground truth
    gt_b: np.ndarray = field(repr=False)  # ground-truth pixel in B per query; NaN where invalid

    def as_dict(self) -> dict:
        return {
            "mma": {str(k): v for k, v in self.mma.items()},
            "n_valid": self.n_valid,
            "n_queries": self.n_queries,
        }


def _pixels(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2) of (u, v) pixels, got {x.shape}")
    return x


def _nearest_lookup(image: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values at the nearest pixel and whether uv was inside the image (values NaN outside)."""
    h, w = image.shape
    with np.errstate(invalid="ignore"):
        cols, rows = np.rint(uv[:, 0]), np.rint(uv[:, 1])
        inside = np.isfinite(cols) & np.isfinite(rows) & (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    values = np.full(uv.shape[0], np.nan)
    values[inside] = image[rows[inside].astype(np.int64), cols[inside].astype(np.int64)]
    return values, inside


def _rays(q: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """(N, 3) rays through pixels q, z = 1."""
    return np.stack(
        [(q[:, 0] - camera.cx) / camera.fx, (q[:, 1] - camera.cy) / camera.fy, np.ones(len(q))], axis=1
    )


def _project(points: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """(N, 2) pixels of camera-frame points; NaN for points not in front (z <= 0)."""
    z = np.where(points[:, 2] > 0, points[:, 2], np.nan)
    return np.stack(
        [camera.fx * points[:, 0] / z + camera.cx, camera.fy * points[:, 1] / z + camera.cy], axis=1
    )


def _single_pose(T_ba) -> np.ndarray:
    T = as_pose_matrices(T_ba, "T_ba")
    if T.shape[-2:] not in ((4, 4), (3, 4)) or T.ndim != 2:
        raise ValueError(f"T_ba must be a single 4x4 pose, got {T.shape}")
    return T


def ground_truth_matches(
    queries_a,
    depth_a,
    T_ba,
    camera_a: PinholeCamera,
    camera_b: PinholeCamera,
    *,
    require_in_view_b: bool = True,
    depth_b=None,
    occlusion_rel_tol: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth pixels in B for queries in A, shape (N, 2), and the validity mask (N,)."""
    q = _pixels(queries_a, "queries_a")
    depth_a = np.asarray(depth_a, dtype=np.float64)
    if depth_a.shape != (camera_a.height, camera_a.width):
        raise ValueError(f"depth_a shape {depth_a.shape} does not match camera_a size {camera_a.size} (W, H)")
    T = _single_pose(T_ba)

    z, valid = _nearest_lookup(depth_a, q)
    with np.errstate(invalid="ignore"):
        valid &= np.isfinite(z) & (z > 0)
    z = np.where(valid, z, 0.0)
    points_b = _rays(q, camera_a) * z[:, None] @ T[:3, :3].T + T[:3, 3]
    valid &= points_b[:, 2] > 0
    uv_b = _project(points_b, camera_b)
    if require_in_view_b or depth_b is not None:
        _, inside_b = _nearest_lookup(np.zeros((camera_b.height, camera_b.width)), uv_b)
        if require_in_view_b:
            valid &= inside_b
    if depth_b is not None:
        depth_b = np.asarray(depth_b, dtype=np.float64)
        if depth_b.shape != (camera_b.height, camera_b.width):
            raise ValueError(
                f"depth_b shape {depth_b.shape} does not match camera_b size {camera_b.size} (W, H)"
            )
        if not occlusion_rel_tol > 0:
            raise ValueError(f"occlusion_rel_tol must be > 0, got {occlusion_rel_tol}")
        observed, _ = _nearest_lookup(depth_b, uv_b)
        with np.errstate(invalid="ignore"):
            visible = np.abs(observed - points_b[:, 2]) <= occlusion_rel_tol * points_b[:, 2]
        valid &= visible  # NaN/0 depth in B or outside B: cannot confirm visibility, so no ground truth
    uv_b[~valid] = np.nan
    return uv_b, valid


def matching_accuracy(
    queries_a,
    matches_b,
    depth_a,
    T_ba,
    camera_a: PinholeCamera,
    camera_b: PinholeCamera | None = None,
    *,
    thresholds_px: Sequence[float] = MMA_THRESHOLDS_PX,
    require_in_view_b: bool = True,
    depth_b=None,
    occlusion_rel_tol: float = 0.05,
) -> MatchAccuracy:
    """MMA of predicted matches (N, 2) in B for queries (N, 2) in A (see module doc for validity)."""
    camera_b = camera_a if camera_b is None else camera_b
    q = _pixels(queries_a, "queries_a")
    m = _pixels(matches_b, "matches_b")
    if m.shape != q.shape:
        raise ValueError(f"matches_b shape {m.shape} differs from queries_a shape {q.shape}")
    if any(not t > 0 for t in thresholds_px):
        raise ValueError(f"thresholds_px must be positive, got {tuple(thresholds_px)}")
    gt_b, valid = ground_truth_matches(
        q,
        depth_a,
        T_ba,
        camera_a,
        camera_b,
        require_in_view_b=require_in_view_b,
        depth_b=depth_b,
        occlusion_rel_tol=occlusion_rel_tol,
    )
    errors = np.linalg.norm(m - gt_b, axis=1)
    errors[valid & ~np.isfinite(errors)] = np.inf  # a NaN prediction for a valid query is a miss
    errors[~valid] = np.nan
    n_valid = int(valid.sum())
    mma = {float(t): (float(np.mean(errors[valid] <= t)) if n_valid else float("nan")) for t in thresholds_px}
    return MatchAccuracy(mma=mma, n_valid=n_valid, n_queries=q.shape[0], errors_px=errors, gt_b=gt_b)


def translational_flow(
    queries_a, gt_b, T_ba, camera_a: PinholeCamera, camera_b: PinholeCamera | None = None
) -> np.ndarray:
    """The part of each ground-truth displacement (gt_b − query, shape (N, 2)) that T_ba's translation makes:
    gt_b minus where the query's ray lands in B under T_ba's rotation alone (a point at infinity). NaN
    where gt_b is NaN or the rotated ray leaves the front of B."""
    camera_b = camera_a if camera_b is None else camera_b
    q = _pixels(queries_a, "queries_a")
    gt = _pixels(gt_b, "gt_b")
    if gt.shape != q.shape:
        raise ValueError(f"gt_b shape {gt.shape} differs from queries_a shape {q.shape}")
    R = _single_pose(T_ba)[:3, :3]
    return gt - _project(_rays(q, camera_a) @ R.T, camera_b)


def along_flow_error(matches_b, gt_b, flow) -> np.ndarray:
    """Signed error (N,) in pixels of each match along its translational flow (N, 2): positive ahead of
    the true position, negative behind it (lagging). NaN where the flow is under 1e-6 px or an input is
    NaN."""
    m, gt, f = _pixels(matches_b, "matches_b"), _pixels(gt_b, "gt_b"), _pixels(flow, "flow")
    if not m.shape == gt.shape == f.shape:
        raise ValueError(f"matches_b {m.shape}, gt_b {gt.shape} and flow {f.shape} must have one shape")
    length = np.linalg.norm(f, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sum((m - gt) * f, axis=1) / length
    out[~(length >= 1e-6)] = np.nan
    return out


def aggregate_mma(
    results: Sequence[MatchAccuracy], mode: Literal["per_pair", "pooled"] = "per_pair"
) -> dict[float, float]:
    """MMA over pairs: mean of each pair's fraction (`per_pair`, HPatches style; pairs without valid
    queries skipped) or one fraction over all valid queries together (`pooled`)."""
    if not results:
        raise ValueError("results is empty")
    thresholds = list(results[0].mma)
    if any(list(r.mma) != thresholds for r in results):
        raise ValueError("results were computed with different thresholds")
    if mode == "per_pair":
        used = [r for r in results if r.n_valid > 0]
        return {t: (float(np.mean([r.mma[t] for r in used])) if used else float("nan")) for t in thresholds}
    if mode == "pooled":
        errors = np.concatenate([r.errors_px[~np.isnan(r.errors_px)] for r in results])
        return {t: (float(np.mean(errors <= t)) if errors.size else float("nan")) for t in thresholds}
    raise ValueError(f"mode must be 'per_pair' or 'pooled', got {mode!r}")
