"""Two-view pose errors and pose AUC against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from banet_vo.evaluation.pose import (
    angle_between_deg,
    pose_auc,
    rotation_angle_deg,
    summarize_pose_errors,
    two_view_pose_error,
)


def rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def pose(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def test_camera_centre_vs_translation_direction_by_hand():
    # GT: no rotation, t = (1, 0, 0) -> centre of j in i is (-1, 0, 0).
    # Estimate: 90 deg about z with t = (0, 1, 0) -> centre -R^T t = (-1, 0, 0): same centre, other t.
    err = two_view_pose_error(pose(rot_z(90), [0, 1, 0]), pose(np.eye(3), [1, 0, 0]))
    assert err.rotation_deg == pytest.approx(90.0, abs=1e-12)
    assert err.translation_cm == pytest.approx(0.0, abs=1e-12)
    assert err.translation_direction_deg == pytest.approx(90.0, abs=1e-12)
    assert err.auc_error_deg == pytest.approx(90.0, abs=1e-12)


def test_translation_error_in_cm_and_direction_by_hand():
    # Same rotation (10 deg about z) in both: centres differ by R^T (t_gt - t_est) -> |(0, 0.03, 0.04)| m.
    R = rot_z(10)
    err = two_view_pose_error(pose(R, [0.3, 0.03, 0.04]), pose(R, [0.3, 0.0, 0.0]))
    assert err.rotation_deg == pytest.approx(0.0, abs=1e-12)
    assert err.translation_cm == pytest.approx(5.0, abs=1e-10)
    assert err.translation_direction_deg == pytest.approx(math.degrees(math.atan2(0.05, 0.3)), abs=1e-10)


def test_rotation_angle_accurate_near_zero_and_pi():
    tiny = 1e-7  # degrees; arccos((trace - 1) / 2) loses this completely in float64
    assert rotation_angle_deg(rot_z(tiny)) == pytest.approx(tiny, rel=1e-6)
    assert rotation_angle_deg(rot_z(180.0)) == pytest.approx(180.0, abs=1e-9)
    assert rotation_angle_deg(rot_z(-37.0)) == pytest.approx(37.0, abs=1e-12)


def test_sign_ambiguity_and_undefined_direction():
    gt = pose(np.eye(3), [0, 0, 1])
    flipped = pose(np.eye(3), [0, 0, -2])
    assert two_view_pose_error(flipped, gt).translation_direction_deg == pytest.approx(180.0)
    ambiguous = two_view_pose_error(flipped, gt, sign_ambiguous=True)
    assert ambiguous.translation_direction_deg == pytest.approx(0.0)
    still = two_view_pose_error(pose(rot_z(3), [0, 0, 0]), gt)
    assert math.isnan(still.translation_direction_deg)
    assert still.auc_error_deg == math.inf  # undefined direction is a failure for AUC
    assert math.isnan(angle_between_deg([0, 0, 0], [1, 0, 0]))


def test_batched_equals_loop_and_accepts_3x4_and_pypose():
    pp = pytest.importorskip("pypose")
    import torch

    rng = np.random.default_rng(0)
    est = pp.randn_SE3(5, sigma=0.3, dtype=torch.float64)
    gt = pp.randn_SE3(5, sigma=0.3, dtype=torch.float64)
    batched = two_view_pose_error(est, gt)
    T_est, T_gt = est.matrix().numpy(), gt.matrix().numpy()
    for k in range(5):
        single = two_view_pose_error(T_est[k][:3], T_gt[k])
        assert single.rotation_deg == pytest.approx(batched.rotation_deg[k], abs=1e-10)
        assert single.translation_cm == pytest.approx(batched.translation_cm[k], abs=1e-10)
        direction = batched.translation_direction_deg[k]
        assert single.translation_direction_deg == pytest.approx(direction, abs=1e-10)
    # rotation error of a pose against itself times a known rotation
    R = T_gt[0, :3, :3]
    delta = rot_z(float(rng.uniform(1, 40)))
    angle = two_view_pose_error(pose(R @ delta, [1, 0, 0]), pose(R, [1, 0, 0])).rotation_deg
    assert angle == pytest.approx(rotation_angle_deg(delta), abs=1e-10)


def test_pose_error_rejects_bad_input():
    with pytest.raises(ValueError, match="T_est"):
        two_view_pose_error(np.eye(3), np.eye(4))
    with pytest.raises(ValueError, match="T_gt"):
        two_view_pose_error(np.eye(4), np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="batch shape"):
        two_view_pose_error(np.stack([np.eye(4)] * 2), np.eye(4))


def test_pose_auc_by_hand():
    errors = [1.0, 3.0, 30.0]
    # recall points (0,0) (1,1/3) (3,2/3), flat to tau: area 1/6 + 1 + (tau - 3) * 2/3
    linear = pose_auc(errors, (5, 10))
    assert linear[5.0] == pytest.approx((1 / 6 + 1 + 2 * 2 / 3) / 5, abs=1e-12)
    assert linear[10.0] == pytest.approx((1 / 6 + 1 + 7 * 2 / 3) / 10, abs=1e-12)
    step = pose_auc(errors, (5, 10), interpolation="step")
    assert step[5.0] == pytest.approx(((5 - 1) + (5 - 3)) / 3 / 5, abs=1e-12)
    assert step[10.0] == pytest.approx(((10 - 1) + (10 - 3)) / 3 / 10, abs=1e-12)
    assert pose_auc([0.0, 0.0]) == {5.0: 1.0, 10.0: 1.0, 20.0: 1.0}
    # NaN and inf are failures that stay in the denominator
    assert pose_auc([0.0, np.nan, np.inf, 100.0], (5,))[5.0] == pytest.approx(0.25)


def test_pose_auc_uniform_errors_approach_half():
    errors = np.linspace(0, 20, 2001)[1:]
    auc = pose_auc(errors, (20,), interpolation="step")[20.0]
    assert auc == pytest.approx(0.5, abs=1e-3)
    assert pose_auc(errors, (20,))[20.0] == pytest.approx(0.5, abs=1e-3)


def test_pose_auc_rejects_bad_input():
    with pytest.raises(ValueError, match="errors_deg"):
        pose_auc([])
    with pytest.raises(ValueError, match="errors_deg"):
        pose_auc([-1.0])
    with pytest.raises(ValueError, match="thresholds_deg"):
        pose_auc([1.0], (0,))
    with pytest.raises(ValueError, match="interpolation"):
        pose_auc([1.0], interpolation="cubic")


def test_summarize_pose_errors():
    a = two_view_pose_error(pose(rot_z(2), [1, 0, 0]), pose(np.eye(3), [1, 0, 0]))
    b = two_view_pose_error(pose(rot_z(4), [0, 0, 0]), pose(np.eye(3), [1, 0, 0]))
    summary = summarize_pose_errors([a, b])
    assert summary["rotation_deg"]["mean"] == pytest.approx(3.0)
    assert summary["translation_direction_deg"]["count"] == 1  # NaN left out
    with pytest.raises(ValueError, match="errors"):
        summarize_pose_errors([])
