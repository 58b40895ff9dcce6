"""Smooth camera trajectories: driving (10 Hz) and hand-held (30 Hz), deterministic by seed.

A trajectory is a smooth body state (x, y, z, yaw, pitch, roll) over continuous time, sampled on a fine
grid and interpolated, so motion blur can ask for poses between frames. Body frame: x forward, y left,
z up, R_world_body = Rz(yaw) Ry(pitch) Rx(roll); the camera is the body's optical frame (x right,
y down, z forward) at the same position. Poses are camera-to-world 4x4 float64 in the scene's world frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from banet_vo.data.synthetic.room import FREE_SPACE
from banet_vo.data.synthetic.street import CAMERA_HEIGHT, LANE_Y

FRAME_RATE = {"driving": 10.0, "indoor": 30.0}
# Per-frame motion ranges the generators guarantee (checked after generation).
DRIVING_STEP_M = (0.5, 1.5)
HANDHELD_STEP_M = (0.03, 0.15)
HANDHELD_STEP_DEG = (1.0, 8.0)
_SUBSTEPS = 16  # fine-grid samples per frame interval

# Columns: the optical axes x (right), y (down), z (forward) written in the body frame.
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _rotation(yaw, pitch, roll) -> np.ndarray:
    """(..., 3, 3) Rz(yaw) Ry(pitch) Rx(roll)."""
    cy, sy, cp, sp, cr, sr = (
        np.cos(yaw),
        np.sin(yaw),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(roll),
        np.sin(roll),
    )
    return np.stack(
        [
            np.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], -1),
            np.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], -1),
            np.stack([-sp, cp * sr, cp * cr], -1),
        ],
        -2,
    )


def states_to_poses(states: np.ndarray) -> np.ndarray:
    """(N, 6) [x, y, z, yaw, pitch, roll] -> (N, 4, 4) camera(optical)-to-world."""
    states = np.asarray(states, float)
    poses = np.tile(np.eye(4), (len(states), 1, 1))
    poses[:, :3, :3] = _rotation(states[:, 3], states[:, 4], states[:, 5]) @ R_BODY_OPTICAL
    poses[:, :3, 3] = states[:, :3]
    return poses


@dataclass(frozen=True)
class Trajectory:
    kind: str
    timestamps: np.ndarray  # (N,) seconds, starting at 0
    poses: np.ndarray  # (N, 4, 4) camera-to-world
    grid_times: np.ndarray  # (M,) fine grid, one frame interval beyond both ends
    grid_states: np.ndarray  # (M, 6)

    def __len__(self) -> int:
        return len(self.timestamps)

    def pose_at(self, t: float) -> np.ndarray:
        """Camera-to-world pose at time t (within one frame interval of the sampled range)."""
        if not self.grid_times[0] - 1e-9 <= t <= self.grid_times[-1] + 1e-9:
            raise ValueError(f"t={t} is outside the trajectory's time range")
        state = np.array([np.interp(t, self.grid_times, self.grid_states[:, k]) for k in range(6)])
        return states_to_poses(state[None])[0]


def _smooth_signal(rng: np.random.Generator, t: np.ndarray, periods: tuple[float, float], terms: int = 3):
    """Sum of sinusoids with random periods and phases, scaled to lie in [-1, 1]."""
    amplitudes = rng.uniform(0.3, 1.0, terms)
    total = sum(
        a * np.sin(2 * np.pi * t / rng.uniform(*periods) + rng.uniform(0, 2 * np.pi)) for a in amplitudes
    )
    return total / amplitudes.sum()


def _fine_grid(n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    frames = np.arange(-_SUBSTEPS, (n + 1) * _SUBSTEPS + 1) / _SUBSTEPS  # in frame units
    return frames, frames / rate


def driving_trajectory(n: int, seed: int) -> Trajectory:
    """Forward 0.5-1.5 m per frame along the lane, gentle lane-keeping yaw, small pitch/roll/bounce."""
    rng = np.random.default_rng([seed, 3])
    frames, times = _fine_grid(n, FRAME_RATE["driving"])
    mean = rng.uniform(0.75, 1.25)
    spread = min(mean - 0.55, 1.45 - mean) * rng.uniform(0.3, 1.0)
    step = mean + spread * _smooth_signal(rng, frames, (30.0, 120.0))  # metres per frame
    x = np.concatenate([[0.0], np.cumsum((step[1:] + step[:-1]) / 2 / _SUBSTEPS)])
    x -= np.interp(0.0, frames, x)
    amplitude, wavelength, phase = (
        rng.uniform(0.05, 0.35),
        rng.uniform(40.0, 120.0),
        rng.uniform(0, 2 * np.pi),
    )
    y = LANE_Y + amplitude * np.sin(2 * np.pi * x / wavelength + phase)
    yaw = np.arctan(amplitude * 2 * np.pi / wavelength * np.cos(2 * np.pi * x / wavelength + phase))
    yaw += np.radians(0.3) * _smooth_signal(rng, frames, (8.0, 30.0))
    pitch = np.radians(rng.uniform(-1.0, 1.0) + 0.6 * _smooth_signal(rng, frames, (5.0, 25.0)))
    roll = np.radians(0.5 * _smooth_signal(rng, frames, (5.0, 25.0)))
    z = CAMERA_HEIGHT + 0.02 * _smooth_signal(rng, frames, (3.0, 12.0))
    states = np.stack([x, y, z, yaw, pitch, roll], axis=1)
    return _sampled("driving", n, frames, times, states)


def handheld_trajectory(n: int, seed: int, bounds: tuple[np.ndarray, np.ndarray] = FREE_SPACE) -> Trajectory:
    """Smooth 6-DoF motion inside `bounds`: 3-15 cm and 1-8 deg per frame, looking around the room."""
    lo, hi = (np.asarray(b, float) for b in bounds)
    if lo.shape != (3,) or hi.shape != (3,) or np.any(hi - lo < 0.2):
        raise ValueError(f"bounds must be two 3-vectors with hi - lo >= 0.2 m, got {lo}, {hi}")
    rng = np.random.default_rng([seed, 4])
    frames, times = _fine_grid(n, FRAME_RATE["indoor"])
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    for _ in range(100):  # rare draws that leave the per-frame ranges are redrawn (deterministically)
        # Closed path: a nearly round, slightly wobbly loop in the free box (round keeps the turning
        # radius >= ~0.45 m, so accelerations stay hand-like), walked at a smoothly varying speed.
        phi = np.linspace(0, 2 * np.pi, 4001)
        ry = min(half[0], half[1]) * rng.uniform(0.65, 0.9)
        rx = min(ry * rng.uniform(1.0, 1.3), 0.9 * half[0])
        shift = rng.uniform(-1, 1) * max(0.0, 0.95 * half[0] - 1.05 * rx)
        wobble = 1 + 0.04 * np.sin(2 * phi + rng.uniform(0, 6.3))
        path = centre + np.stack(
            [
                shift + rx * wobble * np.cos(phi),
                ry * wobble * np.sin(phi),
                0.8 * half[2] * np.sin(2 * phi + rng.uniform(0, 6.3)),
            ],
            axis=1,
        )
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
        mean = rng.uniform(0.06, 0.11)
        step = mean + min(mean - 0.04, 0.14 - mean) * _smooth_signal(rng, frames, (20.0, 90.0))
        s = rng.uniform(0, arc[-1]) + np.concatenate(
            [[0.0], np.cumsum((step[1:] + step[:-1]) / 2 / _SUBSTEPS)]
        )
        s = np.mod(s * rng.choice([-1.0, 1.0]), arc[-1])
        position = np.stack([np.interp(s, arc, path[:, k]) for k in range(3)], axis=1)
        # Orientation: a slow sweep in yaw plus a coning wobble (keeps the angular speed away from 0).
        drift = np.radians(rng.uniform(0.2, 0.8)) * rng.choice([-1.0, 1.0])
        cone = np.radians(rng.uniform(4.0, 10.0))
        omega = np.radians(rng.uniform(2.0, 4.0)) / cone  # rad per frame
        phase = rng.uniform(0, 2 * np.pi)
        yaw = rng.uniform(0, 2 * np.pi) + drift * frames + cone * np.cos(omega * frames + phase)
        pitch = np.radians(rng.uniform(-3.0, 12.0)) + cone * np.sin(omega * frames + phase)
        roll = np.radians(rng.uniform(2.0, 6.0)) * np.sin(
            2 * np.pi * frames / rng.uniform(40, 90) + rng.uniform(0, 6.3)
        )
        states = np.concatenate([position, np.stack([yaw, pitch, roll], axis=1)], axis=1)
        trajectory = _sampled("indoor", n, frames, times, states)
        steps, angles = motion_per_frame(trajectory.poses)
        if (
            np.all(steps >= HANDHELD_STEP_M[0])
            and np.all(steps <= HANDHELD_STEP_M[1])
            and np.all(angles >= HANDHELD_STEP_DEG[0])
            and np.all(angles <= HANDHELD_STEP_DEG[1])
        ):
            return trajectory
    raise RuntimeError(f"could not draw a hand-held trajectory within the motion ranges for seed {seed}")


def _sampled(kind: str, n: int, frames: np.ndarray, times: np.ndarray, states: np.ndarray) -> Trajectory:
    index = np.arange(n) * _SUBSTEPS + _SUBSTEPS  # the grid starts one frame before frame 0
    return Trajectory(kind, times[index].copy(), states_to_poses(states[index]), times, states)


def motion_per_frame(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(translation in m, rotation in deg) between consecutive camera-to-world poses."""
    poses = np.asarray(poses, float)
    rel = np.linalg.inv(poses[1:]) @ poses[:-1]
    steps = np.linalg.norm(rel[:, :3, 3], axis=1)
    cos = np.clip((np.trace(rel[:, :3, :3], axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    return steps, np.degrees(np.arccos(cos))


def make_trajectory(
    kind: str, n: int, seed: int, *, bounds: tuple[np.ndarray, np.ndarray] | None = None
) -> Trajectory:
    """`kind` "driving" (10 Hz, along the street's lane) or "indoor" (hand-held, 30 Hz, inside `bounds`,
    default the free space every generated room guarantees)."""
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if kind == "driving":
        return driving_trajectory(int(n), seed)
    if kind == "indoor":
        return handheld_trajectory(int(n), seed, FREE_SPACE if bounds is None else bounds)
    raise ValueError(f"kind must be 'driving' or 'indoor', got {kind!r}")
