"""Dense depth metrics (Eigen et al. 2014, as used in BA-Net's Tables 1-3).

Over the valid pixels p (n of them), with d the prediction and d* the ground truth (z-depth, metres):

- abs_rel = mean |d - d*| / d*          sq_rel = mean (d - d*)^2 / d*
- rmse = sqrt(mean (d - d*)^2)          rmse_log = sqrt(mean (log d - log d*)^2)
- si_rmse_log = sqrt(mean z^2 - (mean z)^2), z = log d - log d* (Eigen's scale-invariant error, rooted)
- delta_k = fraction with max(d/d*, d*/d) < 1.25^k, k = 1, 2, 3

Valid pixels: ground truth finite and > 0 (and inside [min_depth, max_depth] when those caps are
given), inside the optional boolean `mask`, and prediction finite. Then, in this order: optional
median scaling (d *= median(d*) / median(d) over the valid pixels), then the prediction is clipped to
[min_depth, max_depth] where given (the usual KITTI protocol). Predictions that are still <= 0 are left
out (their log is undefined) and reported through `coverage` = used pixels / ground-truth-valid pixels,
so a method that skips pixels cannot hide it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

METRIC_NAMES: tuple[str, ...] = (
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "si_rmse_log",
    "delta_1",
    "delta_2",
    "delta_3",
)


@dataclass(frozen=True)
class DepthMetrics:
    abs_rel: float
    sq_rel: float
    rmse: float
    rmse_log: float
    si_rmse_log: float
    delta_1: float
    delta_2: float
    delta_3: float
    n_valid: int  # pixels the metrics were computed over
    coverage: float  # n_valid / pixels with valid ground truth
    scale: float  # median-scaling factor applied to the prediction (1.0 when off)

    def as_dict(self) -> dict:
        return asdict(self)


def _as_depth(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D depth map (H, W), got shape {x.shape}")
    return x


def depth_metrics(
    pred,
    gt,
    mask=None,
    *,
    min_depth: float | None = None,
    max_depth: float | None = None,
    median_scaling: bool = False,
) -> DepthMetrics:
    """Metrics of one predicted depth map against ground truth of the same size (see module doc)."""
    pred, gt = _as_depth(pred, "pred"), _as_depth(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} differs from gt shape {gt.shape}")
    if min_depth is not None and not min_depth > 0:
        raise ValueError(f"min_depth must be > 0, got {min_depth}")
    if max_depth is not None and min_depth is not None and max_depth <= min_depth:
        raise ValueError(f"max_depth ({max_depth}) must exceed min_depth ({min_depth})")
    if max_depth is not None and not max_depth > 0:
        raise ValueError(f"max_depth must be > 0, got {max_depth}")

    with np.errstate(invalid="ignore"):
        gt_valid = np.isfinite(gt) & (gt > 0)
        if min_depth is not None:
            gt_valid &= gt >= min_depth
        if max_depth is not None:
            gt_valid &= gt <= max_depth
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != gt.shape or mask.dtype != np.bool_:
            raise ValueError(
                f"mask must be a boolean array of shape {gt.shape}, got {mask.dtype} {mask.shape}"
            )
        gt_valid &= mask
    n_gt = int(gt_valid.sum())
    if n_gt == 0:
        raise ValueError("gt has no valid pixels (finite, > 0, inside the caps and the mask)")

    use = gt_valid & np.isfinite(pred)
    d, d_star = pred[use], gt[use]
    scale = 1.0
    if median_scaling:
        positive = d > 0
        if not np.any(positive):
            raise ValueError("pred has no positive values on the valid pixels: cannot median-scale")
        scale = float(np.median(d_star[positive]) / np.median(d[positive]))
        d = d * scale
    if min_depth is not None or max_depth is not None:
        d = np.clip(d, min_depth, max_depth)
    positive = d > 0
    d, d_star = d[positive], d_star[positive]
    if d.size == 0:
        raise ValueError("pred has no finite positive values on the pixels with valid gt")

    diff = d - d_star
    log_diff = np.log(d) - np.log(d_star)
    ratio = np.maximum(d / d_star, d_star / d)
    return DepthMetrics(
        abs_rel=float(np.mean(np.abs(diff) / d_star)),
        sq_rel=float(np.mean(diff**2 / d_star)),
        rmse=float(np.sqrt(np.mean(diff**2))),
        rmse_log=float(np.sqrt(np.mean(log_diff**2))),
        si_rmse_log=float(np.sqrt(max(np.mean(log_diff**2) - np.mean(log_diff) ** 2, 0.0))),
        delta_1=float(np.mean(ratio < 1.25)),
        delta_2=float(np.mean(ratio < 1.25**2)),
        delta_3=float(np.mean(ratio < 1.25**3)),
        n_valid=int(d.size),
        coverage=d.size / n_gt,
        scale=scale,
    )


def mean_depth_metrics(per_image: Sequence[DepthMetrics]) -> DepthMetrics:
    """Average over images (each image weighs the same, as in Eigen's protocol); counts are summed."""
    if not per_image:
        raise ValueError("per_image is empty")
    values = {name: float(np.mean([getattr(m, name) for m in per_image])) for name in METRIC_NAMES}
    return DepthMetrics(
        **values,
        n_valid=int(sum(m.n_valid for m in per_image)),
        coverage=float(np.mean([m.coverage for m in per_image])),
        scale=float(np.median([m.scale for m in per_image])),
    )


def load_depth(path: str | Path, png_scale: float = 0.001) -> np.ndarray:
    """Depth map in metres from .npy (metres, as stored) or a 16-bit .png (value * png_scale; 0 = invalid).

    png_scale: 0.001 for millimetre PNGs (TUM uses 1/5000, KITTI depth 1/256).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"depth file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        depth = np.load(path, allow_pickle=False).astype(np.float32)
    elif suffix == ".png":
        import cv2

        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ValueError(f"depth file {path} could not be read as an image")
        if raw.ndim != 2 or raw.dtype not in (np.uint16, np.uint8):
            raise ValueError(f"depth PNG {path} must be single-channel 8/16-bit, got {raw.dtype} {raw.shape}")
        if not png_scale > 0:
            raise ValueError(f"png_scale must be > 0, got {png_scale}")
        depth = raw.astype(np.float32) * np.float32(png_scale)
    else:
        raise ValueError(f"depth file {path} must be .npy or .png, got {suffix!r}")
    return _as_depth(depth, str(path)).astype(np.float32)


def resize_depth(depth, shape: tuple[int, int], method: str = "nearest") -> np.ndarray:
    """Resize a depth map to (H, W) with whole-image scaling, pixel-centre convention.

    method: 'nearest' keeps depth edges and invalid pixels as they are (each output pixel takes the source
    pixel under its centre: model.input_image.resize_depth_nearest, the rule training uses; OpenCV's
    INTER_NEAREST is corner-aligned); 'linear' blends neighbours (cv2.INTER_LINEAR; use it only for smooth,
    fully valid predictions).
    """
    import cv2

    from banet_vo.model.input_image import resize_depth_nearest

    d = _as_depth(depth, "depth").astype(np.float32)
    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"shape must be positive (H, W), got {shape}")
    if method == "nearest":
        return np.ascontiguousarray(resize_depth_nearest(d, w, h))
    if method == "linear":
        return cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR)
    raise ValueError(f"method must be 'nearest' or 'linear', got {method!r}")


# What the published depth is scored against: the ground truth inside these bounds [m].
PUBLISHED_MIN_DEPTH, PUBLISHED_MAX_DEPTH = 0.1, 80.0


def published_depth_metrics(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], median_scaling: bool = False
) -> tuple[DepthMetrics | None, int]:
    """Mean metrics of published depth maps against ground truth: (metrics or None, maps without depth).
    Each pair is (prediction, ground truth); the ground truth (NaN or 0 invalid) is resized nearest to the
    prediction and bounded to [PUBLISHED_MIN_DEPTH, PUBLISHED_MAX_DEPTH]; a predicted pixel that is not
    positive (0 or NaN: published invalid) is left out and counted by coverage. A map with no predicted
    depth where the truth has one (a keyframe the depth bounds blanked) cannot be scored: it is counted in
    the second value, not in the mean."""
    per_map, empty = [], 0
    for pred, gt in pairs:
        g = resize_depth(np.nan_to_num(np.asarray(gt, dtype=np.float64), nan=0.0), pred.shape, "nearest")
        p = np.asarray(pred, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            p = np.where(p > 0, p, np.nan)
            truth = (g >= PUBLISHED_MIN_DEPTH) & (g <= PUBLISHED_MAX_DEPTH)
        if not truth.any():
            continue  # nothing to score against
        if not np.any(np.isfinite(p) & truth):
            empty += 1
            continue
        per_map.append(
            depth_metrics(
                p,
                g,
                min_depth=PUBLISHED_MIN_DEPTH,
                max_depth=PUBLISHED_MAX_DEPTH,
                median_scaling=median_scaling,
            )
        )
    return (mean_depth_metrics(per_map) if per_map else None), empty
