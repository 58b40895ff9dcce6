"""A keyframe of the keyframe odometry and the geometric helpers its parts share. No ROS here."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from banet_vo.frontend import Features
from banet_vo.frontend.solvers import project
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.rigid import invert, skew
from banet_vo.odometry.estimator import PreparedFrame

# The keyframe odometry logs under one name, whichever of its modules the code lives in (log filters
# and tests name it).
logger = logging.getLogger("banet_vo.odometry.keyframe_vo")


@dataclass
class Keyframe:
    id: int
    stamp: float
    T_wc: np.ndarray  # camera pose in the map (map units)
    features: Features
    landmarks: np.ndarray  # (N,) landmark id per keypoint, -1 for none
    prepared: PreparedFrame
    depth_scale: float | None = None  # metres per map unit that BA-Net's depth of this keyframe implies
    depth: tuple | None = None  # (BA-Net depth in metres, its camera); None when BA-Net gave none
    unmeasured: bool = False  # its scale is measured once its window BA is merged
    depth_pending: bool = False  # ... and once its background BA-Net has returned (background_banet)
    # BA-Net's pose of this keyframe in the previous one: (previous id, T_prev_this in metres, its
    # right-perturbation covariance [translation, rotation]), for banet_pose_factor.
    banet_pose: tuple[int, np.ndarray, np.ndarray] | None = None


def landmark_count(kf: Keyframe) -> int:
    return int((kf.landmarks >= 0).sum())


def median_parallax_deg(x_a: np.ndarray, x_b: np.ndarray, R_b_a: np.ndarray, camera: PinholeCamera) -> float:
    """Median angle between the bearings of b and the bearings of a rotated into b: the parallax that
    translation alone makes (0 for a pure rotation)."""
    if len(x_a) == 0:
        return 0.0
    Kinv = np.linalg.inv(camera.K)
    f_a = np.c_[x_a, np.ones(len(x_a))] @ Kinv.T
    f_b = np.c_[x_b, np.ones(len(x_b))] @ Kinv.T
    f_a = f_a @ R_b_a.T
    f_a /= np.linalg.norm(f_a, axis=1, keepdims=True)
    f_b /= np.linalg.norm(f_b, axis=1, keepdims=True)
    cos = np.clip(np.sum(f_a * f_b, axis=1), -1.0, 1.0)
    return float(np.degrees(np.median(np.arccos(cos))))


def pose_covariance_px(
    points_cam: np.ndarray, camera: PinholeCamera, sigma_px: float, pixels: np.ndarray | None = None
) -> np.ndarray | None:
    """Right-perturbation covariance ([translation, rotation], camera axes) of a camera pose from the
    reprojection of known points (N, 3 in camera coordinates): σ²·(JᵀJ)⁻¹ with σ the larger of
    `sigma_px` and the residual RMS when `pixels` are given. None when the points do not constrain it."""
    P = np.asarray(points_cam, dtype=np.float64)
    P = P[P[:, 2] > 1e-9] if len(P) else P
    if len(P) < 6:
        return None
    x, y, z = P[:, 0], P[:, 1], P[:, 2]
    fx, fy = camera.fx, camera.fy
    # d(point in camera)/d(ξ) for T_cw ← Exp(ξ)·T_cw is [I, −[p]×]; a right perturbation of T_wc has the
    # same covariance (T_wc·Exp(−ξ)).
    J = np.zeros((len(P), 2, 6))
    Jp = np.zeros((len(P), 2, 3))
    Jp[:, 0, 0] = fx / z
    Jp[:, 0, 2] = -fx * x / z**2
    Jp[:, 1, 1] = fy / z
    Jp[:, 1, 2] = -fy * y / z**2
    J[:, :, :3] = Jp
    J[:, :, 3:] = -Jp @ skew(P)
    H = np.einsum("nki,nkj->ij", J, J)
    sigma2 = sigma_px**2
    if pixels is not None and len(pixels) == len(points_cam):
        uv, _ = project(np.eye(4), np.asarray(points_cam, dtype=np.float64), camera)
        rms2 = float(np.mean(np.sum((uv - pixels) ** 2, axis=1)) / 2.0)
        if np.isfinite(rms2):
            sigma2 = max(sigma2, rms2)
    try:
        cov = np.linalg.inv(H) * sigma2
    except np.linalg.LinAlgError:
        return None
    if not np.isfinite(cov).all():
        return None
    return 0.5 * (cov + cov.T)


def backed_up(T_wc_prev: np.ndarray, T_wc_new: np.ndarray) -> bool:
    """Whether the new keyframe lies behind the previous one along that one's optical axis by at least
    half the distance between them (a camera backing up, not one stepping sideways)."""
    t = (invert(T_wc_prev) @ T_wc_new)[:3, 3]
    norm = float(np.linalg.norm(t))
    return norm > 0 and float(t[2]) <= -0.5 * norm


def scale_covariance(cov: np.ndarray, s: float) -> np.ndarray:
    """Covariance of [s·ρ, φ] from that of [ρ, φ] (map units → metres)."""
    D = np.diag([s, s, s, 1.0, 1.0, 1.0])
    return D @ cov @ D
