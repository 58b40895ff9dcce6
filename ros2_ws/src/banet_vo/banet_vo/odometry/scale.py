"""Metric scale for a monocular map: measurements from BA-Net's learned depth or from the ground plane at
a known camera height, smoothed over keyframes. No ROS, no torch.

A monocular map is known up to one scale factor s (metres per map unit). Each keyframe gives one
measurement of s; the odometry applies a running median of them, so a single bad keyframe (a car in
front of the road, a depth map gone wrong) cannot move the trajectory. The learned source's median spans
the whole trajectory: its measurements wander far more than the map's own scale drifts.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from banet_vo.geometry import PinholeCamera


def learned_scale(
    points_cam: np.ndarray, depth: np.ndarray, depth_camera: PinholeCamera, min_points: int = 20
) -> float | None:
    """Metres per map unit from a metric depth map: the median ratio of the depth map's value at each map
    point's projection to the point's map depth. `points_cam` are map points in the depth map's camera
    (N, 3); None when fewer than `min_points` land on valid depth."""
    d, z = depth_at_points(points_cam, depth, depth_camera)
    if len(d) < min_points:
        return None
    return float(np.median(d / z))


def depth_at_points(
    points_cam: np.ndarray, depth: np.ndarray, depth_camera: PinholeCamera
) -> tuple[np.ndarray, np.ndarray]:
    """(d, z): a depth map's value at each point's projection and the point's own depth, for the points
    (N, 3, in the depth map's camera) in front of it that land on valid depth."""
    P = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    P = P[P[:, 2] > 1e-9]
    z = P[:, 2]
    pixels = np.c_[
        depth_camera.fx * P[:, 0] / z + depth_camera.cx, depth_camera.fy * P[:, 1] / z + depth_camera.cy
    ]
    d = depth_at_pixels(depth, depth_camera, depth_camera, pixels)
    ok = np.isfinite(d)
    return d[ok], z[ok]


def depth_at_pixels(
    depth: np.ndarray, depth_camera: PinholeCamera, camera: PinholeCamera, pixels: np.ndarray
) -> np.ndarray:
    """Values of a depth map (of `depth_camera`) along the rays of `pixels` (N, 2) of `camera`, the same
    view at another resolution (or the same camera); NaN where a ray leaves the map or meets no valid
    depth."""
    x = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    if camera == depth_camera:  # pixels of the map itself: read as given, no round trip through the ray
        u, v = np.rint(x[:, 0]).astype(np.int64), np.rint(x[:, 1]).astype(np.int64)
    else:
        u = np.rint(depth_camera.fx * (x[:, 0] - camera.cx) / camera.fx + depth_camera.cx).astype(np.int64)
        v = np.rint(depth_camera.fy * (x[:, 1] - camera.cy) / camera.fy + depth_camera.cy).astype(np.int64)
    h, w = depth.shape
    out = np.full(len(x), np.nan)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    d = depth[v[inside], u[inside]].astype(np.float64)
    out[inside] = np.where(np.isfinite(d) & (d > 0), d, np.nan)
    return out


def ground_plane_height(
    points_cam: np.ndarray,
    up_cam: np.ndarray,
    max_normal_deg: float = 15.0,
    inlier_fraction: float = 0.03,
    min_inliers: int = 20,
    iterations: int = 200,
    seed: int = 0,
    ambiguity_ratio: float = 0.0,
    ambiguity_gap: float = 0.1,
) -> tuple[float, int] | None:
    """Height of the camera above the dominant plane below it, in the points' units, and its inlier count.

    RANSAC over planes through three points below the camera whose normal is within `max_normal_deg` of
    `up_cam` (the world's up direction in camera coordinates); a point is an inlier within
    `inlier_fraction` of the candidate height (the test is scale-free, as the map's units are arbitrary).
    The winner is refitted to its inliers by least squares. None when no plane has `min_inliers`.

    With `ambiguity_ratio` > 0 the same RANSAC runs again on the points the winner leaves; when that finds a
    plane with at least `ambiguity_ratio` times the winner's inliers at a height more than `ambiguity_gap`
    (relative) away, the answer is None: two planes explain the points about equally (the road and the
    sills of parked cars above it), and which one wins would be the draw's choice."""
    up = np.asarray(up_cam, dtype=np.float64)
    up = up / np.linalg.norm(up)
    P = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    P = P[np.isfinite(P).all(axis=1)]
    below = P[P @ up < 0]
    plane = (up, np.cos(np.deg2rad(max_normal_deg)), inlier_fraction, min_inliers, iterations, seed)
    first = _dominant_plane(below, *plane)
    if first is None:
        return None
    height, inliers = first
    if ambiguity_ratio > 0:
        second = _dominant_plane(below[~inliers], *plane)
        if (
            second is not None
            and second[1].sum() >= ambiguity_ratio * inliers.sum()
            and abs(second[0] / height - 1.0) > ambiguity_gap
        ):
            return None
    return height, int(inliers.sum())


def _dominant_plane(
    below: np.ndarray,
    up: np.ndarray,
    cos_max: float,
    inlier_fraction: float,
    min_inliers: int,
    iterations: int,
    seed: int,
) -> tuple[float, np.ndarray] | None:
    """ground_plane_height's RANSAC and refit over points below the camera: (height, inlier mask of the
    RANSAC winner) or None."""
    if len(below) < max(min_inliers, 3):
        return None
    rng = np.random.default_rng(seed)
    best: tuple[int, np.ndarray] | None = None
    for _ in range(iterations):
        a, b, c = below[rng.choice(len(below), 3, replace=False)]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-12:
            continue
        n /= norm
        if n @ up < 0:
            n = -n
        if n @ up < cos_max:
            continue
        height = -(n @ a)  # camera (origin) above the plane n·p + height = 0
        if height <= 0:
            continue
        inliers = np.abs(below @ n + height) < inlier_fraction * height
        if best is None or inliers.sum() > best[0]:
            best = (int(inliers.sum()), inliers)
    if best is None or best[0] < min_inliers:
        return None
    Q = below[best[1]]
    centroid = Q.mean(axis=0)
    _, _, vt = np.linalg.svd(Q - centroid)
    n = vt[-1] if vt[-1] @ up > 0 else -vt[-1]
    if n @ up < cos_max:
        return None
    height = float(-(n @ centroid))
    return (height, best[1]) if height > 0 else None


# The most measurements a median runs over: each keyframe's median and spread cost O(kept) (~10 ms at this
# many), so "every keyframe of the trajectory" means the newest 100,000 on a drive long enough to have more.
MAX_SCALE_MEASUREMENTS = 100_000


class ScaleFilter:
    """Running median of the last `window` scale measurements (metres per map unit); `window` None keeps
    every measurement of the trajectory (up to MAX_SCALE_MEASUREMENTS). The median and spread are
    recomputed on each measurement, not on each read (one measurement per keyframe, a read per frame)."""

    def __init__(self, window: int | None = 15) -> None:
        if window is not None and not 1 <= window <= MAX_SCALE_MEASUREMENTS:
            raise ValueError(
                f"window must be 1..{MAX_SCALE_MEASUREMENTS} or None (every measurement), got {window}"
            )
        self._values: deque[float] = deque(maxlen=window or MAX_SCALE_MEASUREMENTS)
        self._value: float | None = None
        self._spread = 0.0

    def add(self, value: float | None) -> None:
        if value is None or not np.isfinite(value) or value <= 0:
            return
        self._values.append(float(value))
        values = np.fromiter(self._values, dtype=np.float64, count=len(self._values))
        self._value = float(np.median(values))
        logs = np.log(values)
        self._spread = float(1.4826 * np.median(np.abs(logs - np.median(logs)))) if len(logs) >= 3 else 0.0

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def last(self) -> float | None:
        """The newest measurement kept (None before the first)."""
        return self._values[-1] if self._values else None

    @property
    def relative_spread(self) -> float:
        """Robust relative spread of the measurements in the window (1.4826·MAD of their logs): how far
        the applied scale may be off. 0 with fewer than three measurements."""
        return self._spread

    def __len__(self) -> int:
        return len(self._values)
