"""Sliding-window bundle adjustment on GTSAM: keyframe poses T_world_cam, landmarks in world, robust
(Huber) reprojection factors, optional relative-pose factors, outlier pruning between passes.

Gauge: a monocular window has 7 free degrees (pose and scale). The caller names the keyframes to hold
fixed; holding the two oldest fixes both pose and scale to what the earlier windows decided, which is how
the window slides without a marginal prior (a linearised prior on a monocular window goes inconsistent
when its linearisation point moves; holding poses fixed is the ORB-SLAM local-BA choice).
GTSAM's Pose3 tangent is [rotation, translation]; covariances returned here are converted to the
project's [translation, rotation] order (docs/CONVENTIONS.md, geometry/frames.py).

Observations travel as arrays and the reprojection factors are built in C++
(`gtsam.utilities.insertProjectionFactors`): a window holds thousands of them, and building them one by one
in Python cost as much as the solve. That helper takes landmark keys as floating-point numbers, so a
landmark's GTSAM key is its id itself (exact below 2**53); keyframes keep their `x` symbols.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import gtsam
import numpy as np
from gtsam.symbol_shorthand import X

if TYPE_CHECKING:  # only its attributes are read; a BA worker process then starts without torch
    from banet_vo.geometry import PinholeCamera

# [rot, trans] (GTSAM) <-> [trans, rot] (ours): the same permutation both ways.
_SWAP = np.block([[np.zeros((3, 3)), np.eye(3)], [np.eye(3), np.zeros((3, 3))]])


def gtsam_to_ours_covariance(cov: np.ndarray) -> np.ndarray:
    return _SWAP @ cov @ _SWAP.T


ORDERINGS = ("METIS", "COLAMD")


@dataclass(frozen=True)
class WindowBAConfig:
    pixel_sigma: float = 1.0  # px, the reprojection noise the factors assume
    huber_k: float = 1.345  # Huber threshold in sigmas (95 % efficiency on Gaussian noise)
    outlier_px: float = 3.0  # observations reprojecting further than this are pruned between passes
    passes: int = 2  # optimise → prune → optimise
    max_iterations: int = 15  # Levenberg-Marquardt iterations per pass
    fixed_sigma: float = 1e-6  # prior sigma (rad, map units) that holds a fixed keyframe in place
    # Elimination ordering of the sparse solve: the same solution either way; METIS was a little faster on
    # windows (benchmarks/backend_ordering.py).
    ordering: str = "METIS"
    # LM stops when an iteration lowers the error by less than this share. GTSAM's default (1e-5) spends
    # most iterations on changes far below a pixel.
    relative_error_tol: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("pixel_sigma", "huber_k", "outlier_px", "fixed_sigma", "relative_error_tol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.passes < 1 or self.max_iterations < 1:
            raise ValueError("passes and max_iterations must be >= 1")
        if self.ordering not in ORDERINGS:
            raise ValueError(f"ordering must be one of {ORDERINGS}, got {self.ordering!r}")


@dataclass(frozen=True)
class Observation:
    keyframe: int  # keyframe id
    landmark: int  # landmark id
    pixel: tuple[float, float]


# Landmark ids are GTSAM keys themselves, passed through a float64 (see the module docstring).
MAX_LANDMARK_ID = 2**53


@dataclass(frozen=True)
class Observations:
    """Observations as arrays: row i is landmark `landmarks[i]` seen by keyframe `keyframes[i]` at pixel
    `pixels[i]`."""

    keyframes: np.ndarray  # (N,) int64
    landmarks: np.ndarray  # (N,) int64
    pixels: np.ndarray  # (N, 2) float64

    def __post_init__(self) -> None:
        keyframes = np.asarray(self.keyframes, dtype=np.int64).reshape(-1)
        landmarks = np.asarray(self.landmarks, dtype=np.int64).reshape(-1)
        pixels = np.asarray(self.pixels, dtype=np.float64).reshape(-1, 2)
        if not len(keyframes) == len(landmarks) == len(pixels):
            raise ValueError(
                f"observations: {len(keyframes)} keyframes, {len(landmarks)} landmarks, {len(pixels)} pixels"
            )
        object.__setattr__(self, "keyframes", keyframes)
        object.__setattr__(self, "landmarks", landmarks)
        object.__setattr__(self, "pixels", pixels)

    @classmethod
    def from_list(cls, observations: list[Observation]) -> Observations:
        return cls(
            np.array([o.keyframe for o in observations], dtype=np.int64),
            np.array([o.landmark for o in observations], dtype=np.int64),
            np.array([o.pixel for o in observations], dtype=np.float64).reshape(-1, 2),
        )

    def __len__(self) -> int:
        return len(self.keyframes)

    def row(self, i: int) -> Observation:
        u, v = self.pixels[i]
        return Observation(int(self.keyframes[i]), int(self.landmarks[i]), (float(u), float(v)))


@dataclass(frozen=True)
class RelativePoseFactor:
    """A measured T_i_j (camera j in camera i) with its covariance (ours: [translation, rotation], right
    perturbation of T_i_j)."""

    i: int
    j: int
    T_i_j: np.ndarray
    covariance: np.ndarray


@dataclass
class WindowBAResult:
    poses: dict[int, np.ndarray]  # keyframe id → T_world_cam
    points: dict[int, np.ndarray]  # landmark id → (3,) world
    outliers: list[Observation] = field(default_factory=list)  # pruned observations
    initial_error: float = float("nan")
    final_error: float = float("nan")
    seconds: float = float("nan")
    # Rows of the observations given to solve() that were pruned (the same ones as `outliers`).
    outlier_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    iterations: int = 0  # LM iterations, all passes together


class WindowBundleAdjuster:
    """Builds and solves one window problem per call (a window is a few thousand factors: GTSAM's LM
    solves it in tens of milliseconds, so no incremental state is kept between calls)."""

    def __init__(self, camera: PinholeCamera, config: WindowBAConfig | None = None) -> None:
        self.config = config or WindowBAConfig()
        self.camera = camera
        self._K = gtsam.Cal3_S2(camera.fx, camera.fy, 0.0, camera.cx, camera.cy)
        c = self.config
        self._pixel_noise = gtsam.noiseModel.Robust.Create(
            gtsam.noiseModel.mEstimator.Huber.Create(c.huber_k),
            gtsam.noiseModel.Isotropic.Sigma(2, c.pixel_sigma),
        )
        self._fixed_noise = gtsam.noiseModel.Isotropic.Sigma(6, c.fixed_sigma)

    def solve(
        self,
        poses: dict[int, np.ndarray],
        points: dict[int, np.ndarray],
        observations: Observations | list[Observation],
        fixed: set[int],
        relative: list[RelativePoseFactor] | None = None,
    ) -> WindowBAResult:
        """Optimise `poses` (T_world_cam) and `points` from `observations`; keyframes in `fixed` stay put.
        Observations of unknown keyframes or landmarks are a ValueError (the caller builds the window)."""
        obs = observations if isinstance(observations, Observations) else Observations.from_list(observations)
        if not fixed:
            raise ValueError("at least one keyframe must be fixed (gauge)")
        point_ids = np.fromiter(points, np.int64, len(points))
        unknown = ~np.isin(obs.keyframes, np.fromiter(poses, np.int64, len(poses)))
        unknown |= ~np.isin(obs.landmarks, point_ids)
        if unknown.any():
            raise ValueError(
                f"observation {obs.row(int(np.argmax(unknown)))} refers to a keyframe or landmark outside "
                "the window"
            )
        if len(point_ids) and not (0 <= point_ids.min() and point_ids.max() < MAX_LANDMARK_ID):
            raise ValueError(f"landmark ids must lie in [0, 2**53), got {point_ids.min()}..{point_ids.max()}")
        started = time.perf_counter()
        sorted_ids = np.sort(point_ids)
        active = self._constrained(obs.landmarks, np.ones(len(obs), dtype=bool))
        pruned = np.zeros(len(obs), dtype=bool)
        values = gtsam.Values()
        for k, T in poses.items():
            values.insert(X(k), gtsam.Pose3(np.asarray(T, dtype=np.float64)))
        for j, P in points.items():
            values.insert(int(j), np.asarray(P, dtype=np.float64).reshape(3))
        initial_error = final_error = float("nan")
        iterations = 0
        for _ in range(self.config.passes):
            graph = self._graph(poses, obs, np.flatnonzero(active), fixed, relative or [])
            # A landmark that lost all but one observation is unconstrained: drop it from this pass.
            used = np.unique(obs.landmarks[active])
            pass_values = gtsam.Values()
            for k in poses:
                pass_values.insert(X(k), values.atPose3(X(k)))
            for j in used.tolist():
                pass_values.insert(j, values.atPoint3(j))
            params = gtsam.LevenbergMarquardtParams()
            params.setMaxIterations(self.config.max_iterations)
            params.setRelativeErrorTol(self.config.relative_error_tol)
            params.setOrderingType(self.config.ordering)
            optimizer = gtsam.LevenbergMarquardtOptimizer(graph, pass_values, params)
            if np.isnan(initial_error):
                initial_error = graph.error(pass_values)
            solution = optimizer.optimize()
            iterations += optimizer.iterations()
            final_error = graph.error(solution)
            values.update(solution)
            bad = active & ~self._inliers(obs, values, sorted_ids, poses)
            pruned |= bad
            active = self._constrained(obs.landmarks, active & ~bad)
        out_poses = {k: values.atPose3(X(k)).matrix() for k in poses}
        solved = gtsam.utilities.extractPoint3(values)  # in key order: ascending landmark id
        out_points = dict(zip(sorted_ids.tolist(), solved, strict=True))
        outlier_rows = np.flatnonzero(pruned)
        return WindowBAResult(
            out_poses,
            out_points,
            [obs.row(int(i)) for i in outlier_rows],
            initial_error,
            final_error,
            time.perf_counter() - started,
            outlier_rows,
            iterations,
        )

    @staticmethod
    def _constrained(landmarks: np.ndarray, active: np.ndarray) -> np.ndarray:
        """`active` less the observations of landmarks that fewer than two active observations see."""
        _, inverse, counts = np.unique(landmarks[active], return_inverse=True, return_counts=True)
        keep = active.copy()
        keep[active] = counts[inverse] >= 2
        return keep

    def _graph(
        self,
        poses: dict[int, np.ndarray],
        obs: Observations,
        rows: np.ndarray,
        fixed: set[int],
        relative: list[RelativePoseFactor],
    ) -> gtsam.NonlinearFactorGraph:
        graph = gtsam.NonlinearFactorGraph()
        for k in fixed:
            graph.add(gtsam.PriorFactorPose3(X(k), gtsam.Pose3(np.asarray(poses[k])), self._fixed_noise))
        keyframes = obs.keyframes[rows]
        for k in np.unique(keyframes).tolist():
            mine = rows[keyframes == k]
            gtsam.utilities.insertProjectionFactors(
                graph,
                X(k),
                obs.landmarks[mine].astype(np.float64),
                np.ascontiguousarray(obs.pixels[mine].T),
                self._pixel_noise,
                self._K,
            )
        for f in relative:
            noise = gtsam.noiseModel.Gaussian.Covariance(_SWAP @ np.asarray(f.covariance) @ _SWAP.T)
            graph.add(gtsam.BetweenFactorPose3(X(f.i), X(f.j), gtsam.Pose3(np.asarray(f.T_i_j)), noise))
        return graph

    def _inliers(
        self, obs: Observations, values: gtsam.Values, point_ids: np.ndarray, poses: dict[int, np.ndarray]
    ) -> np.ndarray:
        """Per observation: in front of its camera and reprojecting within outlier_px. `point_ids`: the
        landmark ids in `values`, ascending."""
        kf_ids = np.array(sorted(poses), dtype=np.int64)
        T_cw = np.stack([np.linalg.inv(values.atPose3(X(int(k))).matrix()) for k in kf_ids])
        P_all = gtsam.utilities.extractPoint3(values)  # in key order: as point_ids
        T = T_cw[np.searchsorted(kf_ids, obs.keyframes)]
        P = P_all[np.searchsorted(point_ids, obs.landmarks)]
        Xc = np.einsum("nij,nj->ni", T[:, :3, :3], P) + T[:, :3, 3]
        z = Xc[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack(
                [
                    self.camera.fx * Xc[:, 0] / z + self.camera.cx,
                    self.camera.fy * Xc[:, 1] / z + self.camera.cy,
                ],
                axis=1,
            )
            err = np.linalg.norm(uv - obs.pixels, axis=1)
        return (z > 0) & (err <= self.config.outlier_px)
