"""Parameters of the banet_vo node: one table with defaults, descriptions and ranges.

The table (a banet_vo.ros.parameters.ParameterTable) is the single source: the node declares every entry
read-only with its descriptor (description, range), config/banet_vo.yaml lists the same names and
defaults (a test checks it), and `NodeParams` is the validated result. Anything invalid raises
ValueError naming the parameter, so the node stops at start with a clear message instead of misbehaving
later.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from rclpy.node import Node
from scipy.spatial.transform import Rotation

from banet_vo.geometry.frames import R_BODY_OPTICAL, body_from_optical
from banet_vo.odometry import DEVICES, FRONTENDS, KEYFRAME_MODES, SCALE_SOURCES, OdometryConfig
from banet_vo.ros.camera_input import image_qos_parameter
from banet_vo.ros.parameters import ParameterSpec, ParameterTable, subset

PARAMS = ParameterTable(
    ParameterSpec(
        "model", "", "BA-Net checkpoint (.safetensors, banet_vo.model.checkpoint format); required"
    ),
    ParameterSpec(
        "device", "auto", "inference device: auto (CUDA when available), cuda or cpu", choices=DEVICES
    ),
    ParameterSpec("torch_threads", 0, "CPU threads for torch (0: torch's default)", range=(0, 256)),
    image_qos_parameter(),
    ParameterSpec(
        "queue_size", 1, "frames waiting for inference; older ones are dropped and counted", range=(1, 100)
    ),
    ParameterSpec("odom_frame", "odom", "parent frame of odometry, path and /tf"),
    ParameterSpec("base_frame", "base_link", "child frame of odometry and /tf"),
    ParameterSpec("publish_tf", True, "broadcast odom → base_frame on /tf (needs tf2_ros or tf2_msgs)"),
    ParameterSpec(
        "publish_static_tf", True, "broadcast base_frame → camera frame on /tf_static from base_camera_*"
    ),
    ParameterSpec(
        "camera_frame",
        "",
        "optical frame of the camera for /tf_static (empty: the frame_id of the incoming images)",
    ),
    ParameterSpec(
        "base_camera_xyz", [0.0, 0.0, 0.0], "camera centre in base_frame [m] (x forward, y left, z up)"
    ),
    ParameterSpec(
        "base_camera_rpy",
        [0.0, 0.0, 0.0],
        "camera mount roll, pitch, yaw [rad] in base_frame; zeros = optical axis along base x (REP-103)",
    ),
    ParameterSpec("path_max_length", 2000, "poses kept in ~/path", range=(1, 1_000_000)),
    ParameterSpec("depth_every_n", 1, "publish ~/depth for every n-th tracked frame", range=(1, 10_000)),
    ParameterSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", range=(0.05, 60.0)),
    ParameterSpec(
        "keyframe_mode",
        "adaptive",
        "adaptive (thresholds below) or consecutive (every frame)",
        choices=KEYFRAME_MODES,
    ),
    ParameterSpec(
        "keyframe_translation",
        0.5,
        "baseline to the keyframe [m] that starts a new keyframe",
        range=(1e-3, 100.0),
    ),
    ParameterSpec(
        "keyframe_rotation_deg",
        5.0,
        "rotation to the keyframe [deg] that starts a new keyframe",
        range=(0.01, 180.0),
    ),
    ParameterSpec(
        "keyframe_min_overlap",
        0.7,
        "view overlap with the keyframe below which a new keyframe starts",
        range=(0.0, 1.0),
    ),
    ParameterSpec(
        "max_cost", 1e6, "BA cost above which a frame counts as diverged and is skipped", range=(1e-9, 1e30)
    ),
    ParameterSpec(
        "max_translation",
        5.0,
        "translation to the keyframe [m] above which a frame is skipped",
        range=(1e-3, 1e6),
    ),
    ParameterSpec(
        "max_consecutive_failures", 5, "skipped frames in a row before re-keyframing", range=(1, 1000)
    ),
    ParameterSpec(
        "reset_on_time_jump",
        1.0,
        "a stamp this many seconds behind the last resets the trajectory",
        range=(1e-3, 1e9),
    ),
    ParameterSpec("motion_prior", True, "seed the BA with a constant-velocity prediction"),
    ParameterSpec("min_depth", 0.05, "published depth below this [m] is NaN", range=(1e-6, 1e6)),
    ParameterSpec("max_depth", 200.0, "published depth above this [m] is NaN", range=(1e-6, 1e6)),
    ParameterSpec(
        "frontend",
        OdometryConfig.frontend,
        "odometry front end: pretrained features + keyframe window + sparse back end around BA-Net, "
        "or none (BA-Net alone on keyframe pairs, the ablation)",
        choices=FRONTENDS,
    ),
    ParameterSpec(
        "scale_source",
        OdometryConfig.scale_source,
        "metric scale from BA-Net's learned depth, a ground plane at camera_height, or none (up to scale)",
        choices=SCALE_SOURCES,
    ),
    ParameterSpec(
        "camera_height",
        OdometryConfig.camera_height,
        "camera height above the ground [m] for scale_source ground_plane (0: unknown)",
        range=(0.0, 100.0),
    ),
)


@dataclass(frozen=True)
class NodeParams:
    """Validated node parameters (see PARAMS for what each means)."""

    model: str
    device: str
    torch_threads: int
    image_qos: str
    queue_size: int
    odom_frame: str
    base_frame: str
    publish_tf: bool
    publish_static_tf: bool
    camera_frame: str
    base_camera_xyz: tuple[float, float, float]
    base_camera_rpy: tuple[float, float, float]
    path_max_length: int
    depth_every_n: int
    diagnostics_period: float
    odometry: OdometryConfig

    @property
    def T_base_camera(self) -> np.ndarray:
        return self.odometry.T_base_camera


# Table entries that are OdometryConfig fields of the same name; the rest of NodeParams mirrors the table.
ODOMETRY_PARAMS = (
    "keyframe_mode",
    "keyframe_translation",
    "keyframe_rotation_deg",
    "keyframe_min_overlap",
    "max_cost",
    "max_translation",
    "max_consecutive_failures",
    "reset_on_time_jump",
    "motion_prior",
    "min_depth",
    "max_depth",
    "frontend",
    "scale_source",
    "camera_height",
)
NODE_PARAMS = tuple(f.name for f in fields(NodeParams) if f.name != "odometry")


def base_camera_transform(xyz, rpy) -> np.ndarray:
    """T_base_camera(optical) = mount rotation (rpy, extrinsic x-y-z) · REP-103 optical rotation, at xyz."""
    R_mount = Rotation.from_euler("xyz", np.asarray(rpy, dtype=np.float64)).as_matrix()
    return body_from_optical(np.asarray(xyz, dtype=np.float64), R_mount @ R_BODY_OPTICAL)


def params_from_values(values: dict[str, Any]) -> NodeParams:
    """NodeParams from {name: value} (missing names take the defaults); ValueError naming the parameter."""
    v = PARAMS.values(values)
    if not v["model"]:
        raise ValueError(
            "parameter model: a BA-Net checkpoint path is required "
            "(e.g. models/banet_small_synthetic.safetensors)"
        )
    for name in ("odom_frame", "base_frame"):
        if not v[name] or v[name].startswith("/") or any(c.isspace() for c in v[name]):
            raise ValueError(
                f"parameter {name}: must be a tf frame name without '/' or spaces, got {v[name]!r}"
            )
    if v["odom_frame"] == v["base_frame"]:
        raise ValueError("parameters odom_frame and base_frame must differ")
    try:
        odometry = OdometryConfig(
            **subset(v, *ODOMETRY_PARAMS),
            T_base_camera=base_camera_transform(v["base_camera_xyz"], v["base_camera_rpy"]),
        )
    except ValueError as err:
        raise ValueError(f"parameter {err}") from err
    return NodeParams(**subset(v, *NODE_PARAMS), odometry=odometry)


def declare_parameters(node: Node) -> NodeParams:
    """Declare every parameter on `node` (with descriptors) and return the validated values."""
    return params_from_values(PARAMS.declare(node))
