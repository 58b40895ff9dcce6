"""Frame tracking: register the window's remaining frames one by one against the map (PnP RANSAC),
seeded by a constant-velocity prediction, and grow the map by triangulation after each."""

from __future__ import annotations

import cv2
import numpy as np
import pypose as pp
import torch
from banet_vo.geometry import PinholeCamera

from imatching_online.ba.config import WindowConfig
from imatching_online.ba.failures import FailureReason, WindowFailure
from imatching_online.ba.multiview import project_all, triangulate_tracks
from imatching_online.ba.tracks import Tracks


def _se3_log(T: np.ndarray) -> np.ndarray:
    return pp.mat2SE3(torch.from_numpy(T), check=False).Log().tensor().numpy()


def _se3_exp(xi: np.ndarray) -> np.ndarray:
    return pp.se3(torch.from_numpy(xi)).Exp().matrix().numpy()


def constant_velocity_prior(T_cw: np.ndarray, posed: np.ndarray, k: int) -> np.ndarray:
    """Pose T_cw of frame k if the camera moved at constant velocity between the two posed frames
    nearest to k (inter- or extrapolation on SE(3), left increments as in docs/CONVENTIONS.md)."""
    frames = np.flatnonzero(posed)
    if len(frames) < 2:
        raise ValueError("posed must mark at least two frames for a constant-velocity prior")
    p, q = sorted(frames[np.argsort(np.abs(frames - k), kind="stable")[:2]])
    xi = _se3_log(T_cw[q] @ np.linalg.inv(T_cw[p])) / (q - p)  # motion per frame
    return _se3_exp(xi * (k - p)) @ T_cw[p]


def _count_inliers(
    T: np.ndarray, X: np.ndarray, uv: np.ndarray, camera: PinholeCamera, thr: float
) -> np.ndarray:
    proj, z = project_all(T[None], X, camera)
    return (z[:, 0] > 0) & (np.linalg.norm(proj[:, 0] - uv, axis=1) < thr)


def register_frame(
    k: int, T_cw: np.ndarray, posed: np.ndarray, points: np.ndarray, tracks: Tracks, camera: PinholeCamera,
    config: WindowConfig,
) -> tuple[np.ndarray, int]:  # fmt: skip
    """Pose T_cw (4, 4) of frame k from its 2D-3D matches and the number of inliers.

    PnP RANSAC (EPnP) runs from scratch; the constant-velocity prior competes with its answer on inlier
    count, so a frame whose RANSAC goes astray still starts from the motion model. The winner is
    refined with Levenberg-Marquardt (OpenCV) on its inliers.
    """
    sel = np.flatnonzero(~np.isnan(points[:, 0]) & tracks.observed[:, k])
    prior = constant_velocity_prior(T_cw, posed, k)
    if len(sel) < max(config.min_frame_inliers, 6):
        raise WindowFailure(
            FailureReason.TRACKING_FAILED, f"frame {k} sees {len(sel)} mapped landmarks (need 6 and more)"
        )
    X, uv = points[sel], tracks.uv[sel, k]
    thr = config.pnp_threshold_px
    best_T, best_inl = prior, _count_inliers(prior, X, uv, camera, thr)
    ok, rvec, tvec, inl = cv2.solvePnPRansac(
        X, uv, camera.K, None, iterationsCount=config.pnp_iterations, reprojectionError=thr, confidence=0.999,
        flags=cv2.SOLVEPNP_EPNP,
    )  # fmt: skip
    if ok and inl is not None:
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = cv2.Rodrigues(rvec)[0], tvec.reshape(3)
        inl_T = _count_inliers(T, X, uv, camera, thr)
        if inl_T.sum() > best_inl.sum():
            best_T, best_inl = T, inl_T
    if best_inl.sum() < max(config.min_frame_inliers, 6):
        raise WindowFailure(
            FailureReason.TRACKING_FAILED,
            f"frame {k}: {int(best_inl.sum())} PnP inliers of {len(sel)} < {config.min_frame_inliers}",
        )
    rvec = cv2.Rodrigues(best_T[:3, :3])[0]
    tvec = best_T[:3, 3].reshape(3, 1).copy()
    rvec, tvec = cv2.solvePnPRefineLM(X[best_inl], uv[best_inl], camera.K, None, rvec, tvec)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = cv2.Rodrigues(rvec)[0], tvec.reshape(3)
    return T, int(_count_inliers(T, X, uv, camera, thr).sum())


def track_frames(
    T_cw: np.ndarray, posed: np.ndarray, points: np.ndarray, tracks: Tracks, camera: PinholeCamera,
    config: WindowConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Register every unposed frame, nearest to the posed ones first (most mapped landmarks on ties),
    re-triangulating all tracks after each. Returns T_cw, the map points (T, 3) and their inlier
    observations (T, N)."""
    T_cw, posed = T_cw.copy(), posed.copy()
    if posed.all():  # two-frame window: nothing to register
        points, inliers = triangulate_tracks(
            T_cw, posed, tracks.uv, camera, config.triangulation_threshold_px
        )
    while not posed.all():
        todo = np.flatnonzero(~posed)
        gap = np.array([np.abs(np.flatnonzero(posed) - k).min() for k in todo])
        seen = np.array([(~np.isnan(points[:, 0]) & tracks.observed[:, k]).sum() for k in todo])
        k = int(todo[np.lexsort((-seen, gap))[0]])
        T_cw[k], _ = register_frame(k, T_cw, posed, points, tracks, camera, config)
        posed[k] = True
        points, inliers = triangulate_tracks(
            T_cw, posed, tracks.uv, camera, config.triangulation_threshold_px
        )
    return T_cw, points, inliers
