"""This process's memory as Linux reports it (/proc/self/status), for the benchmarks that track it."""

from __future__ import annotations

from pathlib import Path


def proc_status_mb(key: str = "VmRSS") -> float:
    """A /proc/self/status memory field (VmRSS: resident now, VmHWM: its peak) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{key} not in /proc/self/status")
