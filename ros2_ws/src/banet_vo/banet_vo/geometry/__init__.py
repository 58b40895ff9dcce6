"""Geometry core: camera model, SE(3) through pypose, projection, Jacobians, sampling, warping.

No ROS and no networks here. Conventions: docs/CONVENTIONS.md. Names are imported on first use
(banet_vo.lazy_exports): the camera model and the numpy helpers (camera, rigid, frames) load without torch.
"""

from banet_vo.lazy_exports import lazy_exports

_EXPORTS = {
    "camera": ("PinholeCamera",),
    "projection": (
        "backproject",
        "backproject_depth",
        "jacobian_point_wrt_pose",
        "jacobian_project_wrt_depth",
        "jacobian_project_wrt_point",
        "jacobian_project_wrt_pose",
        "pixel_grid",
        "project",
        "scale_intrinsics",
        "skew",
        "transform_points",
    ),
    "sampling": ("bilinear_sample",),
    "se3": (
        "as_se3",
        "exp_se3",
        "identity_se3",
        "perturb_left",
        "relative_pose",
        "rotation_angle_deg",
        "to_matrix",
    ),
    "warp": ("warp_coordinates", "warp_image"),
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = [name for names in _EXPORTS.values() for name in names]
