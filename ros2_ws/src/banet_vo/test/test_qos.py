"""QoS helpers: profile contents, name lookup, and `auto` resolution against real rclpy publishers."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.ros


def _qos():
    from banet_vo.ros import qos

    return qos


def test_profiles_have_the_documented_policies():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy

    qos = _qos()
    sensor = qos.sensor_qos()
    assert sensor.reliability == ReliabilityPolicy.BEST_EFFORT
    assert sensor.durability == DurabilityPolicy.VOLATILE
    assert sensor.history == HistoryPolicy.KEEP_LAST and sensor.depth == 5
    reliable = qos.reliable_qos(depth=3)
    assert reliable.reliability == ReliabilityPolicy.RELIABLE
    assert reliable.durability == DurabilityPolicy.VOLATILE and reliable.depth == 3
    latched = qos.latched_qos()
    assert latched.reliability == ReliabilityPolicy.RELIABLE
    assert latched.durability == DurabilityPolicy.TRANSIENT_LOCAL and latched.depth == 1


def test_qos_from_name():
    from rclpy.qos import ReliabilityPolicy

    qos = _qos()
    assert qos.qos_from_name("sensor").reliability == ReliabilityPolicy.BEST_EFFORT
    assert qos.qos_from_name("sensor").depth == 5
    assert qos.qos_from_name("reliable").reliability == ReliabilityPolicy.RELIABLE
    assert qos.qos_from_name("reliable", depth=2).depth == 2


@pytest.mark.parametrize("bad", ["auto", "best_effort", "", "SENSOR"])
def test_qos_from_name_rejects_unknown_names(bad):
    with pytest.raises(ValueError, match="qos name"):
        _qos().qos_from_name(bad)


@pytest.mark.parametrize("depth", [0, -1, 2.5, True])
def test_bad_depth_is_rejected(depth):
    with pytest.raises(ValueError, match="depth"):
        _qos().sensor_qos(depth)


def _node(context, name: str):
    import rclpy

    return rclpy.create_node(name, context=context)


def _wait_for_publishers(node, topic: str, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(node.get_publishers_info_by_topic(topic)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} publisher(s) on {topic} not discovered in {timeout} s")
        time.sleep(0.02)


def _receives(context, pub_node, sub_node, publisher, topic, qos_profile) -> bool:
    """True when a subscription with qos_profile gets a message from publisher within a few seconds."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    received: list[str] = []
    sub = sub_node.create_subscription(String, topic, lambda m: received.append(m.data), qos_profile)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(pub_node)
    executor.add_node(sub_node)
    try:
        deadline = time.monotonic() + 3.0
        while not received and time.monotonic() < deadline and rclpy.ok(context=context):
            publisher.publish(String(data="hello"))
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        sub_node.destroy_subscription(sub)
    return bool(received)


@pytest.mark.parametrize(
    ("offered", "expected"),
    [("sensor", "BEST_EFFORT"), ("reliable", "RELIABLE")],
    ids=["best_effort", "reliable"],
)
def test_resolve_auto_qos_matches_a_real_publisher(rclpy_context, offered, expected):
    from rclpy.qos import ReliabilityPolicy
    from std_msgs.msg import String

    qos = _qos()
    pub_node = _node(rclpy_context, "qos_test_pub")
    sub_node = _node(rclpy_context, "qos_test_sub")
    topic = f"/qos_test_{offered}"
    publisher = pub_node.create_publisher(String, topic, qos.qos_from_name(offered))
    _wait_for_publishers(sub_node, topic, 1)
    # default is the opposite of what is offered, so only a real look at the graph gives the right answer
    default = "reliable" if offered == "sensor" else "sensor"
    resolved = qos.resolve_auto_qos(sub_node, topic, default=default)
    assert resolved.reliability == getattr(ReliabilityPolicy, expected)
    assert _receives(rclpy_context, pub_node, sub_node, publisher, topic, resolved)


def test_resolve_auto_qos_prefers_best_effort_when_publishers_are_mixed(rclpy_context):
    from rclpy.qos import ReliabilityPolicy
    from std_msgs.msg import String

    qos = _qos()
    node = _node(rclpy_context, "qos_test_mixed")
    topic = "/qos_test_mixed"
    node.create_publisher(String, topic, qos.reliable_qos())
    best_effort_pub = node.create_publisher(String, topic, qos.sensor_qos())
    _wait_for_publishers(node, topic, 2)
    resolved = qos.resolve_auto_qos(node, topic)
    assert resolved.reliability == ReliabilityPolicy.BEST_EFFORT
    # a reliable subscription would never hear the best-effort publisher; the resolved one does
    sub_node = _node(rclpy_context, "qos_test_mixed_sub")
    assert _receives(rclpy_context, node, sub_node, best_effort_pub, topic, resolved)


def test_resolve_auto_qos_latched_takes_a_message_published_before_it_subscribed(rclpy_context):
    """latched: transient-local when every publisher is (a latched camera_info arrives though it was
    published once, before the subscription); a volatile publisher among them keeps it volatile."""
    from rclpy.qos import DurabilityPolicy
    from std_msgs.msg import String

    qos = _qos()
    pub_node = _node(rclpy_context, "qos_test_latched_pub")
    sub_node = _node(rclpy_context, "qos_test_latched_sub")
    topic = "/qos_test_latched"
    publisher = pub_node.create_publisher(String, topic, qos.latched_qos())
    publisher.publish(String(data="once"))
    _wait_for_publishers(sub_node, topic, 1)
    assert qos.resolve_auto_qos(sub_node, topic).durability == DurabilityPolicy.VOLATILE
    resolved = qos.resolve_auto_qos(sub_node, topic, latched=True)
    assert resolved.durability == DurabilityPolicy.TRANSIENT_LOCAL
    from rclpy.executors import SingleThreadedExecutor

    got = []
    sub_node.create_subscription(String, topic, got.append, resolved)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(sub_node)
    try:
        deadline = time.monotonic() + 5.0
        while not got and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
    assert [m.data for m in got] == ["once"]
    pub_node.create_publisher(String, topic, qos.reliable_qos())
    _wait_for_publishers(sub_node, topic, 2)
    assert qos.resolve_auto_qos(sub_node, topic, latched=True).durability == DurabilityPolicy.VOLATILE


def test_resolve_auto_qos_without_publishers_uses_the_default(rclpy_context):
    from rclpy.qos import ReliabilityPolicy

    qos = _qos()
    node = _node(rclpy_context, "qos_test_empty")
    assert qos.resolve_auto_qos(node, "/qos_test_nobody").reliability == ReliabilityPolicy.RELIABLE
    resolved = qos.resolve_auto_qos(node, "/qos_test_nobody", default="sensor")
    assert resolved.reliability == ReliabilityPolicy.BEST_EFFORT
    with pytest.raises(ValueError, match="default"):
        qos.resolve_auto_qos(node, "/qos_test_nobody", default="auto")
    with pytest.raises(ValueError, match="topic"):
        qos.resolve_auto_qos(node, "")
