"""Parameters of the banet_vo node: one table with defaults, descriptions and ranges.

The table is the single source: the node declares every entry with a ParameterDescriptor (description,
FloatingPointRange/IntegerRange, read-only), config/banet_vo.yaml lists the same names and defaults (a
test checks it), and `NodeParams` is the validated result. Anything invalid raises ValueError naming the
parameter, so the node stops at start with a clear message instead of misbehaving later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from scipy.spatial.transform import Rotation

from banet_vo.geometry.frames import R_BODY_OPTICAL, body_from_optical
from banet_vo.odometry import DEVICES, KEYFRAME_MODES, OdometryConfig

IMAGE_QOS = ("auto", "sensor_data", "reliable")


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None  # inclusive, for ints and floats
    choices: tuple[str, ...] | None = None


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model", "", "BA-Net checkpoint (.safetensors, banet_vo.model.checkpoint format); required"),
    ParamSpec("device", "auto", "inference device: auto (CUDA when available), cuda or cpu", choices=DEVICES),
    ParamSpec("torch_threads", 0, "CPU threads for torch (0: torch's default)", range=(0, 256)),
    ParamSpec(
        "image_qos",
        "auto",
        "image/camera_info subscription reliability: auto matches the publishers (as rosbag2 does), "
        "sensor_data forces best effort, reliable forces reliable",
        choices=IMAGE_QOS,
    ),
    ParamSpec(
        "queue_size", 1, "frames waiting for inference; older ones are dropped and counted", range=(1, 100)
    ),
    ParamSpec("odom_frame", "odom", "parent frame of odometry, path and /tf"),
    ParamSpec("base_frame", "base_link", "child frame of odometry and /tf"),
    ParamSpec("publish_tf", True, "broadcast odom → base_frame on /tf (needs tf2_ros or tf2_msgs)"),
    ParamSpec(
        "publish_static_tf", True, "broadcast base_frame → camera frame on /tf_static from base_camera_*"
    ),
    ParamSpec(
        "camera_frame",
        "",
        "optical frame of the camera for /tf_static (empty: the frame_id of the incoming images)",
    ),
    ParamSpec(
        "base_camera_xyz", [0.0, 0.0, 0.0], "camera centre in base_frame [m] (x forward, y left, z up)"
    ),
    ParamSpec(
        "base_camera_rpy",
        [0.0, 0.0, 0.0],
        "camera mount roll, pitch, yaw [rad] in base_frame; zeros = optical axis along base x (REP-103)",
    ),
    ParamSpec("path_max_length", 2000, "poses kept in ~/path", range=(1, 1_000_000)),
    ParamSpec("depth_every_n", 1, "publish ~/depth for every n-th tracked frame", range=(1, 10_000)),
    ParamSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", range=(0.05, 60.0)),
    ParamSpec(
        "keyframe_mode",
        "adaptive",
        "adaptive (thresholds below) or consecutive (every frame)",
        choices=KEYFRAME_MODES,
    ),
    ParamSpec(
        "keyframe_translation",
        0.5,
        "baseline to the keyframe [m] that starts a new keyframe",
        range=(1e-3, 100.0),
    ),
    ParamSpec(
        "keyframe_rotation_deg",
        5.0,
        "rotation to the keyframe [deg] that starts a new keyframe",
        range=(0.01, 180.0),
    ),
    ParamSpec(
        "keyframe_min_overlap",
        0.7,
        "view overlap with the keyframe below which a new keyframe starts",
        range=(0.0, 1.0),
    ),
    ParamSpec(
        "max_cost", 1e6, "BA cost above which a frame counts as diverged and is skipped", range=(1e-9, 1e30)
    ),
    ParamSpec(
        "max_translation",
        5.0,
        "translation to the keyframe [m] above which a frame is skipped",
        range=(1e-3, 1e6),
    ),
    ParamSpec("max_consecutive_failures", 5, "skipped frames in a row before re-keyframing", range=(1, 1000)),
    ParamSpec(
        "reset_on_time_jump",
        1.0,
        "a stamp this many seconds behind the last resets the trajectory",
        range=(1e-3, 1e9),
    ),
    ParamSpec("motion_prior", True, "seed the BA with a constant-velocity prediction"),
    ParamSpec("min_depth", 0.05, "published depth below this [m] is NaN", range=(1e-6, 1e6)),
    ParamSpec("max_depth", 200.0, "published depth above this [m] is NaN", range=(1e-6, 1e6)),
)
SPECS = {spec.name: spec for spec in PARAMS}


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


def base_camera_transform(xyz, rpy) -> np.ndarray:
    """T_base_camera(optical) = mount rotation (rpy, extrinsic x-y-z) · REP-103 optical rotation, at xyz."""
    R_mount = Rotation.from_euler("xyz", np.asarray(rpy, dtype=np.float64)).as_matrix()
    return body_from_optical(np.asarray(xyz, dtype=np.float64), R_mount @ R_BODY_OPTICAL)


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    text = spec.description
    if spec.choices:
        text += f" (one of: {', '.join(spec.choices)})"
    descriptor = ParameterDescriptor(name=spec.name, description=text, read_only=True)
    if spec.range is not None:
        lo, hi = spec.range
        if isinstance(spec.default, int) and not isinstance(spec.default, bool):
            descriptor.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
        else:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)
            ]
    return descriptor


def _check(spec: ParamSpec, value: Any) -> Any:
    """Type, choice and range check of one value (also for overrides given without rclpy)."""
    default = spec.default
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif isinstance(default, list):
        ok = (
            isinstance(value, list | tuple)
            and len(value) == len(default)
            and all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
            )
        )
        value = tuple(float(v) for v in value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ValueError(
            f"parameter {spec.name}: expected {type(default).__name__} like {default!r}, got {value!r}"
        )
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(f"parameter {spec.name}: must be one of {spec.choices}, got {value!r}")
    if spec.range is not None and not spec.range[0] <= value <= spec.range[1]:
        raise ValueError(f"parameter {spec.name}: {value!r} is outside [{spec.range[0]}, {spec.range[1]}]")
    return value


def params_from_values(values: dict[str, Any]) -> NodeParams:
    """NodeParams from {name: value} (missing names take the defaults); ValueError naming the parameter."""
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; known: {sorted(SPECS)}")
    v = {name: _check(spec, values.get(name, spec.default)) for name, spec in SPECS.items()}
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
            keyframe_mode=v["keyframe_mode"],
            keyframe_translation=v["keyframe_translation"],
            keyframe_rotation_deg=v["keyframe_rotation_deg"],
            keyframe_min_overlap=v["keyframe_min_overlap"],
            max_cost=v["max_cost"],
            max_translation=v["max_translation"],
            max_consecutive_failures=v["max_consecutive_failures"],
            reset_on_time_jump=v["reset_on_time_jump"],
            motion_prior=v["motion_prior"],
            min_depth=v["min_depth"],
            max_depth=v["max_depth"],
            T_base_camera=base_camera_transform(v["base_camera_xyz"], v["base_camera_rpy"]),
        )
    except ValueError as err:
        raise ValueError(f"parameter {err}") from err
    return NodeParams(
        model=v["model"],
        device=v["device"],
        torch_threads=v["torch_threads"],
        image_qos=v["image_qos"],
        queue_size=v["queue_size"],
        odom_frame=v["odom_frame"],
        base_frame=v["base_frame"],
        publish_tf=v["publish_tf"],
        publish_static_tf=v["publish_static_tf"],
        camera_frame=v["camera_frame"],
        base_camera_xyz=v["base_camera_xyz"],
        base_camera_rpy=v["base_camera_rpy"],
        path_max_length=v["path_max_length"],
        depth_every_n=v["depth_every_n"],
        diagnostics_period=v["diagnostics_period"],
        odometry=odometry,
    )


def declare_parameters(node: Node) -> NodeParams:
    """Declare every parameter on `node` (with descriptors) and return the validated values."""
    values: dict[str, Any] = {}
    for spec in PARAMS:
        try:
            param = node.declare_parameter(spec.name, spec.default, _descriptor(spec))
        except (ParameterException, TypeError) as err:  # out of range, wrong type of an override
            raise ValueError(f"parameter {spec.name}: {err}") from err
        values[spec.name] = list(param.value) if spec.name.startswith("base_camera_") else param.value
    return params_from_values(values)
