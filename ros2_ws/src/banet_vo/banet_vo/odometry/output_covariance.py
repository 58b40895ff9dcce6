"""The covariances the node publishes: the pipeline's estimate scaled per block, floored, or replaced
(ROS-free).

The pipeline's covariances come from the reprojection (PnP) or BA Hessian and, uncalibrated, are far too
confident (σ of a few mm against decimetres of real error on KITTI); the pose covariance is exactly zero on
the first frame (the origin), and a fusion filter that trusted it would lock onto the visual odometry. So
what is published is

    Σ_pose  = override  or  D·Σ_pipeline·D + floor          (per block: position m², orientation rad²)
    Σ_twist = (D·Σ_step·D + floor) / dt²                    (per frame interval dt; see below)

with D = diag(√position_scale·I₃, √orientation_scale·I₃): scaling the two blocks separately keeps their
correlation and the matrix positive definite. The scales are calibrated on real clips against ground truth
(benchmarks/covariance_nees.py; the rule in docs/preregistered/covariance_calibration.txt); the floor is a
variance always added, so no published covariance is ever zero or singular. An override fixes the diagonal
as kiss-icp's position/orientation covariance parameters do. Σ_step, the covariance of the motion between
two frames, is the frame's relative covariance when that is measured from the previous frame
(FrameResult.relative_reference "previous") or the previous frame was the keyframe; otherwise both frames'
poses relative to their keyframe are known, with right covariances Σ_prev and Σ_cur. The step
T_prev_cur = T_kf_prev⁻¹·T_kf_cur then has, to first order, Ad(T_prev_cur⁻¹)·Σ_prev·Ad(T_prev_cur⁻¹)ᵀ + Σ_cur:
the previous frame's rotation error swings the whole step, so it is no plain sum (a 0.01 rad error 1 m back
moves the step by 1 cm). It ignores the correlation of the two (both lean on one keyframe, whose error
mostly cancels in the step): conservative. A twist that cannot be
estimated (the first frame of a trajectory) gets UNKNOWN_VARIANCE on its diagonal: sensor fusion
(robot_localization) reads a huge variance as "do not use", while a zero would mean "exact".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from banet_vo.config_fields import setting
from banet_vo.geometry.frames import compose_right_covariance
from banet_vo.geometry.rigid import invert

UNKNOWN_VARIANCE = 1e6  # a variance that says "not measured" to a fusion filter
_SCALE_RANGE = (1e-6, 1e12)
_VARIANCE_RANGE = (0.0, 1e6)


@dataclass(frozen=True)
class CovarianceConfig:
    """How the pipeline's covariance becomes the published one (the node's parameters derive from these
    fields; docs/node.md gives the calibration figures)."""

    # Fitted by the pre-registered rule on KITTI 07 + TartanAir (docs/node.md: 95 % of frames inside the
    # 95 % ellipsoid, translation up to the clip's scale); the pipeline's covariance is that overconfident.
    position_scale: float = setting(
        17.0,
        "factor on the position block of every covariance from the odometry (calibrated on real clips "
        "against ground truth: docs/node.md)",
        range=_SCALE_RANGE,
    )
    orientation_scale: float = setting(
        6.1,
        "factor on the orientation block of every covariance from the odometry (calibrated on real clips "
        "against ground truth: docs/node.md)",
        range=_SCALE_RANGE,
    )
    position_floor: float = setting(
        1e-4,  # m²: σ 1 cm, a guard against a zero or singular covariance, not a calibrated figure
        "added to the position variances of the pose [m²] (the twist gets it per frame interval)",
        range=_VARIANCE_RANGE,
    )
    orientation_floor: float = setting(
        1e-6,  # rad²: σ 0.06°
        "added to the orientation variances of the pose [rad²] (the twist gets it per frame interval)",
        range=_VARIANCE_RANGE,
    )
    position_override: float = setting(
        0.0,
        "fixed position variance of the pose [m²] instead of the estimate (0: from the odometry)",
        range=_VARIANCE_RANGE,
    )
    orientation_override: float = setting(
        0.0,
        "fixed orientation variance of the pose [rad²] instead of the estimate (0: from the odometry)",
        range=_VARIANCE_RANGE,
    )

    def __post_init__(self) -> None:
        for name in ("position_scale", "orientation_scale"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        for name in ("position_floor", "orientation_floor", "position_override", "orientation_override"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    @property
    def floor(self) -> np.ndarray:
        return np.array([self.position_floor] * 3 + [self.orientation_floor] * 3)

    @property
    def block_scale(self) -> np.ndarray:
        """The diagonal of D (√scale per row: position rows, then orientation rows)."""
        return np.sqrt(np.array([self.position_scale] * 3 + [self.orientation_scale] * 3))


def _checked(cov: np.ndarray, name: str) -> np.ndarray:
    c = np.asarray(cov, dtype=np.float64)
    if c.shape != (6, 6) or not np.all(np.isfinite(c)):
        raise ValueError(f"{name} must be a finite 6x6 matrix, got shape {c.shape}")
    return 0.5 * (c + c.T)


def calibrated(cov: np.ndarray, config: CovarianceConfig) -> np.ndarray:
    """D·cov·D + floor: a pipeline covariance ([position, orientation] blocks) as the node publishes it,
    before any override. The relative (per-step) covariance this gives is what the NEES benchmark tests."""
    d = config.block_scale
    return d[:, None] * _checked(cov, "cov") * d[None, :] + np.diag(config.floor)


def pose_covariance(cov: np.ndarray, config: CovarianceConfig) -> np.ndarray:
    """The published 6x6 pose covariance (ROS order x y z, rx ry rz) from the pipeline's."""
    out = calibrated(cov, config)
    for block, value in ((slice(0, 3), config.position_override), (slice(3, 6), config.orientation_override)):
        if value > 0:
            # a fixed variance means no correlation with the other block either
            out[block, :] = 0.0
            out[:, block] = 0.0
            out[block, block] = value * np.eye(3)
    return out


def twist_covariance(step_cov: np.ndarray | None, dt: float | None, config: CovarianceConfig) -> np.ndarray:
    """6x6 twist covariance (vx vy vz, wx wy wz in the child frame) of a velocity taken over dt seconds
    from a motion with covariance step_cov ([translation, rotation], the child's axes); UNKNOWN_VARIANCE
    on the diagonal when either is missing."""
    if step_cov is None or dt is None or not dt > 0:
        return UNKNOWN_VARIANCE * np.eye(6)
    return calibrated(step_cov, config) / dt**2


def step_covariance(
    current: np.ndarray | None,
    previous: np.ndarray | None,
    previous_was_keyframe: bool,
    relative_to_previous: bool = False,
    *,
    T_odom_previous: np.ndarray | None,
    T_odom_current: np.ndarray | None,
) -> np.ndarray | None:
    """Covariance of the motion between two frames (module doc); None when it cannot be told.
    `current`/`previous` are the frames' relative covariances (right perturbation, [translation,
    rotation], each frame's own axes): from their keyframe, or (`relative_to_previous`) already from the
    previous frame, which is then the step's own. T_odom_previous / T_odom_current: the two frames' poses
    whose covariances these are (base_link in odom); only the motion between them is used, to carry the
    previous frame's covariance into the current frame."""
    if current is None:
        return None
    if relative_to_previous or previous_was_keyframe:  # measured from the previous frame itself
        return _checked(current, "current")
    if previous is None:
        return None
    if T_odom_previous is None or T_odom_current is None:
        raise ValueError(
            "T_odom_previous and T_odom_current are needed to carry the previous frame's covariance"
        )
    # (T_kf_prev·Exp(ξp))⁻¹·T_kf_cur·Exp(ξc) = step·Exp(−Ad(step⁻¹)·ξp)·Exp(ξc): a composition's formula.
    step = invert(T_odom_previous) @ T_odom_current
    return compose_right_covariance(step, _checked(previous, "previous"), _checked(current, "current"))
