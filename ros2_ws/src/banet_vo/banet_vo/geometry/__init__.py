"""Geometry core: camera model, SE(3) through pypose, projection, Jacobians, sampling, warping.

No ROS and no networks here. Conventions: docs/CONVENTIONS.md.
"""

from banet_vo.geometry.camera import PinholeCamera
from banet_vo.geometry.projection import (
    backproject,
    backproject_depth,
    jacobian_point_wrt_pose,
    jacobian_project_wrt_depth,
    jacobian_project_wrt_point,
    jacobian_project_wrt_pose,
    pixel_grid,
    project,
    scale_intrinsics,
    skew,
    transform_points,
)
from banet_vo.geometry.sampling import bilinear_sample
from banet_vo.geometry.se3 import (
    as_se3,
    identity_se3,
    perturb_left,
    relative_pose,
    rotation_angle_deg,
    to_matrix,
)
from banet_vo.geometry.warp import warp_coordinates, warp_image

__all__ = [
    "PinholeCamera",
    "as_se3",
    "backproject",
    "backproject_depth",
    "bilinear_sample",
    "identity_se3",
    "jacobian_point_wrt_pose",
    "jacobian_project_wrt_depth",
    "jacobian_project_wrt_point",
    "jacobian_project_wrt_pose",
    "perturb_left",
    "pixel_grid",
    "project",
    "relative_pose",
    "rotation_angle_deg",
    "scale_intrinsics",
    "skew",
    "to_matrix",
    "transform_points",
    "warp_coordinates",
    "warp_image",
]
