"""Window bundle adjustment (both solvers: COLMAP's Ceres adjuster and GTSAM) on a synthetic scene with known
poses and points."""

from __future__ import annotations

import numpy as np
import pytest
from banet_vo.backend import (
    Observation,
    Observations,
    RelativePoseFactor,
    WindowBAConfig,
    WindowBundleAdjuster,
)
from banet_vo.backend.window_ba import SOLVERS, gtsam_to_ours_covariance
from banet_vo.frontend.solvers import project
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.rigid import pose_from_rotvec

CAMERA = PinholeCamera(450.0, 500.0, 320.0, 240.0, 640, 480)  # fx != fy on purpose


def _problem(n_kf=5, n_pts=200, seed=0):
    rng = np.random.default_rng(seed)
    poses = {k: pose_from_rotvec([0.0, 0.02 * k, 0.0], [0.4 * k, 0.0, 0.1 * k]) for k in range(n_kf)}
    points = {j: np.array([rng.uniform(-4, 6), rng.uniform(-2, 2), rng.uniform(6, 14)]) for j in range(n_pts)}
    obs = []
    for k, T in poses.items():
        P = np.stack(list(points.values()))
        uv, z = project(np.linalg.inv(T), P, CAMERA)
        for j, (p, d) in enumerate(zip(uv, z, strict=True)):
            if d > 0 and 0 <= p[0] < 640 and 0 <= p[1] < 480:
                obs.append(Observation(k, j, (float(p[0]), float(p[1]))))
    return poses, points, obs


def _perturbed(poses, points, rng):
    """Start values: every keyframe but the two oldest moved (about 0.6 deg, 5 cm), every point by 10 cm."""
    moved = {
        k: (T if k < 2 else T @ pose_from_rotvec(rng.normal(0, 0.01, 3), rng.normal(0, 0.05, 3)))
        for k, T in poses.items()
    }
    return moved, {j: P + rng.normal(0, 0.1, 3) for j, P in points.items()}


@pytest.mark.parametrize("solver", SOLVERS)
def test_recovers_perturbed_poses_and_points(solver):
    poses, points, obs = _problem()
    rng = np.random.default_rng(1)
    noisy_poses, noisy_points = _perturbed(poses, points, rng)
    ba = WindowBundleAdjuster(CAMERA, WindowBAConfig(solver=solver))
    result = ba.solve(noisy_poses, noisy_points, obs, fixed={0, 1})
    assert result.final_error < 1e-6 * max(result.initial_error, 1.0) or result.final_error < 1e-4
    for k in poses:
        np.testing.assert_allclose(result.poses[k], poses[k], atol=1e-4)
    seen = [j for j in points if sum(o.landmark == j for o in obs) >= 2]
    assert len(seen) > 150
    P_true = np.stack([points[j] for j in seen])
    P_est = np.stack([result.points[j] for j in seen])
    assert np.abs(P_est - P_true).max() < 1e-3
    once = [j for j in points if j not in seen]
    for j in once:  # a landmark seen once is not in the problem and comes back as it went in
        np.testing.assert_allclose(result.points[j], noisy_points[j])
    np.testing.assert_allclose(result.poses[0], poses[0], atol=1e-9)  # fixed stays


@pytest.mark.parametrize("solver", SOLVERS)
def test_prunes_gross_outliers(solver):
    poses, points, obs = _problem(seed=2)
    bad = [Observation(o.keyframe, o.landmark, (o.pixel[0] + 40.0, o.pixel[1] - 30.0)) for o in obs[:10]]
    result = WindowBundleAdjuster(CAMERA, WindowBAConfig(solver=solver)).solve(
        poses, points, bad + obs[10:], fixed={0, 1}
    )
    pruned = {(o.keyframe, o.landmark) for o in result.outliers}
    assert {(o.keyframe, o.landmark) for o in bad} <= pruned
    assert len(pruned) <= len(bad) + 5


def test_relative_pose_factor_pulls_a_pose():
    """With the default solver (ceres) too: a window with relative-pose factors is solved by GTSAM."""
    poses, points, obs = _problem(n_kf=3, seed=3)
    target = poses[2] @ pose_from_rotvec([0, 0, 0], [0.0, 0.0, 0.0])
    shifted = {**poses, 2: poses[2] @ pose_from_rotvec([0, 0, 0], [0.3, 0, 0])}
    # Only the relative factor constrains keyframe 2 (no observations of it).
    obs_no2 = [o for o in obs if o.keyframe != 2]
    cov = np.diag([1e-4] * 3 + [1e-6] * 3)
    factor = RelativePoseFactor(1, 2, np.linalg.inv(poses[1]) @ target, cov)
    result = WindowBundleAdjuster(CAMERA).solve(shifted, points, obs_no2, fixed={0, 1}, relative=[factor])
    np.testing.assert_allclose(result.poses[2], target, atol=1e-5)


def test_covariance_order_swap_is_an_involution():
    C = np.diag([1, 2, 3, 4, 5, 6.0])
    swapped = gtsam_to_ours_covariance(C)
    np.testing.assert_allclose(np.diag(swapped), [4, 5, 6, 1, 2, 3])
    np.testing.assert_allclose(gtsam_to_ours_covariance(swapped), C)


def test_bad_windows_are_refused():
    poses, points, obs = _problem(n_kf=2, n_pts=20)
    ba = WindowBundleAdjuster(CAMERA)
    with pytest.raises(ValueError, match="fixed"):
        ba.solve(poses, points, obs, fixed=set())
    with pytest.raises(ValueError, match="outside the window"):
        ba.solve(poses, points, [Observation(9, 0, (1.0, 1.0))], fixed={0})
    with pytest.raises(ValueError, match="pixel_sigma"):
        WindowBAConfig(pixel_sigma=0.0)


def test_orderings_reach_the_same_solution():
    """METIS (the default, faster on windows) and COLAMD eliminate in different orders but solve one
    problem: the solutions agree to solver precision."""
    poses, points, obs = _problem(n_kf=6, n_pts=300, seed=3)
    rng = np.random.default_rng(4)
    noisy_poses, noisy_points = _perturbed(poses, points, rng)
    solved = {
        ordering: WindowBundleAdjuster(CAMERA, WindowBAConfig(ordering=ordering)).solve(
            noisy_poses, noisy_points, obs, fixed={0, 1}
        )
        for ordering in ("METIS", "COLAMD")
    }
    for k in poses:
        np.testing.assert_allclose(solved["METIS"].poses[k], solved["COLAMD"].poses[k], atol=1e-6)
        np.testing.assert_allclose(solved["METIS"].poses[k], poses[k], atol=1e-4)


def test_unknown_ordering_is_refused():
    with pytest.raises(ValueError, match="ordering"):
        WindowBAConfig(ordering="AMD?")
    with pytest.raises(ValueError, match="solver must be one of"):
        WindowBAConfig(solver="g2o")


def test_solvers_agree_on_a_noisy_window():
    """Pixel noise (0.5 px) and 5 % gross outliers: both solvers minimise the same robust cost, prune the
    same way and land on the same solution (to well under the noise's effect on the poses), and report
    their errors on one scale."""
    poses, points, obs = _problem(n_kf=6, n_pts=300, seed=6)
    rng = np.random.default_rng(7)
    obs = [
        Observation(
            o.keyframe,
            o.landmark,
            tuple(np.add(o.pixel, rng.normal(0, 0.5, 2) + (30.0 if i % 20 == 0 else 0.0))),
        )
        for i, o in enumerate(obs)
    ]
    start, noisy_points = _perturbed(poses, points, rng)
    solved = {
        solver: WindowBundleAdjuster(CAMERA, WindowBAConfig(solver=solver)).solve(
            start, noisy_points, obs, fixed={0, 1}
        )
        for solver in SOLVERS
    }
    ceres, gtsam_ = solved["ceres"], solved["gtsam"]
    for k in poses:
        apart = np.linalg.norm(ceres.poses[k][:3, 3] - gtsam_.poses[k][:3, 3])
        off = np.linalg.norm(gtsam_.poses[k][:3, 3] - poses[k][:3, 3])  # what the noise did
        assert apart <= 0.05 * off + 1e-6
        np.testing.assert_allclose(ceres.poses[k][:3, 3], poses[k][:3, 3], atol=0.05)
        if k < 2:  # held: exactly as given
            np.testing.assert_array_equal(ceres.poses[k], start[k])
    np.testing.assert_array_equal(ceres.outlier_rows, gtsam_.outlier_rows)
    assert len(ceres.outlier_rows) >= 0.9 * len(obs[::20])
    assert ceres.final_error == pytest.approx(gtsam_.final_error, rel=1e-4)
    assert ceres.initial_error == pytest.approx(gtsam_.initial_error, rel=1e-6)


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_keyframe_without_observations_stays_put(solver):
    poses, points, obs = _problem(n_kf=4, seed=8)
    obs = [o for o in obs if o.keyframe != 3]
    result = WindowBundleAdjuster(CAMERA, WindowBAConfig(solver=solver)).solve(
        poses, points, obs, fixed={0, 1}
    )
    np.testing.assert_allclose(result.poses[3], poses[3], atol=1e-9)
    np.testing.assert_allclose(result.poses[2], poses[2], atol=1e-6)


@pytest.mark.parametrize("solver", SOLVERS)
def test_arrays_and_list_give_the_same_solution_and_outlier_rows(solver):
    """Observations as arrays (as the odometry passes them) solve the same problem as the list form, and
    outlier_rows index the pruned rows of the input, in any row order."""
    poses, points, obs = _problem(seed=4)
    obs = [Observation(o.keyframe, o.landmark, (o.pixel[0] + 25.0, o.pixel[1])) if i % 97 == 0 else o
           for i, o in enumerate(obs)]  # fmt: skip
    order = np.random.default_rng(5).permutation(len(obs))  # keyframes interleaved
    shuffled = [obs[i] for i in order]
    arrays = Observations.from_list(shuffled)
    ba = WindowBundleAdjuster(CAMERA, WindowBAConfig(solver=solver))
    from_list = ba.solve(poses, points, shuffled, fixed={0, 1})
    from_arrays = ba.solve(poses, points, arrays, fixed={0, 1})
    for k in poses:
        np.testing.assert_array_equal(from_arrays.poses[k], from_list.poses[k])
    pruned = {(o.keyframe, o.landmark) for o in from_arrays.outliers}
    assert pruned == {(o.keyframe, o.landmark) for o in from_list.outliers}
    shifted = {(o.keyframe, o.landmark) for o in obs[::97]}
    assert len(pruned & shifted) >= 0.8 * len(shifted)  # a shifted one can drag its landmark
    assert {(shuffled[i].keyframe, shuffled[i].landmark) for i in from_arrays.outlier_rows} == pruned
    assert [arrays.row(int(i)) for i in from_arrays.outlier_rows] == from_arrays.outliers
    assert from_arrays.iterations >= 2  # two passes, at least one LM iteration each


def test_observation_arrays_are_checked():
    with pytest.raises(ValueError, match="2 keyframes, 3 landmarks"):
        Observations([0, 1], [0, 1, 2], np.zeros((2, 2)))
    poses, points, obs = _problem(n_kf=2, n_pts=30)
    with pytest.raises(ValueError, match=r"landmark ids must lie in \[0, 2\*\*53\)"):
        WindowBundleAdjuster(CAMERA).solve(poses, {-1: np.ones(3), **points}, obs, fixed={0})


def test_an_unusable_ceres_solution_falls_back_to_gtsam(monkeypatch, caplog):
    """Ceres can fail to compute a step and return no usable solution: the window is then solved by GTSAM
    from its start values (a warning says so) instead of being lost."""
    poses, points, obs = _problem(n_kf=4, seed=9)
    ba = WindowBundleAdjuster(CAMERA, WindowBAConfig(solver="ceres"))

    class Unusable:
        def is_solution_usable(self):
            return False

        def brief_report(self):
            return "Ceres Solver Report: Iterations: 0, Termination: FAILURE"

    class Adjuster:
        def solve(self):
            return Unusable()

    monkeypatch.setattr(ba, "_colmap_adjuster", lambda *args: Adjuster())
    with caplog.at_level("WARNING", logger="banet_vo.backend.window_ba"):
        result = ba.solve(poses, points, obs, fixed={0, 1})
    assert "no usable solution" in caplog.text and "solving this window with GTSAM" in caplog.text
    reference = WindowBundleAdjuster(CAMERA, WindowBAConfig(solver="gtsam")).solve(
        poses, points, obs, fixed={0, 1}
    )
    for k in poses:
        np.testing.assert_array_equal(result.poses[k], reference.poses[k])
