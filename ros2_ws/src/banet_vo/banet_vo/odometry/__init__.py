"""ROS-free streaming visual odometry on BA-Net (see pipeline.py for the per-frame steps).

estimator = BANetEstimator.from_checkpoint("models/banet_small_synthetic.safetensors", device="cpu")
vo = VisualOdometry(estimator, OdometryConfig())
result = vo.process(image_uint8, stamp_seconds, PinholeCamera(...))
result.T_odom_base, result.pose_covariance, result.depth, result.depth_camera

Names are imported on first use (banet_vo.lazy_exports): `config` (OdometryConfig, TrackingConfig and
their choices) loads without torch or GTSAM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from banet_vo.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from banet_vo.odometry.config import OdometryConfig
    from banet_vo.odometry.estimator import PairEstimator

_EXPORTS = {
    "config": ("DEVICES", "FRONTENDS", "KEYFRAME_MODES", "SCALE_SOURCES", "OdometryConfig"),
    "estimator": (
        "BANetEstimator",
        "PairEstimate",
        "PairEstimator",
        "PreparedFrame",
        "prepare_frame",
        "resolve_device",
    ),
    "keyframe_vo": ("KeyframeOdometry",),
    "pipeline": (
        "CAMERA_CHANGED",
        "FAILED",
        "INITIALISING",
        "INITIALIZED",
        "LOST",
        "OUT_OF_ORDER",
        "RELOCALISED",
        "TRACKED",
        "TRACKING",
        "TRACKING_STATES",
        "FrameResult",
        "OdometryStats",
        "VisualOdometry",
    ),
    "tracking_config": ("TrackingConfig",),
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


def make_odometry(estimator: PairEstimator, config: OdometryConfig | None = None, window_ba_worker=None):
    """The streaming odometry that `config.frontend` names (each has process(image, stamp, camera),
    reset(reason) and stats). The node, the runner and the benchmarks build theirs here.
    `window_ba_worker`: the xfeat front end's background window BA solver (KeyframeOdometry's)."""
    from banet_vo.odometry.config import FRONTENDS, OdometryConfig
    from banet_vo.odometry.keyframe_vo import KeyframeOdometry
    from banet_vo.odometry.pipeline import VisualOdometry

    config = config or OdometryConfig()
    if config.frontend == "none":
        if window_ba_worker is not None:
            raise ValueError("window_ba_worker needs frontend xfeat (frontend none has no window BA)")
        return VisualOdometry(estimator, config)
    if config.frontend == "xfeat":
        return KeyframeOdometry(estimator, config, window_ba_worker=window_ba_worker)
    raise ValueError(f"frontend must be one of {FRONTENDS}, got {config.frontend!r}")


__all__ = [*(name for names in _EXPORTS.values() for name in names), "make_odometry"]
