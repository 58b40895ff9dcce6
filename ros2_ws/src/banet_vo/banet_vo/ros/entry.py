"""The console entry points of the nodes and of the tools that run them, kept light on purpose.

A process a script starts in the background (`vo_node ... &`) inherits SIGINT ignored, and Python then
installs no KeyboardInterrupt handler. rclpy takes SIGINT only in `rclpy.init`, which comes after seconds
of imports (torch: 2-4 s) and, in banet-vo-run, after the model is loaded: a Ctrl-C, or the SIGINT a
supervisor sends to stop a node, that came in that window was discarded, and the node went on until the
next one. So SIGINT is taken here, before anything heavy is imported, and one that comes during the
imports ends the program as an interrupted start.
"""

from __future__ import annotations

import importlib
import signal
import sys

# The status of a program a SIGINT ended before it did its work (the shell's 128 + SIGINT).
INTERRUPTED_STATUS = 130


def take_sigint() -> None:
    """Make SIGINT raise KeyboardInterrupt when it would be ignored or left to the C default (rclpy's own
    handler, installed later, replaces this one and chains to it)."""
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run_entry(module: str, prog: str, interrupted_status: int = 0) -> int:
    """Import `module` and return its `main()`, with SIGINT taken first; `interrupted_status` when a
    SIGINT comes while the module is imported, or later where `main` leaves it uncaught (nodes: 0, as for
    any SIGINT that stops them)."""
    take_sigint()
    try:
        main = importlib.import_module(module).main
    except KeyboardInterrupt:
        print(f"{prog}: interrupted while starting", file=sys.stderr)
        return interrupted_status
    try:
        return main()
    except KeyboardInterrupt:  # e.g. while banet-vo-run opens the bag, before its own handling begins
        print(f"{prog}: interrupted", file=sys.stderr)
        return interrupted_status


def vo_node() -> int:
    return run_entry("banet_vo.ros.vo_node", "banet_vo")


def vo_lifecycle_node() -> int:
    return run_entry("banet_vo.ros.vo_lifecycle", "banet_vo")


def banet_vo_run() -> int:
    return run_entry("banet_vo.ros.run", "banet-vo-run", INTERRUPTED_STATUS)


def banet_vo_play() -> int:
    return run_entry("banet_vo.ros.bag_player", "banet-vo-play")
