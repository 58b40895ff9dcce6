"""banet_vo.ros.node_shell: the /diagnostics message (level rule, message, formatted sorted values, extra
keys, node-clock stamp) and run_node's exit status for a bad start."""

from __future__ import annotations

import argparse

import pytest

pytestmark = pytest.mark.ros

pytest.importorskip("rclpy")
from banet_vo.ros.conversions import stamp_to_ns  # noqa: E402
from banet_vo.ros.node_shell import diagnostics, node_main, run_node  # noqa: E402
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.node import Node  # noqa: E402


@pytest.fixture
def node(rclpy_context):
    n = Node("shell_test", context=rclpy_context)
    yield n
    n.destroy_node()


def test_diagnostics_ok_when_no_problem_is_counted(node):
    values = {"received": 3, "rate_hz": 2.0 / 3.0, "dropped": 0}
    before = stamp_to_ns(node.get_clock().now().to_msg())
    msg = diagnostics(node, "thing", "cpu", "tracking", values, ("dropped", "errors"))
    (status,) = msg.status
    assert status.name == "/shell_test: thing" and status.hardware_id == "cpu"
    assert status.level == DiagnosticStatus.OK and status.message == "tracking"
    assert [(kv.key, kv.value) for kv in status.values] == [
        ("dropped", "0"),
        ("rate_hz", "0.666667"),  # floats with 6 significant digits
        ("received", "3"),
        ("state", "tracking"),
    ]
    assert stamp_to_ns(msg.header.stamp) >= before


def test_diagnostics_warn_lists_the_problems_and_level_and_extra_override(node):
    values = {"dropped": 2, "errors": 0, "bad_image": 1}
    status = diagnostics(node, "t", "cpu", "s", values, ("dropped", "errors", "bad_image")).status[0]
    assert status.level == DiagnosticStatus.WARN and status.message == "s; counted: dropped, bad_image"
    status = diagnostics(
        node, "t", "cpu", "s", values, ("dropped",), level=DiagnosticStatus.ERROR, extra={"adapt": "false"}
    ).status[0]
    assert status.level == DiagnosticStatus.ERROR
    assert [(kv.key, kv.value) for kv in status.values[-2:]] == [("state", "s"), ("adapt", "false")]


def test_run_node_exits_2_and_says_why_when_the_node_cannot_start(capsys, ros_domain_id):
    def refuse() -> Node:
        raise ValueError("parameter model: missing")

    assert run_node(refuse, ["prog"], prog="my_node", log_tag="my") == 2
    assert "my_node: cannot start: parameter model: missing" in capsys.readouterr().err


def test_run_node_exits_0_when_interrupted_while_the_node_is_made(capsys, ros_domain_id):
    """A SIGINT after rclpy.init but before the node is up (a model loading): rclpy's handler shuts the
    context down, and the constructor's next call fails for that reason alone. It exited 1 with
    rclpy's traceback (black-box run of imatching_node, 2026-12-07)."""
    import rclpy

    def interrupted() -> Node:
        rclpy.shutdown()  # what rclpy's signal handler does
        return Node("never_made")  # raises: the context is invalid

    assert run_node(interrupted, ["prog"], prog="my_node", log_tag="my") == 0
    err = capsys.readouterr().err
    assert "my_node: interrupted while starting" in err and "Traceback" not in err

    def keyboard() -> Node:
        raise KeyboardInterrupt

    assert run_node(keyboard, ["prog"], prog="my_node", log_tag="my") == 0
    assert not rclpy.ok()  # run_node shut rclpy down behind it


def test_run_node_raises_a_real_error_while_starting(ros_domain_id):
    def broken() -> Node:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        run_node(broken, ["prog"], prog="my_node", log_tag="my")


def test_run_node_exits_1_when_the_shutdown_failed(capsys, ros_domain_id):
    """A node whose destroy_node records a shutdown_error (imatching: the last save could not be written)
    makes the process exit 1 with that error, not 0."""
    import threading

    import rclpy

    class Failing(Node):
        def __init__(self) -> None:
            super().__init__("failing_shutdown")
            self.shutdown_error = None

        def destroy_node(self) -> None:
            self.shutdown_error = "cannot write /nowhere/x.safetensors (shutdown): lost"
            super().destroy_node()

    threading.Timer(1.0, rclpy.shutdown).start()  # the executor ends as on SIGINT
    assert run_node(Failing, ["prog"], prog="my_node", log_tag="my") == 1
    assert "my_node: cannot write /nowhere/x.safetensors (shutdown): lost" in capsys.readouterr().err


def test_node_main_rejects_arguments_outside_ros_args_before_starting_anything(capsys):
    started = []
    parser = argparse.ArgumentParser(prog="my_node")
    with pytest.raises(SystemExit) as exit_info:
        node_main(
            lambda: started.append(1), parser, ["--bogus"], executable="my_node", prog="my_node", log_tag="m"
        )
    assert exit_info.value.code == 2 and not started and "--bogus" in capsys.readouterr().err
