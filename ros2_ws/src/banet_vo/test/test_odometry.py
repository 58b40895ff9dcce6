"""banet_vo.odometry and banet_vo.geometry.frames: composition, keyframes, covariance, robustness.

The pipeline logic is checked with a ground-truth estimator (it returns the exact relative pose of the
pair, looked up by stamp), so every composed pose has a known answer; the covariance algebra is checked
against dense inverses and finite differences with pypose in float64; a real (randomly initialised)
BA-Net runs through the same pipeline at the end.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pypose as pp
import pytest
import torch
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.frames import (
    R_BODY_OPTICAL,
    adjoint,
    body_from_optical,
    compose_right_covariance,
    left_to_right_covariance,
    pose_covariance_from_hessian,
    right_covariance_to_ros,
    transform_covariance,
)
from banet_vo.geometry.rigid import invert, pose_from_rotvec
from banet_vo.odometry import (
    CAMERA_CHANGED,
    FAILED,
    INITIALIZED,
    OUT_OF_ORDER,
    TRACKED,
    OdometryConfig,
    PairEstimate,
    PreparedFrame,
    VisualOdometry,
)
from banet_vo.odometry.estimator import prepare_frame
from banet_vo.odometry.motion import body_twist, predict_constant_velocity, view_overlap
from banet_vo.odometry.pipeline import textured_fraction
from scipy.spatial.transform import Rotation

K_BASIS = 4
CAMERA = PinholeCamera(40.0, 40.0, 31.5, 23.5, 64, 48)


def _gt_camera_poses(n: int, step: float = 0.2, yaw_deg: float = 1.0) -> np.ndarray:
    """Camera-to-world optical poses: forward along z with a slow yaw about the optical y axis."""
    poses = []
    for i in range(n):
        rotvec = [0.01 * i, np.radians(yaw_deg) * i, 0.0]
        poses.append(pose_from_rotvec(rotvec, [0.02 * i, -0.01 * i, step * i]))
    return np.stack(poses)


def _spd(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(3 * n, n))
    return A.T @ A + 0.1 * np.eye(n)


class GroundTruthEstimator:
    """Returns the exact T_tgt_ref of the pair from GT poses keyed by stamp (a test double for the
    pipeline's bookkeeping; the model itself is tested in test_model*.py)."""

    input_size = (32, 24)

    def __init__(self, stamps, poses, fail_at=(), cost=0.5, valid_pixels=None):
        self.valid_pixels = valid_pixels
        self.poses = {round(float(t), 6): P for t, P in zip(stamps, poses, strict=True)}
        self.fail_at = {round(float(t), 6) for t in fail_at}
        self.cost = cost
        self.calls: list[tuple[float, float, np.ndarray | None]] = []
        self.hessian = _spd(6 + K_BASIS, seed=3)

    def estimate(self, reference: PreparedFrame, target: PreparedFrame, pose_init=None) -> PairEstimate:
        self.calls.append((reference.stamp, target.stamp, pose_init))
        T = invert(self.poses[round(target.stamp, 6)]) @ self.poses[round(reference.stamp, 6)]
        if round(reference.stamp, 6) in self.fail_at:
            T = np.full((4, 4), np.nan)
        depth = np.full((12, 16), 10.0, np.float32)
        depth[0, 0] = np.nan
        camera = reference.camera.resized(16, 12)
        return PairEstimate(T, depth, camera, self.hessian, 0.01, self.cost, self.valid_pixels)


def _image(seed: int, size=(64, 48)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (size[1], size[0]), dtype=np.uint8)


def _body(C: np.ndarray) -> np.ndarray:
    T_bc = body_from_optical()
    return T_bc @ C @ invert(T_bc)


# ----------------------------------------------------------------------------------------- frames


def test_rep103_rotation_maps_optical_axes_to_body_axes():
    np.testing.assert_allclose(R_BODY_OPTICAL @ [0, 0, 1], [1, 0, 0])  # optical forward → body x
    np.testing.assert_allclose(R_BODY_OPTICAL @ [1, 0, 0], [0, -1, 0])  # right → −y (y is left)
    np.testing.assert_allclose(R_BODY_OPTICAL @ [0, 1, 0], [0, 0, -1])  # down → −z (z is up)
    assert np.isclose(np.linalg.det(R_BODY_OPTICAL), 1.0)
    with pytest.raises(ValueError, match="rotation"):
        body_from_optical(rotation=np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match="translation"):
        body_from_optical(translation=[np.nan, 0, 0])


def test_schur_covariance_equals_the_pose_block_of_the_dense_inverse():
    H = _spd(6 + 8, seed=0)
    cov = pose_covariance_from_hessian(H, residual_variance=0.3)
    np.testing.assert_allclose(cov, 0.3 * np.linalg.inv(H)[:6, :6], rtol=1e-9, atol=1e-12)
    assert np.allclose(cov, cov.T) and np.all(np.linalg.eigvalsh(cov) > 0)
    H[:6, :] = 0.0
    H[:, :6] = 0.0
    with pytest.raises(ValueError, match="hessian"):
        pose_covariance_from_hessian(H, 1.0)
    with pytest.raises(ValueError, match="residual_variance"):
        pose_covariance_from_hessian(_spd(10, 1), 0.0)


def test_schur_covariance_of_a_pose_alone_and_its_bad_hessians():
    """Without depth coefficients the covariance is σ²·H⁻¹ itself; a Hessian that is not square, smaller
    than the pose, or not finite is refused by name (BA-Net's factor then stays out, not NaN)."""
    H = _spd(6, seed=2)
    np.testing.assert_allclose(pose_covariance_from_hessian(H, 2.0), 2.0 * np.linalg.inv(H), rtol=1e-9)
    for bad in (np.eye(6)[:5], np.eye(4), np.ones((2, 3, 3))):
        with pytest.raises(ValueError, match="hessian must be square"):
            pose_covariance_from_hessian(bad, 1.0)
    H[0, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        pose_covariance_from_hessian(H, 1.0)
    with pytest.raises(ValueError, match="residual_variance"):
        pose_covariance_from_hessian(_spd(6, 3), float("nan"))


def test_frame_maps_refuse_poses_and_covariances_that_are_not_finite_4x4_and_6x6():
    T = pose_from_rotvec([0.1, -0.2, 0.3], [1.0, 2.0, 3.0])
    C = _spd(6, seed=4)
    for bad in (np.eye(3), np.full((4, 4), np.nan)):
        with pytest.raises(ValueError, match="T must be a finite 4x4"):
            adjoint(bad)
        with pytest.raises(ValueError, match="T_parent_child must be a finite 4x4"):
            right_covariance_to_ros(bad, C)
    for bad in (np.eye(5), np.where(np.eye(6) > 0, np.inf, 0.0)):
        with pytest.raises(ValueError, match="covariance must be a finite 6x6"):
            transform_covariance(adjoint(T), bad)
        with pytest.raises(ValueError, match="cov_b must be a finite 6x6"):
            compose_right_covariance(T, C, bad)


def _log(T: np.ndarray) -> np.ndarray:
    return pp.mat2SE3(torch.as_tensor(T, dtype=torch.float64)).Log().tensor().numpy()


def _exp(xi: np.ndarray) -> np.ndarray:
    return pp.se3(torch.as_tensor(xi, dtype=torch.float64)).Exp().matrix().numpy()


def _jacobian(f, dim=6, eps=1e-6) -> np.ndarray:
    cols = []
    for k in range(dim):
        e = np.zeros(dim)
        e[k] = eps
        cols.append((f(e) - f(-e)) / (2 * eps))
    return np.stack(cols, axis=1)


def test_covariance_maps_match_finite_differences():
    rng = np.random.default_rng(1)
    T_a = pose_from_rotvec(rng.normal(size=3) * 0.3, rng.normal(size=3))
    T_b = pose_from_rotvec(rng.normal(size=3) * 0.3, rng.normal(size=3))
    T = T_a @ T_b
    # right perturbation of T_a carried through the product: ξ = Ad(T_b⁻¹) ξ_a
    J_a = _jacobian(lambda e: _log(invert(T) @ T_a @ _exp(e) @ T_b))
    np.testing.assert_allclose(J_a, adjoint(invert(T_b)), atol=1e-6)
    cov_a, cov_b = _spd(6, 4), _spd(6, 5)
    expected = J_a @ cov_a @ J_a.T + cov_b
    np.testing.assert_allclose(compose_right_covariance(T_b, cov_a, cov_b), expected, rtol=1e-6)
    # left → right: Exp(ξ_l) T = T Exp(ξ_r)
    J_lr = _jacobian(lambda e: _log(invert(T) @ _exp(e) @ T))
    np.testing.assert_allclose(
        left_to_right_covariance(T, cov_a), J_lr @ cov_a @ J_lr.T, rtol=1e-5, atol=1e-8
    )

    # ROS order: (position in parent, rotation vector about parent axes) of T Exp(ξ)
    def ros_delta(e):
        P = T @ _exp(e)
        dR = P[:3, :3] @ T[:3, :3].T
        return np.concatenate([P[:3, 3] - T[:3, 3], Rotation.from_matrix(dR).as_rotvec()])

    J_ros = _jacobian(ros_delta)
    np.testing.assert_allclose(
        right_covariance_to_ros(T, cov_a), J_ros @ cov_a @ J_ros.T, rtol=1e-5, atol=1e-8
    )


def test_view_overlap_and_twist():
    cam = PinholeCamera(20.0, 20.0, 15.5, 11.5, 32, 24)
    depth = np.full((24, 32), 5.0)
    assert view_overlap(depth, cam, np.eye(4)) == 1.0
    behind = pose_from_rotvec([0, 0, 0], [0, 0, -10.0])
    assert view_overlap(depth, cam, behind) == 0.0  # all behind the other view
    half = view_overlap(depth, cam, pose_from_rotvec([0, 0, 0], [4.0, 0, 0]))  # shift by 16 px of 32
    assert 0.4 < half < 0.6
    assert view_overlap(np.zeros((24, 32)), cam, np.eye(4)) == 0.0
    twist = body_twist(np.eye(4), pose_from_rotvec([0, 0, 0.1], [1.0, 0, 0]), 0.5)
    np.testing.assert_allclose(twist[3:], [0, 0, 0.2], atol=1e-12)
    # the arc through the two poses: a 1 m chord turning 0.1 rad is 0.1 / (2 sin 0.05) m long
    np.testing.assert_allclose(np.linalg.norm(twist[:3]), 2 * 0.05 / np.sin(0.05), rtol=1e-12)


@pytest.mark.parametrize("rate_hz", [10.0, 5.0, 2.0])
def test_body_twist_of_a_car_turning_at_a_constant_rate_has_no_sideways_velocity(rate_hz):
    """Exact constant-twist motion (10 m/s forward, 0.5 rad/s yaw, no slip) sampled at rate_hz: the twist is
    that constant one at every rate (the chord gave vy = -v·ω·dt/2: -0.25 m/s at 10 Hz, -1.24 at 2 Hz)."""
    from scipy.linalg import expm

    xi = np.array([10.0, 0.0, 0.0, 0.0, 0.0, 0.5])
    dt = 1.0 / rate_hz
    hat = np.zeros((4, 4))
    hat[:3, :3] = [[0, -xi[5], xi[4]], [xi[5], 0, -xi[3]], [-xi[4], xi[3], 0]]
    hat[:3, 3] = xi[:3]
    T0 = pose_from_rotvec([0.1, -0.2, 0.3], [4.0, 5.0, 6.0])
    np.testing.assert_allclose(body_twist(T0, T0 @ expm(hat * dt), dt), xi, atol=1e-9)


@pytest.mark.parametrize(
    ("rotvec", "translation"),
    [
        ([0.0, 0.0, 0.0], [0.3, -0.1, 1.2]),
        ([0.02, -0.08, 0.01], [0.0, 0.0, 0.0]),
        ([0.0, 0.09, 0.0], [0.2, 0, 1]),
    ],
)
def test_constant_velocity_continues_a_steady_motion(rotvec, translation):
    """A camera moving by the same body-frame step S every 0.1 s: at the next stamp the prediction is the
    next pose T0·S³ (exact for any S). Half a step further it is T0·S²·S^½: exact for a pure rotation or
    translation, and for a screw within the chord's first-order error, |φ|·|t|/8 (here 1.1 cm of 1 m)."""
    import scipy.linalg

    S = pose_from_rotvec(rotvec, translation)
    T0 = pose_from_rotvec([0.3, -0.2, 0.1], [5.0, 1.0, -2.0])
    T1, T2 = T0 @ S, T0 @ S @ S
    np.testing.assert_allclose(predict_constant_velocity(T2, 0.2, T1, 0.1, 0.3), T2 @ S, atol=1e-12)
    half = np.real(scipy.linalg.expm(0.5 * scipy.linalg.logm(S)))
    screw = np.linalg.norm(rotvec) * np.linalg.norm(translation)
    np.testing.assert_allclose(
        predict_constant_velocity(T2, 0.2, T1, 0.1, 0.25), T2 @ half, atol=1e-9 + 0.15 * screw
    )
    np.testing.assert_array_equal(predict_constant_velocity(T2, 0.2, T1, 0.2, 0.3), T2)  # no time between


# --------------------------------------------------------------------------------------- pipeline


@pytest.mark.parametrize("mode", ["consecutive", "adaptive"])
def test_poses_compose_to_ground_truth(mode):
    n = 12
    stamps = 0.1 * np.arange(n) + 3.0
    C_gt = _gt_camera_poses(n)
    est = GroundTruthEstimator(stamps, C_gt)
    vo = VisualOdometry(est, OdometryConfig(keyframe_mode=mode, keyframe_translation=0.5))
    results = [vo.process(_image(i), t, CAMERA) for i, t in enumerate(stamps)]
    assert results[0].status == INITIALIZED and results[0].depth is None
    np.testing.assert_allclose(results[0].T_odom_base, np.eye(4))
    for i, r in enumerate(results[1:], start=1):
        assert r.status == TRACKED and r.stamp == stamps[i]
        np.testing.assert_allclose(r.T_odom_base, _body(invert(C_gt[0]) @ C_gt[i]), atol=1e-9)
        assert r.depth.shape == (12, 16) and r.depth[0, 0] == 0.0 and r.depth[1, 1] == 10.0
        assert r.depth_camera.size == (16, 12)
        cov = r.pose_covariance
        assert np.allclose(cov, cov.T) and np.all(np.linalg.eigvalsh(cov) > 0)
    # body forward is +x: the camera moves along optical z
    assert results[-1].T_odom_base[0, 3] > 2.0
    keyframes = [i for i, r in enumerate(results) if r.is_keyframe]
    if mode == "consecutive":
        assert keyframes == list(range(n))
        assert [c[1] for c in est.calls] == list(stamps[:-1])
    else:
        # 0.2 m per frame (plus a little sideways): a new keyframe every third frame
        assert keyframes == [0, 3, 6, 9]
        assert est.calls[2][1] == stamps[0] and est.calls[3][1] == stamps[3]
    # covariance grows along the keyframe chain
    traces = [np.trace(r.pose_covariance[:3, :3]) for r in results[1:]]
    assert traces[-1] > traces[0]
    assert vo.stats.tracked == n - 1 and vo.stats.failed == 0


def test_constant_velocity_prior_seeds_the_estimator():
    stamps = 0.1 * np.arange(4)
    C_gt = _gt_camera_poses(4)
    est = GroundTruthEstimator(stamps, C_gt)
    vo = VisualOdometry(est, OdometryConfig(keyframe_mode="consecutive"))
    for i, t in enumerate(stamps):
        vo.process(_image(i), t, CAMERA)
    # third call pairs frame 3 with keyframe 2; the prior continues the 1 → 2 motion
    init = est.calls[2][2]
    truth = invert(C_gt[2]) @ C_gt[3]
    assert np.linalg.norm(init[:3, 3] - truth[:3, 3]) < 0.01
    assert est.calls[0][2] is not None and np.allclose(est.calls[0][2], np.eye(4))


def test_failed_frame_is_skipped_and_trajectory_continues():
    n = 8
    stamps = 0.1 * np.arange(n)
    C_gt = _gt_camera_poses(n)
    est = GroundTruthEstimator(stamps, C_gt, fail_at=[stamps[3]])
    vo = VisualOdometry(est, OdometryConfig(keyframe_mode="consecutive"))
    results = [vo.process(_image(i), t, CAMERA) for i, t in enumerate(stamps)]
    assert results[3].status == FAILED and not results[3].has_pose and "not finite" in results[3].message
    assert vo.stats.failed == 1
    for i in (4, 5, 7):
        np.testing.assert_allclose(results[i].T_odom_base, _body(C_gt[i]), atol=1e-9)
    assert est.calls[3][1] == stamps[2]  # frame 4 pairs with the last good keyframe


def test_a_textureless_view_is_a_failed_frame_not_a_guess():
    """frontend none on a blank wall: BA-Net would answer with motion it is sure of (an exposure change
    read as 0.65 m at sigma 3 cm by the shipped model); the frame fails as textureless without asking it,
    the trajectory goes on with the next textured frame, and a flat keyframe is left for a textured one."""
    n = 8
    stamps = 0.1 * np.arange(n)
    C_gt = _gt_camera_poses(n)
    est = GroundTruthEstimator(stamps, C_gt)
    vo = VisualOdometry(est, OdometryConfig(keyframe_mode="consecutive"))
    flat = np.full((48, 64), 128, np.uint8)
    noisy_flat = np.clip(128 + np.random.default_rng(0).normal(0, 2, (48, 64)), 0, 255).astype(np.uint8)
    images = [_image(i) for i in range(n)]
    images[3], images[4] = flat, noisy_flat
    results = [vo.process(image, t, CAMERA) for image, t in zip(images, stamps, strict=True)]
    for i in (3, 4):
        assert results[i].status == FAILED and "textureless frame" in results[i].message
    assert [c[0] for c in est.calls] == [stamps[i] for i in (1, 2, 5, 6, 7)]  # never asked on a blank view
    np.testing.assert_allclose(results[7].T_odom_base, _body(C_gt[7]), atol=1e-9)
    assert textured_fraction(prepare_frame(_image(0), CAMERA, 0.0, (32, 24)).image) > 0.5
    # a first frame that is blank becomes the keyframe; later frames fail against it until it is replaced
    vo = VisualOdometry(GroundTruthEstimator(stamps, C_gt), OdometryConfig(keyframe_mode="consecutive"))
    first = vo.process(flat, stamps[0], CAMERA)
    second = vo.process(images[1], stamps[1], CAMERA)
    assert first.has_pose and second.status == FAILED and "textureless keyframe" in second.message


def test_diverged_cost_and_lost_tracking():
    stamps = 0.1 * np.arange(6)
    est = GroundTruthEstimator(stamps, _gt_camera_poses(6), cost=5.0)
    vo = VisualOdometry(est, OdometryConfig(max_cost=1.0, max_consecutive_failures=3))
    results = [vo.process(_image(i), t, CAMERA) for i, t in enumerate(stamps)]
    assert [r.status for r in results] == [INITIALIZED] + [FAILED] * 5
    assert "max_cost" in results[1].message
    assert vo.stats.lost == 1 and vo.stats.keyframes == 2


def test_a_keyframe_placed_after_consecutive_failures_is_less_certain_than_the_last_measured_pose():
    """BA-Net alone: after max_consecutive_failures the new keyframe goes at the constant-velocity
    prediction, unmeasured; its covariance grows by what the last velocity could do over the time since
    the last measured pose (as across a stamp gap). It kept the old keyframe's, as certain as tracked."""
    stamps = 0.1 * np.arange(9)
    est = GroundTruthEstimator(stamps, _gt_camera_poses(9), cost=0.5)
    vo = VisualOdometry(
        est, OdometryConfig(max_cost=1.0, max_consecutive_failures=3, keyframe_mode="consecutive")
    )
    results = [vo.process(_image(i), t, CAMERA) for i, t in enumerate(stamps[:3])]
    assert [r.status for r in results] == [INITIALIZED, TRACKED, TRACKED]
    tracked_trace = np.trace(results[-1].pose_covariance[:3, :3])
    est.cost = 5.0
    assert [vo.process(_image(i), stamps[i], CAMERA).status for i in (3, 4, 5)] == [FAILED] * 3
    est.cost = 0.5
    after = vo.process(_image(6), stamps[6], CAMERA)
    assert after.status == TRACKED
    # 0.3 s of unmeasured motion at ~2 m/s: about 0.6 m of standard deviation per axis, not ~0
    assert np.trace(after.pose_covariance[:3, :3]) > tracked_trace + 3 * 0.5**2


def test_ba_that_left_the_image_is_a_failure_not_a_perfect_match():
    """Zero valid pixels give cost 0 (nothing to average): that must read as a diverged BA, not as a perfect
    fit, and must not reach the covariance (whose σ² would be 0)."""
    stamps = 0.1 * np.arange(4)
    est = GroundTruthEstimator(stamps, _gt_camera_poses(4), cost=0.0, valid_pixels=0)
    vo = VisualOdometry(est, OdometryConfig(keyframe_mode="consecutive"))
    results = [vo.process(_image(i), t, CAMERA) for i, t in enumerate(stamps[:3])]
    assert [r.status for r in results] == [INITIALIZED, FAILED, FAILED]
    assert "BA diverged" in results[1].message
    est.valid_pixels = 500
    assert vo.process(_image(3), stamps[3], CAMERA).status != FAILED


def test_time_going_back_resets_and_small_reorder_is_skipped():
    stamps = [10.0, 10.1, 10.2, 10.15, 10.2, 10.3, 0.0, 0.1]
    poses = {t: P for t, P in zip(sorted(set(stamps)), _gt_camera_poses(len(set(stamps))), strict=True)}
    est = GroundTruthEstimator(list(poses), list(poses.values()))
    vo = VisualOdometry(est, OdometryConfig(keyframe_mode="consecutive"))
    results = [vo.process(_image(i), t, CAMERA) for i, t in enumerate(stamps)]
    statuses = [r.status for r in results]
    assert statuses == [
        INITIALIZED,
        TRACKED,
        TRACKED,
        OUT_OF_ORDER,
        OUT_OF_ORDER,
        TRACKED,
        INITIALIZED,
        TRACKED,
    ]
    assert vo.stats.out_of_order == 2 and vo.stats.resets == 1
    assert results[6].trajectory_id == results[5].trajectory_id + 1
    np.testing.assert_allclose(results[6].T_odom_base, np.eye(4))
    np.testing.assert_allclose(results[7].T_odom_base, _body(invert(poses[0.0]) @ poses[0.1]), atol=1e-9)
    vo.reset()
    assert vo.process(_image(0), 5.0, CAMERA).status == INITIALIZED  # explicit reset forgets the last stamp


def test_image_size_and_intrinsics_changes():
    stamps = 0.1 * np.arange(4)
    C_gt = _gt_camera_poses(4)
    est = GroundTruthEstimator(stamps, C_gt)
    vo = VisualOdometry(est, OdometryConfig(keyframe_mode="consecutive"))
    assert vo.process(_image(0), stamps[0], CAMERA).status == INITIALIZED
    # the same camera at twice the resolution: identical at the model size → tracked
    big = CAMERA.resized(128, 96)
    r = vo.process(_image(1, (128, 96)), stamps[1], big)
    assert r.status == TRACKED
    np.testing.assert_allclose(r.T_odom_base, _body(C_gt[1]), atol=1e-9)
    # a zoom: new keyframe at the predicted pose, no depth
    zoom = PinholeCamera(80.0, 80.0, 31.5, 23.5, 64, 48)
    r = vo.process(_image(2), stamps[2], zoom)
    assert r.status == CAMERA_CHANGED and r.is_keyframe and r.depth is None and r.has_pose
    assert np.linalg.norm(r.T_odom_base[:3, 3] - _body(C_gt[2])[:3, 3]) < 0.02  # constant velocity
    assert vo.process(_image(3), stamps[3], zoom).status == TRACKED
    assert vo.stats.camera_changes == 1


def test_bad_input_raises_and_keeps_state():
    est = GroundTruthEstimator([0.0, 0.1], _gt_camera_poses(2))
    vo = VisualOdometry(est)
    with pytest.raises(ValueError, match="image is 32x48"):
        vo.process(np.zeros((48, 32), np.uint8), 0.0, CAMERA)
    with pytest.raises(ValueError, match="uint8"):
        vo.process(np.zeros((48, 64), np.float32), 0.0, CAMERA)
    with pytest.raises(ValueError, match="shape"):
        vo.process(np.zeros((48, 64, 4), np.uint8), 0.0, CAMERA)
    with pytest.raises(ValueError, match="stamp"):
        vo.process(_image(0), float("nan"), CAMERA)
    assert vo.stats.frames == 0 and not vo.has_keyframe
    assert vo.process(_image(0), 0.0, CAMERA).status == INITIALIZED
    rgb = np.stack([_image(1)] * 3, axis=-1)
    assert vo.process(rgb, 0.1, CAMERA).status == TRACKED


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="keyframe_mode"):
        OdometryConfig(keyframe_mode="sometimes")
    with pytest.raises(ValueError, match="keyframe_min_overlap"):
        OdometryConfig(keyframe_min_overlap=1.5)
    with pytest.raises(ValueError, match="max_depth"):
        OdometryConfig(min_depth=5.0, max_depth=1.0)
    with pytest.raises(ValueError, match="max_consecutive_failures"):
        OdometryConfig(max_consecutive_failures=0)
    with pytest.raises(ValueError, match="T_base_camera"):
        OdometryConfig(T_base_camera=np.eye(3))


def test_banet_estimator_reports_the_pixels_its_cost_averages(tiny_banet_config):
    """The real estimator: identical frames converge at once with every pixel valid and cost ~0 (a true
    perfect fit); a target pose far behind the camera leaves no valid pixel."""
    from banet_vo.model.banet import BANet
    from banet_vo.odometry.estimator import BANetEstimator

    torch.manual_seed(0)
    estimator = BANetEstimator(BANet(tiny_banet_config()).eval(), "cpu")
    camera = PinholeCamera(60.0, 60.0, 31.5, 23.5, 64, 48)
    frame = prepare_frame(_image(0), camera, 0.0, estimator.input_size)
    same = estimator.estimate(frame, frame)
    assert same.valid_pixels == 32 * 24 and same.cost < 1e-10
    away = np.eye(4)
    away[2, 3] = -1e4  # every point ends up behind the target camera
    lost = estimator.estimate(frame, frame, pose_init=away)
    assert lost.valid_pixels == 0
    # a seed whose rotation is 1e-5 off SO(3) (composed through the map) is taken, not refused
    rough = np.eye(4)
    rough[:3, :3] *= 1 + 1e-5
    assert estimator.estimate(frame, frame, pose_init=rough).valid_pixels == 32 * 24


def test_warm_up_runs_the_model_and_changes_no_estimate(tiny_banet_config):
    """warm_up (what the node runs before it subscribes) is a real pass that leaves the estimator as it was:
    a warmed and a cold estimator with the same weights give bit-identical results."""
    from banet_vo.model.banet import BANet
    from banet_vo.odometry.estimator import BANetEstimator

    torch.manual_seed(0)
    model = BANet(tiny_banet_config()).eval()
    cold = BANetEstimator(model, "cpu")
    camera = PinholeCamera(60.0, 60.0, 31.5, 23.5, 64, 48)
    ref = prepare_frame(_image(0), camera, 0.0, cold.input_size)
    tgt = prepare_frame(_image(1), camera, 0.1, cold.input_size)
    before = cold.estimate(ref, tgt)
    assert len(cold.warm_up()) == 1  # on the CPU one pass by default
    seconds = cold.warm_up(3)
    assert len(seconds) == 3 and all(np.isfinite(t) and t > 0 for t in seconds)
    with pytest.raises(ValueError, match="passes"):
        cold.warm_up(0)
    assert not model.training
    after = cold.estimate(ref, tgt)
    np.testing.assert_array_equal(after.T_tgt_ref, before.T_tgt_ref)
    np.testing.assert_array_equal(after.depth, before.depth)


@pytest.mark.parametrize("scale", ["ground_plane", "none"])
def test_banet_alone_refuses_a_scale_source_it_cannot_honour(scale):
    """frontend none has no map to scale: a scale source other than its learned depth would be ignored."""
    with pytest.raises(ValueError, match="needs frontend xfeat"):
        OdometryConfig(frontend="none", scale_source=scale, camera_height=1.65)
    OdometryConfig(frontend="xfeat", scale_source=scale, camera_height=1.65)


def _mounted(xyz, rpy=(0.0, 0.0, 0.0)) -> np.ndarray:
    """T_base_camera of a camera at xyz in the base frame, mount rotation rpy, optical axis along base x."""
    R = Rotation.from_euler("xyz", rpy).as_matrix() @ R_BODY_OPTICAL
    return body_from_optical(np.asarray(xyz, dtype=np.float64), R)


def test_ground_plane_camera_height_comes_from_the_parameter_or_the_extrinsic():
    """camera_height wins when given; 0 takes the camera's z in a base frame on the ground (base_footprint);
    a camera at or below the base frame's origin with camera_height 0 is refused, naming both ways out."""
    on_car = _mounted([1.2, 0.3, 1.65], rpy=(0.0, 0.05, 0.0))
    given = OdometryConfig(scale_source="ground_plane", camera_height=1.5, T_base_camera=on_car)
    assert given.ground_camera_height() == 1.5 and "(camera_height)" in given.describe_scale()
    derived = OdometryConfig(scale_source="ground_plane", T_base_camera=on_car)
    assert derived.ground_camera_height() == pytest.approx(1.65, abs=1e-12)
    assert "1.650 m" in derived.describe_scale() and "extrinsic" in derived.describe_scale()
    for z in (0.0, 0.049, -0.3):
        with pytest.raises(
            ValueError, match=r"set camera_height \[m\], or give the camera extrinsic .*base_footprint"
        ):
            OdometryConfig(scale_source="ground_plane", T_base_camera=_mounted([0.0, 0.0, z]))
    # other scale sources never need a height
    assert OdometryConfig(scale_source="learned").describe_scale().startswith("scale from BA-Net's depth")
    assert OdometryConfig(scale_source="none").describe_scale().startswith("no metric scale")


def test_an_extrinsic_still_to_come_defers_the_camera_height_check():
    """A node waiting for tf builds its config with the parameters' placeholder extrinsic: the check runs
    when the real one is put in with replace(), and any other replace of a pending config re-checks too."""
    pending = OdometryConfig(scale_source="ground_plane", extrinsic_pending=True)  # z = 0: no error yet
    with pytest.raises(ValueError, match="needs the camera's height above the ground"):
        dataclasses.replace(pending, T_base_camera=_mounted([0.0, 0.0, 0.0]))
    resolved = dataclasses.replace(pending, T_base_camera=_mounted([0.0, 0.0, 0.8]))
    assert resolved.ground_camera_height() == pytest.approx(0.8)
    assert "extrinsic_pending" not in OdometryConfig.field_names()  # not a parameter, not a field


def test_keypoint_thresholds_cannot_exceed_the_keypoints_xfeat_keeps():
    """max_keypoints below init_min_inliers (60) or min_tracked: no map could ever start (50 keypoints:
    every frame `initialising`, none counted as failed) or no frame be tracked; refused at start."""
    from banet_vo.odometry import TrackingConfig

    with pytest.raises(ValueError, match=r"init_min_inliers \(60\) must not exceed max_keypoints \(50\)"):
        TrackingConfig(max_keypoints=50)
    with pytest.raises(ValueError, match=r"min_tracked \(300\) must not exceed max_keypoints \(200\)"):
        TrackingConfig(max_keypoints=200, min_tracked=300, init_min_inliers=60)
    assert TrackingConfig(max_keypoints=60).max_keypoints == 60


def test_feature_min_pixels_is_off_or_a_usable_image_below_the_cap():
    from banet_vo.odometry import TrackingConfig

    assert TrackingConfig(feature_min_pixels=486_400).feature_min_pixels == 486_400
    with pytest.raises(ValueError, match=r"feature_min_pixels must be 0 .* or at least 19200, got 100"):
        TrackingConfig(feature_min_pixels=100)
    with pytest.raises(ValueError, match=r"feature_min_pixels \(600000\) must not exceed feature_max_pixels"):
        TrackingConfig(feature_min_pixels=600_000, feature_max_pixels=500_000)
    both = TrackingConfig(feature_min_pixels=400_000, feature_max_pixels=500_000)
    assert (both.feature_min_pixels, both.feature_max_pixels) == (400_000, 500_000)


def test_feature_max_pixels_is_off_or_a_usable_image():
    from banet_vo.odometry import TrackingConfig

    assert TrackingConfig(feature_max_pixels=0).feature_max_pixels == 0
    assert TrackingConfig(feature_max_pixels=160 * 120).feature_max_pixels == 19200
    with pytest.raises(ValueError, match=r"feature_max_pixels must be 0 .* or at least 19200, got 100"):
        TrackingConfig(feature_max_pixels=100)
