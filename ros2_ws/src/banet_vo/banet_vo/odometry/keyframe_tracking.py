"""Locating a frame on the keyframe odometry's map, and when it becomes a keyframe: PnP on the newest
keyframes' landmarks (the whole window on a relocalisation), the 5-point recovery from the newest keyframe,
the test that keeps a far pose out, and the keyframe rules. No ROS here."""

from __future__ import annotations

import numpy as np

from banet_vo.frontend import Features, match_mutual, solve_absolute_pose, solve_relative_pose
from banet_vo.frontend.solvers import MAX_EPIPOLAR_PX, triangulate
from banet_vo.geometry.rigid import invert
from banet_vo.odometry.keyframes import (
    Keyframe,
    landmark_count,
    logger,
    median_parallax_deg,
    pose_covariance_px,
)
from banet_vo.odometry.motion import predict_constant_velocity
from banet_vo.odometry.scale import depth_at_pixels


class TrackingMixin:
    """KeyframeOdometry's tracking: reads the keyframes, the landmarks and the last map poses
    (`_map_history`); `_track` (in keyframe_vo) runs a frame through it."""

    def _predict_map(self, stamp: float) -> np.ndarray:
        if len(self._map_history) < 2:
            return self._map_history[-1][1]
        (t0, T0), (t1, T1) = self._map_history
        return predict_constant_velocity(T1, t1, T0, t0, stamp)

    def _pnp(
        self,
        keyframes: list[Keyframe],
        features: Features,
        T_guess: np.ndarray,
        matched: list[np.ndarray] | None = None,
    ):
        """Pose of the current frame from the landmarks of `keyframes` (newest first) that its keypoints
        match (`matched`: the matches already made to the first len(matched) of them); returns ((T_wc,
        [(keypoint, landmark)] inliers, X, x) or None, the matches to each keyframe, newest first)."""
        assigned = np.full(len(features), -1, np.int64)
        per_keyframe = []
        for i, kf in enumerate(keyframes):
            if matched is not None and i < len(matched):
                matches = matched[i]
            else:
                matches = match_mutual(kf.features, features, self.tracking.min_cosine)
            per_keyframe.append(matches)
            # A keyframe holds each landmark at one keypoint and mutual matches are one-to-one, so within
            # one keyframe the landmarks are distinct; newer keyframes keep what they assigned first.
            lm, j = kf.landmarks[matches[:, 0]], matches[:, 1]
            fresh = (lm >= 0) & (assigned[j] < 0) & ~np.isin(lm, assigned[assigned >= 0])
            assigned[j[fresh]] = lm[fresh]
        keypoints = np.flatnonzero(assigned >= 0)
        self._pnp_candidates = len(keypoints)
        if len(keypoints) < self.tracking.min_tracked:
            return None, per_keyframe
        X = np.stack([self._points[int(lm)] for lm in assigned[keypoints]])
        x = features.keypoints[keypoints]
        init = invert(T_guess) if self.config.motion_prior else None
        sol = solve_absolute_pose(
            x, X, self._camera, self.tracking.pnp_max_px * self._px, init, self.tracking.ransac_seed
        )
        if sol is None or sol.inliers.sum() < self.tracking.min_tracked:
            return None, per_keyframe
        pairs = np.stack([keypoints[sol.inliers], assigned[keypoints[sol.inliers]]], axis=1)
        return (invert(sol.T_cam_world), pairs, X[sol.inliers], x[sol.inliers]), per_keyframe

    def _defer_keyframe(self, last: Keyframe, tracked: int) -> bool:
        """tracking.busy_keyframe defer: a keyframe asked for while the background window BA still solves
        waits for a later frame (this one is published as tracked, without waiting for the solve), unless
        tracking is weak: fewer than half the tracked-ratio rule's share of the newest keyframe's
        landmarks (ORB-SLAM inserts a keyframe while its mapping is busy only then)."""
        if self.tracking.busy_keyframe != "defer" or self._ba_job is None:
            return False
        weak = self._weak(last, tracked)
        if not weak:
            self.stats.keyframes_deferred += 1
        return not weak

    def _weak(self, last: Keyframe, tracked: int) -> bool:
        """Tracking too weak to put a keyframe off: fewer than half the keyframe_tracked_ratio share of the
        newest keyframe's landmarks tracked."""
        return tracked < 0.5 * self.tracking.keyframe_tracked_ratio * landmark_count(last)

    def _retry_after_gap(self, stalled: bool) -> bool:
        """Whether a frame after a gap that PnP cannot locate leaves the map for the next frames to try;
        `stalled`: the frames before the gap came at the camera's pace, so the next ones will again."""
        mode = self.tracking.gap_failure
        return mode == "retry" or (mode == "retry_after_stall" and stalled)

    def _near_prediction(self, T_wc: np.ndarray, guess: np.ndarray, after_gap: bool, kind: str) -> bool:
        """Whether a pose found without the newest keyframes' landmarks (`kind`: "relocalisation" against
        the whole window, or the 5-point "recovery" from the newest keyframe) lies near the
        constant-velocity prediction `guess`: within reloc_max_jump times the larger of the predicted step
        and the newest keyframes' spacing (map units, so no metric scale is needed). Without a velocity
        (after a gap, or one tracked frame) there is nothing to compare with, and the pose is kept."""
        limit = self.tracking.reloc_max_jump
        if limit <= 0 or after_gap or len(self._map_history) < 2:
            return True
        step = float(np.linalg.norm(guess[:3, 3] - self._map_history[-1][1][:3, 3]))
        kfs = self._keyframes
        spacing = float(np.linalg.norm(kfs[-1].T_wc[:3, 3] - kfs[-2].T_wc[:3, 3])) if len(kfs) >= 2 else 0.0
        jump = float(np.linalg.norm(T_wc[:3, 3] - guess[:3, 3]))
        if jump <= limit * max(step, spacing):
            return True
        if kind == "recovery":
            self.stats.recovery_refused += 1
        else:
            self.stats.reloc_refused += 1
        logger.warning(
            "%s refused: %.2f from the predicted position, over %g x %.2f (map units)",
            kind,
            jump,
            limit,
            max(step, spacing),
        )
        return False

    def _recover(self, last: Keyframe, features: Features, matches: np.ndarray):
        """PnP failed: the frame's pose from the newest keyframe by 5-point RANSAC on all their matches (a
        view that moved far shares few landmarks with the window but many keypoints with its newest
        keyframe). The unit baseline gets its length from the inliers' depth in the keyframe: the map
        depth of the landmarks among them or, when too few are landmarks, BA-Net's depth of the keyframe
        in map units. Returns (T_wc, tracked (keypoint, landmark) pairs, inlier matches, what fixed the
        baseline) or None."""
        t = self.tracking
        if t.recovery_min_points == 0 or len(matches) < t.init_min_inliers:
            return None
        x0 = last.features.keypoints[matches[:, 0]]
        x1 = features.keypoints[matches[:, 1]]
        rel = solve_relative_pose(x0, x1, self._camera, MAX_EPIPOLAR_PX * self._px, seed=t.ransac_seed)
        if rel is None or rel.inliers.sum() < t.init_min_inliers:
            return None
        inliers, x0, x1 = matches[rel.inliers], x0[rel.inliers], x1[rel.inliers]
        T_kf_cur = invert(rel.T_cur_ref)
        X, ok = triangulate(
            np.eye(4),
            T_kf_cur,
            x0,
            x1,
            self._camera,
            t.triangulation_max_px * self._px,
            t.triangulation_min_parallax_deg,
        )
        landmarks = last.landmarks[inliers[:, 0]]
        known = np.flatnonzero(
            ok & (landmarks >= 0) & np.isin(landmarks, np.fromiter(self._points, np.int64, len(self._points)))
        )
        if len(known) >= t.recovery_min_points:
            T_cw = invert(last.T_wc)
            P = np.stack([self._points[int(i)] for i in landmarks[known]])
            ratios = (P @ T_cw[2, :3] + T_cw[2, 3]) / X[known, 2]
            source = f"{len(ratios)} landmarks"
        elif last.depth is not None and last.depth_scale:
            depth, depth_camera = last.depth
            z = depth_at_pixels(depth, depth_camera, self._camera, x0[ok]) / last.depth_scale
            ratios = z[np.isfinite(z)] / X[ok][np.isfinite(z), 2]
            if len(ratios) < t.recovery_min_points:
                return None
            source = f"BA-Net depth at {len(ratios)} points"
        else:
            return None
        baseline = float(np.median(ratios))
        if not np.isfinite(baseline) or baseline <= 0:
            return None
        T_kf_cur[:3, 3] *= baseline
        tracked = np.stack([inliers[known, 1], landmarks[known]], axis=1)
        return last.T_wc @ T_kf_cur, tracked, inliers, source

    def _keyframe_due(
        self, kf: Keyframe, x_kf: np.ndarray, x_cur: np.ndarray, T_wc: np.ndarray, tracked: int
    ) -> bool:
        """Whether a frame at T_wc becomes a keyframe after `kf`: fewer than keyframe_tracked_ratio of kf's
        landmarks tracked, or the median rotation-compensated parallax of the pixel pairs (x_kf in kf,
        x_cur in the frame) at least keyframe_parallax_deg."""
        t = self.tracking
        if tracked < t.keyframe_tracked_ratio * landmark_count(kf):
            return True
        R_cur_kf = (invert(T_wc) @ kf.T_wc)[:3, :3]
        return median_parallax_deg(x_kf, x_cur, R_cur_kf, self._camera) >= t.keyframe_parallax_deg

    def _pnp_covariance(self, T_wc: np.ndarray, X: np.ndarray, x: np.ndarray) -> np.ndarray | None:
        """The pose covariance of a PnP solution T_wc from world points X seen at pixels x."""
        points_cam = np.c_[X, np.ones(len(X))] @ invert(T_wc).T[:, :3]
        return pose_covariance_px(points_cam, self._camera, self.tracking.pixel_sigma * self._px, x)
