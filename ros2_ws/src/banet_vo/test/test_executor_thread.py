"""ExecutorThread.close lets a callback the executor has already handed to its pool finish; rclpy's own
Executor.shutdown destroys the guard condition under it (the "cannot use Destroyable" failure)."""

from __future__ import annotations

import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy")
from banet_vo.ros.executor_thread import ExecutorThread  # noqa: E402
from banet_vo.ros.qos import reliable_qos  # noqa: E402
from rclpy.callback_groups import ReentrantCallbackGroup  # noqa: E402
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor  # noqa: E402
from std_msgs.msg import String  # noqa: E402


class HeldGroup(ReentrantCallbackGroup):
    """Holds each callback in the pool, before the executor's gc.trigger(), until `release` is set: the
    window in which a shutdown that does not wait destroys that guard condition."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def beginning_execution(self, entity) -> bool:
        self.entered.set()
        self.release.wait(5.0)
        return super().beginning_execution(entity)


def _graph(context, executor_type):
    node = rclpy.create_node("executor_thread_test", context=context)
    group = HeldGroup()
    received: list[str] = []
    node.create_subscription(String, "held", lambda m: received.append(m.data), 10, callback_group=group)
    pub = node.create_publisher(String, "held", reliable_qos(depth=10))
    executor = executor_type(context=context)
    executor.add_node(node)
    return node, group, received, pub, executor


def _release_after(group: HeldGroup, seconds: float) -> None:
    threading.Timer(seconds, group.release.set).start()


@pytest.mark.ros
@pytest.mark.parametrize("executor_type", [MultiThreadedExecutor, SingleThreadedExecutor])
def test_close_lets_a_handed_out_callback_finish(rclpy_context, executor_type):
    node, group, received, pub, executor = _graph(rclpy_context, executor_type)
    spinner = ExecutorThread(executor)
    errors: list[BaseException] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        pub.publish(String(data="last"))
        assert group.entered.wait(5.0)  # taken by the executor, held before it triggers its guard
        _release_after(group, 0.3)  # released while close() is already under way
        assert spinner.close(timeout=5.0)
        assert received == ["last"] and not errors
    finally:
        threading.excepthook = previous
        group.release.set()
        node.destroy_node()


@pytest.mark.ros
def test_rclpy_shutdown_alone_loses_that_callback(rclpy_context):
    """What ExecutorThread.close works around, so that this test fails once rclpy waits by itself (then
    ExecutorThread can go)."""
    node, group, received, pub, executor = _graph(rclpy_context, MultiThreadedExecutor)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        pub.publish(String(data="last"))
        assert group.entered.wait(5.0)
        _release_after(group, 0.3)
        executor.shutdown(timeout_sec=5.0)
        time.sleep(0.5)
        assert received == []  # the handler failed in gc.trigger() before calling the callback
    finally:
        group.release.set()
        thread.join(2.0)
        node.destroy_node()
