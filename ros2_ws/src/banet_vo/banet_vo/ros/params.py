"""Parameters of the banet_vo node: one table with defaults, descriptions and ranges.

The table (a banet_vo.ros.parameters.ParameterTable) is the single source: the node declares every entry
with its descriptor (description, range; read-only unless the spec is dynamic), config/banet_vo.yaml
lists the same names and defaults (a test checks it), and `NodeParams` is the validated result. Entries
that are OdometryConfig fields take their default from the dataclass. Anything invalid raises ValueError
naming the parameter, so the node stops at start with a clear message instead of misbehaving later; a
change at run time goes through the same `params_from_values` and is refused with that message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.frames import R_BODY_OPTICAL, body_from_optical
from banet_vo.model.shipped import DEFAULT_MODEL_NAME, ament_model_dirs, default_model_path, shipped_copy
from banet_vo.odometry import DEVICES, OdometryConfig, TrackingConfig
from banet_vo.odometry.depth_output import UPSAMPLING_METHODS
from banet_vo.odometry.output_covariance import CovarianceConfig
from banet_vo.ros.camera_input import (
    image_qos_parameter,
    image_transport_parameter,
    max_value_16bit_parameter,
    rectify_parameter,
)
from banet_vo.ros.node_shell import DIAGNOSTICS_PARAMS
from banet_vo.ros.parameters import ParameterSpec, ParameterTable, RenamedParameter, subset

# OdometryConfig fields that are node parameters, and those of them that only apply at start.
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
    "max_time_gap",
    "frontend",
    "scale_source",
    "camera_height",
    "background_ba",
    "background_ba_priority",
    "background_banet",
    "window_solver",
    "banet_pose_factor",
    "depth_calibration",
    "matcher",
    "matcher_swap_tolerance",
    "matcher_trial_frames",
)
# TrackingConfig fields, as node parameters tracking_<field>: read at start (the map is built with them),
# but for those the odometry reads at each keyframe.
TRACKING_PARAMS = {f"tracking_{f.name}": f.name for f in fields(TrackingConfig)}
TRACKING_DYNAMIC = ("banet_min_interval",)
# (later matcher weights arrive on matcher_updates, not through the matcher parameter)
ODOMETRY_READ_ONLY = (
    "reset_on_time_jump",
    "max_time_gap",
    "frontend",
    "scale_source",
    "camera_height",
    "window_solver",
    "background_ba_priority",
    "background_banet",
    "depth_calibration",
    "matcher",
    "matcher_trial_frames",
)


# Node parameter → CovarianceConfig field (default, description and range are the field's).
COVARIANCE_PARAMS = {
    "position_covariance_scale": "position_scale",
    "orientation_covariance_scale": "orientation_scale",
    "position_variance_floor": "position_floor",
    "orientation_variance_floor": "orientation_floor",
    "position_covariance": "position_override",
    "orientation_covariance": "orientation_override",
}
EXTRINSIC_SOURCES = ("auto", "tf", "parameters")
CAMERA_INFO_SYNC = ("exact", "latest")
DEPTH_UPSAMPLING = (*UPSAMPLING_METHODS, "none")

PARAMS = ParameterTable(
    ParameterSpec(
        "model",
        "",
        "BA-Net checkpoint (.safetensors, banet_vo.model.checkpoint format); empty: the shipped default "
        f"({DEFAULT_MODEL_NAME}, installed with the package)",
    ),
    ParameterSpec(
        "device", "auto", "inference device: auto (CUDA when available), cuda or cpu", choices=DEVICES
    ),
    ParameterSpec("torch_threads", 0, "CPU threads for torch (0: torch's default)", range=(0, 256)),
    image_qos_parameter(),
    image_transport_parameter(),
    ParameterSpec(
        "queue_size", 1, "frames waiting for inference; older ones are dropped and counted", range=(1, 100)
    ),
    rectify_parameter(),
    ParameterSpec(
        "camera_info_sync",
        "exact",
        "pair each image with the camera_info of the same stamp (exact, as message_filters does) or with "
        "the latest camera_info (latest: drivers that publish it rarely)",
        choices=CAMERA_INFO_SYNC,
    ),
    ParameterSpec(
        "sync_queue_size",
        10,
        "images and camera_infos kept while waiting for their partner (exact sync); older ones are dropped "
        "and counted",
        range=(1, 1000),
    ),
    ParameterSpec(
        "intrinsics",
        [0.0] * 6,
        "fx, fy, cx, cy, width, height of rectified input images, for cameras without camera_info "
        "(all zero: use camera_info; when set, camera_info is not subscribed)",
    ),
    ParameterSpec(
        "min_image_side", 16, "images with a side shorter than this [px] are refused", range=(1, 100_000)
    ),
    ParameterSpec(
        "max_image_pixels",
        4096 * 4096,
        "images with more pixels than this are refused before decoding (bounds memory under bursts)",
        range=(1, 1_000_000_000),
    ),
    max_value_16bit_parameter(),
    ParameterSpec("odom_frame", "odom", "parent frame of odometry, path and /tf"),
    ParameterSpec("base_frame", "base_link", "child frame of odometry and /tf"),
    ParameterSpec(
        "publish_tf", True, "broadcast odom → base_frame on /tf (needs tf2_ros or tf2_msgs)", dynamic=True
    ),
    ParameterSpec(
        "camera_extrinsic_source",
        "auto",
        "where base_frame → camera frame comes from: tf (robot_state_publisher, URDF), parameters "
        "(base_camera_xyz/rpy), or auto (tf when tf2_ros is importable and the transform arrives within "
        "extrinsic_timeout, else the parameters)",
        choices=EXTRINSIC_SOURCES,
    ),
    ParameterSpec(
        "extrinsic_timeout",
        2.0,
        "seconds to wait for the tf extrinsic from the first frame on before auto falls back to parameters",
        range=(0.0, 600.0),
    ),
    ParameterSpec(
        "publish_static_tf",
        False,
        "broadcast base_frame → camera frame on /tf_static from base_camera_* (only for robots without a "
        "URDF: a second publisher would give the camera frame two parents)",
    ),
    ParameterSpec(
        "camera_frame",
        "",
        "optical frame of the camera (empty: the frame_id of the incoming images; an image without one is "
        "then refused)",
    ),
    ParameterSpec(
        "base_camera_xyz", [0.0, 0.0, 0.0], "camera centre in base_frame [m] (x forward, y left, z up)"
    ),
    ParameterSpec(
        "base_camera_rpy",
        [0.0, 0.0, 0.0],
        "camera mount roll, pitch, yaw [rad] in base_frame; zeros = optical axis along base x (REP-103)",
    ),
    ParameterSpec("path_max_length", 2000, "poses kept in ~/path", range=(1, 1_000_000), dynamic=True),
    ParameterSpec(
        "depth_every_n",
        1,
        "publish every n-th depth map (and its points): of each tracked frame with frontend none, of each "
        "keyframe with xfeat (BA-Net runs on keyframes only)",
        range=(1, 10_000),
        dynamic=True,
    ),
    ParameterSpec(
        "depth_upsampling",
        "edge_aware",
        "depth/image resolution: the input image's (edge_aware bilinear or nearest) or the model's depth "
        "output (none; 64x48 with the shipped small model)",
        choices=DEPTH_UPSAMPLING,
        dynamic=True,
    ),
    ParameterSpec("publish_points", False, "publish ~/points (PointCloud2) from depth", dynamic=True),
    ParameterSpec(
        "points_stride", 4, "every n-th pixel (rows and columns) becomes a point", range=(1, 64), dynamic=True
    ),
    *(
        ParameterSpec.from_field(CovarianceConfig, field, name, dynamic=True)
        for name, field in COVARIANCE_PARAMS.items()
    ),
    *DIAGNOSTICS_PARAMS,
    # OdometryConfig fields (default, description, range and choices are the field's); the stamp gate
    # takes reset_on_time_jump and max_time_gap when it is built, and the front end is chosen at start.
    *(
        ParameterSpec.from_field(OdometryConfig, name, dynamic=name not in ODOMETRY_READ_ONLY)
        for name in ODOMETRY_PARAMS
    ),
    *(
        ParameterSpec.from_field(TrackingConfig, field, name, dynamic=field in TRACKING_DYNAMIC)
        for name, field in TRACKING_PARAMS.items()
    ),
    renamed=(
        # one scale became one per block (they were calibrated apart: docs/node.md)
        RenamedParameter(
            "covariance_scale", ("position_covariance_scale", "orientation_covariance_scale"), "0.2.0"
        ),
    ),
)


@dataclass(frozen=True)
class NodeParams:
    """Validated node parameters (see PARAMS for what each means)."""

    model: str
    device: str
    torch_threads: int
    image_qos: str
    image_transport: str
    queue_size: int
    rectify: bool
    camera_info_sync: str
    sync_queue_size: int
    intrinsics: tuple[float, ...]
    min_image_side: int
    max_image_pixels: int
    image_max_value_16bit: int
    odom_frame: str
    base_frame: str
    publish_tf: bool
    camera_extrinsic_source: str
    extrinsic_timeout: float
    publish_static_tf: bool
    camera_frame: str
    base_camera_xyz: tuple[float, float, float]
    base_camera_rpy: tuple[float, float, float]
    path_max_length: int
    depth_every_n: int
    depth_upsampling: str
    publish_points: bool
    points_stride: int
    position_covariance_scale: float
    orientation_covariance_scale: float
    position_variance_floor: float
    orientation_variance_floor: float
    position_covariance: float
    orientation_covariance: float
    diagnostics_period: float
    diagnostics_window: float
    odometry: OdometryConfig

    @property
    def T_base_camera(self) -> np.ndarray:
        return self.odometry.T_base_camera

    @property
    def fixed_camera(self) -> PinholeCamera | None:
        """The camera from `intrinsics`, or None when camera_info is to be used."""
        if not any(self.intrinsics):
            return None
        fx, fy, cx, cy, width, height = self.intrinsics
        return PinholeCamera(fx, fy, cx, cy, int(width), int(height))

    @property
    def covariance(self) -> CovarianceConfig:
        return CovarianceConfig(**{field: getattr(self, name) for name, field in COVARIANCE_PARAMS.items()})


# The rest of NodeParams mirrors the table.
NODE_PARAMS = tuple(f.name for f in fields(NodeParams) if f.name != "odometry")


def base_camera_transform(xyz, rpy) -> np.ndarray:
    """T_base_camera(optical) = mount rotation (rpy, extrinsic x-y-z) · REP-103 optical rotation, at xyz."""
    R_mount = Rotation.from_euler("xyz", np.asarray(rpy, dtype=np.float64)).as_matrix()
    return body_from_optical(np.asarray(xyz, dtype=np.float64), R_mount @ R_BODY_OPTICAL)


def mount_parameters(T_base_camera: np.ndarray) -> tuple[list[float], list[float]]:
    """(base_camera_xyz, base_camera_rpy) whose base_camera_transform is T_base_camera (optical), rounded to
    1e-9 (quaternion round trips leave float noise that would otherwise show as a rotation)."""
    T = np.asarray(T_base_camera, dtype=np.float64)
    rpy = Rotation.from_matrix(T[:3, :3] @ R_BODY_OPTICAL.T).as_euler("xyz")
    return (np.round(T[:3, 3], 9) + 0.0).tolist(), (np.round(rpy, 9) + 0.0).tolist()


def shipped_model() -> Path:
    """The shipped default checkpoint: in the package's ament share folder when the package is installed
    in a ROS environment, else where banet_vo.model.shipped finds it (an editable install, a checkout)."""
    return default_model_path(ament_model_dirs())


def params_from_values(values: dict[str, Any], warn=None) -> NodeParams:
    """NodeParams from {name: value} (missing names take the defaults; a deprecated name is carried to its
    new one, `warn` gets the message); ValueError naming the parameter."""
    v = PARAMS.values(values, warn)
    if not v["model"]:
        try:
            v["model"] = str(shipped_model())
        except FileNotFoundError as err:
            raise ValueError(f"parameter model: empty, and {err}") from err
    else:  # models/NAME (the README's spelling) from outside the checkout: the installed copy
        installed = shipped_copy(v["model"], ament_model_dirs())
        if installed is not None:
            v["model"] = str(installed)
    for name in ("odom_frame", "base_frame", "camera_frame"):
        empty_allowed = name == "camera_frame"  # empty: the images' frame_id
        if (
            (not v[name] and not empty_allowed)
            or v[name].startswith("/")
            or any(c.isspace() for c in v[name])
        ):
            raise ValueError(
                f"parameter {name}: must be a tf frame name without '/' or spaces, got {v[name]!r}"
            )
    if v["camera_frame"] in (v["odom_frame"], v["base_frame"]):
        raise ValueError(f"parameter camera_frame: {v['camera_frame']!r} is already odom_frame or base_frame")
    if v["odom_frame"] == v["base_frame"]:
        raise ValueError("parameters odom_frame and base_frame must differ")
    if any(v["intrinsics"]):
        fx, fy, _, _, width, height = v["intrinsics"]
        if not (
            fx > 0 and fy > 0 and width >= 1 and height >= 1 and width == int(width) and height == int(height)
        ):
            raise ValueError(
                "parameter intrinsics: fx, fy must be > 0 and width, height whole numbers >= 1 "
                f"(or all zero to use camera_info), got {list(v['intrinsics'])}"
            )
    if v["publish_static_tf"] and v["camera_extrinsic_source"] == "tf":
        raise ValueError(
            "parameters publish_static_tf and camera_extrinsic_source tf: the node would wait on tf for the "
            "transform only it publishes (from base_camera_xyz/rpy); use camera_extrinsic_source auto or "
            "parameters"
        )
    if v["publish_static_tf"]:  # the node broadcasts base_camera_xyz/rpy: that is the extrinsic
        v["camera_extrinsic_source"] = "parameters"
    try:
        odometry = OdometryConfig(
            **subset(v, *ODOMETRY_PARAMS),
            tracking=TrackingConfig(**{field: v[name] for name, field in TRACKING_PARAMS.items()}),
            T_base_camera=base_camera_transform(v["base_camera_xyz"], v["base_camera_rpy"]),
            # tf may replace base_camera_xyz/rpy at the first frame: what depends on it is checked then
            extrinsic_pending=v["camera_extrinsic_source"] != "parameters",
        )
    except ValueError as err:
        raise ValueError(f"parameter {err}") from err
    return NodeParams(**subset(v, *NODE_PARAMS), odometry=odometry)


def odometry_with_extrinsic(odometry: OdometryConfig, T_base_camera: np.ndarray) -> OdometryConfig:
    """`odometry` with the base frame → camera extrinsic as resolved (from tf or the parameters), checked in
    full: scale_source ground_plane may take the camera height from it. ValueError naming the parameter."""
    try:
        return dataclasses.replace(odometry, T_base_camera=T_base_camera)
    except ValueError as err:
        raise ValueError(f"parameter {err}") from err
