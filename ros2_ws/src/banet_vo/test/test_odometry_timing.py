"""banet_vo.odometry.timing and its use in VisualOdometry: forward gaps start a new segment, never motion.

The stream is a camera moving 0.2 m per 0.1 s (2 m/s) that stalls for a gap and then moves on; the
estimator is a ground-truth double (exact relative poses, as in test_odometry), optionally failing on the
frames right after the gap, which is how a real BA seeded with an extrapolated pose behaves.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.frames import body_from_optical
from banet_vo.geometry.rigid import invert, pose_from_rotvec
from banet_vo.odometry import (
    FAILED,
    INITIALISING,
    INITIALIZED,
    OUT_OF_ORDER,
    TRACKED,
    OdometryConfig,
    PairEstimate,
    PreparedFrame,
    VisualOdometry,
)
from banet_vo.odometry.timing import (
    BACK_JUMP,
    FORWARD_GAP,
    NEW_SEGMENT,
    OK,
    StampGate,
    gap_covariance,
)
from banet_vo.odometry.timing import OUT_OF_ORDER as STAMP_OUT_OF_ORDER

CAMERA = PinholeCamera(40.0, 40.0, 31.5, 23.5, 64, 48)
SPEED = 2.0  # m/s of the test camera before and after the stall


class GroundTruthEstimator:
    """T_tgt_ref from ground-truth poses keyed by stamp; NaN poses for the stamps in ``fail_at``."""

    input_size = (32, 24)

    def __init__(self, stamps, poses, fail_at=()):
        self.poses = {round(float(t), 6): P for t, P in zip(stamps, poses, strict=True)}
        self.fail_at = {round(float(t), 6) for t in fail_at}
        A = np.random.default_rng(3).normal(size=(30, 10))
        self.hessian = A.T @ A + 0.1 * np.eye(10)

    def estimate(self, reference: PreparedFrame, target: PreparedFrame, pose_init=None) -> PairEstimate:
        T = invert(self.poses[round(target.stamp, 6)]) @ self.poses[round(reference.stamp, 6)]
        if round(reference.stamp, 6) in self.fail_at:
            T = np.full((4, 4), np.nan)
        depth = np.full((12, 16), 10.0, np.float32)
        return PairEstimate(T, depth, reference.camera.resized(16, 12), self.hessian, 0.01, 0.5, None)


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (48, 64), dtype=np.uint8)


def _stalled_stream(gap: float, before: int = 10, after: int = 10):
    """Stamps and optical camera poses: 10 Hz at SPEED along z, a stall of ``gap`` s (no motion), then on."""
    stamps, poses = [], []
    for i in range(before):
        stamps.append(0.1 * i)
        poses.append(pose_from_rotvec([0.0, 0.01 * i, 0.0], [0.0, 0.0, 0.1 * SPEED * i]))
    t0, z0, yaw0 = stamps[-1] + gap, poses[-1][2, 3], 0.01 * (before - 1)
    for k in range(after):
        stamps.append(t0 + 0.1 * k)
        poses.append(pose_from_rotvec([0.0, yaw0 + 0.01 * k, 0.0], [0.0, 0.0, z0 + 0.1 * SPEED * k]))
    return np.array(stamps), np.stack(poses)


def _body(C: np.ndarray) -> np.ndarray:
    T_bc = body_from_optical()
    return T_bc @ C @ invert(T_bc)


def _run(gap: float, fail_after_gap: int, config: OdometryConfig):
    stamps, poses = _stalled_stream(gap)
    est = GroundTruthEstimator(stamps, poses, fail_at=stamps[10 : 10 + fail_after_gap])
    vo = VisualOdometry(est, config)
    return stamps, poses, [vo.process(_image(i), t, CAMERA) for i, t in enumerate(stamps)], vo


# --------------------------------------------------------------------------------------- StampGate


def test_stamp_gate_classifies_and_keeps_the_last_accepted_stamp():
    gate = StampGate(back_jump=1.0, max_forward_gap=2.0)
    assert gate.check(10.0).kind == OK and gate.last == 10.0
    assert gate.check(11.5).kind == OK  # 1.5 s ahead: within max_forward_gap
    check = gate.check(11.4)
    assert check.kind == STAMP_OUT_OF_ORDER and gate.last == 11.5  # not recorded
    assert gate.check(11.5).kind == STAMP_OUT_OF_ORDER  # a duplicate
    check = gate.check(14.0)
    assert check.kind == FORWARD_GAP and check.gap == pytest.approx(2.5) and check.previous == 11.5
    assert "gap of 2.500 s" in check.describe() and gate.last == 14.0
    check = gate.check(13.0)
    assert check.kind == BACK_JUMP and check.gap == pytest.approx(-1.0) and gate.last == 13.0
    assert gate.peek(100.0).kind == FORWARD_GAP and gate.last == 13.0  # peek records nothing
    gate.clear()
    assert gate.check(0.0).kind == OK


def test_stamp_gate_gives_the_step_before_each_stamp():
    """previous_step: how far the previous accepted stamp came after its own predecessor (a stall after
    frames at the camera's pace, or a steady slow rate)."""
    gate = StampGate(back_jump=1.0, max_forward_gap=1.0)
    steps = [gate.check(t).previous_step for t in (0.0, 0.1, 0.2, 2.0, 2.1)]
    assert steps[:2] == [None, None]
    assert steps[2:] == pytest.approx([0.1, 0.1, 1.8])
    assert gate.check(2.05).previous_step == pytest.approx(0.1)  # out of order: not recorded
    assert gate.check(0.5).kind == BACK_JUMP  # a new timeline: no step before its first stamp
    assert gate.check(0.6).previous_step is None
    gate.clear()
    assert gate.check(5.0).previous_step is None and gate.check(5.1).previous_step is None


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, True])
def test_stamp_gate_rejects_bad_thresholds(bad):
    with pytest.raises(ValueError, match="max_forward_gap"):
        StampGate(1.0, bad)


def test_stamp_gate_rejects_non_finite_stamps_without_recording():
    gate = StampGate(1.0, 1.0)
    gate.check(1.0)
    with pytest.raises(ValueError, match="finite"):
        gate.check(math.nan)
    assert gate.last == 1.0


def test_gap_covariance_is_velocity_times_gap():
    C_prev = pose_from_rotvec([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    C_last = pose_from_rotvec([0.0, 0.02, 0.0], [0.3, 0.0, 0.4])  # 0.5 m and 0.02 rad in 0.1 s
    cov = gap_covariance(C_prev, 0.0, C_last, 0.1, gap=3.0)
    np.testing.assert_allclose(cov[:3, :3], np.eye(3) * (5.0 * 3.0) ** 2)
    np.testing.assert_allclose(cov[3:, 3:], np.eye(3) * (0.2 * 3.0) ** 2)
    assert np.all(cov[:3, 3:] == 0)
    # the rotation term saturates at π: a long gap may have turned the camera any way
    long = gap_covariance(C_prev, 0.0, C_last, 0.1, gap=1000.0)
    np.testing.assert_allclose(long[3:, 3:], np.eye(3) * math.pi**2)
    assert np.all(gap_covariance(None, None, C_last, 0.1, gap=5.0) == 0)  # no velocity known
    with pytest.raises(ValueError):
        gap_covariance(C_prev, 0.0, C_last, 0.1, gap=-1.0)


# --------------------------------------------------------------------------------------- pipeline


def test_short_gap_is_tracked_through():
    _, poses, results, _ = _run(0.5, 0, OdometryConfig(keyframe_mode="consecutive"))
    assert [r.status for r in results] == [INITIALIZED] + [TRACKED] * 19
    for r, C in zip(results, poses, strict=True):
        np.testing.assert_allclose(r.T_odom_base, _body(invert(poses[0]) @ C), atol=1e-9)


@pytest.mark.parametrize("gap", [2.0, 10.0, 1000.0])
def test_long_gap_starts_a_new_segment_at_the_last_pose(gap):
    config = OdometryConfig(keyframe_mode="consecutive", max_time_gap=1.0)
    _, poses, results, vo = _run(gap, 0, config)
    first = results[10]
    assert first.status == NEW_SEGMENT and first.state == INITIALISING and first.is_keyframe
    assert f"new segment after a gap of {gap:.3f} s" in first.message
    assert first.trajectory_id == results[9].trajectory_id  # odom stays continuous (REP-105)
    np.testing.assert_allclose(first.T_odom_base, results[9].T_odom_base)  # re-anchored, not extrapolated
    np.testing.assert_allclose(first.twist, 0.0)
    # σ of the position widened by the last speed times the gap (isotropic: the trace is frame-free)
    added = np.trace(first.pose_covariance[:3, :3]) - np.trace(results[9].pose_covariance[:3, :3])
    assert added == pytest.approx(3 * (SPEED * gap) ** 2, rel=1e-6)
    # the camera did not move during the stall, so every later pose is exact
    assert [r.status for r in results[11:]] == [TRACKED] * 9
    for r, C in zip(results[11:], poses[11:], strict=True):
        np.testing.assert_allclose(r.T_odom_base, _body(invert(poses[0]) @ C), atol=1e-9)
    assert vo.stats.resets == 0


@pytest.mark.parametrize("gap", [0.5, 2.0, 10.0, 1000.0])
def test_failures_after_a_gap_never_carry_motion_over_it(gap):
    """The fault sweep's case: the frames after the gap fail, the pipeline gives up on the keyframe
    (max_consecutive_failures) and puts a new one at its prediction. That prediction must not contain
    SPEED·gap of invented motion: the position error stays within what the camera moved while the frames
    failed (5 frames = 1 m), whatever the gap."""
    config = OdometryConfig(keyframe_mode="consecutive", max_consecutive_failures=5)
    _, poses, results, _ = _run(gap, 6, config)
    # the first frame after a long gap is not estimated (new segment); short gaps fail from frame 10
    assert [r.status for r in results[11:16]] == [FAILED] * 5
    errors = [
        np.linalg.norm(r.T_odom_base[:3, 3] - _body(invert(poses[0]) @ C)[:3, 3])
        for r, C in zip(results[10:], poses[10:], strict=True)
        if r.has_pose
    ]
    assert max(errors) <= 5 * 0.1 * SPEED + 0.01 + (SPEED * gap if gap < 1.0 else 0.0)


def test_without_the_gate_the_same_stream_invents_motion():
    """The contrast that shows the test above can fail: with the gap threshold out of reach, the
    constant-velocity prediction crosses a 10 s gap and the keyframe lands ~SPEED·gap away."""
    config = OdometryConfig(keyframe_mode="consecutive", max_consecutive_failures=5, max_time_gap=1e9)
    _, poses, results, _ = _run(10.0, 6, config)
    assert [r.status for r in results[10:16]] == [FAILED] * 6
    final = results[-1]
    error = np.linalg.norm(final.T_odom_base[:3, 3] - _body(invert(poses[0]) @ poses[-1])[:3, 3])
    assert error > 10.0


def test_gap_before_any_motion_and_order_checks_still_apply():
    config = OdometryConfig(keyframe_mode="consecutive")
    stamps = np.array([0.0, 5.0, 5.1, 5.05, 0.5])
    poses = np.stack([pose_from_rotvec([0, 0, 0], [0, 0, 0.1 * i]) for i in range(5)])
    vo = VisualOdometry(GroundTruthEstimator(stamps, poses), config)
    results = [vo.process(_image(i), t, CAMERA) for i, t in enumerate(stamps)]
    assert [r.status for r in results] == [INITIALIZED, NEW_SEGMENT, TRACKED, OUT_OF_ORDER, INITIALIZED]
    np.testing.assert_allclose(results[1].T_odom_base, np.eye(4))
    assert vo.stats.resets == 1 and results[4].trajectory_id == results[2].trajectory_id + 1


def test_config_validates_max_time_gap():
    with pytest.raises(ValueError, match="max_time_gap"):
        OdometryConfig(max_time_gap=0.0)
