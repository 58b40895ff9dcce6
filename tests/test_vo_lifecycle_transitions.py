"""vo_lifecycle_node's transitions when something raises, and start-up parameters set between configures,
on a real rclpy graph (loopback DDS). A scripted estimator stands in for the model: nothing here runs a
frame, the transitions are what is tested.

A transition that raises is logged (type and message) and returns ERROR; on_error then releases what the
node holds, so that it ends unconfigured and clean and the next configure builds one set. Start-up
parameters are settable while unconfigured (configure uses them) and refused with the reason while
configured; dynamic ones stay settable.
"""

from __future__ import annotations

import logging
import time

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
from banet_vo.ros import topics, vo_node  # noqa: E402
from banet_vo.ros.qos import latched_qos  # noqa: E402
from banet_vo.ros.topics import output_topic  # noqa: E402
from banet_vo.ros.vo_lifecycle import VOLifecycleNode  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

SUCCESS = TransitionCallbackReturn.SUCCESS
ERROR = TransitionCallbackReturn.ERROR


class ScriptedEstimator:
    """Configure needs an estimator, not a model; no frame is processed in these tests."""

    input_size = (32, 24)

    def estimate(self, reference, target, pose_init=None):
        raise AssertionError("no frame is processed in these tests")


def _node(context, name: str, **params) -> VOLifecycleNode:
    # A node name of its own per test: rcl's /rosout publishers are keyed by logger name.
    values = {"model": "m.safetensors", "frontend": "none", "image_qos": "reliable", **params}
    return VOLifecycleNode(
        estimator=ScriptedEstimator(),
        context=context,
        node_name=name,
        parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
    )


def _held(node: Node) -> dict[str, list[str]]:
    """What the node holds on the graph (and its timers), by name."""
    return {
        "publishers": sorted(p.topic_name for p in node.publishers),
        "subscriptions": sorted(s.topic_name for s in node.subscriptions),
        "services": sorted(s.srv_name for s in node.services),
        "timers": [str(len(list(node.timers)))],
    }


def _odometry_publishers(node: VOLifecycleNode) -> int:
    """The node's own publishers of ~/odometry, once the graph agrees with them."""
    topic = output_topic(topics.ODOMETRY, node_name=node.get_name())
    own = sum(p.topic_name == topic for p in node.publishers)
    deadline = time.monotonic() + 5.0
    while node.count_publishers(topic) != own and time.monotonic() < deadline:
        time.sleep(0.02)
    assert node.count_publishers(topic) == own
    return own


class Rosout:
    """/rosout recorder with rcl's own profile (transient local): lines logged before discovery matched
    are still delivered."""

    def __init__(self, context) -> None:
        self.node = Node("vo_test_transition_log", context=context)
        self.lines: list[Log] = []
        self.node.create_subscription(Log, "/rosout", self.lines.append, latched_qos(depth=1000))
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def wait_for(self, logger: str, text: str, timeout: float = 30.0) -> list[str]:
        # Until the line arrives: discovery with the node's /rosout can take seconds on a loaded machine.
        deadline = time.monotonic() + timeout
        while True:
            found = [m.msg for m in self.lines if m.name == logger and text in m.msg]
            if found or time.monotonic() > deadline:
                return found
            self.executor.spin_once(timeout_sec=0.1)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()


def _raise_once(original, error: Exception):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise error
        return original(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("where", ["odometry", "worker"])
def test_a_configure_that_raises_is_logged_leaves_nothing_and_the_next_builds_one_set(
    rclpy_context, monkeypatch, where
):
    """A RuntimeError while configuring (building the odometry; or the inference thread, after every output
    was made) fails the transition with an error line naming it; the node holds nothing it made, and the
    next configure builds exactly one set of outputs. Before, the error reached no log, and a failure after
    the outputs left them behind for the next configure to duplicate."""
    name = f"vo_configure_raises_{where}"
    error = RuntimeError(f"CUDA out of memory (scripted, {where})")
    if where == "odometry":
        monkeypatch.setattr(vo_node, "make_odometry", _raise_once(vo_node.make_odometry, error))
    else:
        monkeypatch.setattr(vo_node, "FrameWorker", _raise_once(vo_node.FrameWorker, error))
    node = _node(rclpy_context, name)
    rosout = Rosout(rclpy_context)
    package_logger = logging.getLogger("banet_vo")
    handlers = list(package_logger.handlers)
    try:
        unconfigured = _held(node)
        assert node.trigger_configure() == ERROR
        assert not node._configured
        assert all(getattr(node, name, None) is None for name in ("vo", "estimator", "worker"))
        assert _held(node) == unconfigured
        assert package_logger.handlers == handlers  # the log bridge is detached again
        assert rosout.wait_for(node.get_logger().name, f"configure failed: RuntimeError: {error}")

        assert node.trigger_configure() == SUCCESS
        assert _odometry_publishers(node) == 1
        assert node.trigger_cleanup() == SUCCESS
        assert _held(node) == unconfigured
    finally:
        rosout.close()
        node.destroy_node()


@pytest.mark.parametrize("transition", ["activate", "deactivate", "cleanup"])
def test_a_transition_that_raises_is_logged_and_on_error_leaves_the_node_unconfigured_and_clean(
    rclpy_context, transition
):
    """activate, deactivate or cleanup raising: ERROR with an error line naming it, then on_error releases
    model, worker, outputs and input, so that the node is unconfigured and holds nothing; configure and
    activate then work and build one set. Before, rclpy's default on_error took the node to unconfigured
    still holding everything (the deactivate case: still subscribed), and the next configure built a
    second set."""
    name = f"vo_{transition}_raises"
    node = _node(rclpy_context, name)
    rosout = Rosout(rclpy_context)
    error = RuntimeError(f"scripted failure in {transition}")

    def broken(*args, **kwargs):
        raise error

    patched = {"activate": "_open_input", "deactivate": "_close_input", "cleanup": "_release"}[transition]
    try:
        unconfigured = _held(node)
        assert node.trigger_configure() == SUCCESS
        if transition != "activate":
            assert node.trigger_activate() == SUCCESS
            assert node.image_sub is not None
        if transition == "cleanup":
            assert node.trigger_deactivate() == SUCCESS
        setattr(node, patched, broken)  # it keeps raising: on_error releases without it
        trigger = getattr(node, f"trigger_{transition}")
        assert trigger() == ERROR
        assert not node._configured
        assert all(getattr(node, name, None) is None for name in ("vo", "estimator", "worker"))
        assert node.camera_input is None and node.image_sub is None
        assert _held(node) == unconfigured
        assert rosout.wait_for(node.get_logger().name, f"{transition} failed: RuntimeError: {error}")

        delattr(node, patched)
        assert node.trigger_configure() == SUCCESS  # from unconfigured only
        assert node.trigger_activate() == SUCCESS
        assert node.image_sub is not None
        assert _odometry_publishers(node) == 1
        assert node.trigger_deactivate() == SUCCESS
        assert node.trigger_cleanup() == SUCCESS
        assert _held(node) == unconfigured
    finally:
        rosout.close()
        node.destroy_node()


def _set(node: Node, **values):
    results = node.set_parameters([Parameter(k, value=v) for k, v in values.items()])
    return results[0] if len(results) == 1 else results


def test_start_up_parameters_are_set_while_unconfigured_and_refused_while_configured(rclpy_context):
    """The unconfigured state is where the node is reconfigured: model and base_frame set there are what
    the next configure uses (before, rclpy refused them as read-only). While inactive or active they are
    refused with the reason; a dynamic parameter stays settable; values are still checked (choices,
    ranges) when unconfigured."""
    node = _node(rclpy_context, "vo_reconfigured")
    try:
        assert not node.describe_parameter("model").read_only
        result = _set(node, model="other.safetensors", base_frame="robot_base")
        assert all(r.successful for r in result), [r.reason for r in result]
        assert node.trigger_configure() == SUCCESS
        assert node.params.model == "other.safetensors" and node.params.base_frame == "robot_base"

        for state in ("inactive", "active"):
            if state == "active":
                assert node.trigger_activate() == SUCCESS
            result = _set(node, base_frame="elsewhere")
            assert not result.successful
            assert "base_frame: a start-up parameter" in result.reason and "cleanup" in result.reason
            assert not _set(node, model="third.safetensors").successful
            assert node.get_parameter("base_frame").value == "robot_base"
            assert node.get_parameter("model").value == "other.safetensors"
        assert _set(node, path_max_length=10).successful  # dynamic: settable while active
        assert node.params.path_max_length == 10

        assert node.trigger_deactivate() == SUCCESS
        assert node.trigger_cleanup() == SUCCESS
        bad_choice = _set(node, device="tpu")
        assert not bad_choice.successful and "parameter device: must be one of" in bad_choice.reason
        assert not _set(node, queue_size=0).successful  # out of its range
        assert node.get_parameter("device").value == "auto" and node.get_parameter("queue_size").value == 1
        assert _set(node, base_frame="chassis").successful
        assert node.trigger_configure() == SUCCESS
        assert node.params.base_frame == "chassis" and node.params.model == "other.safetensors"
    finally:
        node.destroy_node()


def test_what_rclpy_adds_while_unconfigured_survives_cleanup_and_the_log_bridge_comes_back(rclpy_context):
    """use_sim_time set while unconfigured makes rclpy subscribe /clock on the node: cleanup releases what
    configure and activate made, not that (sim time would stop advancing). After a cleanup the next
    configure forwards the banet_vo Python logging to the node again."""
    node = _node(rclpy_context, "vo_sim_time_kept")
    try:
        assert _set(node, use_sim_time=True).successful
        clock = sum(s.topic_name == "/clock" for s in node.subscriptions)
        assert clock == 1
        for _ in range(2):
            assert node.trigger_configure() == SUCCESS
            assert node._log_handler is not None
            assert node.trigger_activate() == SUCCESS
            assert node.trigger_deactivate() == SUCCESS
            assert node.trigger_cleanup() == SUCCESS
            assert sum(s.topic_name == "/clock" for s in node.subscriptions) == clock
            assert node._log_handler is None
    finally:
        node.destroy_node()
