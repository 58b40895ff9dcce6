"""The streaming visual odometry: frames in, metric poses + depth + covariance out. No ROS here.

Per frame (image, stamp, camera):
1. time checks (odometry.timing.StampGate): a stamp far behind the last one (a bag loop) resets the
   trajectory with a warning; a stamp slightly behind or equal (reordering, duplicates) is skipped and
   counted; a stamp more than ``max_time_gap`` ahead (a camera stall, a paused bag) starts a new segment:
   this frame becomes the keyframe at the last published pose, with the covariance widened by what the
   last velocity could have done during the gap, and no constant-velocity motion is carried over it;
2. the frame is resized to the estimator's input size, with its intrinsics;
3. the first frame of a trajectory becomes the keyframe at the identity (odom = base_link at start);
4. otherwise the estimator runs on (reference = current, target = keyframe), seeded with a
   constant-velocity prediction; a non-finite or diverged result (cost, step size, no depth, a pose the
   image does not constrain) is skipped and counted, and the trajectory goes on from the keyframe;
5. poses compose in the odom frame: camera poses C (optical, C_0 = I), body poses
   T_odom_base = T_base_cam · C · T_cam_base (odom is base_link at the first frame);
6. the pose covariance is σ²·S⁻¹ with S the Schur complement of the BA's AᵀA over the depth coefficients,
   accumulated along the keyframe chain and mapped to body axes and to the ROS order;
7. the current frame becomes the keyframe when its baseline, rotation or loss of overlap passes the
   thresholds (or always, in `consecutive` mode).
A change of intrinsics (after scaling to the model size) starts a new keyframe at the predicted pose.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, fields, replace

import numpy as np

from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.frames import (
    adjoint,
    compose_right_covariance,
    left_to_right_covariance,
    pose_covariance_from_hessian,
    right_covariance_to_ros,
    transform_covariance,
)
from banet_vo.geometry.rigid import invert, nearest_rigid
from banet_vo.geometry.se3 import rotation_angle_deg
from banet_vo.odometry import timing
from banet_vo.odometry.config import OdometryConfig
from banet_vo.odometry.depth_output import in_depth_range
from banet_vo.odometry.estimator import PairEstimate, PairEstimator, PreparedFrame, prepare_frame
from banet_vo.odometry.motion import body_twist, predict_constant_velocity, view_overlap
from banet_vo.odometry.timing import NEW_SEGMENT, StampGate, gap_covariance

logger = logging.getLogger(__name__)

# What FrameResult.relative_covariance is relative to.
RELATIVE_TO_KEYFRAME = "keyframe"
RELATIVE_TO_PREVIOUS = "previous"
RELATIVE_REFERENCES = (RELATIVE_TO_KEYFRAME, RELATIVE_TO_PREVIOUS)

# Tracking states (FrameResult.state), rtabmap-style signalling for consumers of the status topic.
INITIALISING = "initialising"  # no trajectory yet (first frame, or the map is being initialised)
TRACKING = "tracking"
LOST = "lost"  # frames are failing: no pose is published for them, the last good pose stands
RELOCALISED = "relocalised"  # first good frame after a loss
TRACKING_STATES = (INITIALISING, TRACKING, LOST, RELOCALISED)

# Frame outcomes (FrameResult.status).
INITIALIZED = "initialized"  # first frame of a trajectory: identity pose, no depth
TRACKED = "tracked"  # estimated against the keyframe: pose, covariance, depth
FAILED = "failed"  # the estimate was unusable: skipped, no output
OUT_OF_ORDER = "out_of_order"  # stamp not after the last one (within the reset tolerance): skipped
CAMERA_CHANGED = "camera_changed"  # intrinsics changed: new keyframe at the predicted pose, no depth


@dataclass
class OdometryStats:
    """Counters since construction (reset() does not clear them)."""

    frames: int = 0
    tracked: int = 0
    failed: int = 0
    out_of_order: int = 0
    resets: int = 0
    keyframes: int = 0
    camera_changes: int = 0
    lost: int = 0  # times max_consecutive_failures forced a new keyframe
    recovered: int = 0  # frames PnP could not locate, tracked from the newest keyframe (frontend xfeat)
    init_restarts: int = 0  # first keyframes replaced before their map was built (frontend xfeat)
    rebuild_predictions: int = 0  # rebuilt maps anchored at the constant-velocity prediction (xfeat)
    reloc_refused: int = 0  # window relocalisations far from the motion prediction, refused (xfeat)
    recovery_refused: int = 0  # 5-point recoveries far from the motion prediction, refused (xfeat)
    # New keyframes whose fresh landmarks triangulated far nearer or farther than the tracked ones and were
    # not added: the sign of a keyframe pose that lost the map's scale (xfeat, max_depth_ratio).
    landmarks_refused: int = 0
    flow_tracked: int = 0  # frames located by optical flow, without XFeat (tracking.between_keyframes)
    keyframes_deferred: int = 0  # keyframe requests put off while the background BA solved (busy_keyframe)
    window_ba_merged: int = 0  # background window BA results merged into the map (background_ba)
    banet_skipped: int = 0  # keyframes BA-Net did not run on (tracking.banet_min_interval)
    keyframes_mapped: int = 0  # keyframes made in the mapping thread (tracking.mapping background)
    mapping_dropped: int = 0  # ... and not added (PnP failed on their keypoints, or the map changed)
    matcher_swaps: int = 0  # new matcher weights taken (odometry.matcher_swap)
    matcher_refused: int = 0  # new matcher weights refused by the held-back check
    matcher_rollbacks: int = 0  # swaps undone by the trial
    last_cost: float = float("nan")
    last_inference_s: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, eq=False)
class FrameResult:
    """The outcome of one process() call. Poses are None for frames with no output."""

    stamp: float
    status: str
    trajectory_id: int  # increments at each reset: a consumer starts a new path
    T_odom_base: np.ndarray | None = None  # 4x4 body pose in odom
    T_odom_camera: np.ndarray | None = None  # 4x4 optical camera pose in odom
    pose_covariance: np.ndarray | None = None  # 6x6 ROS order (x, y, z, rx, ry, rz about odom axes)
    # 6x6 covariance ([translation, rotation], base_link axes of this frame, right perturbation) of this
    # frame's pose relative to `relative_reference`: its keyframe (BA-Net alone) or the previous frame
    # with a pose (a pipeline whose steps are measured frame to frame).
    relative_covariance: np.ndarray | None = None
    relative_reference: str = "keyframe"  # one of RELATIVE_REFERENCES
    twist: np.ndarray | None = None  # [vx, vy, vz, wx, wy, wz] in base_link
    depth: np.ndarray | None = None  # (h, w) float32 metres, 0 invalid, of this frame
    depth_camera: PinholeCamera | None = None
    # The stamp of the frame `depth` belongs to when that is not this frame: a thread (background_banet,
    # tracking.mapping background) returns a keyframe's depth with a later frame's result. None: this frame.
    depth_stamp: float | None = None
    cost: float = float("nan")
    is_keyframe: bool = False
    inference_s: float = float("nan")
    message: str = ""
    state: str = ""  # one of TRACKING_STATES ("" for frames that were not processed, e.g. out of order)
    # A FAILED frame the pipeline does not count as a failure: waiting for a map (a camera that has not
    # moved enough yet), not a loss.
    waiting: bool = False
    scale_source: str = ""  # where this pose's metric scale comes from (SCALE_SOURCES)
    keyframes: int = 0  # keyframes in the current trajectory so far
    # The metric scale's evidence (frontend xfeat with a metric scale_source): the newest keyframe's
    # measurement over the scale applied now (1: they agree; NaN before the first), the measurements the
    # applied scale is the median of, and their robust relative spread.
    scale_last_ratio: float = float("nan")
    scale_measurements: int = 0
    scale_spread: float = float("nan")

    @property
    def has_pose(self) -> bool:
        return self.T_odom_base is not None


@dataclass
class _Keyframe:
    frame: PreparedFrame
    C: np.ndarray  # camera pose in odom-camera coordinates (C_0 = I)
    cov: np.ndarray  # right-perturbation covariance of C (optical axes)


def same_intrinsics(a: PinholeCamera, b: PinholeCamera, tolerance: float) -> bool:
    """Same size, and fx, fy, cx, cy within `tolerance` relative to the focal length."""
    scale = max(a.fx, a.fy, 1.0)
    diff = max(abs(a.fx - b.fx), abs(a.fy - b.fy), abs(a.cx - b.cx), abs(a.cy - b.cy))
    return a.size == b.size and diff <= tolerance * scale


def begin_frame(
    odometry, image: np.ndarray, stamp: float, camera: PinholeCamera
) -> tuple[PreparedFrame, timing.StampCheck, FrameResult | None]:
    """The start both pipelines' process() share: the frame prepared for the estimator (bad input raises
    ValueError before any state changes), counted, and its stamp gated (gate_stamp). Returns the frame,
    the stamp check and the result to return at once (a skipped frame), or None to go on."""
    estimator = odometry.estimator
    frame = prepare_frame(
        image, camera, float(stamp), getattr(estimator, "input_geometry", estimator.input_size)
    )
    odometry.stats.frames += 1
    check, skipped = gate_stamp(odometry, float(stamp))
    return frame, check, skipped


def gate_stamp(odometry, stamp: float) -> tuple[timing.StampCheck, FrameResult | None]:
    """The stamp step both pipelines start with: classify `stamp` with `odometry._gate`; a reordered
    frame gets its (skipped) result here, a jump back resets `odometry` and starts its new timeline at
    this stamp. Returns the check and the result to return at once, or None to go on."""
    check = odometry._gate.check(stamp)
    if check.kind == timing.OUT_OF_ORDER:
        odometry.stats.out_of_order += 1
        message = f"stamp {stamp:.9f} is not after the last one ({check.previous:.9f})"
        return check, FrameResult(stamp, OUT_OF_ORDER, odometry.trajectory_id, message=message)
    if check.kind == timing.BACK_JUMP:
        odometry.reset(reason=check.describe())
        odometry._gate.check(stamp)
    return check, None


# A pixel is textured when its image gradient (the larger of the horizontal and vertical steps, at the
# model's input size) is above TEXTURE_STEP, a step well above a camera's noise (2-3 of 255 levels); a view
# with fewer than MIN_TEXTURED_FRACTION such pixels is textureless. Every frame of the real clips has 9 %
# or more (TartanAir's blank walls), a flat view under noise of 2 levels 1.5 %.
TEXTURE_STEP = 8.0 / 255.0
MIN_TEXTURED_FRACTION = 0.02


def textured_fraction(image: np.ndarray) -> float:
    """The share of textured pixels of a model input (3, H, W) in [0, 1] (TEXTURE_STEP)."""
    gray = np.asarray(image, dtype=np.float32).mean(axis=0)
    if gray.shape[0] < 2 or gray.shape[1] < 2:
        return 0.0
    step = np.maximum(np.abs(np.diff(gray, axis=1))[:-1], np.abs(np.diff(gray, axis=0))[:, :-1])
    return float(np.mean(step > TEXTURE_STEP))


class VisualOdometry:
    """Streaming BA-Net odometry. Not thread-safe: call process()/reset() from one thread."""

    def __init__(self, estimator: PairEstimator, config: OdometryConfig | None = None) -> None:
        self.estimator = estimator
        self.config = config or OdometryConfig()
        self.stats = OdometryStats()
        self._T_bc = self.config.T_base_camera
        self._T_cb = invert(self._T_bc)
        self._Ad_bc = adjoint(self._T_bc)
        self.trajectory_id = -1
        self._gate = StampGate(self.config.reset_on_time_jump, self.config.max_time_gap)
        self.reset(reason=None)

    # -- state ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Nothing to release (the keyframe pipeline stops its BA worker here)."""

    def reset(self, reason: str | None = "requested") -> None:
        """Start a new trajectory at the next frame (odom restarts at the identity)."""
        self._keyframe: _Keyframe | None = None
        self._history: list[tuple[float, np.ndarray]] = []  # last two (stamp, C) with an output
        self._last_cov = np.zeros((6, 6))  # right covariance of the last output pose
        self._failures = 0
        self._lost = False  # frames failed since the last good one
        self._trajectory_keyframes = 0
        self._gate.clear()
        self.trajectory_id += 1
        if reason is not None:
            self.stats.resets += 1
            logger.warning("odometry reset (%s): new trajectory %d", reason, self.trajectory_id)

    @property
    def has_keyframe(self) -> bool:
        return self._keyframe is not None

    def _body(self, C: np.ndarray) -> np.ndarray:
        return self._T_bc @ C @ self._T_cb

    def _result(self, stamp: float, status: str, C: np.ndarray, cov: np.ndarray, **extra) -> FrameResult:
        """Outputs for a frame whose camera pose C (with right covariance cov) is known."""
        T = self._body(C)
        cov_body = transform_covariance(self._Ad_bc, cov)
        twist = np.zeros(6)
        if self._history:
            t_prev, C_prev = self._history[-1]
            twist = body_twist(self._body(C_prev), T, stamp - t_prev)
        self._history = [*self._history[-1:], (stamp, C)]
        self._last_cov = cov
        if status == INITIALIZED:
            state = INITIALISING
        else:
            state = RELOCALISED if self._lost else TRACKING
        self._lost = False
        extra.setdefault("keyframes", self._trajectory_keyframes)
        return FrameResult(
            stamp=stamp,
            status=status,
            trajectory_id=self.trajectory_id,
            state=state,
            scale_source="learned",  # BA-Net alone: its depth sets the scale
            T_odom_base=T,
            T_odom_camera=C.copy(),
            pose_covariance=right_covariance_to_ros(T, cov_body),
            twist=twist,
            **extra,
        )

    def _predict(self, stamp: float) -> np.ndarray:
        """Camera pose at `stamp` by constant velocity (the last pose when there is no motion yet)."""
        if len(self._history) < 2:
            return self._history[-1][1] if self._history else self._keyframe.C
        (t0, C0), (t1, C1) = self._history
        return predict_constant_velocity(C1, t1, C0, t0, stamp)

    # -- the pipeline --------------------------------------------------------------------------------
    def process(self, image: np.ndarray, stamp: float, camera: PinholeCamera) -> FrameResult:
        """Run one frame. Bad input (image/camera/stamp) raises ValueError and changes no state."""
        frame, check, skipped = begin_frame(self, image, stamp, camera)
        if skipped is not None:
            return skipped
        stamp = frame.stamp
        if check.kind == timing.FORWARD_GAP and self._keyframe is not None:
            return self._new_segment(frame, check.gap)

        if self._keyframe is None:
            return self._new_keyframe(frame, np.eye(4), np.zeros((6, 6)), INITIALIZED)
        if not same_intrinsics(frame.camera, self._keyframe.frame.camera, self.config.intrinsics_tolerance):
            self.stats.camera_changes += 1
            logger.warning(
                "intrinsics changed (%s → %s): new keyframe", self._keyframe.frame.camera, frame.camera
            )
            return self._new_keyframe(frame, self._predict(stamp), self._keyframe.cov, CAMERA_CHANGED)
        return self._track(frame)

    def _new_segment(self, frame: PreparedFrame, gap: float) -> FrameResult:
        """After a forward gap: this frame is the keyframe at the last published pose (nothing is
        extrapolated), the covariance grows by the last velocity times the gap, and the velocity is
        forgotten so the next prediction starts from rest."""
        C_last = self._history[-1][1] if self._history else self._keyframe.C
        cov = self._widened_cov(frame.stamp, gap)
        self._history = []
        message = f"new segment after a gap of {gap:.3f} s (max_time_gap {self.config.max_time_gap:g} s)"
        logger.warning("%s: re-anchored at the last pose, covariance widened", message)
        result = self._new_keyframe(frame, C_last.copy(), cov, NEW_SEGMENT)
        return _with(result, state=INITIALISING, message=message)

    def _widened_cov(self, stamp: float, gap: float | None = None) -> np.ndarray:
        """The last output's covariance plus what its velocity could have done over `gap` (default: from it
        to `stamp`): a pose placed without a measurement is not as certain as the last measured one."""
        t_last, C_last = self._history[-1] if self._history else (stamp, self._keyframe.C)
        t_prev, C_prev = self._history[0] if len(self._history) == 2 else (None, None)
        gap = max(stamp - t_last, 0.0) if gap is None else gap
        return self._last_cov + gap_covariance(C_prev, t_prev, C_last, t_last, gap)

    def _new_keyframe(self, frame: PreparedFrame, C: np.ndarray, cov: np.ndarray, status: str) -> FrameResult:
        self._keyframe = _Keyframe(frame, C, cov)
        self._failures = 0
        self.stats.keyframes += 1
        self._trajectory_keyframes += 1
        return self._result(frame.stamp, status, C, cov, is_keyframe=True)

    def _track(self, frame: PreparedFrame) -> FrameResult:
        kf = self._keyframe
        for name, view in (("frame", frame), ("keyframe", kf.frame)):
            if textured_fraction(view.image) < MIN_TEXTURED_FRACTION:
                # BA-Net would answer anyway, and sure of itself: zero padding gives a flat view a feature
                # pattern fixed to the image, so an exposure change reads as motion with a tiny covariance.
                return self._fail(frame, f"textureless {name}: nothing for BA-Net to align", math.nan, 0.0)
        pose_init = invert(kf.C) @ self._predict(frame.stamp) if self.config.motion_prior else None
        started = time.perf_counter()
        estimate = self.estimator.estimate(frame, kf.frame, pose_init)
        inference_s = time.perf_counter() - started
        self.stats.last_inference_s = inference_s
        self.stats.last_cost = estimate.cost
        problem = self._check(estimate)
        cov_rel = None
        if problem is None:
            try:
                cov_left = pose_covariance_from_hessian(estimate.hessian, estimate.residual_variance)
                cov_rel = left_to_right_covariance(estimate.T_tgt_ref, cov_left)
            except ValueError as err:
                problem = str(err)
        if problem is not None:
            return self._fail(frame, problem, estimate.cost, inference_s)

        # BA-Net's pose is float32 (RᵀR = I to ~1e-7): chained over the keyframes unprojected, the rotation
        # drifts off SO(3) by ~1e-4 over 20k keyframes.
        T_kf_cur = nearest_rigid(estimate.T_tgt_ref)
        C = kf.C @ T_kf_cur
        cov = compose_right_covariance(T_kf_cur, kf.cov, cov_rel)
        depth = self._clean_depth(estimate.depth)
        self._failures = 0
        self.stats.tracked += 1
        result = self._result(
            frame.stamp,
            TRACKED,
            C,
            cov,
            relative_covariance=transform_covariance(self._Ad_bc, cov_rel),
            depth=depth,
            depth_camera=estimate.depth_camera,
            cost=estimate.cost,
            inference_s=inference_s,
        )
        if self._wants_keyframe(T_kf_cur, depth, estimate.depth_camera):
            self._keyframe = _Keyframe(frame, C, cov)
            self.stats.keyframes += 1
            self._trajectory_keyframes += 1
            result = _with(result, is_keyframe=True, keyframes=self._trajectory_keyframes)
        return result

    def _check(self, estimate: PairEstimate) -> str | None:
        """Why an estimate is unusable, or None."""
        T = np.asarray(estimate.T_tgt_ref)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            return "pose is not finite"
        if not math.isfinite(estimate.cost):
            return "BA cost is not finite"
        if estimate.valid_pixels == 0:
            return "no pixel of the frame lands in the keyframe at the BA's final pose (the BA diverged)"
        if estimate.cost > self.config.max_cost:
            return f"BA cost {estimate.cost:.3g} exceeds max_cost {self.config.max_cost:.3g}"
        baseline = float(np.linalg.norm(T[:3, 3]))
        if baseline > self.config.max_translation:
            return f"translation {baseline:.3g} m exceeds max_translation {self.config.max_translation:.3g} m"
        depth = np.asarray(estimate.depth)
        if depth.ndim != 2 or not np.any(np.isfinite(depth) & (depth > 0)):
            return "no valid depth"
        if not np.all(np.isfinite(estimate.hessian)):
            return "BA hessian is not finite"
        return None

    def _fail(self, frame: PreparedFrame, problem: str, cost: float, inference_s: float) -> FrameResult:
        self.stats.failed += 1
        self._failures += 1
        self._lost = True
        logger.warning("frame at %.6f s skipped: %s", frame.stamp, problem)
        if self._failures >= self.config.max_consecutive_failures:
            # Lost: the keyframe no longer pairs with anything; restart from the predicted pose.
            self.stats.lost += 1
            # Placed by constant velocity, not measured: its covariance grows as across a stamp gap (it
            # kept the old keyframe's, as certain as if the frames between had been tracked).
            C = self._predict(frame.stamp)
            self._keyframe = _Keyframe(frame, C, self._widened_cov(frame.stamp))
            self.stats.keyframes += 1
            self._trajectory_keyframes += 1
            self._failures = 0
            logger.warning(
                "%d consecutive failures: new keyframe at the predicted pose",
                self.config.max_consecutive_failures,
            )
        return FrameResult(
            frame.stamp,
            FAILED,
            self.trajectory_id,
            cost=cost,
            inference_s=inference_s,
            message=problem,
            state=LOST,
            scale_source="learned",
            keyframes=self._trajectory_keyframes,
        )

    def _clean_depth(self, depth: np.ndarray) -> np.ndarray:
        return in_depth_range(depth, self.config.min_depth, self.config.max_depth)

    def _wants_keyframe(self, T_kf_cur: np.ndarray, depth: np.ndarray, depth_camera: PinholeCamera) -> bool:
        c = self.config
        if c.keyframe_mode == "consecutive":
            return True
        if np.linalg.norm(T_kf_cur[:3, 3]) >= c.keyframe_translation:
            return True
        if float(rotation_angle_deg(T_kf_cur)) >= c.keyframe_rotation_deg:
            return True
        return view_overlap(depth, depth_camera, T_kf_cur) < c.keyframe_min_overlap


def _with(result: FrameResult, **changes) -> FrameResult:
    return replace(result, **changes)
