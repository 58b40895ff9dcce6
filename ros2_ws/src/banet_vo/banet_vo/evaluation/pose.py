"""Two-view pose errors (BA-Net Table 1) and pose AUC (SuperGlue / LoFTR / iMatching).

All poses are relative poses `T_ji` (4x4 or 3x4, camera i -> camera j, docs/CONVENTIONS.md), numpy
float64, optionally batched over leading axes. Definitions:

- rotation error: the angle of `R_est^T R_gt` (the smallest rotation aligning the two), degrees;
- translation error: distance between the estimated and true centre of camera j in camera i's frame,
  `c = -R_ji^T t_ji`, in centimetres (assumes metres in);
- translation direction error: angle between `t_est` and `t_gt` (the translation columns of `T_ji`),
  degrees; NaN when either has zero length (direction undefined). With `sign_ambiguous=True` it is
  `min(a, 180 - a)`, for essential-matrix poses whose translation sign is unknown. With
  `missing_direction_is_worst=True`, an estimate without a translation against a truth with one (a
  method that failed on the pair) gets the worst angle, 180, instead of NaN, so that summaries of
  several methods are taken over the same pairs (pose AUC counts it as a failure either way).
- pose AUC at threshold τ: pose error per pair `e = max(rotation error, direction error)` (NaN counts as
  a failure, +inf); the recall curve through (0, 0) and (e_(k), k/N) of the sorted errors below τ,
  linearly interpolated and held flat from the last error below τ up to τ; AUC = its area / τ.
  `interpolation="step"` gives the exact area under the step recall curve instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from banet_vo.geometry.rigid import rotation_angle_deg

AUC_THRESHOLDS_DEG: tuple[float, ...] = (5.0, 10.0, 20.0)
WORST_DIRECTION_DEG = 180.0


def as_pose_matrices(T, name: str = "T") -> np.ndarray:
    """(..., 4, 4) float64 from (..., 4, 4) / (..., 3, 4) arrays or a pypose SE3 LieTensor."""
    if hasattr(T, "matrix") and hasattr(T, "ltype"):  # pypose LieTensor: avoid importing torch here
        T = T.matrix().detach().cpu().numpy()
    elif hasattr(T, "detach"):
        T = T.detach().cpu().numpy()
    T = np.asarray(T, dtype=np.float64)
    if T.ndim < 2 or T.shape[-1] != 4 or T.shape[-2] not in (3, 4):
        raise ValueError(f"{name} must have shape (..., 4, 4) or (..., 3, 4), got {T.shape}")
    if not np.all(np.isfinite(T)):
        raise ValueError(f"{name} contains non-finite values")
    return T


def rotation_error_deg(R_est, R_gt) -> np.ndarray:
    """Angle of the rotation taking the estimated camera axes onto the true ones, degrees."""
    R_est, R_gt = np.asarray(R_est, dtype=np.float64), np.asarray(R_gt, dtype=np.float64)
    return rotation_angle_deg(np.swapaxes(R_est, -1, -2) @ R_gt)


def angle_between_deg(a, b) -> np.ndarray:
    """Angle between vectors (..., 3) in degrees; NaN where either vector has zero length."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    dot = np.sum(a * b, axis=-1)
    zero = (np.linalg.norm(a, axis=-1) == 0) | (np.linalg.norm(b, axis=-1) == 0)
    return np.where(zero, np.nan, np.degrees(np.arctan2(cross, dot)))


def camera_centre(T) -> np.ndarray:
    """Centre of camera j expressed in camera i's frame for T_ji: -R^T t, shape (..., 3)."""
    T = as_pose_matrices(T)
    R, t = T[..., :3, :3], T[..., :3, 3]
    return -np.einsum("...ji,...j->...i", R, t)


@dataclass(frozen=True)
class TwoViewPoseError:
    """Errors of one relative pose (floats) or of a batch (arrays)."""

    rotation_deg: float | np.ndarray
    translation_cm: float | np.ndarray
    translation_direction_deg: float | np.ndarray

    @property
    def auc_error_deg(self) -> float | np.ndarray:
        """max(rotation, direction) — the error that pose AUC integrates; NaN direction -> inf."""
        direction = np.where(np.isnan(self.translation_direction_deg), np.inf, self.translation_direction_deg)
        out = np.maximum(self.rotation_deg, direction)
        return float(out) if np.ndim(out) == 0 else out

    def as_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else float(v)) for k, v in asdict(self).items()}


def two_view_pose_error(
    T_est, T_gt, *, sign_ambiguous: bool = False, missing_direction_is_worst: bool = False
) -> TwoViewPoseError:
    """BA-Net's three pose errors between estimated and true relative poses T_ji (metres in).
    `missing_direction_is_worst`: an estimate with no translation where the truth has one gets a
    direction error of WORST_DIRECTION_DEG instead of NaN (a failed pair counts, and counts as the worst)."""
    T_est, T_gt = as_pose_matrices(T_est, "T_est"), as_pose_matrices(T_gt, "T_gt")
    if T_est.shape[:-2] != T_gt.shape[:-2]:
        raise ValueError(
            f"T_est batch shape {T_est.shape[:-2]} differs from T_gt batch shape {T_gt.shape[:-2]}"
        )
    rot = rotation_error_deg(T_est[..., :3, :3], T_gt[..., :3, :3])
    trans_cm = 100.0 * np.linalg.norm(camera_centre(T_est) - camera_centre(T_gt), axis=-1)
    direction = angle_between_deg(T_est[..., :3, 3], T_gt[..., :3, 3])
    if sign_ambiguous:
        direction = np.minimum(direction, 180.0 - direction)
    if missing_direction_is_worst:
        lost = (np.linalg.norm(T_est[..., :3, 3], axis=-1) == 0) & (
            np.linalg.norm(T_gt[..., :3, 3], axis=-1) > 0
        )
        direction = np.where(lost, WORST_DIRECTION_DEG, direction)
    if rot.ndim == 0:
        return TwoViewPoseError(float(rot), float(trans_cm), float(direction))
    return TwoViewPoseError(rot, trans_cm, direction)


def summarize_pose_errors(errors: Iterable[TwoViewPoseError]) -> dict[str, dict[str, float]]:
    """Mean and median of each error over pairs (NaN directions left out of the direction stats)."""
    errors = list(errors)
    if not errors:
        raise ValueError("errors is empty")
    out: dict[str, dict[str, float]] = {}
    for field in ("rotation_deg", "translation_cm", "translation_direction_deg"):
        values = np.concatenate([np.atleast_1d(getattr(e, field)) for e in errors]).astype(np.float64)
        finite = values[np.isfinite(values)]
        out[field] = {
            "mean": float(finite.mean()) if finite.size else float("nan"),
            "median": float(np.median(finite)) if finite.size else float("nan"),
            "count": int(finite.size),
        }
    return out


def pose_auc(
    errors_deg: Sequence[float] | np.ndarray,
    thresholds_deg: Sequence[float] = AUC_THRESHOLDS_DEG,
    *,
    interpolation: Literal["linear", "step"] = "linear",
) -> dict[float, float]:
    """Area under the recall-vs-error curve up to each threshold, normalised to [0, 1].

    errors_deg: one pose error per pair (usually `TwoViewPoseError.auc_error_deg`); NaN and +inf are
    failures that never count as recalled but stay in the denominator.
    """
    errors = np.asarray(errors_deg, dtype=np.float64).reshape(-1)
    if errors.size == 0:
        raise ValueError("errors_deg is empty")
    if np.any(errors < 0):
        raise ValueError("errors_deg must be non-negative")
    if interpolation not in ("linear", "step"):
        raise ValueError(f"interpolation must be 'linear' or 'step', got {interpolation!r}")
    errors = np.sort(np.where(np.isnan(errors), np.inf, errors))
    n = errors.size
    result: dict[float, float] = {}
    for tau in thresholds_deg:
        tau = float(tau)
        if not tau > 0:
            raise ValueError(f"thresholds_deg must be positive, got {tau}")
        below = errors[errors < tau]
        k = below.size
        if interpolation == "step":
            area = float(np.sum(tau - below)) / n
        else:
            x = np.concatenate([[0.0], below, [tau]])
            y = np.concatenate([[0.0], np.arange(1, k + 1) / n, [k / n]])
            area = float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))
        result[tau] = area / tau
    return result
