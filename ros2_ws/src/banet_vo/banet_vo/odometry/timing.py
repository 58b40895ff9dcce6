"""Stamp bookkeeping shared by the odometry pipelines: what a new frame's stamp means for the trajectory.

A stream's stamps can go wrong in three ways, and each needs a different answer:

- slightly back or repeated (reordering, duplicates): the frame is skipped, nothing else changes;
- far back (a bag loop, a replay restarted): the trajectory restarts;
- far forward (a camera stall, a paused bag, a dropped connection): the motion during the gap is unknown.
  A constant-velocity prediction carried over such a gap invents motion (a fault sweep measured 30 m for a
  10 s gap), so the pipeline starts a new segment instead: it re-anchors at the last pose it published
  and widens that pose's covariance by what the last known velocity could have done during the gap
  (``gap_covariance``). The odom frame stays continuous (REP-105), nothing is extrapolated, and a consumer
  sees from the status and the covariance that the pose is uncertain.

`StampGate` classifies stamps and keeps the last one; it holds no pose, so any pipeline can use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from banet_vo.geometry.rigid import invert

__all__ = [
    "BACK_JUMP",
    "FORWARD_GAP",
    "NEW_SEGMENT",
    "OK",
    "OUT_OF_ORDER",
    "StampCheck",
    "StampGate",
    "gap_covariance",
]

# StampCheck.kind
OK = "ok"  # first stamp, or after the last one by at most max_forward_gap
OUT_OF_ORDER = "out_of_order"  # not after the last one, by less than the back-jump threshold: skip it
BACK_JUMP = "back_jump"  # behind the last one by at least the back-jump threshold: restart the trajectory
FORWARD_GAP = "forward_gap"  # after the last one by more than max_forward_gap: start a new segment

# FrameResult.status of the first frame after a forward gap (re-anchored at the last pose, no estimate).
NEW_SEGMENT = "new_segment"


@dataclass(frozen=True)
class StampCheck:
    kind: str  # one of OK, OUT_OF_ORDER, BACK_JUMP, FORWARD_GAP
    previous: float | None  # the last accepted stamp before this one (None for the first)
    gap: float  # stamp - previous in seconds (negative when behind; 0 for the first stamp)
    # previous minus the stamp accepted before it (None until two stamps): whether frames came at the
    # camera's pace before a gap (a stall) or as slowly as the gap itself
    previous_step: float | None = None

    def describe(self) -> str:
        """A sentence for FrameResult.message / logs."""
        if self.kind == FORWARD_GAP:
            return f"new segment after a gap of {self.gap:.3f} s"
        if self.kind == BACK_JUMP:
            return f"time went back {-self.gap:.3f} s (bag loop?)"
        if self.kind == OUT_OF_ORDER:
            return f"stamp is not after the last one ({-self.gap:.9f} s behind)"
        return ""


class StampGate:
    """Classifies each new stamp against the last accepted one.

    ``back_jump`` (s > 0): a stamp at least this far behind the last is a BACK_JUMP, a smaller step back
    (or an equal stamp) is OUT_OF_ORDER. ``max_forward_gap`` (s > 0): a stamp more than this far ahead is a
    FORWARD_GAP. Every kind but OUT_OF_ORDER becomes the new last stamp (a back jump starts the new
    timeline at its stamp).
    """

    def __init__(self, back_jump: float, max_forward_gap: float) -> None:
        for name, value in (("back_jump", back_jump), ("max_forward_gap", max_forward_gap)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"StampGate {name} must be a positive number of seconds, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"StampGate {name} must be finite, got {value!r}")
        self.back_jump = float(back_jump)
        self.max_forward_gap = float(max_forward_gap)
        self.last: float | None = None
        self.last_step: float | None = None  # last - the stamp accepted before it

    def clear(self) -> None:
        """Forget the last stamp (a new trajectory accepts any first stamp)."""
        self.last = None
        self.last_step = None

    def peek(self, stamp: float) -> StampCheck:
        """The classification of ``stamp`` without recording it."""
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"stamp must be finite, got {stamp!r}")
        if self.last is None:
            return StampCheck(OK, None, 0.0)
        gap = stamp - self.last
        if gap <= 0:
            kind = BACK_JUMP if -gap >= self.back_jump else OUT_OF_ORDER
            return StampCheck(kind, self.last, gap, self.last_step)
        return StampCheck(FORWARD_GAP if gap > self.max_forward_gap else OK, self.last, gap, self.last_step)

    def check(self, stamp: float) -> StampCheck:
        """Classify ``stamp`` and, unless it is OUT_OF_ORDER, make it the last stamp."""
        result = self.peek(stamp)
        if result.kind != OUT_OF_ORDER:
            self.last_step = (
                result.gap if result.kind in (OK, FORWARD_GAP) and result.previous is not None else None
            )
            self.last = float(stamp)
        return result


def gap_covariance(
    C_prev: np.ndarray | None, t_prev: float | None, C_last: np.ndarray, t_last: float, gap: float
) -> np.ndarray:
    """6x6 covariance, [ρ, φ] order, of the motion that may have happened during a gap of ``gap`` s.

    The last known velocity (C_prev at t_prev → C_last at t_last) is what a constant-velocity model would
    have turned into motion; here it becomes uncertainty instead: σ_translation = speed · gap and
    σ_rotation = angular speed · gap (capped at π, beyond which an angle says nothing more). Both blocks
    are isotropic, so the matrix is the same in any axes and can be added to a right- or left-perturbation
    covariance alike. With no earlier pose (or no time between them) the velocity is unknown and the
    result is zero: the caller still re-anchors and says so in the status.
    """
    if not gap >= 0:
        raise ValueError(f"gap must be >= 0, got {gap!r}")
    cov = np.zeros((6, 6))
    if C_prev is None or t_prev is None or not t_last > t_prev:
        return cov
    step = invert(np.asarray(C_prev, dtype=np.float64)) @ np.asarray(C_last, dtype=np.float64)
    dt = t_last - t_prev
    speed = float(np.linalg.norm(step[:3, 3])) / dt
    angular = float(np.linalg.norm(Rotation.from_matrix(step[:3, :3]).as_rotvec())) / dt
    cov[:3, :3] = np.eye(3) * (speed * gap) ** 2
    cov[3:, 3:] = np.eye(3) * min(angular * gap, math.pi) ** 2
    return cov
