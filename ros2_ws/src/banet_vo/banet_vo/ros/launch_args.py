"""The node parameters that vo.launch.py also takes as launch arguments, and how their text becomes typed
parameters. The launch files (vo.launch.py, and imatching_online's imatching.launch.py and
vo_with_adaptation.launch.py with imatching's parameter table) call this from an OpaqueFunction, so it runs
without the launch packages (which are not on PyPI) and is tested here.

An argument left empty (its default) is not passed: the params file, else the node's default, decides.
A given one overrides the params file. Text is read as the node's parameter table types it (a float
parameter takes "2" as 2.0, which rclpy would otherwise refuse as an integer), and checked as the node
checks it, so a bad value fails the launch with the parameter's name instead of at the node's start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from banet_vo.ros.parameters import ParameterTable
from banet_vo.ros.params import PARAMS

# rclpy's own parameter, declared by every node (not in PARAMS)
USE_SIM_TIME = "use_sim_time"
LAUNCH_PARAMETERS = (
    "model",
    "device",
    USE_SIM_TIME,
    "publish_tf",
    "rectify",
    "image_transport",
    "frontend",
    "scale_source",
    "camera_height",
    "base_frame",
    "depth_calibration",  # with model: a copy that has its depth curve beside it (README)
    # The live settings (README, "live"): a camera the node cannot keep up with.
    "background_ba",
    "tracking_banet_min_interval",
    "tracking_max_keypoints",
    "tracking_between_keyframes",
    "tracking_mapping",
)
_TRUE, _FALSE = ("true", "1"), ("false", "0")  # the spellings launch's conditions read


def launch_description(name: str, table: ParameterTable = PARAMS, params_file: str = "params_file") -> str:
    """A launch argument's description: the node parameter's (in `table`, banet_vo's by default), and what
    empty means (`params_file`: the launch argument that names the node's parameters file)."""
    text = "use the bag's or simulator's /clock" if name == USE_SIM_TIME else table[name].description
    return f"{text} (empty: {params_file}'s value, else the node's default)"


def parameter_overrides(
    given: Mapping[str, str],
    table: ParameterTable = PARAMS,
    arguments: Mapping[str, str] | Iterable[str] = LAUNCH_PARAMETERS,
) -> dict[str, Any]:
    """{parameter: typed value} for each launch argument given as non-empty text; ValueError naming the
    argument for text the parameter cannot take.

    `arguments` are the launch arguments to read: names of parameters of `table` (banet_vo's node by
    default), or {launch argument: parameter} where an argument is named otherwise (use_sim_time, rclpy's
    own, is taken by every table)."""
    pairs = arguments.items() if isinstance(arguments, Mapping) else ((a, a) for a in arguments)
    out: dict[str, Any] = {}
    for argument, name in pairs:
        text = str(given.get(argument, "")).strip()
        if not text:
            continue
        if name == USE_SIM_TIME:
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError(f"launch argument {argument}: true or false, got {text!r}")
            out[name] = text.lower() in _TRUE
            continue
        spec = table[name]
        if isinstance(spec.default, str):
            value: Any = text  # a path or a name, never read as a number
        elif isinstance(spec.default, bool) and text.lower() in _TRUE + _FALSE:
            value = text.lower() in _TRUE
        else:
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as err:
                raise ValueError(f"launch argument {argument}: cannot read {text!r}: {err}") from err
        try:
            out[name] = spec.check(value)
        except ValueError as err:
            # "parameter <name>: why" → "launch argument <argument>: why" (naming the parameter where the
            # argument is called otherwise)
            why = str(err).removeprefix(f"parameter {name}: ")
            where = argument if argument == name else f"{argument} (parameter {name})"
            raise ValueError(f"launch argument {where}: {why}") from err
    return out
