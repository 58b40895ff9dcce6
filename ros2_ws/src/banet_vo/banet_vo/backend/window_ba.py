"""Sliding-window bundle adjustment: keyframe poses T_world_cam, landmarks in world, robust (Huber)
reprojection factors, optional relative-pose factors, outlier pruning between passes.

Two solvers of the same problem: GTSAM's Levenberg-Marquardt (the default) and COLMAP's Ceres bundle
adjuster (pycolmap; Schur complement). A window with relative-pose factors is always solved by GTSAM,
which has the between factor; COLMAP's adjuster takes reprojections only.

Gauge: a monocular window has 7 free degrees (pose and scale). The caller names the keyframes to hold
fixed; holding the two oldest fixes both pose and scale to what the earlier windows decided, which is how
the window slides without a marginal prior (a linearised prior on a monocular window goes inconsistent
when its linearisation point moves; holding poses fixed is the ORB-SLAM local-BA choice). Ceres holds
them exactly constant, GTSAM by a tight prior.
GTSAM's Pose3 tangent is [rotation, translation]; covariances returned here are converted to the
project's [translation, rotation] order (docs/CONVENTIONS.md, geometry/frames.py).

Observations travel as arrays. GTSAM's reprojection factors are built in C++
(`gtsam.utilities.insertProjectionFactors`): a window holds thousands of them, and building them one by one
in Python cost as much as the solve. That helper takes landmark keys as floating-point numbers, so a
landmark's GTSAM key is its id itself (exact below 2**53); keyframes keep their `x` symbols. COLMAP's
problem is built per keyframe (its keypoints in one array) and per landmark (its track).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import gtsam
import numpy as np
from gtsam.symbol_shorthand import X

from banet_vo.backend.choices import ORDERINGS, SOLVERS

if TYPE_CHECKING:  # only its attributes are read; a BA worker process then starts without torch
    from banet_vo.geometry import PinholeCamera


def _pycolmap():
    """pycolmap, imported when the opt-in Ceres solver first runs: the GTSAM default never needs it."""
    import pycolmap

    return pycolmap


# [rot, trans] (GTSAM) <-> [trans, rot] (ours): the same permutation both ways.
_SWAP = np.block([[np.zeros((3, 3)), np.eye(3)], [np.eye(3), np.zeros((3, 3))]])


def gtsam_to_ours_covariance(cov: np.ndarray) -> np.ndarray:
    return _SWAP @ cov @ _SWAP.T


logger = logging.getLogger(__name__)


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
    # gtsam: GTSAM's LM (always for a window with relative-pose factors); ceres: COLMAP's bundle adjuster,
    # ~0.3x the time (benchmarks/results/backend_solver.md; docs/preregistered/window_ba_ceres.txt).
    solver: str = "gtsam"

    def __post_init__(self) -> None:
        for name in ("pixel_sigma", "huber_k", "outlier_px", "fixed_sigma", "relative_error_tol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.passes < 1 or self.max_iterations < 1:
            raise ValueError("passes and max_iterations must be >= 1")
        if self.ordering not in ORDERINGS:
            raise ValueError(f"ordering must be one of {ORDERINGS}, got {self.ordering!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")


class CeresFailure(RuntimeError):
    """COLMAP's adjuster returned no usable solution for a window."""


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
        relative = relative or []
        sorted_ids = np.sort(point_ids)
        if relative or self.config.solver == "gtsam":
            solved = self._solve_gtsam(poses, points, sorted_ids, obs, fixed, relative)
        else:
            try:
                solved = self._solve_ceres(poses, points, sorted_ids, obs, fixed)
            except CeresFailure as err:
                # One unusable Ceres solution must not cost the window: GTSAM solves it from the start.
                logger.warning("%s: solving this window with GTSAM", err)
                solved = self._solve_gtsam(poses, points, sorted_ids, obs, fixed, relative)
        out_poses, values, pruned, initial_error, final_error, iterations = solved
        out_points = dict(zip(sorted_ids.tolist(), values, strict=True))
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

    def _solve_gtsam(self, poses, points, sorted_ids, obs: Observations, fixed: set[int], relative):
        """The passes on GTSAM. Returns (poses, points in the order of `sorted_ids` (ascending landmark
        ids), pruned rows, initial error, final error, iterations)."""
        active = self._constrained(obs.landmarks, np.ones(len(obs), dtype=bool))
        pruned = np.zeros(len(obs), dtype=bool)
        values = gtsam.Values()
        for k, T in poses.items():
            values.insert(X(k), gtsam.Pose3(np.asarray(T, dtype=np.float64)))
        for j, P in points.items():
            values.insert(int(j), np.asarray(P, dtype=np.float64).reshape(3))
        initial_error = final_error = float("nan")
        iterations = 0
        params = gtsam.LevenbergMarquardtParams()
        params.setMaxIterations(self.config.max_iterations)
        params.setRelativeErrorTol(self.config.relative_error_tol)
        params.setOrderingType(self.config.ordering)
        for _ in range(self.config.passes):
            graph = self._graph(poses, obs, np.flatnonzero(active), fixed, relative)
            # A landmark that lost all but one observation is unconstrained: drop it from this pass. They are
            # few, so the pass gets a C++ copy without them rather than thousands of inserts from Python.
            unused = np.setdiff1d(sorted_ids, obs.landmarks[active], assume_unique=False)
            pass_values = values
            if len(unused):
                pass_values = gtsam.Values(values)
                for j in unused.tolist():
                    pass_values.erase(j)
            optimizer = gtsam.LevenbergMarquardtOptimizer(graph, pass_values, params)
            if np.isnan(initial_error):
                initial_error = optimizer.error()  # the graph's error at the initial values
            solution = optimizer.optimize()
            iterations += optimizer.iterations()
            final_error = optimizer.error()
            values.update(solution)
            out_poses = {k: values.atPose3(X(k)).matrix() for k in poses}
            out_points = gtsam.utilities.extractPoint3(values)  # in key order: ascending landmark id
            bad = active & ~self._inliers(obs, out_poses, out_points, sorted_ids)
            pruned |= bad
            active = self._constrained(obs.landmarks, active & ~bad)
        return out_poses, out_points, pruned, initial_error, final_error, iterations

    def _solve_ceres(self, poses, points, sorted_ids, obs: Observations, fixed: set[int]):
        """The passes on COLMAP's Ceres bundle adjuster; returns what _solve_gtsam does. Errors are
        Ceres's costs (half the sum of the robustified squared pixel residuals over sigma)."""
        c = self.config
        P = (
            np.stack([np.asarray(points[int(j)], np.float64).reshape(3) for j in sorted_ids])
            if len(points)
            else np.zeros((0, 3))
        )
        T_wc = {k: np.asarray(T, np.float64) for k, T in poses.items()}
        active = self._constrained(obs.landmarks, np.ones(len(obs), dtype=bool))
        pruned = np.zeros(len(obs), dtype=bool)
        initial_error = final_error = float("nan")
        iterations = 0
        for _ in range(c.passes):
            rows = np.flatnonzero(active)
            if len(rows):
                reconstruction, point_ids, image_of = self._colmap_problem(T_wc, P, sorted_ids, obs, rows)
                summary = self._colmap_adjuster(reconstruction, image_of, fixed).solve()
                if summary is None or not summary.is_solution_usable():
                    report = summary.brief_report() if summary is not None else "no summary"
                    raise CeresFailure(f"window BA (ceres) gave no usable solution: {report}")
                report = summary.ceres_summary
                # Ceres's cost is ½Σρ(r²) with r in pixels; over sigma² it is GTSAM's error.
                if np.isnan(initial_error):
                    initial_error = report.initial_cost / c.pixel_sigma**2
                final_error = report.final_cost / c.pixel_sigma**2
                iterations += report.num_successful_steps + report.num_unsuccessful_steps
                for k, image_id in image_of.items():
                    if k in fixed:  # held constant: returned as given, not round-tripped through a quaternion
                        continue
                    cam_from_world = np.eye(4)
                    cam_from_world[:3] = reconstruction.image(image_id).cam_from_world().matrix()
                    T_wc[k] = np.linalg.inv(cam_from_world)
                for index, point_id in point_ids.items():
                    P[index] = reconstruction.point3D(point_id).xyz
            bad = active & ~self._inliers(obs, T_wc, P, sorted_ids)
            pruned |= bad
            active = self._constrained(obs.landmarks, active & ~bad)
        return T_wc, P, pruned, initial_error, final_error, iterations

    def _colmap_problem(self, T_wc, P, sorted_ids, obs: Observations, rows: np.ndarray):
        """A pycolmap reconstruction of the observations `rows`: one image per keyframe (image id = keyframe
        id + 1, COLMAP's ids start at 1), its keypoints the observed pixels, one 3D point per landmark.
        Returns it, {index into sorted_ids: COLMAP point id} and {keyframe id: image id}."""
        cam = self.camera
        pycolmap = _pycolmap()
        reconstruction = pycolmap.Reconstruction()
        reconstruction.add_camera_with_trivial_rig(
            pycolmap.Camera(
                model="PINHOLE",
                width=cam.width,
                height=cam.height,
                params=[cam.fx, cam.fy, cam.cx, cam.cy],
                camera_id=1,
            )
        )
        keyframes = obs.keyframes[rows]
        position = np.empty(len(rows), np.int64)  # each observation's keypoint index in its image
        image_of = {}
        for k, T in T_wc.items():
            mine = np.flatnonzero(keyframes == k)
            position[mine] = np.arange(len(mine))
            image_of[k] = int(k) + 1
            cam_from_world = np.linalg.inv(T)
            image = pycolmap.Image(
                name=str(k),
                keypoints=np.ascontiguousarray(obs.pixels[rows[mine]]),
                camera_id=1,
                image_id=image_of[k],
            )
            reconstruction.add_image_with_trivial_frame(image, pycolmap.Rigid3d(cam_from_world[:3]))
        order = np.argsort(obs.landmarks[rows], kind="stable")
        landmarks = obs.landmarks[rows][order]
        images = keyframes[order] + 1
        positions = position[order]
        starts = np.flatnonzero(np.r_[True, landmarks[1:] != landmarks[:-1]])
        ends = np.r_[starts[1:], len(landmarks)]
        indices = np.searchsorted(sorted_ids, landmarks[starts])
        element = pycolmap.TrackElement
        point_ids = {}
        for index, start, end in zip(indices.tolist(), starts.tolist(), ends.tolist(), strict=True):
            track = pycolmap.Track(
                [
                    element(i, j)
                    for i, j in zip(images[start:end].tolist(), positions[start:end].tolist(), strict=True)
                ]
            )
            point_ids[index] = reconstruction.add_point3D(P[index], track)
        return reconstruction, point_ids, image_of

    def _colmap_adjuster(self, reconstruction, image_of: dict[int, int], fixed: set[int]):
        c = self.config
        pycolmap = _pycolmap()
        config = pycolmap.BundleAdjustmentConfig()
        for image_id in image_of.values():
            config.add_image(image_id)
        config.set_constant_cam_intrinsics(1)
        for k in fixed:
            config.set_constant_rig_from_world_pose(image_of[k])  # trivial frames: frame id = image id
        options = pycolmap.BundleAdjustmentOptions(
            refine_focal_length=False,
            refine_principal_point=False,
            refine_extra_params=False,
            print_summary=False,
        )
        options.ceres.loss_function_type = pycolmap.LossFunctionType.HUBER
        options.ceres.loss_function_scale = c.huber_k * c.pixel_sigma
        solver = options.ceres.solver_options
        solver.max_num_iterations = c.max_iterations
        solver.function_tolerance = c.relative_error_tol
        solver.num_threads = 1  # a window is too small to gain from threads, and one thread is reproducible
        return pycolmap.create_default_bundle_adjuster(options, config, reconstruction)

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
        self, obs: Observations, T_wc: dict[int, np.ndarray], P_all: np.ndarray, point_ids: np.ndarray
    ) -> np.ndarray:
        """Per observation: in front of its camera and reprojecting within outlier_px. `P_all`: the
        landmarks (M, 3) in the order of `point_ids`, ascending."""
        kf_ids = np.array(sorted(T_wc), dtype=np.int64)
        T_cw = np.stack([np.linalg.inv(T_wc[int(k)]) for k in kf_ids])
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
