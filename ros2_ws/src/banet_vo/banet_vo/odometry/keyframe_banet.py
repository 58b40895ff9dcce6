"""BA-Net on the keyframe odometry's keyframe pairs: when it runs (banet_min_interval), its seed from the
map, in line or in a background thread (background_banet), and what its estimate gives: the keyframe's
metric depth, published at the pose's scale, and its pose as a window factor (banet_pose_factor). No ROS
here."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from banet_vo.geometry.frames import left_to_right_covariance, pose_covariance_from_hessian
from banet_vo.geometry.rigid import invert
from banet_vo.odometry.depth_output import in_depth_range
from banet_vo.odometry.estimator import PairEstimator, PreparedFrame, with_mean_intensity
from banet_vo.odometry.keyframes import Keyframe, logger, scale_covariance
from banet_vo.odometry.pipeline import FrameResult
from banet_vo.odometry.tracking_config import BANET_INPUT_MEAN


def estimate_or_error(estimator: PairEstimator, frame: PreparedFrame, prev: PreparedFrame, seed):
    """BA-Net on (frame, previous keyframe) from `seed`: its estimate, or the error it raised."""
    try:
        return estimator.estimate(frame, prev, seed)
    except (RuntimeError, ValueError) as err:
        return err


class BanetKeyframesMixin:
    """KeyframeOdometry's BA-Net on keyframe pairs. Owns `_banet_job`, `_banet_pool`, `_banet_stamp` and
    `_late_depth` (a depth that came back after its keyframe was published); sets each keyframe's depth
    and BA-Net pose, and hands the keyframe to the scale measurement."""

    def _banet_due(self, stamp: float) -> bool:
        """Whether BA-Net runs on the pair of a keyframe at `stamp` (tracking.banet_min_interval); when it
        does, the stamp is taken as the one it last ran on, else the keyframe is counted as skipped."""
        interval = self.tracking.banet_min_interval
        learning = self.config.scale_source == "learned" and self._scale.value is None
        if interval > 0 and not learning and self._banet_stamp is not None:
            if stamp - self._banet_stamp < interval:
                self.stats.banet_skipped += 1
                return False
        self._banet_stamp = stamp
        return True

    def _banet_seed(self, T_wc: np.ndarray, prev: Keyframe) -> np.ndarray | None:
        """The map pose T_wc of a new keyframe in `prev`, in BA-Net's unit: BA-Net's starting point (None
        before a scale, or when a depth calibration's gain cannot be told)."""
        s = self.scale
        if s is None:
            return None
        gain = 1.0
        calibration = self._depth_calibration
        if calibration is not None:
            # The scale is measured on the calibrated depth, BA-Net's translation is in its own depth's
            # unit. The new keyframe's depth is not known yet: the previous one's stands in for it.
            depth = prev.depth[0] if prev.depth is not None else self._points_in(prev)[:, 2] * s
            try:
                gain = calibration.gain(depth, calibrated=True)
            except ValueError as err:
                logger.warning("keyframe %d: BA-Net starts unseeded: %s", prev.id, err)
                return None
        seed = invert(prev.T_wc) @ T_wc
        seed[:3, 3] *= s / gain
        return seed

    def _banet_inputs(self, frame: PreparedFrame, prev: PreparedFrame) -> tuple[PreparedFrame, PreparedFrame]:
        """A keyframe pair's images (new, previous) as BA-Net is given them (tracking.banet_input_gain)."""
        mode = self.tracking.banet_input_gain
        if mode == "none":
            return frame, prev
        if mode == "mean":
            target = BANET_INPUT_MEAN
        else:  # first: the trajectory's first BA-Net image sets the level (reset() clears it)
            if self._banet_gain_level is None:
                self._banet_gain_level = float(prev.image.mean()) or None
            target = self._banet_gain_level
        if target is None:
            return frame, prev
        return with_mean_intensity(frame, target), with_mean_intensity(prev, target)

    def _run_banet(self, kf: Keyframe, prev: Keyframe):
        """BA-Net on (new keyframe, previous keyframe): its estimate, or the error it raised."""
        frame, previous = self._banet_inputs(kf.prepared, prev.prepared)
        return estimate_or_error(self.estimator, frame, previous, self._banet_seed(kf.T_wc, prev))

    def _submit_banet(self, kf: Keyframe, prev: Keyframe) -> None:
        """BA-Net on the keyframe pair in the background thread (background_banet); at most one runs, so
        a keyframe waits for the previous one's (the lag stays under one keyframe)."""
        self._merge_banet(wait=True)
        if self._banet_pool is None:
            self._banet_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="banet_vo_banet")
        seed = self._banet_seed(kf.T_wc, prev)  # read here: the thread touches no odometry state
        kf.depth_pending = True
        self._banet_job = (
            kf,
            prev,
            self._banet_pool.submit(
                estimate_or_error, self.estimator, *self._banet_inputs(kf.prepared, prev.prepared), seed
            ),
        )

    def _merge_banet(self, wait: bool = False) -> None:
        """Take a finished background BA-Net: the keyframe's depth and scale measurement, and its depth to
        publish with the next result. A keyframe no longer in the map (rebuilt, reset) is dropped."""
        if self._banet_job is None:
            return
        kf, prev, future = self._banet_job
        if not wait and not future.done():
            return
        self._banet_job = None
        kf.depth_pending = False
        self._take_banet(kf, prev, future.result())

    def _take_banet(self, kf: Keyframe, prev: Keyframe, estimate) -> None:
        """A keyframe's BA-Net estimate that came back from a thread: its depth and scale measurement (unless
        its window BA is still to be merged), and its depth to publish with the next result. A keyframe no
        longer in the map (rebuilt, reset) is dropped."""
        if not any(k is kf for k in self._keyframes):
            return
        depth = depth_camera = None
        if estimate is not None:  # None: BA-Net did not run on it (tracking.banet_min_interval)
            depth, depth_camera, message = self._use_banet(kf, prev, estimate)
            if depth is None:
                logger.warning("keyframe %d: %s", kf.id, message)
            else:
                kf.depth = (depth, depth_camera)
        if not kf.unmeasured:
            self._measure_scale(kf)
        if depth is not None:
            self._late_depth = (kf.stamp, self._depth_at_pose_scale(kf, depth), depth_camera)

    def _with_late_depth(self, result: FrameResult) -> FrameResult:
        """A result with a pose and no depth of its own carries the depth a background BA-Net returned."""
        if self._late_depth is None or not result.has_pose or result.depth is not None:
            return result
        stamp, depth, camera = self._late_depth
        self._late_depth = None
        return replace(result, depth=depth, depth_camera=camera, depth_stamp=stamp)

    def _use_banet(self, kf: Keyframe, prev: Keyframe, estimate):
        """The keyframe's depth (metres, out-of-range pixels 0), its camera and a message, from BA-Net's
        estimate on (kf, prev) or the error it raised; its pose becomes kf's factor (banet_pose_factor)."""
        if isinstance(estimate, Exception):
            return None, None, f"BA-Net failed on the keyframe pair: {estimate}"
        if self.config.banet_pose_factor != "none":
            try:
                cov_left = pose_covariance_from_hessian(estimate.hessian, estimate.residual_variance)
                cov = left_to_right_covariance(estimate.T_tgt_ref, cov_left)
                T = np.array(estimate.T_tgt_ref, dtype=np.float64)
                if self._depth_calibration is not None:
                    # BA-Net's translation is in its own depth's unit; the scale that takes it to the map
                    # is measured on the calibrated depth: into calibrated metres first.
                    gain = self._depth_calibration.gain(estimate.depth)
                    T[:3, 3] *= gain
                    cov = scale_covariance(cov, gain)
                if np.isfinite(T).all() and np.isfinite(cov).all():
                    kf.banet_pose = (prev.id, T, cov)
            except ValueError as err:
                logger.debug("keyframe %d: BA-Net pose not used as a factor: %s", kf.id, err)
        depth = np.asarray(estimate.depth, dtype=np.float32)
        if depth.ndim != 2 or not np.isfinite(estimate.cost) or not np.any(np.isfinite(depth) & (depth > 0)):
            return None, None, "BA-Net gave no usable depth on the keyframe pair"
        if self._depth_calibration is not None:
            depth = self._depth_calibration.apply(depth)
        return in_depth_range(depth, self.config.min_depth, self.config.max_depth), estimate.depth_camera, ""
