"""Where the time goes: the odometry's stages wrapped with wall-clock timers, per thread.

`timed_stages(times)` wraps each stage's function for the duration of a `with` block (every caller in the
process, any thread) and puts every original back after it. `banet-vo-run --profile` uses it live, where
the inference thread, the mapping and BA-Net threads (tracking_mapping, background_banet) share the CPU;
benchmarks.frame_profile offline. No ROS here.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np

# Stage → (module path, attribute, method name or None for a module-level function). The keyframe odometry
# calls the module-level functions through its own modules' namespaces (keyframe_vo for the map's start,
# keyframe_tracking for tracking, keyframe_flow for the flow and the mapping thread), so they are wrapped
# there: a tuple of module paths wraps each.
_VO, _TRACKING, _FLOW = (
    f"banet_vo.odometry.{name}" for name in ("keyframe_vo", "keyframe_tracking", "keyframe_flow")
)
STAGES = {
    "XFeat extraction": ("banet_vo.frontend.xfeat", "XFeatExtractor", "extract"),
    "descriptor matching": ((_VO, _TRACKING, _FLOW), "match_mutual", None),
    "PnP RANSAC": ((_TRACKING, _FLOW), "solve_absolute_pose", None),
    "5-point RANSAC": ((_VO, _TRACKING), "solve_relative_pose", None),
    "optical flow": ("banet_vo.frontend.flow", "follow", None),
    "window BA": ("banet_vo.backend.window_ba", "WindowBundleAdjuster", "solve"),
    # With background_ba the solve runs in a worker process; what the odometry pays is taking its result,
    # which includes waiting for it when a keyframe joins a window still being solved.
    "background window BA (take / wait)": ("banet_vo.backend.background", "BackgroundBundleAdjuster", "poll"),
    "BA-Net on keyframe pairs": ("banet_vo.odometry.estimator", "BANetEstimator", "estimate"),
}
# The whole of a frame, timed when asked for: either front end's process().
FRAME = "one frame in all (process)"
FRAME_TARGETS = (
    ("banet_vo.odometry.keyframe_vo", "KeyframeOdometry", "process"),
    ("banet_vo.odometry.pipeline", "VisualOdometry", "process"),
)


class StageTimes:
    """Wall-clock seconds of each call, by stage and thread (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], list[float]] = defaultdict(list)

    def record(self, stage: str, seconds: float, thread: str | None = None) -> None:
        thread = threading.current_thread().name if thread is None else thread
        with self._lock:
            self._calls[(stage, thread)].append(float(seconds))

    def totals(self) -> dict[str, float]:
        """Seconds per stage, all threads together."""
        out: dict[str, float] = defaultdict(float)
        with self._lock:
            for (stage, _), calls in self._calls.items():
                out[stage] += sum(calls)
        return dict(out)

    def summary(self) -> list[dict]:
        """One row per (stage, thread) with calls: calls, total_s, median_ms, p90_ms; the stages in
        STAGES' order, each thread's rows by total time."""
        order = [FRAME, *STAGES]
        with self._lock:
            items = [(key, np.asarray(calls)) for key, calls in self._calls.items() if calls]
        rank = {stage: i for i, stage in enumerate(order)}
        items.sort(key=lambda item: (rank.get(item[0][0], len(order)), -item[1].sum()))
        return [
            {
                "stage": stage,
                "thread": thread,
                "calls": len(calls),
                "total_s": float(calls.sum()),
                "median_ms": float(np.median(calls) * 1e3),
                "p90_ms": float(np.percentile(calls, 90) * 1e3),
            }
            for (stage, thread), calls in items
        ]


def _expand(targets):
    """(stage, owner, attribute name) for each (stage, (module path or paths, attribute, method)) target."""
    for stage, (modules, attr, method) in targets:
        for module_name in (modules,) if isinstance(modules, str) else modules:
            module = importlib.import_module(module_name)
            yield (stage, getattr(module, attr), method) if method else (stage, module, attr)


@contextmanager
def timed_stages(times: StageTimes, frame: bool = False):
    """Wrap every stage (and, with `frame`, the whole of process()) with a timer recording into `times`;
    every original is restored on exit, also when the block raises."""
    targets = [*STAGES.items(), *((FRAME, target) for target in (FRAME_TARGETS if frame else ()))]
    saved = []
    try:
        for stage, owner, name in _expand(targets):
            original = getattr(owner, name)

            def wrapper(*args, _original=original, _stage=stage, **kwargs):
                started = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    times.record(_stage, time.perf_counter() - started)

            setattr(owner, name, wrapper)
            saved.append((owner, name, original))
        yield times
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def format_summary(rows: list[dict], frames: int) -> list[str]:
    """Text lines: per stage and thread, the calls, median and total time, and the total per processed
    frame (`frames`); the whole frame's row first when it was timed."""
    lines = []
    for r in rows:
        per_frame = 1e3 * r["total_s"] / frames if frames else float("nan")
        lines.append(
            f"  {r['stage']:<36s} {r['thread']:<26s} {r['calls']:5d} calls  median {r['median_ms']:7.1f} ms  "
            f"p90 {r['p90_ms']:7.1f} ms  total {r['total_s']:6.2f} s  ({per_frame:6.1f} ms per frame)"
        )
    return lines
