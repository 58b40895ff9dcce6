"""keyframe_vo's geometric helpers against float64 references: the pose covariance from reprojection
(pose_covariance_px) against a finite-difference Jacobian of the projection, and the parallax between two
views (median_parallax_deg) against the angles of the 3D points' rays."""

from __future__ import annotations

import numpy as np
import pytest
from banet_vo.frontend.solvers import project
from banet_vo.geometry import PinholeCamera
from banet_vo.odometry.keyframes import median_parallax_deg, pose_covariance_px
from scipy.spatial.transform import Rotation

CAMERA = PinholeCamera(700.0, 690.0, 610.0, 185.0, 1226, 370)


def _points(n: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-6, 6, n), rng.uniform(-2, 2, n), rng.uniform(4, 40, n)]


def _finite_difference_jacobian(P: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """d(pixels)/dξ, ξ = [ρ, φ]: the points moved by Exp(ξ) (to first order R(φ)·p + ρ), central
    differences."""

    def pixels(xi: np.ndarray) -> np.ndarray:
        moved = Rotation.from_rotvec(xi[3:]).apply(P) + xi[:3]
        return project(np.eye(4), moved, CAMERA)[0].reshape(-1)

    J = np.zeros((2 * len(P), 6))
    for k in range(6):
        step = np.zeros(6)
        step[k] = h
        J[:, k] = (pixels(step) - pixels(-step)) / (2 * h)
    return J


def test_pose_covariance_is_sigma_squared_over_the_projection_hessian():
    P = _points()
    J = _finite_difference_jacobian(P)
    expected = 1.5**2 * np.linalg.inv(J.T @ J)
    cov = pose_covariance_px(P, CAMERA, sigma_px=1.5)
    np.testing.assert_allclose(cov, expected, rtol=1e-5, atol=1e-14)
    np.testing.assert_array_equal(cov, cov.T)
    assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_residuals_larger_than_sigma_set_the_noise_level():
    """With pixels 3 px right and 4 px down of the projections the residual RMS per coordinate is
    sqrt(12.5) px, which replaces a smaller sigma_px and leaves a larger one."""
    P = _points(seed=1)
    seen = project(np.eye(4), P, CAMERA)[0] + np.array([3.0, 4.0])
    unit = pose_covariance_px(P, CAMERA, sigma_px=1.0)
    np.testing.assert_allclose(pose_covariance_px(P, CAMERA, 1.0, seen), 12.5 * unit, rtol=1e-12)
    np.testing.assert_allclose(pose_covariance_px(P, CAMERA, 5.0, seen), 25.0 * unit, rtol=1e-12)


@pytest.mark.parametrize("n", [0, 5])
def test_too_few_points_in_front_give_no_covariance(n):
    P = _points(n)
    assert pose_covariance_px(P, CAMERA, 1.0) is None
    behind = _points(10) * np.array([1.0, 1.0, -1.0])  # all behind the camera
    assert pose_covariance_px(behind, CAMERA, 1.0) is None


def _two_views(R_b_a: np.ndarray, t_b_a: np.ndarray, seed: int = 2):
    P_a = _points(60, seed) * np.array([0.3, 0.3, 1.0])  # near the axis: in front of both cameras
    P_b = P_a @ R_b_a.T + t_b_a
    assert (P_b[:, 2] > 0).all()
    return P_a, P_b, project(np.eye(4), P_a, CAMERA)[0], project(np.eye(4), P_b, CAMERA)[0]


def test_a_pure_rotation_has_no_parallax():
    R = Rotation.from_euler("yx", [8.0, -3.0], degrees=True).as_matrix()
    _, _, x_a, x_b = _two_views(R, np.zeros(3))
    assert median_parallax_deg(x_a, x_b, R, CAMERA) == pytest.approx(0.0, abs=1e-6)


def test_parallax_is_the_median_angle_between_the_rays_of_each_point():
    R = Rotation.from_euler("y", 6.0, degrees=True).as_matrix()
    t = np.array([1.2, 0.1, -0.3])
    P_a, P_b, x_a, x_b = _two_views(R, t)
    rays_a = P_a @ R.T  # the ray from a's centre, turned into b's axes
    cos = np.sum(rays_a * P_b, axis=1) / (np.linalg.norm(rays_a, axis=1) * np.linalg.norm(P_b, axis=1))
    expected = np.degrees(np.median(np.arccos(cos)))
    assert expected > 1.0
    assert median_parallax_deg(x_a, x_b, R, CAMERA) == pytest.approx(expected, rel=1e-9)
    assert median_parallax_deg(x_a[:0], x_b[:0], R, CAMERA) == 0.0
