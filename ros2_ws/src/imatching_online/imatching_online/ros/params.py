"""Parameters of the imatching node: one table with defaults, descriptions and ranges.

Same scheme as the banet_vo node, on the shared banet_vo.ros.parameters.ParameterTable: the node declares
every entry read-only with its descriptor, config/imatching_online.yaml lists the same names and defaults
(a test checks it), and `NodeParams` is the validated result. Anything invalid raises ValueError naming
the parameter, so the node stops at start with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from banet_vo.odometry import DEVICES
from banet_vo.ros.camera_input import image_qos_parameter
from banet_vo.ros.parameters import ParameterSpec, ParameterTable, subset
from rclpy.node import Node

from imatching_online.adapt import AdaptConfig
from imatching_online.ba import WindowConfig
from imatching_online.lineage import START_FROM
from imatching_online.online import StreamConfig

PARAMS = ParameterTable(
    ParameterSpec("matcher", "", "matcher checkpoint to start from (.safetensors, kind matcher); required"),
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
    ParameterSpec("adapt", True, "true: update the matcher; false: run matching + BA and report only"),
    ParameterSpec("device", "auto", "torch device: auto (CUDA when available), cuda or cpu", choices=DEVICES),
    ParameterSpec("torch_threads", 0, "CPU threads for torch (0: torch's default)", range=(0, 256)),
    image_qos_parameter(),
    ParameterSpec(
        "queue_size", 2, "frames waiting for the worker; older ones are dropped and counted", range=(1, 100)
    ),
    ParameterSpec("window_size", 5, "frames per bundle-adjustment window", range=(2, 30)),
    ParameterSpec(
        "window_stride",
        1,
        "kept frames the window slides by after each step (window_size: disjoint windows)",
        range=(1, 30),
    ),
    ParameterSpec(
        "min_frame_gap", 1, "take at most every n-th incoming frame into the window", range=(1, 1000)
    ),
    ParameterSpec(
        "min_flow_px",
        2.0,
        "median optical flow [px at working size] a frame needs against the last kept one (0: off)",
        range=(0.0, 1000.0),
    ),
    ParameterSpec(
        "max_image_size",
        320,
        "long side of the working images [px]; larger images are downscaled (multiples of 8)",
        range=(16, 4096),
    ),
    ParameterSpec("lr", 1e-4, "Adam learning rate of the matcher", range=(1e-9, 1.0)),
    ParameterSpec("grad_clip", 1.0, "gradient-norm clip per step", range=(1e-6, 1e6)),
    ParameterSpec("queries_per_frame", 300, "corner queries per anchor frame", range=(10, 10_000)),
    ParameterSpec(
        "epipolar_weight",
        0.0,
        "weight of the Sampson epipolar term on BA inliers (0: off)",
        range=(0.0, 100.0),
    ),
    ParameterSpec(
        "anchor_pull",
        0.05,
        "after each step, move the weights this fraction back to the loaded ones (0: off)",
        range=(0.0, 0.99),
    ),
    ParameterSpec(
        "augment", False, "BA on the clean frames, loss on a photometrically augmented copy (regulariser)"
    ),
    ParameterSpec("rollback_window", 8, "windows per rollback-guard block", range=(1, 10_000)),
    ParameterSpec(
        "rollback_tolerance",
        0.1,
        "drop of the mean BA inlier ratio below the first block's that restores the last good weights",
        range=(1e-6, 1.0),
    ),
    ParameterSpec("ba_passes", 2, "BA optimise / prune / re-triangulate passes per window", range=(1, 20)),
    ParameterSpec("ba_lm_iterations", 5, "LM iterations per BA pass", range=(1, 100)),
    ParameterSpec(
        "ba_min_parallax_deg", 0.5, "parallax the BA's initial pair needs [deg]", range=(0.0, 45.0)
    ),
    ParameterSpec(
        "ba_min_inlier_ratio",
        0.2,
        "BA inlier matches / usable matches below which a window is skipped",
        range=(0.0, 1.0),
    ),
    ParameterSpec(
        "save_every_steps",
        50,
        "write output_model after this many optimiser steps (0: only on ~/save and at shutdown)",
        range=(0, 1_000_000),
    ),
    ParameterSpec("source", "", "what the stream is, recorded in the checkpoint (empty: the image topic)"),
    ParameterSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", range=(0.05, 60.0)),
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
    queue_size: int
    save_every_steps: int
    source: str
    diagnostics_period: float
    stream: StreamConfig
    adapt: AdaptConfig
    ba: WindowConfig


# Table entries by the config they go to (same field names; the BA's carry the prefix "ba_").
STREAM_PARAMS = ("window_size", "window_stride", "min_frame_gap", "min_flow_px", "max_image_size", "adapt")
ADAPT_PARAMS = (
    "lr",
    "grad_clip",
    "epipolar_weight",
    "anchor_pull",
    "augment",
    "queries_per_frame",
    "rollback_window",
    "rollback_tolerance",
)
BA_PARAMS = ("passes", "lm_iterations", "min_parallax_deg", "min_inlier_ratio")
NODE_PARAMS = tuple(f.name for f in fields(NodeParams) if f.name not in ("stream", "adapt", "ba"))


def params_from_values(values: dict[str, Any]) -> NodeParams:
    """NodeParams from {name: value} (missing names take the defaults); ValueError naming the parameter."""
    v = PARAMS.values(values)
    if not v["matcher"]:
        raise ValueError(
            "parameter matcher: a matcher checkpoint path is required "
            "(e.g. models/matcher_synthetic.safetensors)"
        )
    if v["window_stride"] > v["window_size"]:
        raise ValueError(
            f"parameter window_stride: {v['window_stride']} is larger than window_size {v['window_size']}"
        )
    if v["output_model"] and v["output_model"] == v["matcher"]:
        raise ValueError("parameter output_model: must differ from matcher (the input is never overwritten)")
    try:
        stream = StreamConfig(**subset(v, *STREAM_PARAMS))
        adapt = AdaptConfig(**subset(v, *ADAPT_PARAMS))
        ba = WindowConfig(window_size=v["window_size"], **subset(v, *BA_PARAMS, prefix="ba_"))
    except ValueError as err:
        raise ValueError(f"parameter {err}") from err
    return NodeParams(**subset(v, *NODE_PARAMS), stream=stream, adapt=adapt, ba=ba)


def declare_parameters(node: Node) -> NodeParams:
    """Declare every parameter on `node` (with descriptors) and return the validated values."""
    return params_from_values(PARAMS.declare(node))
