"""Where a result came from: which machine and which code version.

One place for the header lines of benchmark results and the metadata of checkpoints, so they all say
the same thing the same way. torch is imported only inside :func:`machine_description` (and only when
asked), so this module stays cheap to import and usable without torch.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

__all__ = ["code_version", "cpu_model", "machine_description"]

CPUINFO = Path("/proc/cpuinfo")


def cpu_model(cpuinfo: str | Path | None = None) -> str:
    """The first ``model name`` in ``cpuinfo`` (default /proc/cpuinfo); else ``platform.processor()``,
    else ``"unknown CPU"`` (no /proc, or an architecture whose cpuinfo has no model name)."""
    try:
        for line in Path(cpuinfo if cpuinfo is not None else CPUINFO).read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _torch_description() -> str:
    try:
        import torch
    except ImportError:
        return "no torch"
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
    return f"{cuda}; torch {torch.__version__}"


def machine_description(*, torch_info: bool = True) -> str:
    """E.g. ``"2 CPUs (nproc), AMD EPYC 7B13; no CUDA; torch 2.13.0+cpu; Python 3.11.7"``.

    ``torch_info=False`` leaves out the CUDA device and torch version (and does not import torch), for
    callers that report torch details of their own."""
    parts = [f"{os.cpu_count()} CPUs (nproc), {cpu_model()}"]
    if torch_info:
        parts.append(_torch_description())
    parts.append(f"Python {platform.python_version()}")
    return "; ".join(parts)


def code_version(path: str | Path | None = None) -> str:
    """``git describe --always --dirty`` of the git tree holding ``path`` (default: this source tree),
    or ``"unknown"`` outside a git checkout or without git."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"
