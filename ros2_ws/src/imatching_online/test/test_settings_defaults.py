"""The node's parameter table and the imatching-adapt flags take their defaults from the core configs.

Each default is written once, on its dataclass field; these tests fail when a table entry or a flag
states a value, description or range of its own.
"""

from __future__ import annotations

import argparse

import pytest
from banet_vo.config_fields import add_field_argument, field_info, setting
from imatching_online.adapt import AdaptConfig
from imatching_online.adapt_cli import CLI_SETTINGS, build_parser, configs_from_args
from imatching_online.ba import WindowConfig
from imatching_online.online import StreamConfig
from imatching_online.ros.params import ADAPT_PARAMS, BA_PARAMS, PARAMS, STREAM_PARAMS, params_from_values


def _table_entries():
    for name in STREAM_PARAMS:
        yield name, (WindowConfig if name == "window_size" else StreamConfig), name
    for name in ADAPT_PARAMS:
        yield name, AdaptConfig, name
    yield "adapt", AdaptConfig, "enabled"
    for name in BA_PARAMS:
        yield "ba_" + name, WindowConfig, name


@pytest.mark.parametrize(("param", "config_cls", "field"), list(_table_entries()))
def test_node_table_entry_is_its_config_field(param, config_cls, field):
    spec, info = PARAMS[param], field_info(config_cls, field)
    assert spec.default == info.default and type(spec.default) is type(info.default)
    assert (spec.description, spec.range, spec.choices) == (info.description, info.range, info.choices)


def test_node_defaults_build_the_default_configs():
    params = params_from_values({"matcher": "m.safetensors"})
    assert params.stream == StreamConfig()
    assert params.adapt == AdaptConfig()
    assert params.ba == WindowConfig()
    assert (params.ba.passes, params.ba.lm_iterations) == (3, 10)  # the BA's own defaults, not 2 and 5


def test_each_setting_has_one_home():
    # `adapt` (whether to adapt) lives in AdaptConfig with the rest of the adaptation; the stream's keep
    # gate and the BA's initial-pair motion threshold are two measurements with two names
    from dataclasses import fields

    stream = {f.name for f in fields(StreamConfig)}
    assert "adapt" not in stream and "enabled" in {f.name for f in fields(AdaptConfig)}
    assert "min_flow_px" in stream and "min_flow_px" not in {f.name for f in fields(WindowConfig)}
    assert params_from_values({"matcher": "m", "adapt": False}).adapt.enabled is False


def test_cli_defaults_build_the_default_configs():
    args = build_parser().parse_args(["seq", "--matcher", "m.safetensors", "--out", "o.safetensors"])
    assert configs_from_args(args) == (AdaptConfig(), WindowConfig())


def test_cli_flags_reach_their_fields():
    argv = ["seq", "--matcher", "m", "--out", "o", "--ba-passes", "2", "--ba-iterations", "5", "--augment"]
    argv += ["--window", "4", "--queries", "50", "--lr", "0.001"]
    adapt, ba = configs_from_args(build_parser().parse_args(argv))
    assert (ba.passes, ba.lm_iterations, ba.window_size) == (2, 5, 4)
    assert (adapt.augment, adapt.queries_per_frame, adapt.lr) == (True, 50, 0.001)
    assert len(CLI_SETTINGS) == len({flag for flag, _, _ in CLI_SETTINGS})


def test_field_argument_types_defaults_and_refusals():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Example:
        count: int = setting(3, "how many", range=(1, 9))
        on: bool = setting(False, "switch")
        always: bool = setting(True, "cannot be a flag")
        plain: float = 1.0

    p = argparse.ArgumentParser()
    add_field_argument(p, "--count", Example, "count")
    add_field_argument(p, "--on", Example, "on")
    assert vars(p.parse_args([])) == {"count": 3, "on": False}
    assert vars(p.parse_args(["--count", "5", "--on"])) == {"count": 5, "on": True}
    with pytest.raises(ValueError, match="True default"):
        add_field_argument(p, "--always", Example, "always")
    with pytest.raises(ValueError, match="no description"):
        field_info(Example, "plain")
