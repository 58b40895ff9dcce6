"""Python `logging` records of the core forwarded to a node's rclpy logger, throttled.

The core (banet_vo.odometry, geometry, model) logs with the standard `logging` module and never imports
rclpy. Inside a node those records must reach the same places as the node's own lines: /rosout, the ROS log
file and the console format, and obey `--ros-args --log-level`. `attach` puts one handler on the package
logger that maps each record to the node logger's severity; while it is attached the package logger does
not also propagate to Python's root handlers (which would print every line twice).

A broken stream makes the core repeat one warning per frame ("frame at ... skipped: ..."), so the handler
logs each message template at most once per `period_s` and says how many were held back.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.logging import LoggingSeverity

THROTTLE_PERIOD_S = 5.0
_LEVELS = (
    (logging.ERROR + 10, LoggingSeverity.FATAL),
    (logging.ERROR, LoggingSeverity.ERROR),
    (logging.WARNING, LoggingSeverity.WARN),
    (logging.INFO, LoggingSeverity.INFO),
)


def ros_severity(levelno: int) -> LoggingSeverity:
    """The rclpy severity of a Python logging level (DEBUG and below → DEBUG)."""
    for threshold, severity in _LEVELS:
        if levelno >= threshold:
            return severity
    return LoggingSeverity.DEBUG


def log_at(ros_logger: Any, severity: LoggingSeverity, text: str) -> None:
    """One call site per severity: rclpy keys its per-call-site state on the caller's code position
    and refuses a second severity from the same one ("Logger severity cannot be changed between
    calls"), so a single `log(text, severity)` line would drop every line after the first level change."""
    if severity >= LoggingSeverity.FATAL:
        ros_logger.fatal(text)
    elif severity >= LoggingSeverity.ERROR:
        ros_logger.error(text)
    elif severity >= LoggingSeverity.WARN:
        ros_logger.warning(text)
    elif severity >= LoggingSeverity.INFO:
        ros_logger.info(text)
    else:
        ros_logger.debug(text)


class RosLogHandler(logging.Handler):
    """Forwards records to `ros_logger` (an rclpy logger), one line per template per period."""

    def __init__(
        self,
        ros_logger: Any,
        period_s: float = THROTTLE_PERIOD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(level=logging.NOTSET)
        self._ros = ros_logger
        self._period_s = period_s
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}
        self._throttle_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        severity = ros_severity(record.levelno)
        if not self._ros.is_enabled_for(severity):  # the ROS level decides (--log-level, set at run time)
            return
        key = (record.name, str(record.msg))  # the template, not the formatted text: one per kind
        now = self._clock()
        with self._throttle_lock:
            if now - self._last.get(key, -math.inf) < self._period_s:
                self._held[key] = self._held.get(key, 0) + 1
                return
            self._last[key] = now
            held = self._held.pop(key, 0)
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            if held:
                text += f" [{held} similar line(s) held back in the last {self._period_s:g} s]"
            log_at(self._ros, severity, f"[{record.name}] {text}")
        except Exception:  # a logging failure must never break the caller; logging's own reporting
            self.handleError(record)


_attached: dict[str, list[RosLogHandler]] = {}
_saved_propagate: dict[str, bool] = {}
_registry_lock = threading.Lock()


def attach(
    ros_logger: Any, logger_name: str = "banet_vo", period_s: float = THROTTLE_PERIOD_S
) -> RosLogHandler:
    """Forward `logger_name`'s records to `ros_logger` until `detach`. The Python logger passes every
    record (DEBUG) and the handler asks the ROS logger per record, so --log-level and later level changes
    decide, as for the node's own lines."""
    handler = RosLogHandler(ros_logger, period_s)
    py_logger = logging.getLogger(logger_name)
    with _registry_lock:
        handlers = _attached.setdefault(logger_name, [])
        if not handlers:
            _saved_propagate[logger_name] = py_logger.propagate
        handlers.append(handler)
        py_logger.addHandler(handler)
        py_logger.propagate = False
        py_logger.setLevel(logging.DEBUG)
    return handler


def detach(handler: RosLogHandler, logger_name: str = "banet_vo") -> None:
    """Undo one `attach` (the last one restores propagation and the level)."""
    py_logger = logging.getLogger(logger_name)
    with _registry_lock:
        handlers = _attached.get(logger_name, [])
        if handler not in handlers:
            return
        handlers.remove(handler)
        py_logger.removeHandler(handler)
        if not handlers:
            py_logger.propagate = _saved_propagate.pop(logger_name, True)
            py_logger.setLevel(logging.NOTSET)
