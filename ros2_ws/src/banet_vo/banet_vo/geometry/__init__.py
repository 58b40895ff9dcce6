"""Geometry core: camera model, SE(3) through pypose, projection, Jacobians, sampling, warping.

No ROS and no networks here. Conventions: docs/CONVENTIONS.md.
"""

from banet_vo.geometry.camera import PinholeCamera

__all__ = ["PinholeCamera"]
