"""imatching_node's console entry point, light on purpose (banet_vo.ros.entry says why: SIGINT is taken
before torch is imported)."""

from __future__ import annotations

from banet_vo.ros.entry import run_entry


def imatching_node() -> int:
    return run_entry("imatching_online.ros.node", "imatching_node")
