"""Small host-side motion helpers of the odometry: constant-velocity prediction, twist, view overlap."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.rigid import invert, log_se3


def scale_motion(T: np.ndarray, factor: float) -> np.ndarray:
    """The rigid motion T "times factor": rotation vector and translation scaled (a constant-velocity
    approximation of Exp(factor · Log T) that is exact for pure rotations and pure translations)."""
    out = np.eye(4)
    out[:3, :3] = Rotation.from_rotvec(Rotation.from_matrix(T[:3, :3]).as_rotvec() * factor).as_matrix()
    out[:3, 3] = T[:3, 3] * factor
    return out


def predict_constant_velocity(
    T_prev: np.ndarray, t_prev: float, T_prevprev: np.ndarray, t_prevprev: float, t: float
) -> np.ndarray:
    """Pose at time t continuing the last motion (T_prevprev at t_prevprev → T_prev at t_prev)."""
    dt_last = t_prev - t_prevprev
    if dt_last <= 0:
        return T_prev.copy()
    step = invert(T_prevprev) @ T_prev
    return T_prev @ scale_motion(step, (t - t_prev) / dt_last)


def body_twist(T_prev: np.ndarray, T_cur: np.ndarray, dt: float) -> np.ndarray:
    """[vx, vy, vz, wx, wy, wz] in the child frame from two poses dt s apart (zeros if dt ≤ 0): the
    constant twist that moves T_prev to T_cur, Log(T_prev⁻¹ T_cur) / dt. It is the same in the previous
    and the current child frame; the chord between the poses is not (a turning car would get a sideways
    velocity of v·ω·dt/2)."""
    if dt <= 0:
        return np.zeros(6)
    return log_se3(invert(T_prev) @ T_cur) / dt


def view_overlap(depth: np.ndarray, camera: PinholeCamera, T_other_this: np.ndarray) -> float:
    """Fraction of the valid depth pixels of this view that land in front of and inside the other view
    (same intrinsics, scaled to the depth size) after the motion T_other_this."""
    valid = np.isfinite(depth) & (depth > 0)
    n = int(valid.sum())
    if n == 0:
        return 0.0
    v, u = np.nonzero(valid)
    z = depth[valid].astype(np.float64)
    x = (u - camera.cx) / camera.fx * z
    y = (v - camera.cy) / camera.fy * z
    p = T_other_this[:3, :3] @ np.stack([x, y, z]) + T_other_this[:3, 3:4]
    front = p[2] > 1e-6
    zf = np.where(front, p[2], 1.0)
    u2 = camera.fx * p[0] / zf + camera.cx
    v2 = camera.fy * p[1] / zf + camera.cy
    inside = front & (u2 >= -0.5) & (u2 <= camera.width - 0.5) & (v2 >= -0.5) & (v2 <= camera.height - 0.5)
    return float(inside.sum()) / n
