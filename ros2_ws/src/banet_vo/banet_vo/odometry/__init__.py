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
from banet_vo.odometry.pipeline import (
    CAMERA_CHANGED,
    FAILED,
    INITIALIZED,
    KEYFRAME_MODES,
    OUT_OF_ORDER,
    TRACKED,
    FrameResult,
    OdometryConfig,
    OdometryStats,
    VisualOdometry,
)

__all__ = [
    "CAMERA_CHANGED",
    "DEVICES",
    "FAILED",
    "INITIALIZED",
    "KEYFRAME_MODES",
    "OUT_OF_ORDER",
    "TRACKED",
    "BANetEstimator",
    "FrameResult",
    "OdometryConfig",
    "OdometryStats",
    "PairEstimate",
    "PairEstimator",
    "PreparedFrame",
    "VisualOdometry",
    "prepare_frame",
    "resolve_device",
]
