"""The covariances the node publishes: the BA's estimate scaled, floored, or replaced (ROS-free).

The pipeline's pose covariance comes from the BA Hessian and is accumulated along the keyframe chain. On
real clips it is far too confident (σ of a few mm against decimetres of real error), it is exactly zero
on the first frame (the origin), and a fusion filter that trusts it would lock onto the visual odometry.
So what is published is

    Σ_pose  = override  or  scale · Σ_BA + floor           (per block: position m², orientation rad²)
    Σ_twist = scale · Σ_step / dt² + floor / dt²           (per frame interval dt; see below)

with `scale` to be calibrated against real error (the real-clip benchmark measures it) and the floor a
variance that is always added, so no published covariance is ever zero or singular. An override fixes
the diagonal as kiss-icp's position/orientation covariance parameters do. Σ_step, the covariance of the
motion between two frames, is not in the pipeline's output: both frames' poses relative to their keyframe
are, so their sum bounds it from above (it ignores the positive correlation of the two; conservative),
and when the previous frame was itself the keyframe Σ_step is exactly the current relative covariance.
A twist that cannot be estimated (the first frame of a trajectory) gets UNKNOWN_VARIANCE on its diagonal:
sensor fusion (robot_localization) reads a huge variance as "do not use", while a zero would mean "exact".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_POSITION_FLOOR = 1e-4  # m²: σ 1 cm
DEFAULT_ORIENTATION_FLOOR = 1e-6  # rad²: σ 0.06°
UNKNOWN_VARIANCE = 1e6  # a variance that says "not measured" to a fusion filter


@dataclass(frozen=True)
class CovarianceConfig:
    scale: float = 1.0
    position_floor: float = DEFAULT_POSITION_FLOOR
    orientation_floor: float = DEFAULT_ORIENTATION_FLOOR
    position_override: float = 0.0  # > 0: fixed position variance instead of the estimate
    orientation_override: float = 0.0

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale!r}")
        for name in ("position_floor", "orientation_floor", "position_override", "orientation_override"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    @property
    def floor(self) -> np.ndarray:
        return np.array([self.position_floor] * 3 + [self.orientation_floor] * 3)


def _checked(cov: np.ndarray, name: str) -> np.ndarray:
    c = np.asarray(cov, dtype=np.float64)
    if c.shape != (6, 6) or not np.all(np.isfinite(c)):
        raise ValueError(f"{name} must be a finite 6x6 matrix, got shape {c.shape}")
    return 0.5 * (c + c.T)


def pose_covariance(cov: np.ndarray, config: CovarianceConfig) -> np.ndarray:
    """The published 6x6 pose covariance (ROS order x y z, rx ry rz) from the pipeline's."""
    out = config.scale * _checked(cov, "cov") + np.diag(config.floor)
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
    return (config.scale * _checked(step_cov, "step_cov") + np.diag(config.floor)) / dt**2


def step_covariance(
    current: np.ndarray | None, previous: np.ndarray | None, previous_was_keyframe: bool
) -> np.ndarray | None:
    """Covariance of the motion between two frames from their keyframe-relative covariances (module doc);
    None when it cannot be told."""
    if current is None:
        return None
    if previous_was_keyframe:  # the current pose is measured from the previous frame itself
        return _checked(current, "current")
    if previous is None:
        return None
    return _checked(current, "current") + _checked(previous, "previous")
