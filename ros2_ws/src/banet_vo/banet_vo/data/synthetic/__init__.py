"""Procedural synthetic world with exact depth, poses and intrinsics (issue 3).

Scenes are textured planar rectangles and boxes (a street, a room), ray cast in torch with mip-mapped,
anisotropically filtered textures; trajectories are driving (10 Hz) or hand-held (30 Hz). See
docs/synthetic.md.
"""

from banet_vo.data.synthetic.consistency import photometric_errors
from banet_vo.data.synthetic.generate import DEFAULT_FOV_DEG, KINDS, make_scene, render_sequence
from banet_vo.data.synthetic.render import camera_from_fov, cast_rays, render_frame, render_radiance
from banet_vo.data.synthetic.scene import Scene
from banet_vo.data.synthetic.sensor import SensorModel
from banet_vo.data.synthetic.trajectory import Trajectory, make_trajectory, motion_per_frame

__all__ = [
    "DEFAULT_FOV_DEG",
    "KINDS",
    "Scene",
    "SensorModel",
    "Trajectory",
    "camera_from_fov",
    "cast_rays",
    "make_scene",
    "make_trajectory",
    "motion_per_frame",
    "photometric_errors",
    "render_frame",
    "render_radiance",
    "render_sequence",
]
