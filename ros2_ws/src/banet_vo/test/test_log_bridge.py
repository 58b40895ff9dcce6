"""banet_vo.ros.log_bridge: core logging records reach the node's rclpy logger with the right severity,
once per template per period, and the Python logger is restored after detach."""

from __future__ import annotations

import logging

import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy")
from banet_vo.ros import log_bridge  # noqa: E402
from rclpy.logging import LoggingSeverity  # noqa: E402


class FakeRosLogger:
    def __init__(self, level=LoggingSeverity.INFO) -> None:
        self.level = level
        self.lines: list[tuple[str, LoggingSeverity]] = []

    def is_enabled_for(self, severity) -> bool:
        return severity >= self.level

    def log(self, message, severity) -> None:
        self.lines.append((message, severity))

    def debug(self, message) -> None:
        self.log(message, LoggingSeverity.DEBUG)

    def info(self, message) -> None:
        self.log(message, LoggingSeverity.INFO)

    def warning(self, message) -> None:
        self.log(message, LoggingSeverity.WARN)

    def error(self, message) -> None:
        self.log(message, LoggingSeverity.ERROR)

    def fatal(self, message) -> None:
        self.log(message, LoggingSeverity.FATAL)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_severity_map():
    assert log_bridge.ros_severity(logging.DEBUG) == LoggingSeverity.DEBUG
    assert log_bridge.ros_severity(logging.INFO) == LoggingSeverity.INFO
    assert log_bridge.ros_severity(logging.WARNING) == LoggingSeverity.WARN
    assert log_bridge.ros_severity(logging.ERROR) == LoggingSeverity.ERROR
    assert log_bridge.ros_severity(logging.CRITICAL) == LoggingSeverity.FATAL


def test_one_line_per_template_per_period_with_the_count_held_back():
    ros, clock = FakeRosLogger(), Clock()
    handler = log_bridge.RosLogHandler(ros, period_s=5.0, clock=clock)
    logger = logging.getLogger("banet_vo.test_bridge")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)  # Python passes everything; the ROS level decides
    try:
        for i in range(15):
            clock.now = 0.1 * i
            logger.warning("frame at %.1f s skipped: %s", clock.now, "diverged")
        logger.info("another template")
        logger.debug("below the ROS level: dropped")
        clock.now = 5.5
        logger.warning("frame at %.1f s skipped: %s", clock.now, "diverged")
    finally:
        logger.removeHandler(handler)
    texts = [text for text, _ in ros.lines]
    assert texts[0] == "[banet_vo.test_bridge] frame at 0.0 s skipped: diverged"
    assert texts[1] == "[banet_vo.test_bridge] another template"
    assert texts[2].startswith("[banet_vo.test_bridge] frame at 5.5 s skipped: diverged [14 similar")
    assert len(texts) == 3 and ros.lines[0][1] == LoggingSeverity.WARN


def test_attach_stops_propagation_and_detach_restores_it():
    py = logging.getLogger("banet_vo")
    before = (py.propagate, py.level)
    ros = FakeRosLogger()
    handler = log_bridge.attach(ros)
    try:
        assert not py.propagate and handler in py.handlers and py.level == logging.DEBUG
        logging.getLogger("banet_vo.odometry.pipeline").warning("from the core")
        assert ros.lines == [("[banet_vo.odometry.pipeline] from the core", LoggingSeverity.WARN)]
    finally:
        log_bridge.detach(handler)
    assert (py.propagate, py.level) == before and handler not in py.handlers


def test_a_real_rclpy_logger_takes_every_severity_in_turn():
    """rclpy refuses a second severity from one call site; the handler must never hit that."""
    from rclpy.logging import get_logger

    failures = []

    class Recording(log_bridge.RosLogHandler):
        def handleError(self, record) -> None:
            failures.append(record.getMessage())

    handler = Recording(get_logger("banet_vo_test_bridge"), period_s=0.0)
    logger = logging.getLogger("banet_vo.test_bridge_real")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        for i in range(3):
            logger.warning("warning %d", i)
            logger.info("info %d", i)
            logger.error("error %d", i)
            logger.debug("debug %d", i)
    finally:
        logger.removeHandler(handler)
    assert failures == []
