"""NEES of relative motion: synthetic Gaussian errors with a known covariance give χ² statistics; the
wrong frame, the wrong block order or a metric-scale bias do not."""

from __future__ import annotations

import numpy as np
import pytest
from banet_vo.evaluation import covariance_consistency as cc
from banet_vo.geometry.frames import body_from_optical
from banet_vo.geometry.rigid import invert, pose_from_rotvec
from banet_vo.odometry import FrameResult
from scipy.spatial.transform import Rotation
from scipy.stats import chi2

N = 3000
# Known relative covariance in base_link axes, ROS order (x y z, rx ry rz): strongly anisotropic (forward
# translation x is the least certain, yaw rz the most) and correlated, so that a wrong frame or a wrong
# order of the blocks shows.
SIGMA = np.array([0.30, 0.02, 0.05, 0.004, 0.010, 0.050])
CORRELATION = np.eye(6)
CORRELATION[0, 5] = CORRELATION[5, 0] = 0.6  # forward translation with yaw
CORRELATION[1, 3] = CORRELATION[3, 1] = -0.4
COV = SIGMA[:, None] * CORRELATION * SIGMA[None, :]


def _synthetic_run(seed: int = 0, scale_bias: float = 1.0):
    """FrameResults whose relative motion errors are N(0, COV) in base_link (right perturbation), and the
    ground truth as camera-to-world optical poses in an arbitrary world frame."""
    rng = np.random.default_rng(seed)
    T_base_cam = body_from_optical(np.array([1.2, 0.1, 1.6]))  # a mounted camera, not at the body origin
    world = pose_from_rotvec([0.3, -1.0, 2.0], [5.0, -3.0, 1.0])
    B_true, B_est = np.eye(4), np.eye(4)
    results, gt = [], {}
    xi = rng.multivariate_normal(np.zeros(6), COV, size=N)
    for k in range(N + 1):
        stamp = 0.1 * k
        if k > 0:
            # large, varied motions (up to ~70° turns): a left/right or body/optical mix-up then shows
            D_true = pose_from_rotvec(rng.normal(0.0, 0.6, 3), rng.normal([1.0, 0.0, 0.0], 0.5))
            B_true = B_true @ D_true
            D_est = D_true @ invert(pose_from_rotvec(xi[k - 1, 3:], xi[k - 1, :3]))  # D_true = D_est·Exp(ξ)
            D_est[:3, 3] /= scale_bias
            B_est = B_est @ D_est
        units = np.r_[[1.0 / scale_bias] * 3, [1.0] * 3]  # the estimate's length unit
        cov = units[:, None] * COV * units[None, :]
        results.append(
            FrameResult(
                stamp,
                "tracked",
                0,
                T_odom_base=B_est.copy(),
                relative_covariance=cov if k > 0 else None,
                scale_source="learned",
            )
        )
        gt[round(stamp, 6)] = world @ B_true @ T_base_cam  # camera-to-world, optical
    return results, (lambda s: gt.get(round(s, 6))), T_base_cam


@pytest.fixture(scope="module")
def run():
    return _synthetic_run()


def test_known_gaussian_errors_give_chi_square_statistics(run):
    results, gt_at, T_base_cam = run
    steps, left_out = cc.collect_steps(results, gt_at, T_base_cam)
    assert len(steps) == N
    assert left_out == {"no relative covariance (first frame of a map or trajectory)": 1}
    stats = cc.block_consistency(steps.errors(), steps.covariance)
    for block, dof in (("translation", 3), ("rotation", 3), ("joint", 6)):
        s = stats[block]
        assert s.dof == dof and s.n == N
        assert s.consistent, (block, s)
        assert s.inside == pytest.approx(0.95, abs=0.015)
        assert s.median == pytest.approx(chi2.median(dof), rel=0.08)


def test_the_wrong_frame_or_block_order_is_caught(run):
    results, gt_at, T_base_cam = run
    # ground truth taken as if the camera were the body (optical axes): the errors land on other axes
    steps, _ = cc.collect_steps(results, gt_at, np.eye(4))
    assert not cc.consistency(cc.nees(steps.errors(), steps.covariance), 6).consistent
    steps, _ = cc.collect_steps(results, gt_at, T_base_cam)
    swapped = np.r_[3:6, 0:3]  # covariance in [rotation, translation] order
    stats = cc.consistency(cc.nees(steps.errors(), steps.covariance[:, swapped][:, :, swapped]), 6)
    assert stats.mean > 10 * stats.upper
    # axes within the translation block permuted (y, z, x): one wrong axis convention
    perm = np.r_[1, 2, 0, 3, 4, 5]
    stats = cc.consistency(cc.nees(steps.errors(), steps.covariance[:, perm][:, :, perm]), 6)
    assert not stats.consistent


def test_a_left_perturbation_reading_would_be_caught(run):
    results, gt_at, T_base_cam = run
    steps, _ = cc.collect_steps(results, gt_at, T_base_cam)
    # ξ_left with D_true = Exp(ξ_left)·D_est differs from the right one by the adjoint of the motion
    left = []
    for a, b in zip(steps.D_est, steps.D_true, strict=True):
        E = b @ invert(a)
        left.append(np.r_[E[:3, 3], Rotation.from_matrix(E[:3, :3]).as_rotvec()])
    assert not cc.consistency(cc.nees(np.array(left), steps.covariance), 6).consistent


def test_shape_rescale_removes_a_metric_scale_bias():
    results, gt_at, T_base_cam = _synthetic_run(seed=1, scale_bias=3.0)
    steps, _ = cc.collect_steps(results, gt_at, T_base_cam)
    metric = cc.consistency(cc.nees(steps.errors(), steps.covariance, "translation"), 3)
    assert metric.mean > 10 * metric.upper  # every step a third of its length, covariance a ninth
    assert steps.scale_ratio() == pytest.approx(3.0, rel=0.02)
    shape = steps.rescaled(steps.scale_ratio())
    stats = cc.consistency(cc.nees(shape.errors(), shape.covariance, "translation"), 3)
    assert stats.inside == pytest.approx(0.95, abs=0.02)
    assert stats.median == pytest.approx(chi2.median(3), rel=0.1)


def test_fit_scale_recovers_an_overconfidence_factor(run):
    results, gt_at, T_base_cam = run
    steps, _ = cc.collect_steps(results, gt_at, T_base_cam)
    errors = steps.errors()
    reported = steps.covariance / 40.0  # 40x overconfident

    def inside(s: float) -> float:
        return cc.consistency(cc.nees(errors, s * reported, "rotation"), 3).inside

    assert cc.fit_scale(inside) == pytest.approx(40.0, rel=0.1)
    with pytest.raises(ValueError, match="even at scale"):
        cc.fit_scale(inside, hi=1.0)


def test_frames_that_cannot_be_compared_are_left_out_and_counted():
    base = {"status": "tracked", "relative_covariance": np.eye(6), "scale_source": "learned"}
    results = [
        FrameResult(0.0, trajectory_id=0, T_odom_base=np.eye(4), **{**base, "relative_covariance": None}),
        FrameResult(0.1, trajectory_id=0, T_odom_base=np.eye(4), **{**base, "scale_source": "none"}),
        FrameResult(0.2, "failed", 0),  # no pose: not a frame of the comparison at all
        FrameResult(0.3, trajectory_id=1, T_odom_base=np.eye(4), **base),  # after a reset
        FrameResult(0.4, trajectory_id=1, T_odom_base=np.eye(4), **base),  # no ground truth
        FrameResult(0.5, trajectory_id=1, T_odom_base=np.eye(4), **base),
    ]
    gt = {0.0: np.eye(4), 0.1: np.eye(4), 0.3: np.eye(4), 0.5: np.eye(4)}
    steps, left_out = cc.collect_steps(results, lambda s: gt.get(round(s, 6)), np.eye(4))
    assert steps.stamps.tolist() == []
    assert left_out == {
        "no relative covariance (first frame of a map or trajectory)": 1,
        "scale not measured yet (pose in map units)": 1,
        "no previous pose in the same trajectory": 1,
        "no ground truth at the stamp": 2,
    }


def test_consistency_bounds_are_the_chi_square_quantiles():
    s = cc.consistency(np.array([1.0, 2.0, 3.0, 10.0]), 3)
    assert (s.n, s.mean, s.median) == (4, 4.0, 2.5)
    assert s.lower == pytest.approx(chi2.ppf(0.025, 12) / 4)
    assert s.upper == pytest.approx(chi2.ppf(0.975, 12) / 4)
    assert s.inside == pytest.approx(0.75)  # 10 > χ²_3(0.95) = 7.81
