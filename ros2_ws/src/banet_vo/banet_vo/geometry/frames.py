"""Body ↔ optical frames (REP-103) and the covariance algebra the odometry needs.

Body (`base_link`): x forward, y left, z up. Optical camera: x right, y down, z forward. All poses here are
4x4 float64 numpy matrices; tangent vectors are ordered [ρ (translation), φ (rotation)] as in pypose.

Covariances of a pose T are kept for a *right* perturbation T·Exp(ξ) (ξ in the child frame) while the
odometry composes poses, because composition then only needs adjoints of the relative motion; they are
turned into the ROS pose covariance (position and rotation about the parent's axes) at the end.
"""

from __future__ import annotations

import numpy as np

# invert and skew live in rigid.py; odometry code imports them from here too, so they stay importable.
from banet_vo.geometry.rigid import invert, skew

__all__ = [
    "R_BODY_OPTICAL",
    "adjoint",
    "body_from_optical",
    "compose_right_covariance",
    "left_to_right_covariance",
    "pose_covariance_from_hessian",
    "right_covariance_to_ros",
    "transform_covariance",
]

# Rotation body ← optical: its columns are the optical axes in body coordinates
# (right = −y_body, down = −z_body, forward = +x_body).
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _pose(T: np.ndarray, name: str) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"{name} must be a finite 4x4 matrix, got shape {T.shape}")
    return T


def _cov(C: np.ndarray, name: str) -> np.ndarray:
    C = np.asarray(C, dtype=np.float64)
    if C.shape != (6, 6) or not np.all(np.isfinite(C)):
        raise ValueError(f"{name} must be a finite 6x6 matrix, got shape {C.shape}")
    return C


def body_from_optical(
    translation: np.ndarray | None = None, rotation: np.ndarray | None = None
) -> np.ndarray:
    """T_base_camera: the camera's optical frame in the body frame.

    rotation: 3x3 body ← optical (default the REP-103 one, a camera looking along body x);
    translation: camera centre in body coordinates (metres, default zero).
    """
    T = np.eye(4)
    R = R_BODY_OPTICAL if rotation is None else np.asarray(rotation, dtype=np.float64)
    if R.shape != (3, 3) or not np.allclose(R.T @ R, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
        raise ValueError("rotation must be a proper 3x3 rotation matrix (RᵀR = I, det = +1)")
    T[:3, :3] = R
    if translation is not None:
        t = np.asarray(translation, dtype=np.float64).reshape(-1)
        if t.shape != (3,) or not np.all(np.isfinite(t)):
            raise ValueError(f"translation must be 3 finite values, got {t.tolist()}")
        T[:3, 3] = t
    return T


def adjoint(T: np.ndarray) -> np.ndarray:
    """Ad(T) for [ρ, φ] tangents: T·Exp(ξ)·T⁻¹ = Exp(Ad(T) ξ); Ad = [[R, [t]×R], [0, R]]."""
    T = _pose(T, "T")
    R, t = T[:3, :3], T[:3, 3]
    A = np.zeros((6, 6))
    A[:3, :3] = R
    A[:3, 3:] = skew(t) @ R
    A[3:, 3:] = R
    return A


def _symmetric(C: np.ndarray) -> np.ndarray:
    return 0.5 * (C + C.T)


def transform_covariance(A: np.ndarray, C: np.ndarray) -> np.ndarray:
    """A C Aᵀ, symmetrised (first-order propagation through a linear map of the tangent)."""
    return _symmetric(A @ _cov(C, "covariance") @ A.T)


def left_to_right_covariance(T: np.ndarray, cov_left: np.ndarray) -> np.ndarray:
    """Covariance of ξ_r with Exp(ξ_l)·T = T·Exp(ξ_r): ξ_r = Ad(T⁻¹) ξ_l."""
    return transform_covariance(adjoint(invert(T)), cov_left)


def compose_right_covariance(T_b: np.ndarray, cov_a: np.ndarray, cov_b: np.ndarray) -> np.ndarray:
    """Right-perturbation covariance of T_a·T_b from independent right covariances of T_a and T_b.

    T_a Exp(ξ_a) T_b Exp(ξ_b) = T_a T_b Exp(Ad(T_b⁻¹) ξ_a) Exp(ξ_b), so Σ = Ad(T_b⁻¹) Σ_a Ad(T_b⁻¹)ᵀ + Σ_b.
    """
    return transform_covariance(adjoint(invert(T_b)), cov_a) + _symmetric(_cov(cov_b, "cov_b"))


def right_covariance_to_ros(T_parent_child: np.ndarray, cov_right: np.ndarray) -> np.ndarray:
    """ROS pose covariance (x, y, z, rot x, rot y, rot z about the parent's axes) of T·Exp(ξ), ξ ~ cov_right.

    To first order the position moves by R ρ and the orientation by R φ (rotation about parent axes),
    so Σ_ros = blockdiag(R, R) Σ blockdiag(R, R)ᵀ.
    """
    R = _pose(T_parent_child, "T_parent_child")[:3, :3]
    B = np.zeros((6, 6))
    B[:3, :3] = R
    B[3:, 3:] = R
    return transform_covariance(B, cov_right)


def pose_covariance_from_hessian(
    hessian: np.ndarray, residual_variance: float, pose_dim: int = 6, rcond: float = 1e-12
) -> np.ndarray:
    """Pose covariance σ²·S⁻¹ from the Gauss-Newton AᵀA over [pose, depth coefficients].

    S = H_pp − H_pw H_ww⁻¹ H_wp is the Schur complement over the depth coefficients: the information
    left on the pose once the depth is free. Pseudo-inverses keep a rank-deficient H_ww (a basis map the
    image does not constrain) from blowing up; a pose block without information raises ValueError.
    """
    H = np.asarray(hessian, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] != H.shape[1] or H.shape[0] < pose_dim:
        raise ValueError(f"hessian must be square with at least {pose_dim} rows, got shape {H.shape}")
    if not np.all(np.isfinite(H)):
        raise ValueError("hessian has non-finite entries")
    if not np.isfinite(residual_variance) or residual_variance <= 0:
        raise ValueError(f"residual_variance must be finite and > 0, got {residual_variance}")
    H = _symmetric(H)
    H_pp, H_pw, H_ww = H[:pose_dim, :pose_dim], H[:pose_dim, pose_dim:], H[pose_dim:, pose_dim:]
    S = H_pp - H_pw @ np.linalg.pinv(H_ww, rcond=rcond, hermitian=True) @ H_pw.T if H_ww.size else H_pp
    S = _symmetric(S)
    eigvals, eigvecs = np.linalg.eigh(S)
    if eigvals[-1] <= 0 or eigvals[0] <= eigvals[-1] * rcond:
        raise ValueError(
            f"hessian: the pose block of the Schur complement is not positive definite "
            f"(eigenvalues {eigvals.min():.3g} .. {eigvals.max():.3g}): the image does not constrain the pose"
        )
    cov = (eigvecs / eigvals) @ eigvecs.T
    return _symmetric(residual_variance * cov)
