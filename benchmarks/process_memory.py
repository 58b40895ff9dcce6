"""This process's memory as Linux reports it (/proc/self/status), for the benchmarks that track it."""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path


def proc_status_mb(key: str = "VmRSS") -> float:
    """A /proc/self/status memory field (VmRSS: resident now, VmHWM: its peak) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{key} not in /proc/self/status")


class _MallInfo2(ctypes.Structure):
    # glibc's struct mallinfo2, in order: ten size_t fields
    _FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(name, ctypes.c_size_t) for name in _FIELDS.split()]


def malloc_in_use_mb() -> float | None:
    """MiB glibc's malloc has handed out and not had back (mallinfo2: uordblks + hblkhd, every arena), or
    None without glibc >= 2.33. Resident memory also counts freed heap that glibc keeps for later; this
    does not, so a leak of malloc'd memory (numpy, torch, C++ libraries) shows here and a fragmented but
    flat heap does not. Python's small objects come from pymalloc's own mmap'd arenas: not counted here
    (tracemalloc sees them)."""
    name = ctypes.util.find_library("c")
    try:
        mallinfo2 = ctypes.CDLL(name).mallinfo2
    except (OSError, AttributeError, TypeError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return (info.uordblks + info.hblkhd) / (1024.0 * 1024.0)
