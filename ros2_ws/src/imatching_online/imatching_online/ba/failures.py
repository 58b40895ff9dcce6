"""Why a window's bundle adjustment was rejected, and counts of rejections for the caller to report.

A failed window is never a training signal: the adaptation step skips it and the node reports the counts.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum


class FailureReason(StrEnum):
    """The first check a window failed, in pipeline order."""

    TOO_FEW_MATCHES = "too_few_matches"  # not enough correspondences in any frame pair to start
    NO_MOTION = "no_motion"  # matched pixels barely move: static camera
    LOW_PARALLAX = "low_parallax"  # pixels move but rays do not separate: pure rotation / far scene
    TOO_FEW_INLIERS = "too_few_inliers"  # essential / PnP / BA left too few consistent matches
    TRACKING_FAILED = "tracking_failed"  # a frame could not be registered against the map (PnP)
    TOO_FEW_LANDMARKS = "too_few_landmarks"  # after pruning short / low-parallax tracks
    COST_NOT_REDUCED = "cost_not_reduced"  # LM could not lower the robust cost of the initial guess


class WindowFailure(Exception):
    """Raised inside the pipeline; solve_window turns it into a failed WindowResult."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class FailureStats:
    """Counts of solved and skipped windows by reason (one object per stream)."""

    def __init__(self) -> None:
        self.windows = 0
        self.successes = 0
        self.failures: Counter[FailureReason] = Counter()

    def record(self, success: bool, reason: FailureReason | None = None) -> None:
        if not success and reason is None:
            raise ValueError("reason must be given for a failed window")
        self.windows += 1
        if success:
            self.successes += 1
        else:
            self.failures[FailureReason(reason)] += 1

    @property
    def failed(self) -> int:
        return self.windows - self.successes

    @property
    def failure_rate(self) -> float:
        return self.failed / self.windows if self.windows else 0.0

    def as_dict(self) -> dict[str, int]:
        """Flat counts, e.g. for diagnostics: windows, successes, failed and one key per reason."""
        out = {"windows": self.windows, "successes": self.successes, "failed": self.failed}
        out.update({reason.value: self.failures.get(reason, 0) for reason in FailureReason})
        return out

    def summary(self) -> str:
        reasons = ", ".join(f"{r.value}={n}" for r, n in self.failures.most_common())
        return f"{self.successes}/{self.windows} windows solved" + (
            f"; skipped: {reasons}" if reasons else ""
        )

    def reset(self) -> None:
        self.__init__()
