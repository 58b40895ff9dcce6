"""Sliding-window bundle adjustment on GTSAM: keyframe poses T_world_cam, landmarks in world, robust
(Huber) reprojection factors, optional relative-pose factors, outlier pruning between passes.

Gauge: a monocular window has 7 free degrees (pose and scale). The caller names the keyframes to hold
fixed; holding the two oldest fixes both pose and scale to what the earlier windows decided, which is how
the window slides without a marginal prior (a linearised prior on a monocular window goes inconsistent
when its linearisation point moves; holding poses fixed is the ORB-SLAM local-BA choice).
GTSAM's Pose3 tangent is [rotation, translation]; covariances returned here are converted to the
project's [translation, rotation] order (docs/CONVENTIONS.md, geometry/frames.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import gtsam
import numpy as np
from gtsam.symbol_shorthand import L, X

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

    def __post_init__(self) -> None:
        for name in ("pixel_sigma", "huber_k", "outlier_px", "fixed_sigma"):
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
        observations: list[Observation],
        fixed: set[int],
        relative: list[RelativePoseFactor] | None = None,
    ) -> WindowBAResult:
        """Optimise `poses` (T_world_cam) and `points` from `observations`; keyframes in `fixed` stay put.
        Observations of unknown keyframes or landmarks are a ValueError (the caller builds the window)."""
        if not fixed:
            raise ValueError("at least one keyframe must be fixed (gauge)")
        for o in observations:
            if o.keyframe not in poses or o.landmark not in points:
                raise ValueError(f"observation {o} refers to a keyframe or landmark outside the window")
        started = time.perf_counter()
        active = self._constrained(list(observations))
        outliers: list[Observation] = []
        values = gtsam.Values()
        for k, T in poses.items():
            values.insert(X(k), gtsam.Pose3(np.asarray(T, dtype=np.float64)))
        for j, P in points.items():
            values.insert(L(j), gtsam.Point3(*np.asarray(P, dtype=np.float64)))
        initial_error = final_error = float("nan")
        for _ in range(self.config.passes):
            graph = self._graph(poses, active, fixed, relative or [])
            # A landmark that lost all but one observation is unconstrained: drop it from this pass.
            used = {o.landmark for o in active}
            pass_values = gtsam.Values()
            for k in poses:
                pass_values.insert(X(k), values.atPose3(X(k)))
            for j in used:
                pass_values.insert(L(j), values.atPoint3(L(j)))
            params = gtsam.LevenbergMarquardtParams()
            params.setMaxIterations(self.config.max_iterations)
            params.setOrderingType(self.config.ordering)
            optimizer = gtsam.LevenbergMarquardtOptimizer(graph, pass_values, params)
            if np.isnan(initial_error):
                initial_error = graph.error(pass_values)
            solution = optimizer.optimize()
            final_error = graph.error(solution)
            for k in poses:
                values.update(X(k), solution.atPose3(X(k)))
            for j in used:
                values.update(L(j), solution.atPoint3(L(j)))
            keep, bad = self._split_outliers(active, values)
            outliers.extend(bad)
            active = self._constrained(keep)
        out_poses = {k: values.atPose3(X(k)).matrix() for k in poses}
        out_points = {j: np.asarray(values.atPoint3(L(j)), dtype=np.float64) for j in points}
        return WindowBAResult(
            out_poses, out_points, outliers, initial_error, final_error, time.perf_counter() - started
        )

    @staticmethod
    def _constrained(observations: list[Observation]) -> list[Observation]:
        """Observations of landmarks seen from at least two keyframes."""
        count: dict[int, int] = {}
        for o in observations:
            count[o.landmark] = count.get(o.landmark, 0) + 1
        return [o for o in observations if count[o.landmark] >= 2]

    def _graph(
        self,
        poses: dict[int, np.ndarray],
        observations: list[Observation],
        fixed: set[int],
        relative: list[RelativePoseFactor],
    ) -> gtsam.NonlinearFactorGraph:
        graph = gtsam.NonlinearFactorGraph()
        for k in fixed:
            graph.add(gtsam.PriorFactorPose3(X(k), gtsam.Pose3(np.asarray(poses[k])), self._fixed_noise))
        for o in observations:
            graph.add(
                gtsam.GenericProjectionFactorCal3_S2(
                    gtsam.Point2(*o.pixel), self._pixel_noise, X(o.keyframe), L(o.landmark), self._K
                )
            )
        for f in relative:
            noise = gtsam.noiseModel.Gaussian.Covariance(_SWAP @ np.asarray(f.covariance) @ _SWAP.T)
            graph.add(gtsam.BetweenFactorPose3(X(f.i), X(f.j), gtsam.Pose3(np.asarray(f.T_i_j)), noise))
        return graph

    def _split_outliers(
        self, observations: list[Observation], values: gtsam.Values
    ) -> tuple[list[Observation], list[Observation]]:
        """Observations in front of their camera and within outlier_px, and the rest (vectorised)."""
        if not observations:
            return [], []
        T_cw = {}
        for o in observations:
            if o.keyframe not in T_cw:
                T_cw[o.keyframe] = np.linalg.inv(values.atPose3(X(o.keyframe)).matrix())
        points = {}
        for o in observations:
            if o.landmark not in points:
                points[o.landmark] = np.asarray(values.atPoint3(L(o.landmark)), dtype=np.float64)
        R = np.stack([T_cw[o.keyframe][:3, :3] for o in observations])
        t = np.stack([T_cw[o.keyframe][:3, 3] for o in observations])
        P = np.stack([points[o.landmark] for o in observations])
        pixels = np.array([o.pixel for o in observations], dtype=np.float64)
        Xc = np.einsum("nij,nj->ni", R, P) + t
        z = Xc[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack(
                [
                    self.camera.fx * Xc[:, 0] / z + self.camera.cx,
                    self.camera.fy * Xc[:, 1] / z + self.camera.cy,
                ],
                axis=1,
            )
            err = np.linalg.norm(uv - pixels, axis=1)
        good = (z > 0) & (err <= self.config.outlier_px)
        keep = [o for o, g in zip(observations, good, strict=True) if g]
        bad = [o for o, g in zip(observations, good, strict=True) if not g]
        return keep, bad
