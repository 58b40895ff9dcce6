"""Where a monocular trajectory loses its scale: the length of each keyframe-to-keyframe stretch of an
estimated trajectory over the true length of the same stretch. No ROS here (benchmarks/scale_profile.py is
the CLI).

A map whose scale drifts gradually shows a slowly falling ratio; one that loses it in events shows short
stretches far below the level around them, after which the level stays lower. Sim(3) ATE cannot tell the two
apart, and they call for different fixes (docs/frontend.md, step 6).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from banet_vo.evaluation.real_clips import MATCH_TOLERANCE_S
from banet_vo.evaluation.trajectory import nearest_stamps

# A stretch this far below the level of the stretches before it is an event.
EVENT_FRACTION = 0.5
# Stretches the level before and after an event is the median of.
LEVEL_SPAN = 5


@dataclass(frozen=True)
class ScaleProfile:
    """Per keyframe stretch: the stamps it spans, its true length (m) and its length ratio relative to the
    median ratio of the first LEVEL_SPAN stretches in which the estimate moved (1: the scale the
    trajectory started with; 0: a stretch the estimate stood still over). When the estimate never moves,
    every ratio is 0 and there is no event."""

    starts: np.ndarray
    ends: np.ndarray
    true_lengths: np.ndarray
    ratios: np.ndarray
    events: list[tuple[int, int]]  # [first, last] stretch indices of each run of event stretches

    def level(self, first: int, last: int) -> float:
        """Median ratio over stretches first..last (inclusive, clipped to the profile)."""
        part = self.ratios[max(first, 0) : max(last + 1, 0)]
        return float(np.median(part)) if len(part) else float("nan")

    def thirds(self) -> tuple[float, float, float]:
        """The median ratio over each third of the stretches."""
        n = len(self.ratios)
        cuts = [0, n // 3, 2 * n // 3, n]
        return tuple(self.level(cuts[i], cuts[i + 1] - 1) for i in range(3))

    def event_steps(self) -> list[float]:
        """Per event, the level after it over the level before it: the medians of the LEVEL_SPAN stretches
        outside any event nearest to it on each side (NaN where a side has none)."""
        outside = np.ones(len(self.ratios), bool)
        for first, last in self.events:
            outside[first : last + 1] = False
        steps = []
        for first, last in self.events:
            before = np.flatnonzero(outside[:first])[-LEVEL_SPAN:]
            after = last + 1 + np.flatnonzero(outside[last + 1 :])[:LEVEL_SPAN]
            if len(before) and len(after):
                steps.append(float(np.median(self.ratios[after]) / np.median(self.ratios[before])))
            else:
                steps.append(float("nan"))
        return steps


def scale_profile(
    stamps,
    poses,
    gt_stamps,
    gt_poses,
    keyframe_stamps,
    tolerance: float = MATCH_TOLERANCE_S,
) -> ScaleProfile:
    """The profile of camera-to-world `poses` (frames with output, at `stamps`) cut at `keyframe_stamps`.
    A stretch's length is the sum of its frame-to-frame steps, in the estimate and in the ground truth
    alike, so a zig-zag counts the same in both; stretches the truth barely moved (under 1 mm) are left
    out."""
    stamps = np.asarray(stamps, dtype=np.float64).reshape(-1)
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    if len(stamps) != len(poses):
        raise ValueError(f"{len(stamps)} stamps for {len(poses)} poses")
    gt = np.asarray(gt_poses, dtype=np.float64)[nearest_stamps(stamps, gt_stamps, tolerance)]
    ours = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1))]
    truth = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1))]
    cuts = np.flatnonzero(np.isin(stamps, np.asarray(keyframe_stamps, dtype=np.float64)))
    starts, ends, true_lengths, ratios = [], [], [], []
    for a, b in itertools.pairwise(cuts):
        length = truth[b] - truth[a]
        if length < 1e-3:
            continue
        starts.append(stamps[a])
        ends.append(stamps[b])
        true_lengths.append(length)
        ratios.append((ours[b] - ours[a]) / length)
    ratios = np.asarray(ratios, dtype=np.float64)
    # The first level: stretches where the estimate moved (one that stands still at the start, as a
    # pipeline may before its map is made, would put the whole profile over a level of 0).
    reference = np.flatnonzero(ratios > 0)[:LEVEL_SPAN]
    if len(reference):
        ratios = ratios / np.median(ratios[reference])
    return ScaleProfile(
        np.asarray(starts), np.asarray(ends), np.asarray(true_lengths), ratios, _events(ratios, reference)
    )


def _events(ratios: np.ndarray, reference: np.ndarray) -> list[tuple[int, int]]:
    """Runs of stretches under EVENT_FRACTION of the median of the LEVEL_SPAN stretches before the run that
    are in no event (an event's own stretches do not lower the level the next one is judged against). A run
    ends after LEVEL_SPAN stretches: a level that stays under the fraction is the level the event left, and
    the LEVEL_SPAN stretches after such a run are taken as that level, against which the later ones are
    judged. The first level is the `reference` stretches; those up to its last one are not judged."""
    events: list[tuple[int, int]] = []
    outside = [int(i) for i in reference]
    k = outside[-1] + 1 if outside else len(ratios)
    while k < len(ratios):
        before = float(np.median(ratios[outside[-LEVEL_SPAN:]]))
        if ratios[k] < EVENT_FRACTION * before:
            last = k
            while (
                last + 1 < len(ratios)
                and last + 1 - k < LEVEL_SPAN
                and ratios[last + 1] < EVENT_FRACTION * before
            ):
                last += 1
            events.append((k, last))
            k = last + 1
            if last + 1 - events[-1][0] == LEVEL_SPAN:  # the scale stayed down: a new level, not judged
                settled = list(range(k, min(k + LEVEL_SPAN, len(ratios))))
                outside += settled
                k += len(settled)
        else:
            outside.append(k)
            k += 1
    return events
