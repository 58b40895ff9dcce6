"""The keyframe odometry's window bundle adjustment (banet_vo.backend, GTSAM or Ceres): the window's
problem built from the keyframes, solved in line or by the background worker (background_ba), and merged
into the map. No ROS here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from banet_vo.backend import Observations, RelativePoseFactor
from banet_vo.backend.background import WindowSolveFailed
from banet_vo.geometry.rigid import invert, nearest_rigid
from banet_vo.odometry.keyframes import logger


@dataclass
class WindowJob:
    """One window BA as submitted: the poses and points it started from, and where each observation is."""

    poses: dict[int, np.ndarray]
    points: dict[int, np.ndarray]
    observations: Observations
    fixed: set[int]
    keypoints: np.ndarray  # per observation, the keypoint index in its keyframe
    last_landmark: int  # landmarks with larger ids were created after the job was built
    relative: list[RelativePoseFactor]  # BA-Net's keyframe-pair poses (banet_pose_factor)


class WindowBAMixin:
    """KeyframeOdometry's window BA. Owns `_ba_job` (the window the worker solves), `_ba_pending` (the
    window changed while it solved) and `_worker_failed`; reads and moves the keyframes, landmarks and map
    history, and measures the scale of keyframes whose landmarks it solved."""

    @property
    def _inline_ba(self) -> bool:
        return self._worker_failed or not self.config.background_ba  # read at each use: a node parameter

    def _bundle_adjust(self) -> None:
        if self._inline_ba:
            self._merge_background_ba(wait=True)  # background_ba was just turned off
            self._background.close()  # its worker would sit idle (turned on again, a new one starts)
            job = self._window_job()
            self._apply_ba(self._solve_inline(job), job, frames_moved=False)
        elif self._background.busy:
            self._ba_pending = True  # solved as a whole when the running job is merged
        else:
            self._submit_ba()

    def _solve_inline(self, job: WindowJob):
        return self._ba.solve(job.poses, job.points, job.observations, job.fixed, job.relative)

    def _submit_ba(self) -> None:
        job = self._window_job()
        self._ba_pending = False
        try:
            self._background.submit(
                self._camera,
                self._ba.config,
                job.poses,
                job.points,
                job.observations,
                job.fixed,
                job.relative,
            )
        except RuntimeError as err:  # the worker cannot take it: this and later windows in line
            self._worker_lost(err)
            self._apply_ba(self._solve_inline(job), job, frames_moved=False)
            return
        self._ba_job = job

    def _worker_lost(self, err: RuntimeError) -> None:
        logger.error("%s; window BAs are solved in line from now on", err)
        self._worker_failed = True
        self._background.close()

    def _merge_background_ba(self, wait: bool = False) -> np.ndarray:
        """Merge a finished background BA (and start the next one if the window changed meanwhile);
        returns the correction it made to poses of frames located before the merge (identity if none)."""
        job = self._ba_job
        if job is None:
            return np.eye(4)
        try:
            result = self._background.poll(wait)
        except RuntimeError as err:
            if isinstance(err, WindowSolveFailed):  # the worker goes on: later windows still go to it
                logger.warning("%s; solving this window in line", err)
            else:
                self._worker_lost(err)
            # The job is this call's now: should the solve in line raise too, none is left pending (a pending
            # job holds keyframes off, and a closed worker would never hand it back).
            self._ba_job = None
            result = self._solve_inline(job)
        if result is None:
            return np.eye(4)
        self._ba_job = None
        correction = self._apply_ba(result, job, frames_moved=True)
        self.stats.window_ba_merged += 1
        if self._ba_pending and len(self._keyframes) >= 2 and not self._inline_ba:
            self._submit_ba()
        self._ba_pending = False
        return correction

    def _window_job(self) -> WindowJob:
        kfs = self._keyframes
        seen = [np.flatnonzero(kf.landmarks >= 0) for kf in kfs]
        keypoints = np.concatenate(seen)
        observations = Observations(
            np.concatenate([np.full(len(idx), kf.id) for kf, idx in zip(kfs, seen, strict=True)]),
            np.concatenate([kf.landmarks[idx] for kf, idx in zip(kfs, seen, strict=True)]),
            np.concatenate([kf.features.keypoints[idx] for kf, idx in zip(kfs, seen, strict=True)]),
        )
        # Only the newest keyframes move; at least the two oldest stay fixed, which holds the gauge and
        # the scale that earlier windows decided. (Holding more of them was worse on the validation
        # clips: the newest poses then absorb the errors of the old ones.) With two keyframes, the
        # first baseline is the map's unit.
        free = min(self.tracking.free_keyframes, len(kfs) - 2) if len(kfs) > 2 else 0
        fixed = {kf.id for kf in kfs[: len(kfs) - free]}
        poses = {kf.id: kf.T_wc.copy() for kf in kfs}
        points = {lm: self._points[lm].copy() for lm in np.unique(observations.landmarks).tolist()}
        return WindowJob(
            poses, points, observations, fixed, keypoints, self._next_landmark, self._banet_factors()
        )

    def _banet_factors(self) -> list[RelativePoseFactor]:
        """BA-Net's keyframe-pair poses as relative-pose factors of this window, in map units."""
        mode, s = self.config.banet_pose_factor, self.scale
        if mode == "none" or s is None or not s > 0:
            return []
        ids = {kf.id for kf in self._keyframes}
        to_map = np.diag([1.0 / s] * 3 + [1.0] * 3)
        factors = []
        for kf in self._keyframes:
            if kf.banet_pose is None or kf.banet_pose[0] not in ids:
                continue
            prev_id, T, cov = kf.banet_pose
            T = T.copy()
            T[:3, 3] /= s
            cov = to_map @ cov @ to_map
            if mode == "rotation":  # the translation left free: only the relative rotation is held
                cov[:3, :] = 0.0
                cov[:, :3] = 0.0
                cov[:3, :3] = np.eye(3) * 1e6
            factors.append(RelativePoseFactor(prev_id, kf.id, T, cov))
        return factors

    def _apply_ba(self, result, job: WindowJob, frames_moved: bool) -> np.ndarray:
        """Merge a window BA into the map. What changed since the job was built (keyframes, landmarks and
        frame poses added while it ran in the background) moves with the newest solved keyframe, so the
        map stays rigidly consistent around the current frame."""
        by_id = {kf.id: kf for kf in self._keyframes}
        newest = max(job.poses)
        correction = nearest_rigid(result.poses[newest] @ invert(job.poses[newest]))
        for kf_id, T in result.poses.items():
            if kf_id in by_id:
                by_id[kf_id].T_wc = T
        for lm, P in result.points.items():
            if lm in self._points:
                self._points[lm] = P
        if frames_moved:  # what was added while it ran in the background was located in the old map
            for kf in self._keyframes:
                if kf.id > newest:
                    kf.T_wc = nearest_rigid(correction @ kf.T_wc)
            R, t = correction[:3, :3], correction[:3, 3]
            for lm in self._points:
                if lm > job.last_landmark:
                    self._points[lm] = R @ self._points[lm] + t
            self._map_history = [(stamp, nearest_rigid(correction @ T)) for stamp, T in self._map_history]
        rows = result.outlier_rows
        for kf_id, idx, lm in zip(
            job.observations.keyframes[rows].tolist(),
            job.keypoints[rows].tolist(),
            job.observations.landmarks[rows].tolist(),
            strict=True,
        ):
            kf = by_id.get(kf_id)
            if kf is not None and kf.landmarks[idx] == lm:
                kf.landmarks[idx] = -1
        for kf in self._keyframes:
            if kf.unmeasured and kf.id <= newest:
                kf.unmeasured = False
                if not kf.depth_pending:
                    self._measure_scale(kf)
        self._forget_unseen_landmarks()
        return correction
