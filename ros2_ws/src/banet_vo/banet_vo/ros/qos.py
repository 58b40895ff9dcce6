"""QoS profiles for banet_vo topics, and the `auto` rule that matches what a publisher offers.

Measured (DESIGN.md): best-effort loses most large images between processes, reliable delivers them all.
Image inputs therefore default to `auto`: take the reliability the publishers on the topic offer, the way
rosbag2 does, so a best-effort camera driver and a reliable bag player both connect.
"""

from __future__ import annotations

import logging
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

logger = logging.getLogger(__name__)

QOS_NAMES = ("sensor", "reliable")


def _check_depth(depth: int) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive int, got {depth!r}")
    return depth


def _keep_last(depth: int, reliability: ReliabilityPolicy, durability: DurabilityPolicy) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=_check_depth(depth),
        reliability=reliability,
        durability=durability,
    )


def sensor_qos(depth: int = 5) -> QoSProfile:
    """Best-effort, volatile, keep-last `depth`: the ROS `sensor_data` preset with our default depth."""
    return _keep_last(depth, ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE)


def reliable_qos(depth: int = 10) -> QoSProfile:
    """Reliable, volatile, keep-last `depth`: outputs (odometry, depth) and inputs from bag players."""
    return _keep_last(depth, ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE)


def latched_qos(depth: int = 1) -> QoSProfile:
    """Reliable, transient-local: late subscribers still get the last message (/tf_static)."""
    return _keep_last(depth, ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL)


def qos_from_name(name: str, depth: int | None = None) -> QoSProfile:
    """ "sensor" → sensor_qos, "reliable" → reliable_qos (each with its own default depth unless given)."""
    if name not in QOS_NAMES:
        raise ValueError(f"qos name must be one of {QOS_NAMES}, got {name!r}")
    factory = sensor_qos if name == "sensor" else reliable_qos
    return factory() if depth is None else factory(depth)


def resolve_auto_qos(
    node: Any, topic: str, default: str = "reliable", depth: int | None = None, latched: bool = False
) -> QoSProfile:
    """The subscription QoS that matches the publishers currently on `topic`.

    Best-effort if any publisher offers best-effort (a reliable subscription would not connect to it),
    reliable if every publisher offers reliable (so no message is dropped), `default` when there is no
    publisher yet. `latched`: transient-local when every publisher offers it (and reliable), so that a
    message published once before this subscription (a latched camera_info) still arrives; a volatile
    publisher among them keeps it volatile, which it would not connect to otherwise. `node` is an rclpy
    Node (anything with get_publishers_info_by_topic).
    """
    if default not in QOS_NAMES:
        raise ValueError(f"default must be one of {QOS_NAMES}, got {default!r}")
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"topic must be a non-empty string, got {topic!r}")
    infos = node.get_publishers_info_by_topic(topic)
    if not infos:
        logger.info("no publisher on %s yet: using %s QoS", topic, default)
        return qos_from_name(default, depth)
    offered = [info.qos_profile.reliability for info in infos]
    name = "sensor" if ReliabilityPolicy.BEST_EFFORT in offered else "reliable"
    qos = qos_from_name(name, depth)
    if latched and all(info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for info in infos):
        qos.durability = DurabilityPolicy.TRANSIENT_LOCAL
    logger.info("%d publisher(s) on %s: using %s QoS (%s)", len(infos), topic, name, qos.durability.name)
    return qos
