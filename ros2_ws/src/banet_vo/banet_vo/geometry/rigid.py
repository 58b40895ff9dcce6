"""Rigid transforms as numpy 4x4 float64 matrices: inverse, cross-product matrix, quaternions.

The one home of these helpers for both packages (the torch / pypose forms live in se3.py and
projection.py). Quaternions are ROS order [x, y, z, w].
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = [
    "invert",
    "log_se3",
    "nearest_rigid",
    "pose_matrix",
    "rotation_angle_deg",
    "rotation_to_quaternion",
    "skew",
]


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms (..., 4, 4) in closed form (Rᵀ, −Rᵀt), float64; no general inverse.

    Non-finite entries are not an error: the window BA inverts failed (NaN) poses and tests them after.
    """
    T = np.asarray(T, dtype=np.float64)
    if T.ndim < 2 or T.shape[-2:] != (4, 4):
        raise ValueError(f"T must be rigid transforms of shape (..., 4, 4), got shape {T.shape}")
    R_t = np.swapaxes(T[..., :3, :3], -1, -2)
    out = np.zeros_like(T)
    out[..., :3, :3] = R_t
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", R_t, T[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def nearest_rigid(T: np.ndarray) -> np.ndarray:
    """The rigid transform nearest to T (4, 4): its rotation block projected onto SO(3) by SVD, so that
    poses composed many times (corrections carried through a map) stay rigid; invert() relies on it."""
    T = np.array(T, dtype=np.float64)
    U, _, Vt = np.linalg.svd(T[:3, :3])
    R = U @ Vt
    if np.linalg.det(R) < 0:
        R = U @ np.diag([1.0, 1.0, -1.0]) @ Vt
    T[:3, :3] = R
    T[3] = [0.0, 0.0, 0.0, 1.0]
    return T


def log_se3(T: np.ndarray) -> np.ndarray:
    """Log of one rigid transform (4, 4) as [ρ, ω] (6,), float64: T = Exp([ρ, ω]), ω the rotation vector
    and ρ = V(ω)⁻¹ t. The twist that carries the identity to T at a constant rate in unit time, which the
    chord t is not when T turns (it points between the start and end headings)."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"T must be one rigid transform (4, 4), got shape {T.shape}")
    w = Rotation.from_matrix(T[:3, :3]).as_rotvec()
    theta = float(np.linalg.norm(w))
    W = skew(w)
    if theta < 1e-4:  # series of the coefficient below: 1/12 + θ²/720
        c = 1.0 / 12.0 + theta**2 / 720.0
    else:
        c = (1.0 - theta * np.sin(theta) / (2.0 * (1.0 - np.cos(theta)))) / theta**2
    V_inv = np.eye(3) - 0.5 * W + c * (W @ W)
    return np.concatenate([V_inv @ T[:3, 3], w])


def skew(v: np.ndarray) -> np.ndarray:
    """[v]× of vectors (..., 3) → (..., 3, 3), so that skew(a) @ b = a × b."""
    v = np.asarray(v, dtype=np.float64)
    if v.shape[-1:] != (3,):
        raise ValueError(f"v must have shape (..., 3), got {v.shape}")
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    o = np.zeros_like(x)
    return np.stack([o, -z, y, z, o, -x, -y, x, o], axis=-1).reshape(*v.shape, 3)


def rotation_angle_deg(T: np.ndarray) -> np.ndarray:
    """Rotation angle (degrees, in [0, 180]) of poses (..., 4, 4) / (..., 3, 4) or rotations (..., 3, 3).

    atan2 of the sine and cosine parts, so small angles stay accurate (arccos of the trace does not).
    """
    T = np.asarray(T)
    if T.ndim < 2 or T.shape[-2:] not in ((4, 4), (3, 3), (3, 4)):
        raise ValueError(f"T must have shape (..., 4, 4) or (..., 3, 3), got {T.shape}")
    R = T[..., :3, :3].astype(np.float64)
    axis = np.stack(
        [R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1
    )
    s = 0.5 * np.linalg.norm(axis, axis=-1)
    c = 0.5 * (np.trace(R, axis1=-2, axis2=-1) - 1.0)
    return np.degrees(np.arctan2(s, c))


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Unit quaternion [x, y, z, w] of a rotation matrix, with w ≥ 0 (the canonical of the two signs)."""
    return Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_quat(canonical=True)


def pose_matrix(translation, quaternion_xyzw) -> np.ndarray:
    """4x4 float64 from a translation [x, y, z] and a quaternion [x, y, z, w] (normalised here)."""
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(np.asarray(quaternion_xyzw, dtype=np.float64)).as_matrix()
    T[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return T


def pose_from_rotvec(rotvec, translation) -> np.ndarray:
    """4x4 float64 from a rotation vector (axis * angle, rad) and a translation [x, y, z]."""
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(np.asarray(rotvec, dtype=np.float64)).as_matrix()
    T[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return T
