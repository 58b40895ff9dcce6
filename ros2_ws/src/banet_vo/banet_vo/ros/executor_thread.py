"""An rclpy executor spun on a background thread, and a close that lets its last callbacks finish.

rclpy's `Executor.shutdown` (rclpy 9.1, Kilted) destroys the executor's guard condition without waiting
for the work it has already handed to its thread pool: its wait is skipped because it tests the shutdown
flag it has just set. A callback taken just before then fails in the executor's own `gc.trigger()` with
"InvalidHandle: cannot use Destroyable because destruction was requested": its message is lost and the
spinning thread dies with that traceback. `ExecutorThread.close` stops the spinning first, waits for the
handed-out callbacks (bounded), and only then shuts the executor down.
"""

from __future__ import annotations

import logging
import threading
import time

from rclpy.executors import Executor

logger = logging.getLogger(__name__)

SPIN_PERIOD_S = 0.05  # how long one spin_once waits: the longest close waits for the loop to notice


class ExecutorThread:
    """Spins `executor` on a daemon thread from construction until `close()`."""

    def __init__(self, executor: Executor, name: str = "executor") -> None:
        self.executor = executor
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=name, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        context = self.executor.context
        while not self._stop.is_set() and context.ok():
            self.executor.spin_once(timeout_sec=SPIN_PERIOD_S)

    def close(self, timeout: float = 5.0) -> bool:
        """Stop spinning, let the callbacks already started finish, shut the executor down. False (and a
        warning) when the loop or a callback was still running after `timeout` s."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self.executor.wake()
        self._thread.join(timeout)
        finished = not self._thread.is_alive()
        # MultiThreadedExecutor's handed-out callbacks (rclpy Tasks); a SingleThreadedExecutor has none
        # left once its loop has stopped. rclpy has no public way to wait for them.
        pending = list(getattr(self.executor, "_futures", ()))
        while any(not task.done() for task in pending) and time.monotonic() < deadline:
            time.sleep(0.005)
        finished = finished and all(task.done() for task in pending)
        if not finished:
            logger.warning(
                "executor thread %s: callbacks still running after %.1f s; shutting down anyway",
                self._thread.name,
                timeout,
            )
        self.executor.shutdown(timeout_sec=max(0.0, deadline - time.monotonic()))
        return finished
