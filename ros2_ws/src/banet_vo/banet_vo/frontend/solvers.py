"""Minimal solvers with RANSAC (PoseLib) and linear triangulation for the feature front end.

Poses follow docs/CONVENTIONS.md: T_a_b maps points in frame b to frame a; cameras are optical
(x right, y down, z forward). PoseLib's CameraPose is world-to-camera (x_cam = R·X + t), so its
absolute pose is T_cam_world and its relative pose (x2 = R·x1 + t) is T_cam2_cam1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import poselib

from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.rigid import invert, skew


@dataclass(frozen=True, eq=False)
class RelativePose:
    T_cur_ref: np.ndarray  # 4x4, translation of unit length (the scale is not observable)
    inliers: np.ndarray  # (M,) bool over the input correspondences


@dataclass(frozen=True, eq=False)
class AbsolutePose:
    T_cam_world: np.ndarray  # 4x4
    inliers: np.ndarray  # (M,) bool


def _camera_dict(camera: PinholeCamera) -> dict:
    return {
        "model": "PINHOLE",
        "width": int(camera.width),
        "height": int(camera.height),
        "params": [camera.fx, camera.fy, camera.cx, camera.cy],
    }


def _matrix(pose) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = pose.R
    T[:3, 3] = pose.t
    return T


def _pose_from_matrix(T: np.ndarray) -> poselib.CameraPose:
    pose = poselib.CameraPose()
    pose.R = T[:3, :3]
    pose.t = T[:3, 3]
    return pose


# 5-point RANSAC inlier threshold [px] (Sampson distance), in pixels of the keypoints' own image.
MAX_EPIPOLAR_PX = 1.0


def solve_relative_pose(
    x_ref: np.ndarray,
    x_cur: np.ndarray,
    camera: PinholeCamera,
    max_epipolar_px: float = MAX_EPIPOLAR_PX,
    seed_iterations: int = 2000,
    seed: int = 0,
) -> RelativePose | None:
    """Calibrated 5-point RANSAC (random draws from `seed`) + refinement on pixel correspondences; None when
    under 8 matches."""
    if len(x_ref) < 8:
        return None
    cam = _camera_dict(camera)
    opt = {
        "max_epipolar_error": float(max_epipolar_px),
        "max_iterations": int(seed_iterations),
        "seed": int(seed),
    }
    pose, info = poselib.estimate_relative_pose(
        np.asarray(x_ref, np.float64), np.asarray(x_cur, np.float64), cam, cam, opt, {}
    )
    inliers = np.asarray(info["inliers"], dtype=bool)
    if inliers.sum() < 8:
        return None
    T = _matrix(pose)
    norm = np.linalg.norm(T[:3, 3])
    if not np.isfinite(T).all() or norm < 1e-12:
        return None
    T[:3, 3] /= norm
    return RelativePose(T, inliers)


def solve_absolute_pose(
    x: np.ndarray,
    X_world: np.ndarray,
    camera: PinholeCamera,
    max_reprojection_px: float = 3.0,
    T_init: np.ndarray | None = None,
    seed: int = 0,
) -> AbsolutePose | None:
    """P3P RANSAC (random draws from `seed`) + refinement (2D pixels, 3D world points); None when under 6
    correspondences."""
    if len(x) < 6:
        return None
    opt = {"max_reproj_error": float(max_reprojection_px), "seed": int(seed)}
    init = _pose_from_matrix(T_init) if T_init is not None else None
    pose, info = poselib.estimate_absolute_pose(
        np.asarray(x, np.float64), np.asarray(X_world, np.float64), _camera_dict(camera), opt, {}, init
    )
    T = _matrix(pose)
    inliers = np.asarray(info["inliers"], dtype=bool)
    if not np.isfinite(T).all() or inliers.sum() < 6:
        return None
    return AbsolutePose(T, inliers)


def project(
    T_cam_world: np.ndarray, X_world: np.ndarray, camera: PinholeCamera
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (N, 2) and depths (N,) of world points in a camera."""
    Xc = X_world @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    z = Xc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = camera.fx * Xc[:, 0] / z + camera.cx
        v = camera.fy * Xc[:, 1] / z + camera.cy
    return np.stack([u, v], axis=1), z


def triangulate(
    T_w_a: np.ndarray,
    T_w_b: np.ndarray,
    x_a: np.ndarray,
    x_b: np.ndarray,
    camera: PinholeCamera,
    max_reprojection_px: float = 2.0,
    min_parallax_deg: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) by linear (DLT) triangulation of pixel pairs seen from two camera poses, and a
    (N,) mask of the trustworthy ones: in front of both cameras, reprojecting within the threshold in
    both, and seen under at least `min_parallax_deg` (below it depth is mostly noise)."""
    n = len(x_a)
    if n == 0:
        return np.zeros((0, 3)), np.zeros(0, dtype=bool)
    K = camera.K
    T_a_w, T_b_w = invert(T_w_a), invert(T_w_b)
    P_a, P_b = K @ T_a_w[:3], K @ T_b_w[:3]
    x_a = np.asarray(x_a, np.float64)
    x_b = np.asarray(x_b, np.float64)
    # Rows of the DLT system for each point: u·P[2] − P[0], v·P[2] − P[1] from both views.
    A = np.stack(
        [
            x_a[:, :1] * P_a[2] - P_a[0],
            x_a[:, 1:] * P_a[2] - P_a[1],
            x_b[:, :1] * P_b[2] - P_b[0],
            x_b[:, 1:] * P_b[2] - P_b[1],
        ],
        axis=1,
    )
    _, _, vt = np.linalg.svd(A)
    Xh = vt[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        X = Xh[:, :3] / Xh[:, 3:4]
    ok = np.isfinite(X).all(axis=1) & (np.abs(Xh[:, 3]) > 1e-12)
    X = np.where(ok[:, None], X, 0.0)
    for T, x in ((T_a_w, x_a), (T_b_w, x_b)):
        pix, z = project(T, X, camera)
        err = np.linalg.norm(pix - x, axis=1)
        ok &= (z > 0) & (err < max_reprojection_px)
    ray_a = X - T_w_a[:3, 3]
    ray_b = X - T_w_b[:3, 3]
    cos = np.sum(ray_a * ray_b, axis=1) / (
        np.linalg.norm(ray_a, axis=1) * np.linalg.norm(ray_b, axis=1) + 1e-12
    )
    ok &= cos < np.cos(np.deg2rad(min_parallax_deg))
    return X, ok


def sampson_distance_px(
    x_a: np.ndarray, x_b: np.ndarray, T_b_a: np.ndarray, camera: PinholeCamera
) -> np.ndarray:
    """First-order geometric distance (N,) in pixels of pixel pairs (x_a in camera a, x_b in camera b)
    from the epipolar geometry of the relative pose T_b_a (any translation scale); inf for a pose with no
    translation, where the epipolar constraint says nothing."""
    t = T_b_a[:3, 3]
    if np.linalg.norm(t) < 1e-12:
        return np.full(len(x_a), np.inf)
    K_inv = np.linalg.inv(camera.K)
    F = K_inv.T @ skew(t) @ T_b_a[:3, :3] @ K_inv
    a = np.c_[np.asarray(x_a, np.float64), np.ones(len(x_a))]
    b = np.c_[np.asarray(x_b, np.float64), np.ones(len(x_b))]
    Fa = a @ F.T  # epipolar lines in b
    Ftb = b @ F  # epipolar lines in a
    num = np.sum(b * Fa, axis=1) ** 2
    den = Fa[:, 0] ** 2 + Fa[:, 1] ** 2 + Ftb[:, 0] ** 2 + Ftb[:, 1] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(num / den)
