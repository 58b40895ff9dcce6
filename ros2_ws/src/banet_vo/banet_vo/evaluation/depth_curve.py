"""Fitting a curve for BA-Net's depth (banet_vo.odometry.depth_calibration) on clips with ground-truth poses.

The xfeat pipeline (scale learned, every frame, no calibration) runs on each clip; at each keyframe's scale
measurement the keyframe's landmarks' depth z (map units, keyframe camera) and BA-Net's depth d at their
pixels are recorded. The map is put in metres with the ground truth: the true metres per map unit around a
keyframe are the ground-truth step lengths over the map's, summed over the keyframes within NEIGHBOURS
either side in the same map. The depth that enters is the map's own, triangulated from the images and
scaled by ground-truth poses: no depth label. Clips whose labels the data rule keeps for validation
(KITTI 06, HoloLens) are refused, and the shipped KITTI 07 clip, by name or folder, is fitted on its
frames 0-119 only (120-159 are held out: `fit_part`). Fits are robust (soft-L1, f_scale 0.25 in log
units), each clip weighted equally: a gain (exponent 1) or a power law. `banet-vo-eval depth-curve` is the
command (docs/frontend.md, step 6; docs/preregistered/depth_calibration*.txt).
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from banet_vo.data.validation_clips import RESERVED_CLIPS

# DESIGN.md, "Data and labels" (data.validation_clips): these clips' names; nothing is fitted on them.
VALIDATION_ONLY = ("kitti06", "hololens", "hololens150-199")
NEIGHBOURS = 3  # keyframes either side whose steps give the local true scale
F_SCALE = 0.25  # soft-L1 transition, log units (a factor of ~1.3)
DEPTH_BINS = (0.0, 2.0, 4.0, 8.0, 15.0, 30.0, 1e9)
DIRECTIONS = ("inverse", "forward")
FORMS = ("power", "gain")


@dataclass
class ClipSamples:
    """Pooled landmarks of one clip: BA-Net depth d and true metric depth (m z), both metres."""

    name: str
    d: np.ndarray
    true: np.ndarray
    keyframes_used: int
    keyframes_left_out: int
    frames: tuple[int, int] | None = None  # first and last sequence index played (record_clip)


def refuse_validation(token: str, folder: str) -> None:
    """ValueError for one of the project's clips that the data rule keeps for validation."""
    if token in VALIDATION_ONLY or Path(folder).name in RESERVED_CLIPS:
        raise ValueError(
            f"{token}: its labels are for validation only (DESIGN.md, 'Data and labels'); fit on a "
            "training clip (kitti07, whose frames 0-119 are used; tartanair) or a recording of your own"
        )


def fit_part(spec):
    """The frames of a ClipSpec (evaluation.real_clips) that a fit may use: the shipped KITTI 07 clip
    (named, or its folder) is cut to its training frames 0-119 (real_clips.KITTI07_TRAINING; 120-159 are
    held out, DESIGN.md); other clips whole. ValueError for a part of KITTI 07 inside the held-out frames."""
    from banet_vo.evaluation.real_clips import KITTI07_TRAINING as train

    if Path(spec.folder).name != train.folder:
        return spec
    stop = train.stop if spec.stop is None else min(spec.stop, train.stop)
    if spec.start >= stop:
        raise ValueError(
            f"{spec.name}: KITTI 07 frames {train.stop}-159 are held out (DESIGN.md, 'Data and labels'); "
            f"fit on frames 0-{train.stop - 1} ({train.name})"
        )
    return replace(spec, stop=stop)


def local_true_scale(
    epochs: np.ndarray, map_positions: np.ndarray, gt_positions: np.ndarray, neighbours: int = NEIGHBOURS
) -> np.ndarray:
    """Per keyframe (in order), metres per map unit around it: the ground-truth path length over the map's
    between the keyframes `neighbours` either side (clipped at the ends); NaN where that span holds another
    map (epoch) or the map moved less than 1e-6."""
    n = len(epochs)
    out = np.full(n, np.nan)
    for i in range(n):
        lo, hi = max(0, i - neighbours), min(n - 1, i + neighbours)
        if hi == lo or np.any(epochs[lo : hi + 1] != epochs[i]):
            continue
        dm = np.linalg.norm(np.diff(map_positions[lo : hi + 1], axis=0), axis=1).sum()
        dg = np.linalg.norm(np.diff(gt_positions[lo : hi + 1], axis=0), axis=1).sum()
        if dm > 1e-6:
            out[i] = dg / dm
    return out


def _weighted(samples: list[ClipSamples]) -> tuple[list[ClipSamples], np.ndarray]:
    """The clips that have landmarks, and each landmark's residual weight sqrt(w), w = 1 / its clip's count
    (normalised to a mean of 1), so that every clip counts the same; ValueError when none has any."""
    samples = [s for s in samples if len(s.d)]
    if not samples:
        raise ValueError("no landmark samples to fit")
    total = sum(len(s.d) for s in samples)
    w = np.concatenate([np.full(len(s.d), total / (len(samples) * len(s.d))) for s in samples])
    return samples, np.sqrt(w)


def fit_power_law(
    samples: list[ClipSamples], direction: str = "inverse", f_scale: float = F_SCALE
) -> tuple[float, float]:
    """(a, b) of the curve true ≈ exp(a) d^b, by robust (soft-L1) least squares in log space, each clip's
    landmarks weighted by 1 / its count so that every clip counts the same (the weights scale the
    residuals by sqrt(w): exact for the loss's quadratic part, approximate where soft-L1 is linear).
    `forward`: log(true) regressed on log(d) (the best guess of the depth from BA-Net's, which a noisy d
    pulls toward the mean);
    `inverse`: log(d) regressed on log(true) and inverted (the calibration curve: each true depth's typical
    BA-Net depth maps back onto it)."""
    from scipy.optimize import least_squares

    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    samples, sw = _weighted(samples)
    x = np.concatenate([np.log(s.d) for s in samples])
    y = np.concatenate([np.log(s.true) for s in samples])
    if direction == "inverse":
        x, y = y, x
    b0, a0 = np.polyfit(x, y, 1)
    result = least_squares(lambda p: sw * (p[0] + p[1] * x - y), x0=[a0, b0], loss="soft_l1", f_scale=f_scale)
    if not result.success:
        raise RuntimeError(f"the fit did not converge: {result.message}")
    a, b = (float(v) for v in result.x)
    if direction == "inverse":
        if not b >= 0.1:
            # Inverting a flat response would blow every depth's noise up by 1 / b: no usable curve.
            raise ValueError(
                f"BA-Net's depth barely grows with the true depth here (slope {b:.3g} in log-log, 0.1 "
                "needed): no calibration curve"
            )
        a, b = -a / b, 1.0 / b
    return a, b


def fit_gain(samples: list[ClipSamples], f_scale: float = F_SCALE) -> float:
    """a of the gain true ≈ exp(a) d (exponent 1), by the same robust, clip-weighted fit as fit_power_law:
    it moves every depth by one factor, so a keyframe's measurement keeps its wander and only its level
    moves."""
    from scipy.optimize import least_squares

    samples, sw = _weighted(samples)
    r = np.concatenate([np.log(s.true) - np.log(s.d) for s in samples])
    result = least_squares(lambda p: sw * (p[0] - r), x0=[np.median(r)], loss="soft_l1", f_scale=f_scale)
    if not result.success:
        raise RuntimeError(f"the fit did not converge: {result.message}")
    return float(result.x[0])


def record_clip(
    token: str, data: str | Path, estimator, seed: int = 0, max_frames: int | None = None
) -> ClipSamples:
    """Run the pipeline on one clip (a name under `data` or a sequence folder with ground-truth poses) and
    pool its keyframes' (BA-Net depth, true depth) landmark pairs. ValueError for a validation clip."""
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.odometry import OdometryConfig, TrackingConfig, make_odometry
    from banet_vo.odometry.scale import depth_at_points

    spec = rc.resolve_clip(token, data)
    refuse_validation(token, spec.folder)
    if fit_part(spec) != spec:
        spec = fit_part(spec)
        print(f"  {token}: frames {spec.start}-{spec.stop - 1} only, the rest is held out", file=sys.stderr)
    clip = rc.load_clip(spec, data, max_frames, 1, 1.0, None, False)
    config = OdometryConfig(
        frontend="xfeat", scale_source="learned", tracking=TrackingConfig(ransac_seed=seed)
    )
    vo = make_odometry(estimator, config)
    measured = {}  # stamp -> the keyframe's last measurement (a keyframe can be measured again when merged)
    vo.on_keyframe_measured = lambda m: measured.__setitem__(m.stamp, m)
    try:
        for k, frame in enumerate(clip.frames()):
            vo.process(frame.image, frame.timestamp, frame.camera)
            if (k + 1) % 20 == 0:
                print(f"  {token}: frame {k + 1}/{len(clip)}, {len(measured)} keyframes", file=sys.stderr)
    finally:
        vo.close()
    keyframes = [measured[s] for s in sorted(measured)]
    stamps = clip.stamps
    gt = clip.gt
    index = [int(np.argmin(np.abs(stamps - m.stamp))) for m in keyframes]
    scale = local_true_scale(
        np.array([m.map_epoch for m in keyframes]),
        np.array([m.T_wc[:3, 3] for m in keyframes]),
        gt[index][:, :3, 3],
    )
    d_all, true_all = [], []
    for m, s in zip(keyframes, scale, strict=True):
        if not np.isfinite(s):
            continue
        d, z = depth_at_points(m.points_cam, m.depth, m.depth_camera)
        d_all.append(d)
        true_all.append(s * z)
    used = int(np.isfinite(scale).sum())
    return ClipSamples(
        token,
        np.concatenate(d_all) if d_all else np.zeros(0),
        np.concatenate(true_all) if true_all else np.zeros(0),
        used,
        len(keyframes) - used,
        (int(clip.indices[0]), int(clip.indices[-1])),
    )


def ratio_table(samples: list[ClipSamples], calibration) -> str:
    """Median BA-Net / true and calibrated / true depth per true-depth bin, per clip (markdown)."""
    lines = [
        "| clip | true depth [m] | landmarks | BA-Net / true | calibrated / true |",
        "|---|---|---|---|---|",
    ]
    for s in samples:
        cal = calibration.apply(s.d.astype(np.float32)).astype(np.float64)
        for lo, hi in itertools.pairwise(DEPTH_BINS):
            sel = (s.true >= lo) & (s.true < hi)
            if sel.sum() < 20:
                continue
            span = f"{lo:g}-{hi:g}" if hi < 1e8 else f">{lo:g}"
            lines.append(
                f"| {s.name} | {span} | {int(sel.sum())} | {np.median(s.d[sel] / s.true[sel]):.2f} | "
                f"{np.median(cal[sel] / s.true[sel]):.2f} |"
            )
    return "\n".join(lines)
