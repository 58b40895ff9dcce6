"""Optical flow between keyframes (tracking.between_keyframes flow) and the mapping thread that makes
keyframes beside it (tracking.mapping background), for the keyframe odometry. Both are opt-in: by
default every frame is located by XFeat and its matches. No ROS here."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from banet_vo.frontend import flow, match_mutual, solve_absolute_pose
from banet_vo.frontend.solvers import project
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.rigid import invert
from banet_vo.odometry.estimator import PreparedFrame
from banet_vo.odometry.keyframe_banet import estimate_or_error
from banet_vo.odometry.keyframes import Keyframe, logger
from banet_vo.odometry.pipeline import TRACKED, FrameResult, same_intrinsics


@dataclass
class FlowTracks:
    """The landmarks the last located frame saw, for optical flow into the next frame
    (tracking.between_keyframes flow)."""

    gray: np.ndarray  # (H, W) uint8 of that frame
    pixels: np.ndarray  # (M, 2) where it saw them
    landmarks: np.ndarray  # (M,) their ids
    at_keyframe: np.ndarray  # (M, 2) where the newest keyframe saw them (NaN: not observed there)


@dataclass
class MappingJob:
    """A keyframe being made in the mapping thread (tracking.mapping background)."""

    frame: PreparedFrame
    gray: np.ndarray  # (H, W) uint8 of the frame, to follow its new landmarks into later frames
    T_wc: np.ndarray  # the frame's pose by optical flow (map), PnP's starting point
    last: Keyframe  # the newest keyframe when it was asked for: the new one's predecessor
    recent: list[Keyframe]  # the keyframes its keypoints are matched to, newest first
    future: Future  # -> (its Features, matches to each of `recent`, BA-Net's estimate or the error)


def map_keyframe(extractor, estimator, image, pixels, recent, min_cosine, frame, prev, seed):
    """The mapping thread's part of a keyframe; it reads no odometry state (what it needs is passed).
    `estimator` None: BA-Net does not run on it (tracking.banet_min_interval), the estimate is None."""
    features = extractor.extract(image, keep_image=True, max_pixels=pixels[0], min_pixels=pixels[1])
    matches = [match_mutual(kf_features, features, min_cosine) for kf_features in recent]
    estimate = None if estimator is None else estimate_or_error(estimator, frame, prev, seed)
    return features, matches, estimate


class FlowMappingMixin:
    """KeyframeOdometry's optical-flow tracking and mapping thread. Owns `_flow` (the tracks the next frame
    follows), `_mapping_job`, `_mapping_pool` and `_mapping_failed` (a keyframe the thread was asked for
    was dropped; the next keyframe clears it); locates frames with the odometry's PnP and publishes them
    through its _after_pose, and adds the mapping thread's keyframes through _insert_keyframe."""

    def _submit_mapping(
        self, frame: PreparedFrame, gray: np.ndarray, image: np.ndarray, T_wc: np.ndarray, last: Keyframe
    ) -> None:
        """Start making the frame a keyframe in the mapping thread: XFeat, its matching to the newest
        keyframes and BA-Net on (it, the newest keyframe), seeded with the flow's pose."""
        if self._mapping_pool is None:
            self._mapping_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="banet_vo_mapping")
        t = self.tracking
        recent = self._keyframes[::-1][: t.track_keyframes]
        banet = self._banet_due(frame.stamp)
        future = self._mapping_pool.submit(
            map_keyframe,
            self.extractor,
            self.estimator if banet else None,
            image.copy(),  # the caller may reuse its buffer
            self._feature_pixels,
            [kf.features for kf in recent],
            t.min_cosine,
            *self._banet_inputs(frame, last.prepared),
            self._banet_seed(T_wc, last),
        )
        self._mapping_job = MappingJob(frame, gray, T_wc.copy(), last, recent, future)

    def _merge_mapping(self, wait: bool = False, follow: bool = True) -> None:
        """Add the keyframe the mapping thread made, once its work is back and (keyframe_join solved) no
        window BA solves (it joins a solved window; `wait`: now, waiting for both). Its pose is PnP's on
        its own keypoints; its landmarks are then followed by optical flow into the last located frame
        (`follow` false: the caller's frame sets the tracks afresh)."""
        job = self._mapping_job
        if job is None or (not wait and not job.future.done()):
            return
        if not wait:
            self._merge_background_ba()
            if self._ba_job is not None and self.tracking.keyframe_join == "solved":
                return
        self._mapping_job = None
        try:
            features, matched, estimate = job.future.result()
        except (RuntimeError, ValueError) as err:
            self._drop_mapping(job, f"XFeat failed: {err}")
            return
        if not self._keyframes or self._keyframes[-1] is not job.last:
            self._drop_mapping(job, "the map changed while it was made")
            return
        solved, _ = self._pnp(job.recent, features, job.T_wc, matched)
        matches = matched[0]  # to the newest keyframe
        if solved is None:
            self._drop_mapping(job, "PnP failed on its keypoints")
            return
        T_wc, tracked, _, _ = solved
        kf = self._insert_keyframe(job.frame, features, job.last, T_wc, matches, tracked)
        self.stats.keyframes_mapped += 1
        if self._ba_job is not None and kf.id in self._ba_job.poses:
            kf.unmeasured = True  # measured on its solved landmarks
        self._take_banet(kf, job.last, estimate)
        if follow:
            self._follow_new_landmarks(kf, job.gray)

    def _drop_mapping(self, job: MappingJob, why: str) -> None:
        """A keyframe the thread was asked for is not added: the next keyframe the flow asks for is made in
        line (XFeat on that frame), so that a thread that keeps failing cannot starve the map."""
        self.stats.mapping_dropped += 1
        self._mapping_failed = True
        logger.warning("keyframe from the frame at %.6f s not added: %s", job.frame.stamp, why)

    def _follow_new_landmarks(self, kf: Keyframe, gray_kf: np.ndarray) -> None:
        """The flow's tracks after a keyframe made in the mapping thread: every landmark the keyframe saw
        followed from where it saw it (its keypoint) into the last located frame, each started where that
        frame's pose projects it, so that the tracks start afresh at each keyframe, as after one made inline
        (an LK track followed on across keyframes drifts); a landmark it did not see, or that is lost on
        the way, keeps its track."""
        tracks = self._flow
        if tracks is None or not self._map_history or tracks.gray.shape != gray_kf.shape:
            return
        seen = kf.landmarks >= 0
        kf_pixels, kf_ids = kf.features.keypoints[seen], kf.landmarks[seen]
        followed = np.zeros((0, 2))
        ok = np.zeros(0, dtype=bool)
        if len(kf_ids):
            X = np.stack([self._points[int(lm)] for lm in kf_ids])
            guess = self._seen_at(invert(self._map_history[-1][1]), X, kf_pixels)
            followed, ok = flow.follow(gray_kf, tracks.gray, kf_pixels, guess)
        keep = ~np.isin(tracks.landmarks, kf_ids[ok])
        kept_at_keyframe = np.full((int(keep.sum()), 2), np.nan)
        _, mine, theirs = np.intersect1d(
            tracks.landmarks[keep], kf_ids, assume_unique=True, return_indices=True
        )
        kept_at_keyframe[mine] = kf_pixels[theirs]
        self._flow = FlowTracks(
            tracks.gray,
            np.concatenate([tracks.pixels[keep], followed[ok]]),
            np.concatenate([tracks.landmarks[keep], kf_ids[ok]]),
            np.concatenate([kept_at_keyframe, kf_pixels[ok]]),
        )

    def _flow_ready(self, camera: PinholeCamera, gray: np.ndarray) -> bool:
        """Whether this frame can be followed by optical flow from the last located one: a built map, the
        same camera, and tracks left (none after a failed frame, a gap or a new map)."""
        tracks = self._flow
        return (
            tracks is not None
            and self._initialised
            and self._camera is not None
            and tracks.gray.shape == gray.shape
            and same_intrinsics(camera, self._camera, self.config.intrinsics_tolerance)
        )

    def _track_by_flow(self, frame: PreparedFrame, gray: np.ndarray, image: np.ndarray) -> FrameResult | None:
        """The frame located by PnP on the landmarks optical flow followed from the last located frame;
        None (nothing changed) when too few were followed, PnP fails, or the pose asks for a keyframe
        (_keyframe_due, and not deferred): then XFeat decides, as for any frame. With tracking.mapping
        background, a keyframe asked for is made in the mapping thread instead (unless one is in the
        making), and this frame is published from the flow's pose."""
        self._merge_background_ba()
        t, tracks = self.tracking, self._flow
        alive = np.isin(tracks.landmarks, np.fromiter(self._points, np.int64, len(self._points)))
        ids, at_keyframe = tracks.landmarks[alive], tracks.at_keyframe[alive]
        if len(ids) < t.min_tracked:
            return None
        X = np.stack([self._points[int(lm)] for lm in ids])
        guess = self._predict_map(frame.stamp)
        start = tracks.pixels[alive]
        init = None
        if self.config.motion_prior:
            # Each landmark's flow starts where the predicted pose sees it: the search covers the
            # prediction's error, not the whole motion (fast turns, near points at speed).
            init = invert(guess)
            start_guess = self._seen_at(init, X, start)
        else:
            start_guess = None
        pixels, ok = flow.follow(tracks.gray, gray, start, start_guess)
        pixels, ids, at_keyframe, X = pixels[ok], ids[ok], at_keyframe[ok], X[ok]
        if len(ids) < t.min_tracked:
            return None
        sol = solve_absolute_pose(pixels, X, self._camera, t.pnp_max_px * self._px, init, t.ransac_seed)
        if sol is None or sol.inliers.sum() < t.min_tracked:
            return None
        inl = sol.inliers
        T_wc = invert(sol.T_cam_world)
        last = self._keyframes[-1]
        seen = inl & np.isfinite(at_keyframe[:, 0])
        if self._keyframe_due(last, at_keyframe[seen], pixels[seen], T_wc, int(inl.sum())):
            if t.mapping == "inline":
                if not self._defer_keyframe(last, int(inl.sum())):
                    return None
            # PTAM's split: a located frame is published, the keyframe asked of the mapping thread. (Sending
            # frames with few of the keyframe's landmarks to XFeat inline fired on most HoloLens frames, since
            # LK follows fewer of them than XFeat re-finds: docs/preregistered/mapping_split.txt.)
            elif self._mapping_failed:
                return None  # the thread's last keyframe was dropped: XFeat makes this one in line
            elif self._mapping_job is None and self._banet_job is None:
                self._submit_mapping(frame, gray, image, T_wc, last)
        self._frame_inlier_ratio = float(inl.mean())
        self._observed = (pixels[inl], ids[inl])
        self._flow = FlowTracks(gray, pixels[inl], ids[inl], at_keyframe[inl])
        cov = self._pnp_covariance(T_wc, X[inl], pixels[inl])
        self.stats.flow_tracked += 1
        return self._after_pose(frame, T_wc, cov, new_keyframe=None)

    def _seen_at(self, T_cw: np.ndarray, X: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        """Where a camera at T_cw sees the points X (N, 2 pixels); `fallback`'s pixel for a point behind
        it or off its image."""
        predicted, z = project(T_cw, X, self._camera)
        w, h = self._camera.size
        usable = (z > 0) & np.isfinite(predicted).all(axis=1)
        usable &= (predicted[:, 0] >= 0) & (predicted[:, 0] <= w - 1)
        usable &= (predicted[:, 1] >= 0) & (predicted[:, 1] <= h - 1)
        return np.where(usable[:, None], predicted, fallback)

    def _tracks_after(self, result: FrameResult, gray: np.ndarray) -> FlowTracks | None:
        """What the next frame's optical flow starts from after a frame XFeat located: a new keyframe's
        landmarks, or the landmarks PnP found in this frame; None after a frame with no map pose."""
        if result.status != TRACKED or not self._initialised or not self._keyframes:
            return None
        last = self._keyframes[-1]
        seen = last.landmarks >= 0
        kf_pixels, kf_ids = last.features.keypoints[seen], last.landmarks[seen]
        if result.is_keyframe:
            return FlowTracks(gray, kf_pixels.copy(), kf_ids.copy(), kf_pixels.copy())
        if self._observed is None:
            return None
        pixels, ids = self._observed
        at_keyframe = np.full((len(ids), 2), np.nan)
        # both hold each landmark once (a keyframe at one keypoint, PnP inliers distinct)
        _, mine, theirs = np.intersect1d(ids, kf_ids, assume_unique=True, return_indices=True)
        at_keyframe[mine] = kf_pixels[theirs]
        return FlowTracks(gray, pixels.copy(), ids.copy(), at_keyframe)
