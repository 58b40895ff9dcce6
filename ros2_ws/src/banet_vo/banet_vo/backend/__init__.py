"""The sparse back end shared by the odometry and imatching_online: a sliding-window bundle adjustment
over keyframe poses and landmarks on GTSAM (robust reprojection factors, relative-pose factors)."""

from banet_vo.backend.window_ba import (
    Observation,
    Observations,
    RelativePoseFactor,
    WindowBAConfig,
    WindowBAResult,
    WindowBundleAdjuster,
)

__all__ = [
    "Observation",
    "Observations",
    "RelativePoseFactor",
    "WindowBAConfig",
    "WindowBAResult",
    "WindowBundleAdjuster",
]
