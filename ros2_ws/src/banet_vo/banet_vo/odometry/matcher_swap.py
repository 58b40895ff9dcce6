"""New matcher weights for the running front end (an XFeat that imatching_online adapted on the same
camera), taken between frames and guarded twice. No ROS here.

- **Update:** a JSON text {"path": matcher checkpoint, "version": int} (MatcherUpdate), what
  imatching_node publishes after each save and banet_vo's node receives; the weights are loaded with
  banet_vo.frontend.xfeat.load_weights.
- **Held-back check, before the swap:** the window's keyframes, whose poses the window BA has solved, get
  keypoints and descriptors from the new weights; their consecutive pairs are matched with the current
  and with the new features, and the matches are scored by their Sampson distance to those poses. The
  new weights are refused when their epipolar inliers fall more than `tolerance` (relative) below the
  current ones'. Taken, they describe the keyframes again at their own keypoints, so landmarks stay
  attached and old and new descriptors are never compared.
- **Trial, after the swap:** the PnP inlier ratio of the next `trial_frames` frames (a frame that is not
  tracked counts 0) against the mean over the frames before. A drop of more than `tolerance` rolls the
  weights back.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, replace

import numpy as np
import torch

from banet_vo.config_fields import check_keys, json_object
from banet_vo.frontend.solvers import sampson_distance_px
from banet_vo.frontend.xfeat import Features, match_mutual
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.rigid import invert
from banet_vo.odometry.keyframes import logger


@dataclass(frozen=True)
class MatcherUpdate:
    """One published matcher version: where its checkpoint lies, its number (increasing within a lineage)
    and its lineage (an id that a new adaptation of the same file gets: its versions count from 0 again,
    and one could repeat the last version number of the old lineage; "" from writers before it)."""

    path: str
    version: int
    lineage: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {"path": self.path, "version": self.version, "lineage": self.lineage}, sort_keys=True
        )

    @classmethod
    def from_json(cls, text: str) -> MatcherUpdate:
        """ValueError, saying what is wrong, for anything but {"path": non-empty str, "version": int >= 0}
        and an optional "lineage" str."""
        data = json_object(text, "matcher update")
        check_keys(data, cls, "matcher update")
        path, version, lineage = data.get("path"), data.get("version"), data.get("lineage", "")
        if not isinstance(path, str) or not path:
            raise ValueError(f"matcher update needs a non-empty string 'path', got {path!r}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValueError(f"matcher update needs an integer 'version' >= 0, got {version!r}")
        if not isinstance(lineage, str):
            raise ValueError(f"matcher update 'lineage' must be a string, got {lineage!r}")
        return cls(path, version, lineage)


@dataclass(frozen=True)
class HeldBackScore:
    """Mutual matches over the held-back keyframe pairs, and how many of them fit the solved poses."""

    matches: int
    inliers: int

    @property
    def ratio(self) -> float:
        return self.inliers / self.matches if self.matches else 0.0

    def __str__(self) -> str:
        return f"{self.inliers}/{self.matches} epipolar inliers"


@dataclass(frozen=True)
class SwapOutcome:
    """What swap_matcher did, and the held-back scores it decided on (None: no solved window yet)."""

    applied: bool
    message: str
    current: HeldBackScore | None = None
    candidate: HeldBackScore | None = None


def held_back_score(
    poses: list[np.ndarray], features: list[Features], camera: PinholeCamera, min_cosine: float, max_px: float
) -> HeldBackScore:
    """Score of one matcher's features (one per keyframe, detected and described by it) on the
    consecutive keyframe pairs, against the keyframes' solved poses T_wc."""
    matches = inliers = 0
    for T_a, T_b, f_a, f_b in zip(poses, poses[1:], features, features[1:], strict=False):
        pairs = match_mutual(f_a, f_b, min_cosine)
        if len(pairs) == 0:
            continue
        dist = sampson_distance_px(
            f_a.keypoints[pairs[:, 0]], f_b.keypoints[pairs[:, 1]], invert(T_b) @ T_a, camera
        )
        matches += len(pairs)
        inliers += int(np.sum(dist < max_px))
    return HeldBackScore(matches, inliers)


def refusal(current: HeldBackScore, candidate: HeldBackScore, tolerance: float) -> str | None:
    """Why the candidate weights are refused (None: they are not)."""
    if candidate.inliers < (1.0 - tolerance) * current.inliers:
        return (
            f"held-back window: {candidate} with the new weights vs {current} with the current ones "
            f"(more than {tolerance:.0%} fewer)"
        )
    return None


class TrackingQuality:
    """The PnP inlier ratio of recent frames, and the trial that follows a swap."""

    def __init__(self, frames: int) -> None:
        self.recent: collections.deque[float] = collections.deque(maxlen=frames)
        self._trial: list[float] | None = None
        self._baseline = float("nan")
        self.previous: tuple[dict[str, torch.Tensor], int] | None = None  # weights and version to go back to

    @property
    def in_trial(self) -> bool:
        return self._trial is not None

    def start_trial(self, previous_state: dict[str, torch.Tensor], previous_version: int) -> None:
        """A swap happened: the next `frames` records decide whether it stays. A swap during a trial keeps
        that trial's baseline and its weights to go back to (the last ones that passed)."""
        if self._trial is None:
            self._baseline = float(np.mean(self.recent)) if self.recent else float("nan")
            self.previous = (previous_state, previous_version)
        self._trial = []
        self.recent.clear()

    def record(self, inlier_ratio: float, tolerance: float) -> str | None:
        """One frame's PnP inlier ratio (0 when not tracked). Returns why the trial failed when it just
        did (the caller rolls back), else None."""
        self.recent.append(float(inlier_ratio))
        if self._trial is None:
            return None
        self._trial.append(float(inlier_ratio))
        if len(self._trial) < self.recent.maxlen:
            return None
        trial, baseline = float(np.mean(self._trial)), self._baseline
        self._trial = None
        if np.isfinite(baseline) and trial < (1.0 - tolerance) * baseline:
            return (
                f"PnP inlier ratio {trial:.3f} over {len(self.recent)} frames after the swap vs "
                f"{baseline:.3f} before (more than {tolerance:.0%} lower)"
            )
        self.previous = None  # the new weights stay
        return None

    def end_trial(self) -> None:
        self._trial = None
        self.previous = None

    def restart(self) -> None:
        """A new trajectory: its first frames (initialisation, no map) have no inlier ratio to compare, so a
        running trial ends with the weights kept (they passed the held-back check), and the next baseline
        starts here."""
        self.end_trial()
        self.recent.clear()


class MatcherSwapMixin:
    """KeyframeOdometry's matcher swaps: new XFeat weights taken between frames after the held-back check,
    rolled back by the trial (`_quality`); the window's keyframes are described again on each change."""

    def swap_matcher(self, state: dict, version: int) -> SwapOutcome:
        """Take new XFeat weights between frames, unless the held-back window says they match worse; a
        trial over the next frames can still roll them back. ValueError (nothing changed) for weights
        that are not XFeat's or not finite."""
        # A keyframe in the making was described with the weights it started with: it joins the map first.
        self._merge_mapping(wait=True)
        previous = self.extractor.state_dict()
        self.extractor.load_state_dict(state)  # checked first: raises with nothing changed
        try:
            current = candidate = None
            if self._initialised and len(self._keyframes) >= 2:
                t = self.tracking
                poses = [kf.T_wc for kf in self._keyframes]
                fresh = [
                    self.extractor.extract_gray(kf.features.gray, scale=kf.features.scale)
                    for kf in self._keyframes
                ]
                current = held_back_score(
                    poses,
                    [kf.features for kf in self._keyframes],
                    self._camera,
                    t.min_cosine,
                    t.pnp_max_px * self._px,
                )
                candidate = held_back_score(poses, fresh, self._camera, t.min_cosine, t.pnp_max_px * self._px)
        except BaseException:
            self.extractor.load_state_dict(previous)
            raise
        if current is not None:
            why = refusal(current, candidate, self.config.matcher_swap_tolerance)
            if why is not None:
                self.extractor.load_state_dict(previous)
                self.stats.matcher_refused += 1
                return SwapOutcome(False, f"matcher version {version} refused: {why}", current, candidate)
            checked = f"held-back window {candidate} vs {current} before"
        else:
            checked = "no solved window to check against yet"
        try:
            self._describe_window()
        except BaseException:
            self.extractor.load_state_dict(previous)
            raise
        self._quality.start_trial(previous, self.matcher_version)
        self.matcher_version = int(version)
        self.stats.matcher_swaps += 1
        return SwapOutcome(True, f"matcher version {version} taken ({checked}); on trial", current, candidate)

    def _describe_window(self) -> None:
        """The window keyframes' descriptors again, at their own keypoints, with the extractor's weights
        (landmarks stay attached; old and new descriptors are never compared)."""
        describe = self.extractor.describe
        described = [
            describe(kf.features.gray, kf.features.keypoints, kf.features.scale) for kf in self._keyframes
        ]
        for kf, descriptors in zip(self._keyframes, described, strict=True):
            kf.features = replace(kf.features, descriptors=descriptors)

    def _rollback_matcher(self, why: str) -> None:
        state, version = self._quality.previous
        current = self.extractor.state_dict()
        self.extractor.load_state_dict(state)
        try:
            self._describe_window()
        except BaseException:  # the window keeps the weights it is described with
            self.extractor.load_state_dict(current)
            raise
        self._quality.end_trial()
        logger.warning("matcher version %d rolled back to %d: %s", self.matcher_version, version, why)
        self.matcher_version = version
        self.stats.matcher_rollbacks += 1
