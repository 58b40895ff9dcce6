"""ROS-free streaming visual odometry on BA-Net (see pipeline.py for the per-frame steps).

estimator = BANetEstimator.from_checkpoint("models/banet_small_synthetic.safetensors", device="cpu")
vo = VisualOdometry(estimator, OdometryConfig())
result = vo.process(image_uint8, stamp_seconds, PinholeCamera(...))
result.T_odom_base, result.pose_covariance, result.depth, result.depth_camera
"""

from banet_vo.odometry.estimator import (
    DEVICES,
    BANetEstimator,
    PairEstimate,
    PairEstimator,
    PreparedFrame,
    prepare_frame,
    resolve_device,
)
from banet_vo.odometry.keyframe_vo import KeyframeOdometry
from banet_vo.odometry.pipeline import (
    CAMERA_CHANGED,
    FAILED,
    FRONTENDS,
    INITIALISING,
    INITIALIZED,
    KEYFRAME_MODES,
    LOST,
    OUT_OF_ORDER,
    RELOCALISED,
    SCALE_SOURCES,
    TRACKED,
    TRACKING,
    TRACKING_STATES,
    FrameResult,
    OdometryConfig,
    OdometryStats,
    VisualOdometry,
)
from banet_vo.odometry.tracking_config import TrackingConfig


def make_odometry(estimator: PairEstimator, config: OdometryConfig | None = None):
    """The streaming odometry that `config.frontend` names (each has process(image, stamp, camera),
    reset(reason) and stats). The node, the runner and the benchmarks build theirs here."""
    config = config or OdometryConfig()
    if config.frontend == "none":
        return VisualOdometry(estimator, config)
    if config.frontend == "xfeat":
        return KeyframeOdometry(estimator, config)
    raise ValueError(f"frontend must be one of {FRONTENDS}, got {config.frontend!r}")


__all__ = [
    "CAMERA_CHANGED",
    "DEVICES",
    "FAILED",
    "FRONTENDS",
    "INITIALISING",
    "INITIALIZED",
    "KEYFRAME_MODES",
    "LOST",
    "OUT_OF_ORDER",
    "RELOCALISED",
    "SCALE_SOURCES",
    "TRACKED",
    "TRACKING",
    "TRACKING_STATES",
    "BANetEstimator",
    "FrameResult",
    "KeyframeOdometry",
    "OdometryConfig",
    "OdometryStats",
    "PairEstimate",
    "PairEstimator",
    "PreparedFrame",
    "TrackingConfig",
    "VisualOdometry",
    "make_odometry",
    "prepare_frame",
    "resolve_device",
]
