"""Published covariances: never zero, scaled, floored, overridden; twist per frame interval."""

from __future__ import annotations

import numpy as np
import pytest
from banet_vo.odometry.output_covariance import (
    UNKNOWN_VARIANCE,
    CovarianceConfig,
    calibrated,
    pose_covariance,
    step_covariance,
    twist_covariance,
)


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
    np.testing.assert_allclose(step_covariance(a, b, previous_was_keyframe=False), a + b)
    np.testing.assert_allclose(step_covariance(a, b, previous_was_keyframe=True), a)
    assert step_covariance(None, b, False) is None and step_covariance(a, None, False) is None
    # a relative covariance measured from the previous frame is the step's own (no sum)
    np.testing.assert_allclose(step_covariance(a, b, False, relative_to_previous=True), a)
    np.testing.assert_allclose(step_covariance(a, None, False, relative_to_previous=True), a)
    with pytest.raises(ValueError, match="position_scale must be a finite number > 0"):
        CovarianceConfig(position_scale=0.0)
