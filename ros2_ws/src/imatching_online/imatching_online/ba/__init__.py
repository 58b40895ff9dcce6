"""Sliding-window bundle adjustment for iMatching (the lower level of the bilevel problem).

Entry points: ``solve_window`` (one window of pairwise matches -> WindowResult) and
``WindowBundleAdjuster`` (the same with a fixed config and running FailureStats). See
docs/imatching-ba.md.
"""

from imatching_online.ba.config import WindowConfig
from imatching_online.ba.failures import FailureReason, FailureStats
from imatching_online.ba.tracks import ANCHOR, PairMatches, Tracks, build_tracks
from imatching_online.ba.window import Observations, WindowBundleAdjuster, WindowResult, solve_window

__all__ = [
    "ANCHOR",
    "FailureReason",
    "FailureStats",
    "Observations",
    "PairMatches",
    "Tracks",
    "WindowBundleAdjuster",
    "WindowConfig",
    "WindowResult",
    "build_tracks",
    "solve_window",
]
