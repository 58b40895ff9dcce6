"""What the banet_vo node reports besides its outputs: the per-frame ~/status and the windowed counters
of /diagnostics (docs/node.md).

No custom message can be built on the pip install, so the tracking state travels as a
diagnostic_msgs/DiagnosticStatus with key/values. /diagnostics reports counter increases over a sliding
window next to the totals, so one dropped frame makes it WARN for one window, not for ever.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from banet_vo.geometry.rigid import pose_matrix as _pose_matrix
from banet_vo.odometry import FAILED, INITIALISING, LOST, FrameResult
from banet_vo.odometry.tracking_config import LIVE_BANET_MIN_INTERVAL


def tracking_status(
    name: str,
    hardware_id: str,
    result: FrameResult,
    stamp_s: float,
    config: Any,
    model: str,
    matcher_version: int | None = None,
) -> DiagnosticStatus:
    """~/status for one processed frame: level WARN when lost (with why), OK otherwise. `config` is the
    OdometryConfig in use (frontend, scale source when the result does not say); `matcher_version` the
    front end's matcher weights (0: those it started with; None: no matcher, frontend none)."""
    if result.status == FAILED and not result.waiting:
        state, message = LOST, f"{LOST}: {result.message}"
    elif result.status == FAILED:  # no map yet: the pipeline's own words ("initialising: parallax ...")
        state, message = result.state or INITIALISING, result.message or INITIALISING
    else:
        state = message = result.state or INITIALISING
    status = DiagnosticStatus(
        level=DiagnosticStatus.WARN if state == LOST else DiagnosticStatus.OK,
        name=name,
        message=message,
        hardware_id=hardware_id,
    )
    values = {
        "state": state,
        "frame": result.status,
        "stamp": f"{stamp_s:.9f}",
        "scale_source": result.scale_source or config.scale_source,
        "keyframes": str(result.keyframes),
        "scale_measurements": str(result.scale_measurements),
        "scale_last_ratio": f"{result.scale_last_ratio:.3f}",
        "scale_spread": f"{result.scale_spread:.3f}",
        "trajectory_id": str(result.trajectory_id),
        "frontend": config.frontend,
        "model": Path(model).name,
    }
    if matcher_version is not None:
        values["matcher_version"] = str(matcher_version)
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    return status


class CounterWindow:
    """Increases of counters over the last `window_s` seconds, from totals sampled at each report."""

    def __init__(self, start: float) -> None:
        self._samples: collections.deque[tuple[float, Mapping[str, float]]] = collections.deque([(start, {})])

    def update(
        self, now: float, totals: Mapping[str, float], window_s: float, keys: Iterable[str], rate_key: str
    ) -> dict[str, float]:
        """{recent_<key>: increase} over the window (or since start when younger), `rate_hz` of
        `rate_key` over it and `window_s`, the span actually covered."""
        self._samples.append((now, dict(totals)))
        while len(self._samples) > 1 and self._samples[1][0] <= now - window_s:
            self._samples.popleft()
        t0, old = self._samples[0]
        recent = {f"recent_{k}": totals.get(k, 0) - old.get(k, 0) for k in keys}
        span = now - t0
        recent["rate_hz"] = (totals.get(rate_key, 0) - old.get(rate_key, 0)) / span if span > 0 else 0.0
        recent["window_s"] = span
        return recent


# When the node has dropped this share of the frames it received (after this many), and the live setting is
# not on, it says once how to keep up (README, "live"; docs/node.md). Live on 2 CPU cores the default
# (window BA in line) processed 2.4-3 frames/s of a 10 Hz camera; background_ba 1.9-2.7x that, and BA-Net
# at most every 0.5 s 1.05-1.25x more (docs/preregistered/live_default_vs_background.txt,
# banet_min_interval.txt, omp_passive_live.txt's guard).
LIVE_ADVICE_MIN_FRAMES = 30
LIVE_ADVICE_DROPPED_SHARE = 0.25


def live_setting_advice(received: int, dropped: int, config: Any) -> str | None:
    """The one-time hint for a node that does not keep up with its camera: which of the live setting's
    parameters (background_ba, tracking_banet_min_interval) to set, or None (too few frames yet, few
    dropped, the setting already on, or BA-Net alone, frontend none, which has neither)."""
    if config.frontend != "xfeat" or received < LIVE_ADVICE_MIN_FRAMES:
        return None
    if dropped < LIVE_ADVICE_DROPPED_SHARE * received:
        return None
    missing = []
    if not config.background_ba:
        missing.append("background_ba:=true")
    if not config.tracking.banet_min_interval > 0:
        missing.append(f"tracking_banet_min_interval:={LIVE_BANET_MIN_INTERVAL:g}")
    if not missing:
        return None
    return (
        f"dropped {dropped} of the {received} frames received ({100 * dropped / received:.0f} %): the node "
        f"does not keep up with this camera. For a live camera on a CPU, set {' '.join(missing)} (settable "
        "at run time): on 2 CPU cores the live setting processed about 2-3x the frames/s of the default "
        "(README, live; docs/node.md)"
    )


def pose_matrix(pose: Any) -> np.ndarray:
    """4x4 of a geometry_msgs/Pose; ValueError for a non-unit quaternion or a non-finite position."""
    q, p = pose.orientation, pose.position
    quat = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    if not np.all(np.isfinite(quat)) or not abs(np.linalg.norm(quat) - 1.0) < 1e-3:
        raise ValueError(f"orientation must be a unit quaternion, got {quat.tolist()}")
    T = _pose_matrix([p.x, p.y, p.z], quat)
    if not np.all(np.isfinite(T)):
        raise ValueError("position must be finite")
    return T
