"""banet_vo.ros.parameters: spec checks (type, choice, range, vectors), descriptors, the table's values,
declaration on a real rclpy node (rclpy's own range refusal included), help text, and that both node
tables are built on it with the shared image_qos entry."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.ros

pytest.importorskip("rclpy")
from banet_vo.ros.camera_input import IMAGE_QOS_MODES, image_qos_parameter  # noqa: E402
from banet_vo.ros.parameters import ParameterSpec, ParameterTable, RenamedParameter, subset  # noqa: E402
from rcl_interfaces.msg import SetParametersResult  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

COUNT = ParameterSpec("count", 2, "an int", range=(1, 10))
RATE = ParameterSpec("rate", 0.5, "a float", range=(0.0, 1.0))
MODE = ParameterSpec("mode", "a", "a choice", choices=("a", "b"))
FLAG = ParameterSpec("flag", True, "a bool")
XYZ = ParameterSpec("xyz", [0.0, 0.0, 0.0], "a vector")
NAME = ParameterSpec("name", "", "a string")
TABLE = ParameterTable(COUNT, RATE, MODE, FLAG, XYZ, NAME)


def test_check_accepts_each_type_and_normalises_numbers():
    assert COUNT.check(10) == 10 and COUNT.check(1) == 1  # inclusive range
    value = RATE.check(1)  # an int for a float parameter comes back as float
    assert value == 1.0 and type(value) is float
    assert MODE.check("b") == "b" and FLAG.check(False) is False and NAME.check("x") == "x"
    assert XYZ.check([1, 2.5, -3]) == (1.0, 2.5, -3.0)


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        (COUNT, 0, r"parameter count: 0 is outside \[1, 10\]"),
        (COUNT, 11, r"parameter count: 11 is outside"),
        (COUNT, 2.0, "parameter count: expected int"),
        (COUNT, True, "parameter count: expected int"),  # bool is not an int here
        (RATE, 1.5, r"parameter rate: 1.5 is outside \[0.0, 1.0\]"),
        (RATE, math.nan, "parameter rate: expected float"),
        (RATE, "fast", "parameter rate: expected float"),
        (MODE, "c", r"parameter mode: must be one of \('a', 'b'\)"),
        (FLAG, 1, "parameter flag: expected bool"),
        (XYZ, [0.0, 0.0], "parameter xyz: expected list"),
        (XYZ, [0.0, math.inf, 0.0], "parameter xyz: expected list"),
        (NAME, 3, "parameter name: expected str"),
    ],
)
def test_check_rejects_bad_values_naming_the_parameter(spec, value, message):
    with pytest.raises(ValueError, match=message):
        spec.check(value)


def test_descriptor_carries_description_choices_range_and_read_only():
    d = COUNT.descriptor()
    assert d.name == "count" and d.read_only and d.description == "an int"
    assert len(d.integer_range) == 1 and not d.floating_point_range
    assert (d.integer_range[0].from_value, d.integer_range[0].to_value, d.integer_range[0].step) == (1, 10, 1)
    d = RATE.descriptor()
    assert len(d.floating_point_range) == 1 and not d.integer_range
    assert (d.floating_point_range[0].from_value, d.floating_point_range[0].to_value) == (0.0, 1.0)
    d = MODE.descriptor()
    assert d.description == "a choice (one of: a, b)" and not d.integer_range and not d.floating_point_range


def test_table_values_fill_defaults_and_reject_unknown_names():
    values = TABLE.values({"count": 3})
    assert values == {"count": 3, "rate": 0.5, "mode": "a", "flag": True, "xyz": (0.0, 0.0, 0.0), "name": ""}
    assert TABLE.defaults()["xyz"] == [0.0, 0.0, 0.0] and TABLE.names[0] == "count"
    assert "rate" in TABLE and "speed" not in TABLE and len(TABLE) == 6 and TABLE["mode"] is MODE
    assert [spec.name for spec in TABLE] == list(TABLE.names)
    with pytest.raises(
        ValueError, match=r"parameter speed: not a parameter of this node; known: count, flag"
    ):
        TABLE.values({"speed": 1})
    with pytest.raises(
        ValueError, match=r"parameter cuont: not a parameter of this node; did you mean count\?"
    ):
        TABLE.values({"cuont": 1})
    with pytest.raises(ValueError, match="parameter count"):
        TABLE.values({"count": 0})


def test_table_refuses_repeated_names():
    with pytest.raises(ValueError, match=r"specs: parameter names must be unique, repeated: \['count'\]"):
        ParameterTable(COUNT, RATE, ParameterSpec("count", 1, "again"))


def test_help_text_has_one_line_per_parameter():
    lines = TABLE.help_text().splitlines()
    assert len(lines) == len(TABLE)
    assert lines[0] == "  count (default 2): an int [range 1 .. 10]"
    assert lines[2] == "  mode (default 'a'): a choice (one of: a, b)"


def test_subset_picks_names_with_a_prefix():
    values = {"ba_passes": 2, "ba_lm": 5, "other": 1}
    assert subset(values, "passes", "lm", prefix="ba_") == {"passes": 2, "lm": 5}
    with pytest.raises(KeyError):
        subset(values, "missing")


def test_declare_on_a_node_returns_checked_values_and_read_only_descriptors(rclpy_context):
    overrides = [Parameter("count", value=4), Parameter("xyz", value=[1.0, 2.0, 3.0])]
    node = Node("parameters_test", context=rclpy_context, parameter_overrides=overrides)
    try:
        values = TABLE.declare(node)
        assert values["count"] == 4 and values["xyz"] == (1.0, 2.0, 3.0) and values["mode"] == "a"
        for spec in TABLE:
            descriptor = node.describe_parameter(spec.name)
            assert descriptor.read_only and descriptor.description.startswith(spec.description)
    finally:
        node.destroy_node()


def test_declare_turns_rclpy_refusals_into_value_errors(rclpy_context):
    node = Node("parameters_test", context=rclpy_context, parameter_overrides=[Parameter("count", value=50)])
    try:
        with pytest.raises(ValueError, match="parameter count"):  # rclpy's IntegerRange refuses 50
            TABLE.declare(node)
    finally:
        node.destroy_node()
    node = Node("parameters_test", context=rclpy_context, parameter_overrides=[Parameter("mode", value="c")])
    try:
        with pytest.raises(ValueError, match="parameter mode: must be one of"):  # our choice check
            TABLE.declare(node)
    finally:
        node.destroy_node()


def test_both_node_tables_share_the_image_qos_entry():
    from banet_vo.ros.params import PARAMS as VO_PARAMS

    imatching_params = pytest.importorskip("imatching_online.ros.params")
    for table in (VO_PARAMS, imatching_params.PARAMS):
        assert isinstance(table, ParameterTable)
        assert table["image_qos"] == image_qos_parameter()
        assert table["image_qos"].choices == IMAGE_QOS_MODES


def test_unknown_parameters_given_to_a_node_stop_it_with_the_closest_name(rclpy_context):
    overrides = [
        Parameter("count", value=3),
        Parameter("rates", value=0.2),
        Parameter("use_sim_time", value=True),
    ]
    node = Node("param_typo_test", context=rclpy_context, parameter_overrides=overrides)
    try:
        with pytest.raises(
            ValueError, match=r"parameter rates: not a parameter of this node; did you mean rate\?"
        ):
            TABLE.declare(node)
    finally:
        node.destroy_node()
    # the same typo from the command line (--ros-args -p), which rclpy would otherwise ignore
    node = Node("param_typo_cli", context=rclpy_context, cli_args=["--ros-args", "-p", "mdoe:=b"])
    try:
        with pytest.raises(ValueError, match="did you mean mode"):
            TABLE.declare(node)
        assert TABLE.declare(node, reject_unknown=False)["mode"] == "a"  # opt-out keeps rclpy's behaviour
    finally:
        node.destroy_node()


def test_dynamic_specs_are_declared_writable_and_say_so_in_the_help():
    spec = ParameterSpec("gain", 1.0, "a gain", range=(0.0, 2.0), dynamic=True)
    assert not spec.descriptor().read_only and COUNT.descriptor().read_only
    assert spec.help_line().endswith("(settable at run time)")


GAIN_X = ParameterSpec("gain_x", 1.0, "x gain", range=(0.0, 100.0))
GAIN_Y = ParameterSpec("gain_y", 1.0, "y gain", range=(0.0, 100.0))
SPLIT = ParameterTable(GAIN_X, GAIN_Y, renamed=(RenamedParameter("gain", ("gain_x", "gain_y"), "9.0"),))


def test_a_renamed_parameter_is_carried_to_its_new_names_with_a_warning():
    warnings = []
    values = SPLIT.values({"gain": 4}, warnings.append)
    assert values == {"gain_x": 4.0, "gain_y": 4.0}
    assert warnings == [
        "parameter gain is deprecated and will be removed in 9.0: its value is used for gain_x and gain_y; "
        "set gain_x/gain_y instead"
    ]
    assert SPLIT.values({"gain_y": 2.0}, warnings.append) == {"gain_x": 1.0, "gain_y": 2.0}
    assert len(warnings) == 1  # the new name warns nothing
    with pytest.raises(ValueError, match="parameter gain: deprecated name of gain_x, which is given too"):
        SPLIT.values({"gain": 4.0, "gain_x": 2.0})
    with pytest.raises(ValueError, match=r"parameter gain_x: 200.0 is outside"):  # checked as the new one
        SPLIT.values({"gain": 200.0})
    with pytest.raises(ValueError, match="the old name must be gone"):
        ParameterTable(GAIN_X, renamed=(RenamedParameter("gain_x", ("gain_x",), "9.0"),))


def test_a_renamed_parameter_given_to_a_node_is_declared_under_its_new_names(rclpy_context):
    node = Node("renamed_test", context=rclpy_context, cli_args=["--ros-args", "-p", "gain:=7"])
    try:
        assert SPLIT.declare(node) == {"gain_x": 7.0, "gain_y": 7.0}
        assert node.get_parameter("gain_x").value == 7.0 and node.get_parameter("gain_y").value == 7.0
        # the old name is declared too, so that a run-time change of it reaches the node's callback;
        # its descriptor says it is deprecated
        assert node.describe_parameter("gain").description.startswith("deprecated: parameter gain is")
        assert node.describe_parameter("gain").dynamic_typing
    finally:
        node.destroy_node()


RUN_TIME_SPLIT = ParameterTable(
    *(ParameterSpec(n, 1.0, n, range=(0.0, 100.0), dynamic=True) for n in ("gain_x", "gain_y")),
    renamed=(RenamedParameter("gain", ("gain_x", "gain_y"), "9.0"),),
)


def test_a_renamed_parameter_set_at_run_time_carries_its_value_to_the_new_names_in_one_step(rclpy_context):
    node = Node("renamed_run_time", context=rclpy_context)
    warnings, seen = [], []
    try:
        RUN_TIME_SPLIT.declare(node)
        node.add_pre_set_parameters_callback(
            lambda params: RUN_TIME_SPLIT.expand_renamed(params, warnings.append)
        )

        def on_set(params):  # what a node does with them: carry what the pre-set callback did not
            changes = {p.name: p.value for p in params if p.name in RUN_TIME_SPLIT}
            old = {p.name: p.value for p in params if p.name in RUN_TIME_SPLIT.renamed}
            try:
                seen.append(RUN_TIME_SPLIT.values({**changes, **RUN_TIME_SPLIT.renamed_given(changes, old)}))
            except ValueError as err:
                return SetParametersResult(successful=False, reason=str(err))
            return SetParametersResult(successful=True)

        node.add_on_set_parameters_callback(on_set)
        (result,) = node.set_parameters([Parameter("gain", value=5)])  # an int for float parameters
        assert result.successful
        assert [node.get_parameter(n).value for n in ("gain", "gain_x", "gain_y")] == [5, 5.0, 5.0]
        assert seen[-1] == {"gain_x": 5.0, "gain_y": 5.0} and len(warnings) == 1
        # given with a new name, the old one is refused as at start, and nothing is set
        refused = node.set_parameters_atomically(
            [Parameter("gain", value=3.0), Parameter("gain_x", value=2.0)]
        )
        assert not refused.successful and "deprecated name of gain_x, which is given too" in refused.reason
        assert node.get_parameter("gain_x").value == 5.0 and len(warnings) == 1
        # a value a new name refuses is refused by the new name's check, with its reason
        refused = node.set_parameters_atomically([Parameter("gain", value=200.0)])
        assert not refused.successful and "gain_x: 200.0 is outside" in refused.reason
        assert node.get_parameter("gain").value == 5
    finally:
        node.destroy_node()


def test_renamed_given_keeps_only_old_names_not_already_carried():
    carried = {"gain_x": 4.0, "gain_y": 4.0}
    assert SPLIT.renamed_given(carried, {"gain": 4}) == {}
    assert SPLIT.renamed_given({"gain_x": 4.0, "gain_y": 3.0}, {"gain": 4}) == {"gain": 4}
    assert SPLIT.renamed_given({"gain_x": 4.0}, {"gain": 4}) == {"gain": 4}
    assert SPLIT.renamed_given({}, {"gain": "x"}) == {"gain": "x"}  # a bad value: carried, then refused
    lists = ParameterTable(
        ParameterSpec("offset_xy", [0.0, 0.0], "an offset"),
        renamed=(RenamedParameter("offset", ("offset_xy",), "9.0"),),
    )
    # a list parameter, as a node holds it
    assert lists.renamed_given({"offset_xy": [1.0, 2.0]}, {"offset": [1, 2]}) == {}
    (added,) = lists.expand_renamed([Parameter("offset", value=[1, 2])], None)[1:]
    assert added.name == "offset_xy" and list(added.value) == [1.0, 2.0]


def test_tracking_parameters_derive_from_tracking_config():
    from dataclasses import fields

    from banet_vo.odometry import TrackingConfig
    from banet_vo.ros.params import PARAMS, TRACKING_DYNAMIC, params_from_values

    specs = {spec.name: spec for spec in PARAMS}
    for f in fields(TrackingConfig):
        spec = specs[f"tracking_{f.name}"]
        assert spec.default == f.default and spec.range == f.metadata["range"]
        # read at start (the map is built with them), but for those read at each keyframe
        assert spec.dynamic == (f.name in TRACKING_DYNAMIC)
    assert TRACKING_DYNAMIC == ("banet_min_interval",)
    p = params_from_values(
        {"model": "m.safetensors", "tracking_max_keypoints": 1024, "tracking_pnp_max_px": 2.0}
    )
    assert p.odometry.tracking == TrackingConfig(max_keypoints=1024, pnp_max_px=2.0)
    with pytest.raises(ValueError, match="tracking_window_keyframes"):
        params_from_values({"model": "m.safetensors", "tracking_window_keyframes": 2})
