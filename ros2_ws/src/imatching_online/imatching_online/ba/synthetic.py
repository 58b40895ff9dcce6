"""Synthetic windows with known poses and landmarks, for tests, the benchmark and docs examples.

Query pixels are exact (the matcher is asked there); matched pixels get Gaussian noise, and a fraction
of matches is replaced by uniformly random pixels (outliers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.rigid import invert

from imatching_online.ba.multiview import project_all, rays, transform
from imatching_online.ba.tracks import PairMatches

MOTIONS = ("sideways", "forward", "rotation", "static")


@dataclass(frozen=True)
class SyntheticWindow:
    """camera (the intrinsics of every frame); poses T_wc (N, 4, 4) with frame 0 the identity; matches
    {(a, b): PairMatches}; per pair: the true world point of each match (M, 3), its noise-free target pixel
    and outlier flag."""

    camera: PinholeCamera
    poses: np.ndarray
    matches: dict[tuple[int, int], PairMatches]
    points: dict[tuple[int, int], np.ndarray]
    true_uv_b: dict[tuple[int, int], np.ndarray]
    outlier: dict[tuple[int, int], np.ndarray]
    width: int
    height: int
    motion: str


def trajectory(num_frames: int, motion: str, step: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth camera-to-world poses (N, 4, 4) starting at the identity."""
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    wobble = rng.uniform(-1, 1, 3)
    for k in range(num_frames):
        s = float(k)
        if motion == "sideways":  # lateral baseline, slight forward drift and yaw
            c = np.array([step * s, 0.02 * step * s * s * wobble[0], 0.1 * step * s])
            angles = np.radians([0.3 * s * wobble[1], -1.0 * s, 0.2 * s * wobble[2]])
        elif motion == "forward":
            c = np.array([0.05 * step * s * wobble[0], 0.0, step * s])
            angles = np.radians([0.2 * s * wobble[1], 0.8 * s, 0.1 * s])
        elif motion == "rotation":  # pure rotation about the optical centre
            c = np.zeros(3)
            angles = np.radians([0.5 * s * wobble[1], 2.0 * s, 0.3 * s * wobble[2]])
        else:
            c, angles = np.zeros(3), np.zeros(3)
        poses[k, :3, :3] = _rotation(angles)
        poses[k, :3, 3] = c
    return poses


def _rotation(angles: np.ndarray) -> np.ndarray:
    ax, ay, az = angles
    Rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    Ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    Rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def make_window(
    num_frames: int = 5,
    queries_per_anchor: int = 150,
    motion: str = "sideways",
    step: float = 0.3,
    depth_range: tuple[float, float] = (3.0, 15.0),
    noise_px: float = 0.5,
    outlier_ratio: float = 0.3,
    anchors: tuple[int, ...] | None = None,
    width: int = 640,
    height: int = 480,
    focal: float = 500.0,
    seed: int = 0,
) -> SyntheticWindow:
    """A window whose anchor frames' query points are matched into every other frame they project into.

    anchors defaults to (0, N // 2): two query sets, tracks over the whole window from each. step is
    the camera displacement per frame (m) for sideways / forward motion.
    """
    if not 0 <= outlier_ratio < 1:
        raise ValueError(f"outlier_ratio must be in [0, 1), got {outlier_ratio}")
    rng = np.random.default_rng(seed)
    camera = PinholeCamera(focal, focal, (width - 1) / 2, (height - 1) / 2, width, height)
    poses = trajectory(num_frames, motion, step, rng)
    T_cw = invert(poses)
    anchors = (0, num_frames // 2) if anchors is None else anchors
    matches, points, true_uv, outlier = {}, {}, {}, {}
    for a in anchors:
        uv_a = rng.uniform([8, 8], [width - 9, height - 9], (queries_per_anchor, 2))
        depth = rng.uniform(*depth_range, queries_per_anchor)
        X = transform(poses[a], rays(uv_a, camera) * depth[:, None])
        proj, z = project_all(T_cw, X, camera)
        for b in range(num_frames):
            if b == a:
                continue
            uv = proj[:, b]
            vis = (z[:, b] > 0.1) & (uv[:, 0] >= 0) & (uv[:, 0] <= width - 1) & (uv[:, 1] >= 0)
            vis &= uv[:, 1] <= height - 1
            sel = np.flatnonzero(vis)
            uv_b = uv[sel] + rng.normal(0.0, noise_px, (len(sel), 2))
            bad = rng.random(len(sel)) < outlier_ratio
            uv_b[bad] = rng.uniform([0, 0], [width - 1, height - 1], (int(bad.sum()), 2))
            conf = rng.uniform(0.5, 1.0, len(sel))
            matches[(a, b)] = PairMatches(uv_a[sel], uv_b, conf, sel.astype(np.int64))
            points[(a, b)], true_uv[(a, b)], outlier[(a, b)] = X[sel], uv[sel], bad
    return SyntheticWindow(camera, poses, matches, points, true_uv, outlier, width, height, motion)
