"""Keyframe visual odometry on real-image features, with BA-Net inside the loop. No ROS here.

Per frame (image, stamp, camera):
1. stamp checks (odometry.timing): a jump back resets, reordering is skipped, and after a forward gap
   the velocity is forgotten and the frame is located against the map as a relocalisation (the map is
   rebuilt at the last pose if that fails), never extrapolated;
2. XFeat keypoints at the camera's own resolution (no squeezing), matched mutually to the last keyframe;
3. before a map exists: 5-point RANSAC against the first keyframe until the matches show enough
   parallax, then the two views are triangulated into the first map (its unit: the first baseline);
4. with a map: the pose from P3P RANSAC on the keyframe's landmarks, seeded with a constant-velocity
   prediction; when that fails, every keyframe of the window is tried (relocalisation); after
   `max_consecutive_failures` the map is rebuilt from the current frame, the published pose going on
   from the last good one (state lost → initialising → relocalised, never a jump);
5. a new keyframe when the rotation-compensated parallax or the loss of tracked landmarks says so: new
   landmarks are triangulated against the previous keyframe and the window of keyframes is bundle
   adjusted (banet_vo.backend, GTSAM, Huber reprojection factors, the two oldest keyframes held);
6. BA-Net runs on (new keyframe, previous keyframe), seeded with the back end's relative pose, and gives
   the keyframe's dense metric depth;
7. the scale (metres per map unit) is measured at each keyframe — from BA-Net's depth at the landmarks
   (`learned`), from the ground plane and `camera_height` (`ground_plane`), or not at all (`none`: the
   first baseline is the unit) — and a running median of it (over the whole trajectory for the noisy
   learned source, the last 15 keyframes for the ground plane) scales each frame's motion.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field, replace

import numpy as np

from banet_vo.backend import WindowBAConfig, WindowBundleAdjuster
from banet_vo.backend.background import BackgroundBundleAdjuster
from banet_vo.frontend import (
    Features,
    XFeatExtractor,
    flow,
    match_mutual,
    solve_relative_pose,
)
from banet_vo.frontend.solvers import MAX_EPIPOLAR_PX, triangulate
from banet_vo.frontend.xfeat import check_image, working_scale
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.frames import (
    adjoint,
    compose_right_covariance,
    right_covariance_to_ros,
    transform_covariance,
)
from banet_vo.geometry.rigid import invert, nearest_rigid
from banet_vo.odometry import timing
from banet_vo.odometry.estimator import PairEstimator, PreparedFrame
from banet_vo.odometry.keyframe_banet import BanetKeyframesMixin
from banet_vo.odometry.keyframe_flow import FlowMappingMixin, FlowTracks, MappingJob
from banet_vo.odometry.keyframe_scale import KeyframeScaleMixin
from banet_vo.odometry.keyframe_tracking import TrackingMixin
from banet_vo.odometry.keyframe_window_ba import WindowBAMixin, WindowJob
from banet_vo.odometry.keyframes import (
    Keyframe,
    backed_up,
    logger,
    median_parallax_deg,
    pose_covariance_px,
    scale_covariance,
)
from banet_vo.odometry.matcher_swap import MatcherSwapMixin, TrackingQuality
from banet_vo.odometry.motion import body_twist, predict_constant_velocity
from banet_vo.odometry.pipeline import (
    CAMERA_CHANGED,
    FAILED,
    INITIALISING,
    INITIALIZED,
    LOST,
    RELATIVE_TO_PREVIOUS,
    RELOCALISED,
    TRACKED,
    TRACKING,
    FrameResult,
    OdometryConfig,
    OdometryStats,
    begin_frame,
    same_intrinsics,
)
from banet_vo.odometry.scale import ScaleFilter
from banet_vo.odometry.timing import StampGate, gap_covariance
from banet_vo.odometry.tracking_config import SMALL_CAMERA_FEATURE_PIXELS, SMALL_CAMERA_PIXELS, TrackingConfig


@dataclass
class _Output:
    """What has been published: the output (metric, odom) pose and the map pose it came from."""

    C: np.ndarray  # camera pose in odom-camera coordinates (C_0 = I), metres
    map_T: np.ndarray | None  # map pose of the same frame (None: no map behind it yet)
    cov: np.ndarray  # right-perturbation covariance of C (optical axes, metres)
    history: list[tuple[float, np.ndarray]] = field(default_factory=list)  # last two (stamp, C)
    # While the pose is held after a loss or a gap: the last two measured outputs and the covariance of the
    # last, from which the motion missed since is grown (held publications must not stand in for them).
    held: tuple | None = None
    holding: bool = False  # the pose about to be published is the held one


class KeyframeOdometry(
    TrackingMixin, WindowBAMixin, BanetKeyframesMixin, KeyframeScaleMixin, FlowMappingMixin, MatcherSwapMixin
):
    """Feature-tracked keyframe odometry with a GTSAM window and BA-Net on keyframe pairs.
    Not thread-safe: call process()/reset() from one thread.

    This class holds the state and runs a frame through initialisation, tracking and the map; the parts
    with a life of their own are mixins over that state, each in its module: the window BA, in line or in
    the background (keyframe_window_ba), BA-Net on keyframe pairs (keyframe_banet), the scale measured at
    each keyframe (keyframe_scale), optical flow between keyframes and the mapping thread (keyframe_flow),
    locating a frame on the map and the keyframe rules (keyframe_tracking), and matcher swaps
    (matcher_swap)."""

    def __init__(
        self,
        estimator: PairEstimator,
        config: OdometryConfig | None = None,
        extractor: XFeatExtractor | None = None,
        window_ba_worker=None,
    ) -> None:
        """`window_ba_worker`: what solves the window BAs with background_ba, with BackgroundBundleAdjuster's
        interface (default: one, a worker process; backend.background.HeldBundleAdjuster for a repeatable
        offline stand-in)."""
        self.estimator = estimator
        self.config = config or OdometryConfig(frontend="xfeat")
        # XFeat and its matching run where BA-Net does (the node's `device`).
        if extractor is None:
            try:
                extractor = XFeatExtractor(
                    top_k=self.tracking.max_keypoints,
                    weights=self.config.matcher,
                    device=str(getattr(estimator, "device", "cpu")),
                    precision=self.tracking.feature_precision,
                )
            except ValueError as err:  # the node's `matcher` parameter
                raise ValueError(f"matcher {self.config.matcher}: {err}") from err
        self.extractor = extractor
        self.matcher_version = 0  # 0: the weights it started with; then the versions swap_matcher took
        self._quality = TrackingQuality(self.config.matcher_trial_frames)
        self._frame_inlier_ratio = 0.0  # this frame's PnP inliers / landmark matches (0: not tracked)
        self._pnp_candidates = 0  # landmark matches the last PnP solved from (its inlier ratio's base)
        self.stats = OdometryStats()
        self._T_bc = self.config.T_base_camera
        self._T_cb = invert(self._T_bc)
        self._Ad_bc = adjoint(self._T_bc)
        # The world's up (base z) in optical camera coordinates, for the ground plane.
        self._up_cam = self._T_bc[:3, :3].T @ np.array([0.0, 0.0, 1.0])
        self.trajectory_id = -1
        self._observed: tuple[np.ndarray, np.ndarray] | None = None
        self._background = window_ba_worker or BackgroundBundleAdjuster(self.config.background_ba_priority)
        self._worker_failed = False  # after a dead worker, window BAs are solved in line
        self._banet_pool: ThreadPoolExecutor | None = None  # background_banet: started at first use
        self._mapping_pool: ThreadPoolExecutor | None = None  # tracking.mapping background: at first use
        self._mapping_job: MappingJob | None = None
        # background_banet: (keyframe, previous keyframe, its BA-Net running in the thread)
        self._banet_job: tuple[Keyframe, Keyframe, Future] | None = None
        # A depth a background BA-Net returned for a keyframe already published, for the next result:
        # (its stamp, depth in metres at the pose's scale, its camera). Kept across map rebuilds.
        self._late_depth: tuple[float, np.ndarray, PinholeCamera] | None = None
        self._depth_calibration = (
            getattr(estimator, "depth_calibration", None) if self.config.depth_calibration else None
        )
        if self.config.depth_calibration:
            calibration = self._depth_calibration
            logger.info(
                "BA-Net's keyframe depth %s",
                f"calibrated ({calibration.describe()})"
                if calibration is not None
                else "used as it is: the model ships no depth calibration",
            )
        # Called with each keyframe's scale measurement (KeyframeMeasurement): evaluation.depth_curve.
        self.on_keyframe_measured = None
        self._small_camera_advised = False
        self._map_epoch = -1  # counts maps built (reset and rebuilds): _clear_map increments it
        self.reset(reason=None)

    # -- state ---------------------------------------------------------------------------------------
    def reset(self, reason: str | None = "requested") -> None:
        """Start a new trajectory at the next frame (odom restarts at the identity)."""
        self._output: _Output | None = None
        # The last two published poses that came from a map (stamp, C, covariance): a rebuilt map's anchor
        # is predicted from them (tracking.rebuild_anchor predict).
        self._tracked: list[tuple[float, np.ndarray, np.ndarray]] = []
        self._gate = StampGate(self.config.reset_on_time_jump, self.config.max_time_gap)
        self._lost = False  # frames failed since the last tracked one (kept across map rebuilds)
        self._next_landmark = 0  # landmark ids stay unique across map rebuilds
        self._banet_gain_level: float | None = None  # tracking.banet_input_gain first
        self._clear_map()
        self._late_depth = None  # the old trajectory's keyframe (kept across rebuilds, not across resets)
        self._quality.restart()
        self._trajectory_keyframes = 0
        self.trajectory_id += 1
        if reason is not None:
            self.stats.resets += 1
            logger.warning("odometry reset (%s): new trajectory %d", reason, self.trajectory_id)

    def close(self) -> None:
        """Stop the background BA worker, the BA-Net thread and the mapping thread, if they were started."""
        self._background.close()
        for pool in (self._banet_pool, self._mapping_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        self._banet_pool = self._mapping_pool = None
        self._mapping_job = None

    def settle(self) -> None:
        """Wait until the keyframe in the making (tracking.mapping background) and a background BA-Net are
        done, for the next frame to take: offline, a run with them is then repeatable, as for a camera
        slower than its mapping. (A background window BA is not waited for: with background_ba the merge
        still depends on timing.)"""
        futures = []
        if self._mapping_job is not None:
            futures.append(self._mapping_job.future)
        if self._banet_job is not None:
            futures.append(self._banet_job[2])
        wait_futures(futures)

    def _clear_map(self) -> None:
        self._background.discard()  # a result for the old map is of no use
        self._map_epoch += 1
        job = self._mapping_job
        if job is not None:
            # Of no use either, but the thread may still be running XFeat: let it finish before this
            # thread uses the extractor again.
            if not job.future.cancel():
                wait_futures([job.future])
            self._mapping_job = None
            self._drop_mapping(job, "a new map")
        banet = self._banet_job
        if banet is not None and not banet[2].cancel():
            # Its depth is of no use either, but the estimator must not run twice at once (the mapping
            # thread's next keyframe), and settle() would no longer see it.
            wait_futures([banet[2]])
        self._mapping_failed = False  # the mapping thread's last keyframe was dropped (keyframe_flow)
        self._ba_job: WindowJob | None = None
        self._ba_pending = False
        self._keyframes: list[Keyframe] = []
        self._points: dict[int, np.ndarray] = {}
        self._camera: PinholeCamera | None = None
        self._ba: WindowBundleAdjuster | None = None
        self._scale = ScaleFilter(self._scale_window())
        self._map_history: list[tuple[float, np.ndarray]] = []  # last two (stamp, map pose)
        self._initialised = False
        self._init_frames = 0
        self._failures = 0
        self._depth_refusals = 0  # keyframes in a row whose new landmarks the lost-scale check refused
        self._flow: FlowTracks | None = None
        self._banet_job = None
        self._banet_stamp: float | None = None  # the keyframe BA-Net last ran on (banet_min_interval)

    @property
    def tracking(self) -> TrackingConfig:
        return self.config.tracking

    @property
    def has_keyframe(self) -> bool:
        return bool(self._keyframes)

    @property
    def map_size(self) -> tuple[int, int, int]:
        """(keyframes in the window, landmarks, scale measurements kept): what the map holds now, for
        checking that it stays bounded over a long run (benchmarks.long_run)."""
        return len(self._keyframes), len(self._points), len(self._scale)

    def observed_landmarks(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The last processed frame's PnP-inlier landmarks: their pixels in its image (N, 2) and their depth
        along its optical axis in metres (N,), from the map as it stands now (after any window BA that
        frame triggered). None when that frame was not tracked or no metric scale is known yet."""
        s = self.scale
        if self._observed is None or self._output is None or self._output.map_T is None or not s:
            return None
        pixels, landmarks = self._observed
        known = np.array([lm in self._points for lm in landmarks.tolist()], dtype=bool)
        if not known.any():
            return None
        X = np.stack([self._points[lm] for lm in landmarks[known].tolist()])
        T_cw = invert(self._output.map_T)
        z = (X @ T_cw[2, :3] + T_cw[2, 3]) * s
        front = z > 0
        return pixels[known][front], z[front]

    @property
    def _px(self) -> float:
        """Camera pixels per pixel of the image XFeat works on under tracking_feature_max_pixels: the pixel
        thresholds (PnP, 5-point, triangulation, the window BA's noise and outlier limit, the pose
        covariance's noise) are meant in those pixels, the size of the keypoints' noise. An image upscaled
        for XFeat (feature_min_pixels) gains no detail: there they stay in camera pixels (1)."""
        cam = self._camera
        if cam is None:
            return 1.0
        return max(1.0, working_scale(cam.width, cam.height, *self._feature_pixels))

    @property
    def _feature_pixels(self) -> tuple[int, int]:
        return self.tracking.feature_max_pixels, self.tracking.feature_min_pixels

    # -- the pipeline --------------------------------------------------------------------------------
    def process(self, image: np.ndarray, stamp: float, camera: PinholeCamera) -> FrameResult:
        """Run one frame. Bad input (image/camera/stamp) raises ValueError and changes no state; a
        ValueError from inside once the frame is checked (numpy's LinAlgError, a broken invariant) is the
        odometry's own failure, raised as a RuntimeError (the node counts it as an error, not bad input)."""
        check_image(image)
        frame, check, skipped = begin_frame(self, image, stamp, camera)
        if skipped is not None:
            return skipped
        try:
            return self._process_checked(frame, check, image, camera)
        except ValueError as err:
            raise RuntimeError(f"odometry failed on a checked frame: {type(err).__name__}: {err}") from err

    def _process_checked(
        self, frame: PreparedFrame, check: timing.StampCheck, image: np.ndarray, camera: PinholeCamera
    ) -> FrameResult:
        gap = check.gap if check.kind == timing.FORWARD_GAP and self._output is not None else None
        if gap is not None:
            self._forget_motion(gap, frame.stamp)
        started = time.perf_counter()
        self._merge_banet()
        self._merge_mapping()
        self._frame_inlier_ratio = 0.0  # a frame not tracked by PnP counts 0 (matcher_swap trial)
        self._observed = None  # (pixels, landmark ids) of this frame's PnP inliers, once tracked
        gray = flow.gray_u8(image) if self.tracking.between_keyframes == "flow" else None
        if gray is not None and gap is None and self._flow_ready(camera, gray):
            result = self._track_by_flow(frame, gray, image)
            if result is not None:  # no XFeat on this frame, and no matcher trial either
                self.stats.last_inference_s = time.perf_counter() - started
                return self._with_late_depth(replace(result, inference_s=self.stats.last_inference_s))
        # This frame needs XFeat: the keyframe in the making joins first; the frame's matches make the tracks.
        self._merge_mapping(wait=True, follow=False)
        # kept: a matcher swap re-describes
        max_px, min_px = self._feature_pixels
        features = self.extractor.extract(image, keep_image=True, max_pixels=max_px, min_pixels=min_px)

        if self._camera is not None and not same_intrinsics(
            camera, self._camera, self.config.intrinsics_tolerance
        ):
            self.stats.camera_changes += 1
            logger.warning("intrinsics changed (%s → %s): new map", self._camera, camera)
            self._clear_map()
            result = self._first_keyframe(frame, features, camera, CAMERA_CHANGED)
        elif not self._keyframes:
            result = self._first_keyframe(frame, features, camera, INITIALIZED)
        elif not self._initialised:
            result = self._initialise(frame, features)
        else:
            # a stall: the frames before the gap came at the camera's pace (tracking.gap_failure)
            before = check.previous_step
            stalled = gap is not None and before is not None and before <= self.config.max_time_gap
            result = self._track(frame, features, after_gap=gap is not None, stalled=stalled)
        verdict = self._quality.record(self._frame_inlier_ratio, self.config.matcher_swap_tolerance)
        if verdict is not None:
            self._rollback_matcher(verdict)
        if gray is not None:
            self._flow = self._tracks_after(result, gray)
        if gap is not None:
            note = f"new segment after a gap of {gap:.3f} s (max_time_gap {self.config.max_time_gap:g} s)"
            result = replace(result, message=f"{note}; {result.message}" if result.message else note)
        self.stats.last_inference_s = time.perf_counter() - started
        return self._with_late_depth(replace(result, inference_s=self.stats.last_inference_s))

    def _forget_motion(self, gap: float, stamp: float) -> None:
        """After a forward gap nothing is extrapolated: the velocity is forgotten (the next frame is
        located against the map from the last pose, as a relocalisation), and the published pose's
        covariance grows by what the last velocity could have done during the gap."""
        out = self._output
        if out.history:
            out.cov = self._held_covariance(stamp)
        self._map_history = self._map_history[-1:]
        self._tracked = []
        logger.warning("forward stamp gap of %.3f s: velocity forgotten, covariance widened", gap)

    def _advise_small_camera(self, camera: PinholeCamera) -> None:
        """Once per odometry: a small camera with XFeat at its own size (its map's scale drifts; the upscaled
        image brought our half-size clips back, at up to 4x the time)."""
        pixels = camera.width * camera.height
        if self._small_camera_advised or self.tracking.feature_min_pixels or pixels > SMALL_CAMERA_PIXELS:
            return
        self._small_camera_advised = True
        logger.warning(
            "a small camera (%dx%d): XFeat at this size places keypoints coarsely and the map's scale "
            "drifts; tracking_feature_min_pixels:=%d runs it on the image upscaled (on HoloLens at 270x180 "
            "Sim(3) 1.24 -> 0.25 m, at up to 4x the time per frame; docs/frontend.md, Cameras of other "
            "resolutions)",
            camera.width,
            camera.height,
            SMALL_CAMERA_FEATURE_PIXELS,
        )

    # -- map initialisation --------------------------------------------------------------------------
    def _first_keyframe(
        self, frame: PreparedFrame, features: Features, camera: PinholeCamera, status: str
    ) -> FrameResult:
        if len(features) < self.tracking.init_min_inliers:
            # A blank view (a wall, the sky, a covered lens) cannot start a map: wait for texture.
            self._keyframes = []
            return self._failed(
                frame.stamp,
                f"{len(features)} keypoints, too few to start a map",
                state=LOST if self._lost else INITIALISING,
                count=self._output is not None,  # before any pose, waiting is not a failure
            )
        self._camera = camera
        self._advise_small_camera(camera)
        self._ba = WindowBundleAdjuster(
            camera,
            WindowBAConfig(
                pixel_sigma=self.tracking.pixel_sigma * self._px,
                outlier_px=WindowBAConfig.outlier_px * self._px,
                solver=self.config.window_solver,
            ),
        )
        kf = self._add_keyframe(frame, features, np.eye(4))
        if self._output is None:  # a new trajectory: odom starts here
            self._output = _Output(C=np.eye(4), map_T=kf.T_wc.copy(), cov=np.zeros((6, 6)))
            state = INITIALISING
        else:  # a rebuilt map: the published pose goes on from the last good one, or its prediction
            moved = self.tracking.rebuild_anchor == "predict" and self._anchor_at_prediction(frame.stamp)
            if not moved:
                self._widen_for_held_pose(frame.stamp)
            self._output.map_T = kf.T_wc.copy()
            state = LOST if self._lost else INITIALISING
        self._map_history = [(frame.stamp, kf.T_wc.copy())]
        return self._result(frame.stamp, status, state, is_keyframe=True, message="first keyframe of a map")

    def _widen_for_held_pose(self, stamp: float) -> None:
        """A rebuilt map starts at the last published pose, but the camera went on moving while the frames
        between failed: the covariance grows by what the last velocity could have done since that pose
        (as across a stamp gap), so that a fusion filter does not take the held pose as certain."""
        out = self._output
        if out.history:
            out.cov = self._held_covariance(stamp)
            out.holding = True

    def _held_covariance(self, stamp: float) -> np.ndarray:
        """The covariance of the pose held since the last measured output: that output's, plus what its
        velocity could have done from then to `stamp` (one gap, not the sum of pieces: the variances of a
        motion grow with the square of its time)."""
        out = self._output
        if out.held is None:
            (t_prev, C_prev), (t_last, C_last) = (
                out.history if len(out.history) == 2 else ((None, None), out.history[-1])
            )
            out.held = (C_prev, t_prev, C_last, t_last, out.cov.copy())
        C_prev, t_prev, C_last, t_last, cov_last = out.held
        return cov_last + gap_covariance(C_prev, t_prev, C_last, t_last, max(stamp - t_last, 0.0))

    def _unmeasured_step_covariance(self, stamp: float) -> np.ndarray:
        """Covariance of a step to `stamp` from the last published pose that nothing measured: the motion
        the last two tracked frames' velocity could make over it (zero before there is a velocity). From
        the last publication, not the last tracked frame: a held pose's covariance already grew until it."""
        if len(self._tracked) < 2:
            return np.zeros((6, 6))
        (t0, C0, _), (t1, C1, _) = self._tracked
        since = self._output.history[-1][0] if self._output.history else t1
        return gap_covariance(C0, t0, C1, t1, max(stamp - since, 0.0))

    def _anchor_at_prediction(self, stamp: float) -> bool:
        """Move the published pose to where constant velocity from the last two tracked frames puts it at
        `stamp`, with their covariance grown by what that velocity could do meanwhile. Not beyond
        max_time_gap after the last tracked frame (nothing is extrapolated across a gap), and not without
        two tracked frames: then the last pose holds (stats.rebuild_predictions counts the moves)."""
        if len(self._tracked) < 2:
            return False
        (t0, C0, _), (t1, C1, cov1) = self._tracked
        ahead = stamp - t1
        if not (t1 > t0 and 0 < ahead <= self.config.max_time_gap):
            return False
        out = self._output
        out.C = predict_constant_velocity(C1, t1, C0, t0, stamp)
        out.cov = cov1 + gap_covariance(C0, t0, C1, t1, ahead)
        self.stats.rebuild_predictions += 1
        return True

    def _initialise(self, frame: PreparedFrame, features: Features) -> FrameResult:
        t = self.tracking
        kf0 = self._keyframes[0]
        matches = match_mutual(kf0.features, features, t.min_cosine)
        x0 = kf0.features.keypoints[matches[:, 0]]
        x1 = features.keypoints[matches[:, 1]]
        rel = solve_relative_pose(x0, x1, self._camera, MAX_EPIPOLAR_PX * self._px, seed=t.ransac_seed)
        self._init_frames += 1
        reason = "too few matches for the first map"
        # A view that no longer matches the first keyframe will not come back to it (a camera fast for its
        # frame rate, frames dropped by a slow node): start again from this frame rather than wait.
        left_behind = rel is None or rel.inliers.sum() < t.init_min_inliers
        if not left_behind:
            inl = rel.inliers
            parallax = median_parallax_deg(x0[inl], x1[inl], rel.T_cur_ref[:3, :3], self._camera)
            if parallax >= t.init_min_parallax_deg:
                T_w1 = invert(rel.T_cur_ref)
                X, ok = triangulate(
                    kf0.T_wc,
                    T_w1,
                    x0[inl],
                    x1[inl],
                    self._camera,
                    t.triangulation_max_px * self._px,
                    t.triangulation_min_parallax_deg,
                )
                if ok.sum() >= t.init_min_inliers:
                    return self._build_first_map(frame, features, matches[inl][ok], X[ok], T_w1)
                reason = f"only {int(ok.sum())} points triangulated"
            else:
                reason = f"parallax {parallax:.2f} deg < {t.init_min_parallax_deg} deg"
        if left_behind or self._init_frames >= t.init_max_frames:
            # The first keyframe is stale: the view has left it, or the camera has not moved enough for
            # init_max_frames frames (a stopped camera). docs/preregistered/init_restart_2.txt
            self.stats.init_restarts += 1
            keep = self._output
            self._clear_map()
            self._output = keep
            return self._first_keyframe(frame, features, frame.source_camera, INITIALIZED)
        return self._failed(
            frame.stamp, f"initialising: {reason}", state=LOST if self._lost else INITIALISING, count=False
        )

    def _build_first_map(
        self, frame: PreparedFrame, features: Features, matches: np.ndarray, X: np.ndarray, T_w1: np.ndarray
    ) -> FrameResult:
        kf0 = self._keyframes[0]
        kf1 = self._add_keyframe(frame, features, T_w1)
        for (i, j), point in zip(matches, X, strict=True):
            lm = self._new_landmark(point)
            kf0.landmarks[i] = lm
            kf1.landmarks[j] = lm
        self._bundle_adjust()
        self._initialised = True
        self._init_frames = 0
        logger.info("map initialised with %d landmarks", len(self._points))
        return self._after_pose(
            frame,
            kf1.T_wc,
            pose_covariance_px(self._points_in(kf1), self._camera, self.tracking.pixel_sigma * self._px),
            new_keyframe=kf1,
        )

    # -- tracking ------------------------------------------------------------------------------------
    def _track(
        self, frame: PreparedFrame, features: Features, after_gap: bool = False, stalled: bool = False
    ) -> FrameResult:
        self._merge_background_ba()
        guess = self._predict_map(frame.stamp)
        last = self._keyframes[-1]
        recent = self._keyframes[::-1][: self.tracking.track_keyframes]
        solved, matched = self._pnp(recent, features, guess)
        matches = matched[0]  # to the newest keyframe
        reloc = after_gap
        if solved is None and len(self._keyframes) > len(recent):
            # The newest keyframes lead the window in the same order: their matches are reused.
            solved, _ = self._pnp(self._keyframes[::-1], features, guess, matched)
            if solved is not None and not self._near_prediction(
                solved[0], guess, after_gap, "relocalisation"
            ):
                solved = None
            if solved is not None:
                reloc = True
                logger.info("relocalised against the window's %d keyframes", len(self._keyframes))
        if solved is not None:
            self._frame_inlier_ratio = len(solved[1]) / self._pnp_candidates
            self._observed = (features.keypoints[solved[1][:, 0]], solved[1][:, 1])
        elif not after_gap:
            recovered = self._recover(last, features, matches)
            # The recovery's baseline rests on few points (or on BA-Net's depth): the same gross-jump test
            # as a relocalisation's keeps a wrong one out of the trajectory.
            if recovered is not None and self._near_prediction(recovered[0], guess, after_gap, "recovery"):
                return self._track_recovered(frame, features, last, *recovered)
        if solved is None:
            self._failures += 1
            self._lost = True
            rebuild_now = after_gap and not self._retry_after_gap(stalled)
            if rebuild_now or self._failures >= self.config.max_consecutive_failures:
                self.stats.lost += 1
                logger.warning(
                    "%d consecutive frames not tracked: rebuilding the map from this frame", self._failures
                )
                keep = self._output
                self._clear_map()
                self._output = keep
                return self._first_keyframe(frame, features, frame.source_camera, INITIALIZED)
            return self._failed(frame.stamp, "tracking failed: too few landmarks matched (PnP)", state=LOST)
        T_wc, tracked, X, x = solved
        cov = self._pnp_covariance(T_wc, X, x)
        if reloc:
            return self._after_pose(frame, T_wc, cov, new_keyframe=None)
        x_kf, x_cur = last.features.keypoints[matches[:, 0]], features.keypoints[matches[:, 1]]
        if self._keyframe_due(last, x_kf, x_cur, T_wc, len(tracked)) and not self._defer_keyframe(
            last, len(tracked)
        ):
            kf = self._insert_keyframe(frame, features, last, T_wc, matches, tracked)
            return self._after_pose(frame, kf.T_wc, cov, new_keyframe=kf)
        return self._after_pose(frame, T_wc, cov, new_keyframe=None)

    def _insert_keyframe(
        self, frame: PreparedFrame, features: Features, last: Keyframe, T_wc, matches, tracked
    ) -> Keyframe:
        """The frame as a new keyframe after `last`: its tracked landmarks observed, its other matches
        triangulated, the window bundle adjusted."""
        if self._ba_job is not None and self.tracking.keyframe_join == "solved":
            # A keyframe goes into a solved window: wait for the running BA (the lag stays under one
            # keyframe) and carry this frame's pose and landmarks into the solved map. (at_once: it joins
            # the map as it stands, and the merge moves it with the frames located meanwhile.)
            T_wc = nearest_rigid(self._merge_background_ba(wait=True) @ T_wc)
        kf = self._add_keyframe(frame, features, T_wc)
        self._mapping_failed = False
        self._extend_map(last, kf, matches, tracked)
        self._bundle_adjust()
        return kf

    def _track_recovered(
        self, frame: PreparedFrame, features: Features, last: Keyframe, T_wc, tracked, matches, source: str
    ) -> FrameResult:
        """A recovered frame becomes a keyframe, so that the next frames have landmarks to track."""
        kf = self._insert_keyframe(frame, features, last, T_wc, matches, tracked)
        self.stats.recovered += 1
        cov = pose_covariance_px(self._points_in(kf), self._camera, self.tracking.pixel_sigma * self._px)
        result = self._after_pose(frame, kf.T_wc, cov, new_keyframe=kf)
        note = f"PnP failed: tracked by the 5-point pose to keyframe {last.id} (baseline from {source})"
        return replace(result, message=f"{note}; {result.message}" if result.message else note)

    # -- map -----------------------------------------------------------------------------------------
    def _add_keyframe(self, frame: PreparedFrame, features: Features, T_wc: np.ndarray) -> Keyframe:
        kf_id = self._keyframes[-1].id + 1 if self._keyframes else 0
        kf = Keyframe(kf_id, frame.stamp, T_wc.copy(), features, np.full(len(features), -1, np.int64), frame)
        self._keyframes.append(kf)
        self.stats.keyframes += 1
        self._trajectory_keyframes += 1
        if len(self._keyframes) > self.tracking.window_keyframes:
            self._keyframes.pop(0)
            self._forget_unseen_landmarks()
        return kf

    def _new_landmark(self, point: np.ndarray) -> int:
        self._next_landmark += 1
        self._points[self._next_landmark] = np.asarray(point, dtype=np.float64)
        return self._next_landmark

    def _forget_unseen_landmarks(self) -> None:
        seen = set()
        for kf in self._keyframes:
            seen.update(int(i) for i in kf.landmarks[kf.landmarks >= 0])
        for lm in list(self._points):
            if lm not in seen:
                del self._points[lm]

    def _points_in(self, kf: Keyframe) -> np.ndarray:
        """The keyframe's landmarks in its camera coordinates (N, 3)."""
        ids = kf.landmarks[kf.landmarks >= 0]
        if len(ids) == 0:
            return np.zeros((0, 3))
        P = np.stack([self._points[int(i)] for i in ids])
        T_cw = invert(kf.T_wc)
        return P @ T_cw[:3, :3].T + T_cw[:3, 3]

    def _extend_map(self, prev: Keyframe, kf: Keyframe, matches: np.ndarray, tracked: np.ndarray) -> None:
        """Tracked landmarks get the new keyframe's observation; matches with no landmark yet are
        triangulated between the two keyframes."""
        # A merged background BA can have pruned a tracked landmark's other observations, and the new
        # keyframe may have pushed out the last keyframe that still saw it.
        tracked = tracked[np.isin(tracked[:, 1], np.fromiter(self._points, np.int64, len(self._points)))]
        for j, lm in tracked:
            kf.landmarks[j] = lm
        fresh = matches[(prev.landmarks[matches[:, 0]] < 0) & (kf.landmarks[matches[:, 1]] < 0)]
        if len(fresh) == 0:
            return
        t = self.tracking
        X, ok = triangulate(
            prev.T_wc,
            kf.T_wc,
            prev.features.keypoints[fresh[:, 0]],
            kf.features.keypoints[fresh[:, 1]],
            self._camera,
            t.triangulation_max_px * self._px,
            t.triangulation_min_parallax_deg,
        )
        T_cw = invert(kf.T_wc)
        z_new = (X[ok] @ T_cw[:3, :3].T + T_cw[:3, 3])[:, 2]
        z_old = self._points_in(kf)[:, 2]
        if len(z_old) >= t.min_tracked and len(z_new):
            ratio = float(np.median(z_new) / np.median(z_old))
            nearer_allowed = t.backing_up_landmarks == "add" and backed_up(prev.T_wc, kf.T_wc)
            if ratio > t.max_depth_ratio or (ratio < 1.0 / t.max_depth_ratio and not nearer_allowed):
                # New points far nearer (or farther) than the tracked ones of the same view: the
                # keyframe's pose may have lost the map's scale, and adding them would shrink the map.
                # A lost scale passes (the next keyframes are located on the map); a run of refusals can
                # be the scene's layout changing (backing up: near things enter at the borders while the
                # tracked ones recede), and a map refused every new landmark starves: max_depth_refusals
                # bounds the run, backing_up_landmarks add lets a keyframe that backed up add nearer ones
                # (both opt-in, docs/preregistered/depth_ratio_streak.txt, backing_up_landmarks.txt).
                if not t.max_depth_refusals or self._depth_refusals < t.max_depth_refusals:
                    self._depth_refusals += 1
                    self.stats.landmarks_refused += 1
                    logger.debug(
                        "keyframe %d: new landmarks at %.2fx the tracked depth: not added", kf.id, ratio
                    )
                    return
                logger.debug(
                    "keyframe %d: new landmarks at %.2fx the tracked depth, added after %d refused keyframes",
                    kf.id,
                    ratio,
                    self._depth_refusals,
                )
        self._depth_refusals = 0
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "keyframe %d: %d tracked (median depth %.3g), %d/%d triangulated (median depth %.3g), "
                "baseline %.3g",
                kf.id,
                len(tracked),
                np.median(z_old) if len(z_old) else np.nan,
                int(ok.sum()),
                len(fresh),
                np.median(z_new) if len(z_new) else np.nan,
                np.linalg.norm(kf.T_wc[:3, 3] - prev.T_wc[:3, 3]),
            )
        for (i, j), point in zip(fresh[ok], X[ok], strict=True):
            lm = self._new_landmark(point)
            prev.landmarks[i] = lm
            kf.landmarks[j] = lm

    # -- outputs -------------------------------------------------------------------------------------
    def _after_pose(
        self,
        frame: PreparedFrame,
        T_wc: np.ndarray,
        cov_px: np.ndarray | None,
        new_keyframe: Keyframe | None,
    ) -> FrameResult:
        """Scale, depth and the published pose for a frame whose map pose is known."""
        depth = depth_camera = None
        message = ""
        if new_keyframe is not None and len(self._keyframes) >= 2:
            if self._banet_due(new_keyframe.stamp):  # else no depth, no learned measurement
                if self.config.background_banet:
                    self._submit_banet(new_keyframe, self._keyframes[-2])
                else:
                    prev = self._keyframes[-2]
                    depth, depth_camera, message = self._use_banet(
                        new_keyframe, prev, self._run_banet(new_keyframe, prev)
                    )
                    if depth is not None:
                        new_keyframe.depth = (depth, depth_camera)
            if self._ba_job is not None and new_keyframe.id in self._ba_job.poses:
                # Its landmarks are still being solved: the scale is measured on them when merged.
                new_keyframe.unmeasured = True
            elif not new_keyframe.depth_pending:
                self._measure_scale(new_keyframe)
        s = self.scale
        state = RELOCALISED if self._lost else TRACKING
        self._failures = 0
        self._lost = False
        out = self._output
        delta = invert(out.map_T) @ T_wc
        delta[:3, 3] *= s if s is not None else 1.0
        if cov_px is None:
            # Too few points in front to measure the step (a recovery on few landmarks): as uncertain as
            # what the last velocity could do over it, not exact.
            cov_rel = self._unmeasured_step_covariance(frame.stamp)
        else:
            cov_rel = scale_covariance(cov_px, s or 1.0)
        if s is not None and self.config.scale_source != "none":
            # The scale itself may be off by about its measurements' spread: along the step, in the
            # current camera's axes (a right perturbation of the step).
            step = delta[:3, :3].T @ delta[:3, 3]
            cov_rel[:3, :3] += self._scale.relative_spread**2 * np.outer(step, step)
        out.C = out.C @ delta
        out.cov = compose_right_covariance(delta, out.cov, cov_rel)
        out.map_T = T_wc.copy()
        self._tracked = [*self._tracked[-1:], (frame.stamp, out.C.copy(), out.cov.copy())]
        self._map_history = [*self._map_history[-1:], (frame.stamp, T_wc.copy())]
        self.stats.tracked += 1
        if depth is not None:
            depth = self._depth_at_pose_scale(new_keyframe, depth)
        if s is None:
            message = (message + "; " if message else "") + "scale not measured yet (map units)"
        return self._result(
            frame.stamp,
            TRACKED,
            state,
            relative_covariance=transform_covariance(self._Ad_bc, cov_rel),
            relative_reference=RELATIVE_TO_PREVIOUS,
            depth=depth,
            depth_camera=depth_camera,
            is_keyframe=new_keyframe is not None,
            message=message,
        )

    def _body(self, C: np.ndarray) -> np.ndarray:
        return self._T_bc @ C @ self._T_cb

    def _result(self, stamp: float, status: str, state: str, **extra) -> FrameResult:
        out = self._output
        T = self._body(out.C)
        cov_body = transform_covariance(self._Ad_bc, out.cov)
        twist = np.zeros(6)
        if out.history:
            t_prev, C_prev = out.history[-1]
            if stamp > t_prev:
                twist = body_twist(self._body(C_prev), T, stamp - t_prev)
        out.history = [*out.history[-1:], (stamp, out.C.copy())]
        if not out.holding:  # a measured pose: what is held from now on grows from it
            out.held = None
        out.holding = False
        return FrameResult(
            stamp=stamp,
            status=status,
            trajectory_id=self.trajectory_id,
            T_odom_base=T,
            T_odom_camera=out.C.copy(),
            pose_covariance=right_covariance_to_ros(T, cov_body),
            twist=twist,
            state=state,
            scale_source=self.config.scale_source if self.scale is not None else "none",
            keyframes=self._trajectory_keyframes,
            **self._scale_evidence(),
            **extra,
        )

    def _failed(self, stamp: float, message: str, state: str, count: bool = True) -> FrameResult:
        if count:
            self.stats.failed += 1
            logger.warning("frame at %.6f s not tracked: %s", stamp, message)
        return FrameResult(
            stamp,
            FAILED,
            self.trajectory_id,
            message=message,
            state=state,
            waiting=not count and state == INITIALISING,
            scale_source=self.config.scale_source,
            keyframes=self._trajectory_keyframes,
            **self._scale_evidence(),
        )
