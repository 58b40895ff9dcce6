"""One window of the iMatching lower level: tracks -> two-view map -> PnP tracking -> robust LM passes.

``solve_window`` never raises for a geometrically bad window: it returns a failed WindowResult with the
reason, and the caller counts it (FailureStats) and skips the training step. Bad *input* (shapes,
frame indices, intrinsics) raises ValueError.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.rigid import invert

from imatching_online.ba.config import WindowConfig
from imatching_online.ba.failures import FailureReason, FailureStats, WindowFailure
from imatching_online.ba.initialise import initialise_map
from imatching_online.ba.multiview import anchored_points, anchored_reprojection_errors, reprojection_errors
from imatching_online.ba.refine import PassStats, refine_window
from imatching_online.ba.refine_gtsam import refine_window_gtsam
from imatching_online.ba.tracking import track_frames
from imatching_online.ba.tracks import ANCHOR, Tracks, build_tracks


@dataclass(frozen=True)
class Observations:
    """Inlier observations of the landmarks (O entries).

    frame, landmark: indices into poses / landmarks; uv (O, 2): the observed pixel; match_id: global
    match id (Tracks.match_pair_index maps it to (pair, index in the caller's arrays)), or -1 for the
    query pixel of the landmark's anchor frame; error_px: reprojection error at the solution.
    """

    frame: np.ndarray
    landmark: np.ndarray
    uv: np.ndarray
    match_id: np.ndarray
    error_px: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)


@dataclass
class WindowResult:
    """Outcome of one window. On failure only success, reason, detail, counts and tracks are meaningful.

    poses: (N, 4, 4) camera-to-window-world T_wc, frame 0 the identity, scale such that the camera
    farthest from frame 0 is at distance 1. landmarks: (L, 3) in that world. landmark_anchor /
    landmark_query: the frame and query id defining each landmark (it lies on that query pixel's ray);
    landmark_track: its row in ``tracks``. match_inliers: {(a, b): (M,) bool} in the caller's order.
    """

    success: bool
    reason: FailureReason | None = None
    detail: str = ""
    poses: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    landmark_anchor: np.ndarray | None = None
    landmark_query: np.ndarray | None = None
    landmark_track: np.ndarray | None = None
    observations: Observations | None = None
    match_inliers: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    initial_cost: float = float("nan")  # robust cost of the initial map (first LM pass, before)
    final_cost: float = float("nan")  # robust cost after the last LM pass
    rms_px: float = float("nan")  # RMS reprojection error of the inlier matched observations
    passes: list[PassStats] = field(default_factory=list)
    init_pair: tuple[int, int] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    tracks: Tracks | None = None

    @property
    def num_inlier_matches(self) -> int:
        return int(sum(m.sum() for m in self.match_inliers.values()))


def checked_camera(camera) -> PinholeCamera:
    """`camera` itself when it is a PinholeCamera (host intrinsics have one type: docs/CONVENTIONS.md);
    ValueError otherwise, so a bare K cannot be mistaken for its inverse or transpose."""
    if not isinstance(camera, PinholeCamera):
        raise ValueError(f"camera must be a banet_vo PinholeCamera, got {type(camera).__name__}")
    return camera


def solve_window(
    camera: PinholeCamera, matches: Mapping, num_frames: int | None = None, config: WindowConfig | None = None
) -> WindowResult:
    """Bundle-adjust one window from pairwise matches {(a, b): PairMatches | (uv_a, uv_b[, conf[, ids]])}.

    num_frames defaults to config.window_size. `camera` holds the intrinsics of every frame.
    """
    config = WindowConfig() if config is None else config
    if not isinstance(config, WindowConfig):
        raise ValueError(f"config must be a WindowConfig, got {type(config).__name__}")
    num_frames = config.window_size if num_frames is None else num_frames
    camera = checked_camera(camera)
    t0 = time.perf_counter()
    tracks = build_tracks(matches, num_frames, config.min_confidence)
    usable = int((tracks.match_id >= 0).sum())
    counts = {"matches": tracks.num_matches, "usable_matches": usable, "tracks": tracks.num_tracks}
    timings: dict[str, float] = {}
    try:
        init = initialise_map(tracks, camera, config)
        counts["init_inliers"] = init.pair.inliers
        timings["initialise_s"] = time.perf_counter() - t0
        T_cw, _, inliers = track_frames(init.T_cw, init.posed, init.points, tracks, camera, config)
        timings["tracking_s"] = time.perf_counter() - t0 - timings["initialise_s"]
        T_cw = T_cw @ invert(T_cw[0])  # window world = frame 0
        t1 = time.perf_counter()
        refine = refine_window_gtsam if config.solver == "gtsam" else refine_window
        refined = refine(T_cw, inliers, tracks, camera, config)
        timings["refine_s"] = time.perf_counter() - t1
        result = _assemble(refined, tracks, camera, config, counts, init.pair)
        _check(result, tracks, config)
    except WindowFailure as failure:
        result = WindowResult(False, failure.reason, failure.detail, counts=counts, tracks=tracks)
        if "init_inliers" in counts:
            result.init_pair = (init.pair.i, init.pair.j)
    timings["total_s"] = time.perf_counter() - t0
    result.timings = timings
    return result


def _assemble(
    refined, tracks: Tracks, camera: PinholeCamera, config: WindowConfig, counts, pair
) -> WindowResult:
    act = np.flatnonzero(refined.active)
    if refined.points is not None:  # the solver's own 3-D landmarks (its optimum)
        X = refined.points[act]
        err = reprojection_errors(refined.T_cw, X, tracks.uv[act], camera)[0]
    else:
        X = anchored_points(refined.T_cw, tracks.uv[act], tracks.anchor[act], refined.rho[act], camera)
        err = anchored_reprojection_errors(
            refined.T_cw, tracks.uv[act], tracks.anchor[act], refined.rho[act], camera
        )
    lm, frame = np.nonzero(refined.inliers[act])
    mid = tracks.match_id[act][lm, frame]
    obs = Observations(frame, lm, tracks.uv[act][lm, frame], mid, err[lm, frame])
    flat = np.zeros(tracks.num_matches, dtype=bool)
    flat[mid[mid != ANCHOR]] = True
    matched_err = obs.error_px[mid != ANCHOR]
    counts = dict(counts)
    counts.update(
        inlier_matches=int(flat.sum()), landmarks=len(act), observations=len(obs),
    )  # fmt: skip
    passes = refined.passes
    return WindowResult(
        True,
        poses=invert(refined.T_cw),
        landmarks=X,
        landmark_anchor=tracks.anchor[act],
        landmark_query=tracks.query_id[act],
        landmark_track=act,
        observations=obs,
        match_inliers=tracks.per_pair(flat),
        initial_cost=passes[0].cost_before if passes else float("nan"),
        final_cost=passes[-1].cost_after if passes else float("nan"),
        rms_px=float(np.sqrt(np.mean(matched_err**2))) if len(matched_err) else float("nan"),
        passes=passes,
        init_pair=(pair.i, pair.j),
        counts=counts,
        tracks=tracks,
    )


def _check(result: WindowResult, tracks: Tracks, config: WindowConfig) -> None:
    """Final acceptance: enough landmarks, every frame still observed, enough of the matches kept."""
    landmarks = result.counts["landmarks"]
    if landmarks < config.min_landmarks:
        raise WindowFailure(
            FailureReason.TOO_FEW_LANDMARKS,
            f"{landmarks} landmarks survived pruning < {config.min_landmarks}",
        )
    per_frame = np.bincount(result.observations.frame, minlength=tracks.num_frames)
    weakest = int(per_frame.argmin())
    if per_frame[weakest] < config.min_frame_inliers:
        raise WindowFailure(
            FailureReason.TOO_FEW_INLIERS,
            f"frame {weakest} keeps {per_frame[weakest]} inlier observations < {config.min_frame_inliers}",
        )
    usable = max(result.counts["usable_matches"], 1)
    ratio = result.counts["inlier_matches"] / usable
    if ratio < config.min_inlier_ratio:
        raise WindowFailure(
            FailureReason.TOO_FEW_INLIERS, f"inlier ratio {ratio:.2f} < {config.min_inlier_ratio}"
        )


class WindowBundleAdjuster:
    """solve_window with a fixed config and the running FailureStats of a stream."""

    def __init__(self, camera: PinholeCamera | None, config: WindowConfig | None = None) -> None:
        self.camera = None if camera is None else checked_camera(camera)  # None: set before the first call
        self.config = WindowConfig() if config is None else config
        self.stats = FailureStats()

    def __call__(self, matches: Mapping, num_frames: int | None = None) -> WindowResult:
        if self.camera is None:
            raise ValueError("WindowBundleAdjuster: no camera yet (set .camera first)")
        result = solve_window(self.camera, matches, num_frames, self.config)
        self.stats.record(result.success, result.reason)
        return result
