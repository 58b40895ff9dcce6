"""What our node processes share around their node: the /diagnostics message and the `main` spin loop.

`NodeHelp` is what a node executable's --help prints (its only option: nodes take ROS parameters).
`diagnostics` builds the one-status DiagnosticArray each node publishes (named after the node's fully
qualified name, so two nodes in different namespaces stay apart; level WARN when any problem counter is
non-zero, message = state + the problems counted, every value as a key, stamped with the node
clock: it describes the node, not a frame). `run_node` is a node executable's main: init, build the node
(a ValueError is a bad start: message on stderr, exit 2), spin until Ctrl-C or shutdown, clean up.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import rclpy
import rclpy.executors
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.timer import Timer

from banet_vo.ros.parameters import ParameterSpec, ParameterTable

# Both nodes' /diagnostics parameters.
DIAGNOSTICS_PARAMS = (
    ParameterSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", range=(0.05, 60.0)),
    ParameterSpec(
        "diagnostics_window",
        10.0,
        "seconds over which /diagnostics rates and problem counts are taken (WARN only while problems "
        "are recent)",
        range=(0.1, 3600.0),
    ),
)


@dataclass(frozen=True)
class NodeHelp:
    """The --help of a node executable: what it does, how it is started, its parameter table, and what a
    failed start (exit status 2) blames."""

    description: str
    usage: str  # "{prog}" stands for the executable (two executables may share one NodeHelp)
    table: ParameterTable
    unusable: str  # e.g. "a parameter or the model"

    def parser(self, prog: str) -> argparse.ArgumentParser:
        # The usage line is the node's own (argparse's "[-h]" alone said nothing of --ros-args).
        return argparse.ArgumentParser(
            prog=prog,
            usage=f"{self.usage.format(prog=prog)}\n       {prog} --help",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            description=self.description,
            epilog=f"Parameters:\n{self.table.help_text()}\n\nExit status: 0 after a clean shutdown (also "
            f"when interrupted while starting), 1 when its shutdown failed (a last save), 2 when "
            f"{self.unusable} is unusable.",
        )


def steady_timer(node: Node, period_s: float, callback: Callable[[], None]) -> Timer:
    """A node timer on the steady clock. On the node's ROS clock a timer waits for /clock when
    use_sim_time is true: a node started before its bag, or with no /clock at all, would never subscribe
    to its camera nor report on /diagnostics."""
    return node.create_timer(period_s, callback, clock=Clock(clock_type=ClockType.STEADY_TIME))


# What a node's /diagnostics says while waiting_for_clock and nothing has arrived yet.
WAITING_FOR_CLOCK = (
    "waiting for /clock (use_sim_time is true and none has arrived: play the bag with --clock)"
)


def waiting_for_clock(node: Node) -> bool:
    """use_sim_time is true and no /clock message has set the node's time yet."""
    return bool(node.get_parameter("use_sim_time").value) and node.get_clock().now().nanoseconds == 0


def diagnostics(
    node: Node,
    title: str,
    hardware_id: str,
    state: str,
    values: Mapping[str, float | int],
    problem_keys: Sequence[str],
    *,
    level: bytes | None = None,
    extra: Mapping[str, str] | None = None,
) -> DiagnosticArray:
    """One DiagnosticStatus named `<fully qualified node name>: <title>`; `level` overrides the OK/WARN
    rule; `extra` key/values follow the sorted `values` and `state`."""
    problems = [key for key in problem_keys if values.get(key)]
    status = DiagnosticStatus(name=f"{node.get_fully_qualified_name()}: {title}", hardware_id=hardware_id)
    if level is None:
        level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
    status.level = level
    status.message = state + (f"; counted: {', '.join(problems)}" if problems else "")
    status.values = [
        KeyValue(key=k, value=f"{v:.6g}" if isinstance(v, float) else str(v))
        for k, v in sorted(values.items())
    ]
    status.values.append(KeyValue(key="state", value=state))
    status.values.extend(KeyValue(key=k, value=v) for k, v in (extra or {}).items())
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = node.get_clock().now().to_msg()
    return msg


def node_main(
    make_node: Callable[[], Node],
    help: NodeHelp | argparse.ArgumentParser,
    argv: list[str] | None,
    *,
    executable: str,
    prog: str,
    log_tag: str,
) -> int:
    """A node's console entry point: `help` (its parser for `executable`) checks what stands before
    --ros-args (--help exits there, anything else is an error), then `run_node`. argv: without the
    program name; None means sys.argv."""
    args = sys.argv if argv is None else [executable, *argv]
    own = args[1 : args.index("--ros-args")] if "--ros-args" in args else args[1:]
    parser = help.parser(executable) if isinstance(help, NodeHelp) else help
    parser.parse_args(own)
    return run_node(make_node, args, prog=prog, log_tag=log_tag)


def run_node(make_node: Callable[[], Node], args: list[str], *, prog: str, log_tag: str) -> int:
    """Run one node in this process: 0 after a clean shutdown (a SIGINT or SIGTERM while the node is still
    starting too), 2 when `make_node` raises ValueError (printed as `<prog>: cannot start: ...`), 1 when
    the node's shutdown says it failed (its `shutdown_error`, a str, set by destroy_node: e.g. a save that
    could not be written). `args` are the process arguments (argv[0] first); Python logging goes to
    stderr as `[<log_tag>] LEVEL message`."""
    logging.basicConfig(
        level=logging.INFO, format=f"[{log_tag}] %(levelname)s %(message)s", stream=sys.stderr
    )
    rclpy.init(args=args)
    node = None
    status = 0
    try:
        try:
            node = make_node()
        except ValueError as err:
            print(f"{prog}: cannot start: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{prog}: interrupted while starting", file=sys.stderr)
            return 0
        except BaseException:
            if rclpy.ok():
                raise
            # rclpy's signal handler shut the context down while the node was being made (loading a model
            # takes seconds): whatever the constructor tried next failed for that reason alone.
            print(f"{prog}: interrupted while starting", file=sys.stderr)
            return 0
        # One thread: the callbacks only decode and queue (the nodes' work runs in their own worker
        # threads), and rclpy's MultiThreadedExecutor busy-waits: its thread took 8-21 s of CPU over a 20 s
        # bag, starving the inference thread of the GIL and a core (docs/node.md, "Executor").
        try:
            executor = rclpy.executors.SingleThreadedExecutor()
            executor.add_node(node)
            executor.spin()
        except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
            pass
        except Exception:
            if rclpy.ok():
                raise
            # a signal between the node's start and the spin: the executor met a context shut down
    finally:
        if node is not None:
            node.destroy_node()
            error = getattr(node, "shutdown_error", None)
            if error:
                print(f"{prog}: {error}", file=sys.stderr)
                status = 1
        if rclpy.ok():
            rclpy.shutdown()
    return status
