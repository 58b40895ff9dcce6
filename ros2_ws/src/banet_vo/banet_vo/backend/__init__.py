"""The sparse back end shared by the odometry and imatching_online: a sliding-window bundle adjustment
over keyframe poses and landmarks on GTSAM (robust reprojection factors, relative-pose factors).
Names are imported on first use (banet_vo.lazy_exports): `choices` loads without GTSAM."""

from banet_vo.lazy_exports import lazy_exports

_EXPORTS = {
    "window_ba": (
        "Observation",
        "Observations",
        "RelativePoseFactor",
        "WindowBAConfig",
        "WindowBAResult",
        "WindowBundleAdjuster",
    ),
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = [name for names in _EXPORTS.values() for name in names]
