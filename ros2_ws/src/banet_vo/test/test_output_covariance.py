"""Published covariances: never zero, scaled, floored, overridden; twist per frame interval."""

from __future__ import annotations

import numpy as np
import pytest
from banet_vo.geometry.rigid import invert, pose_from_rotvec
from banet_vo.odometry.output_covariance import (
    UNKNOWN_VARIANCE,
    CovarianceConfig,
    calibrated,
    pose_covariance,
    step_covariance,
    twist_covariance,
)
from scipy.linalg import expm, logm


def _spd(seed: int) -> np.ndarray:
    A = np.random.default_rng(seed).normal(size=(6, 6)) * 1e-3
    return A @ A.T


def test_first_frame_zero_covariance_gets_the_floor():
    out = pose_covariance(np.zeros((6, 6)), CovarianceConfig(position_floor=1e-4, orientation_floor=1e-6))
    np.testing.assert_array_equal(np.diag(out), [1e-4] * 3 + [1e-6] * 3)
    assert np.all(np.linalg.eigvalsh(out) > 0)


def _config(position_scale=1.0, orientation_scale=1.0, **kw) -> CovarianceConfig:
    kw = {"position_floor": 0.0, "orientation_floor": 0.0, **kw}
    return CovarianceConfig(position_scale=position_scale, orientation_scale=orientation_scale, **kw)


def test_scale_multiplies_the_estimate_and_the_floor_is_added():
    cov = _spd(0)
    out = pose_covariance(cov, _config(100.0, 100.0))
    np.testing.assert_allclose(out, 100.0 * cov)
    floored = pose_covariance(cov, _config(position_floor=2e-4))
    np.testing.assert_allclose(np.diag(floored - cov), [2e-4] * 3 + [0.0] * 3, atol=1e-18)


def test_block_scales_scale_variances_by_block_and_correlations_by_both():
    cov = _spd(5)
    out = calibrated(cov, _config(400.0, 9.0))
    np.testing.assert_allclose(out[:3, :3], 400.0 * cov[:3, :3])
    np.testing.assert_allclose(out[3:, 3:], 9.0 * cov[3:, 3:])
    np.testing.assert_allclose(out[:3, 3:], 60.0 * cov[:3, 3:])  # √400·√9: correlation coefficients kept
    assert np.all(np.linalg.eigvalsh(out) > 0)
    # the NEES of a position error drops by the position scale
    e = np.r_[np.sqrt(cov[0, 0]), 0.0, 0.0]
    raw = e @ np.linalg.solve(cov[:3, :3], e)
    assert e @ np.linalg.solve(out[:3, :3], e) == pytest.approx(raw / 400.0)


def test_shipped_defaults_are_the_calibrated_ones():
    c = CovarianceConfig()
    # docs/preregistered/covariance_calibration.txt; benchmarks/results/covariance_nees.md
    assert (c.position_scale, c.orientation_scale) == (17.0, 6.1)
    assert (c.position_floor, c.orientation_floor) == (1e-4, 1e-6)


def test_override_fixes_one_block_and_removes_its_correlations():
    cov = _spd(1)
    out = pose_covariance(cov, _config(position_override=0.25))
    np.testing.assert_array_equal(out[:3, :3], 0.25 * np.eye(3))
    assert not np.any(out[:3, 3:]) and not np.any(out[3:, :3])
    np.testing.assert_allclose(out[3:, 3:], cov[3:, 3:])


def test_twist_covariance_scales_with_the_frame_interval_and_says_unknown():
    step = _spd(2)
    config = _config()
    np.testing.assert_allclose(twist_covariance(step, 0.05, config), 4 * twist_covariance(step, 0.1, config))
    np.testing.assert_allclose(twist_covariance(step, 0.1, config), step / 0.01)
    for args in ((None, 0.1), (step, None), (step, 0.0)):
        np.testing.assert_array_equal(twist_covariance(*args, config), UNKNOWN_VARIANCE * np.eye(6))


def test_step_covariance_from_keyframe_relative_covariances():
    a, b = _spd(3), _spd(4)
    still = {"T_odom_previous": np.eye(4), "T_odom_current": np.eye(4)}  # no motion: no adjoint to apply
    np.testing.assert_allclose(step_covariance(a, b, previous_was_keyframe=False, **still), a + b)
    np.testing.assert_allclose(step_covariance(a, b, previous_was_keyframe=True, **still), a)
    assert (
        step_covariance(None, b, False, **still) is None and step_covariance(a, None, False, **still) is None
    )
    # a relative covariance measured from the previous frame is the step's own (no sum)
    np.testing.assert_allclose(step_covariance(a, b, False, relative_to_previous=True, **still), a)
    np.testing.assert_allclose(step_covariance(a, None, False, relative_to_previous=True, **still), a)
    with pytest.raises(ValueError, match="T_odom_previous and T_odom_current are needed"):
        step_covariance(a, b, False, T_odom_previous=None, T_odom_current=np.eye(4))
    with pytest.raises(ValueError, match="position_scale must be a finite number > 0"):
        CovarianceConfig(position_scale=0.0)


def _exp(xi: np.ndarray) -> np.ndarray:
    """SE(3) exponential of [ρ, φ] by the matrix exponential (an independent float64 reference)."""
    M = np.zeros((4, 4))
    M[:3, :3] = [[0.0, -xi[5], xi[4]], [xi[5], 0.0, -xi[3]], [-xi[4], xi[3], 0.0]]
    M[:3, 3] = xi[:3]
    return expm(M)


def _log(T: np.ndarray) -> np.ndarray:
    L = np.real(logm(T))
    return np.r_[L[:3, 3], L[2, 1], L[0, 2], L[1, 0]]


def test_step_covariance_carries_the_previous_frames_error_across_the_step():
    """Both frames relative to one keyframe: the step's right covariance is J_p Σ_p J_pᵀ + J_c Σ_c J_cᵀ with
    the Jacobians of Log(step⁻¹·(T_kp·Exp(ξp))⁻¹·T_kc·Exp(ξc)) by central differences. A rotation error
    of 0.01 rad on the previous frame, 1 m behind, moves the step sideways by ~1 cm (variance 1e-4 m²),
    which a plain sum (2e-6 m²) misses."""
    T_kp = pose_from_rotvec([0.0, 0.02, 0.0], [0.0, 0.0, 5.0])  # previous frame, 5 m past the keyframe
    T_kc = T_kp @ pose_from_rotvec([0.0, 0.01, 0.0], [0.0, 0.0, 1.0])  # current frame: 1 m further
    cov_p = np.diag([1e-6] * 3 + [1e-4] * 3)
    cov_c = np.diag([1e-6] * 6)
    step = invert(T_kp) @ T_kc

    def error(xi_p: np.ndarray, xi_c: np.ndarray) -> np.ndarray:
        return _log(invert(step) @ invert(T_kp @ _exp(xi_p)) @ T_kc @ _exp(xi_c))

    h, zero = 1e-6, np.zeros(6)
    J_p = np.stack([(error(h * e, zero) - error(-h * e, zero)) / (2 * h) for e in np.eye(6)], axis=1)
    J_c = np.stack([(error(zero, h * e) - error(zero, -h * e)) / (2 * h) for e in np.eye(6)], axis=1)
    expected = J_p @ cov_p @ J_p.T + J_c @ cov_c @ J_c.T

    T_odom_kf = pose_from_rotvec([0.3, -0.5, 0.8], [10.0, -4.0, 2.0])  # only the relative motion counts
    got = step_covariance(
        cov_c, cov_p, False, T_odom_previous=T_odom_kf @ T_kp, T_odom_current=T_odom_kf @ T_kc
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-14)
    assert got[0, 0] == pytest.approx(1.01e-4, rel=0.02)  # sideways: 1 m × 0.01 rad, plus σ² of 1 mm
