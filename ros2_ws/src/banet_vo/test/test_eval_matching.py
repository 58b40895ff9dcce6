"""Matching accuracy (MMA) on known synthetic geometry, validity rules, and real HoloLens data."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from banet_vo.evaluation.matching import (
    aggregate_mma,
    along_flow_error,
    ground_truth_matches,
    matching_accuracy,
    translational_flow,
)
from banet_vo.geometry.camera import PinholeCamera
from scipy.spatial.transform import Rotation

CAM = PinholeCamera(100.0, 100.0, 31.5, 23.5, 64, 48)


def grid_queries(step: int = 4) -> np.ndarray:
    u, v = np.meshgrid(np.arange(2, 62, step), np.arange(2, 46, step))
    return np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)


def translation(t) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = t
    return T


def test_fronto_parallel_plane_shift_by_hand():
    # Plane at z = 5 m; B is 0.2 m left of A (points move +0.2 m in x): shift fx * 0.2 / 5 = 4 px.
    depth = np.full((48, 64), 5.0)
    q = grid_queries()
    gt_b, valid = ground_truth_matches(q, depth, translation([0.2, 0, 0]), CAM, CAM, require_in_view_b=False)
    assert valid.all()
    np.testing.assert_allclose(gt_b, q + np.array([4.0, 0.0]), atol=1e-12)


def test_mma_with_known_perturbations():
    depth = np.full((48, 64), 5.0)
    T_ba = translation([0.1, 0.05, 0.0])
    q = grid_queries()
    n = q.shape[0] - q.shape[0] % 5
    q = q[:n]
    gt_b = q + np.array([2.0, 1.0])
    rng = np.random.default_rng(0)
    magnitudes = np.repeat([0.5, 1.5, 3.0, 7.0, 20.0], n // 5)  # 1/5 each
    angles = rng.uniform(0, 2 * math.pi, n)
    matches = gt_b + magnitudes[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    acc = matching_accuracy(q, matches, depth, T_ba, CAM, require_in_view_b=False)
    assert acc.n_valid == n == acc.n_queries
    assert acc.mma == pytest.approx({1.0: 0.2, 2.0: 0.4, 5.0: 0.6, 10.0: 0.8})
    np.testing.assert_allclose(acc.errors_px, magnitudes, atol=1e-9)


def test_general_pose_against_opencv_projection():
    rng = np.random.default_rng(1)
    depth = rng.uniform(2.0, 8.0, (48, 64))
    rotvec, t = np.array([0.05, -0.1, 0.03]), np.array([0.3, -0.1, 0.2])
    T_ba = np.eye(4)
    T_ba[:3, :3], T_ba[:3, 3] = Rotation.from_rotvec(rotvec).as_matrix(), t
    cam_b = PinholeCamera(90.0, 95.0, 30.0, 25.0, 64, 48)
    q = grid_queries(3)
    gt_b, valid = ground_truth_matches(q, depth, T_ba, CAM, cam_b, require_in_view_b=False)
    z = depth[q[:, 1].astype(int), q[:, 0].astype(int)]
    points_a = np.stack([(q[:, 0] - CAM.cx) / CAM.fx * z, (q[:, 1] - CAM.cy) / CAM.fy * z, z], axis=1)
    reference, _ = cv2.projectPoints(points_a, rotvec, t, cam_b.K, None)
    assert valid.all()
    np.testing.assert_allclose(gt_b, reference.reshape(-1, 2), atol=1e-9)


def test_invalid_ground_truth_is_left_out_and_nan_matches_are_misses():
    depth = np.full((48, 64), 5.0)
    depth[:, :8] = 0.0  # no depth in the left strip
    depth[:, 8:10] = np.nan
    q = np.array(
        [
            [4.0, 10.0],  # depth 0
            [9.0, 10.0],  # depth NaN
            [-3.0, 10.0],  # outside A
            [60.0, 10.0],  # lands outside B after the shift
            [30.0, 10.0],  # valid, exact
            [40.0, 10.0],  # valid, NaN prediction -> a miss
        ]
    )
    T_ba = translation([0.2, 0, 0])  # +4 px
    matches = q + np.array([4.0, 0.0])
    matches[5] = np.nan
    acc = matching_accuracy(q, matches, depth, T_ba, CAM)
    assert acc.n_valid == 2 and acc.n_queries == 6
    assert acc.mma[1.0] == 0.5
    assert np.isnan(acc.errors_px[:4]).all() and acc.errors_px[4] == 0.0 and acc.errors_px[5] == np.inf
    loose = matching_accuracy(q, matches, depth, T_ba, CAM, require_in_view_b=False)
    assert loose.n_valid == 3  # the out-of-view projection now has ground truth


def test_points_behind_camera_b_and_occlusion_check():
    depth = np.full((48, 64), 1.0)
    q = grid_queries(8)
    _, valid = ground_truth_matches(q, depth, translation([0, 0, -2.0]), CAM, CAM, require_in_view_b=False)
    assert not valid.any()  # B is 2 m ahead: every point is behind it
    T_ba = translation([0, 0, 1.0])  # B 1 m behind A: points at z = 2 in B
    depth_b = np.full((48, 64), 2.0)
    depth_b[:, :32] = 1.0  # something closer occludes the left half of B
    gt_b, valid = ground_truth_matches(q, depth, T_ba, CAM, CAM, depth_b=depth_b)
    assert valid.any() and (~valid).any()
    assert (np.rint(gt_b[valid, 0]) >= 32).all()


def test_aggregate_per_pair_and_pooled():
    depth = np.full((48, 64), 5.0)
    q = grid_queries(8)
    a = matching_accuracy(q, q, depth, np.eye(4), CAM)  # all exact
    b = matching_accuracy(q[:2], q[:2] + 50.0, depth, np.eye(4), CAM)  # 2 queries, both wrong
    assert aggregate_mma([a, b])[1.0] == pytest.approx(0.5)
    assert aggregate_mma([a, b], "pooled")[1.0] == pytest.approx(a.n_valid / (a.n_valid + 2))
    with pytest.raises(ValueError, match="mode"):
        aggregate_mma([a], "median")
    with pytest.raises(ValueError, match="results"):
        aggregate_mma([])


def test_bad_input_names_field():
    depth = np.full((48, 64), 5.0)
    q = grid_queries(8)
    with pytest.raises(ValueError, match="matches_b"):
        matching_accuracy(q, q[:3], depth, np.eye(4), CAM)
    with pytest.raises(ValueError, match="queries_a"):
        matching_accuracy(q[:, :1], q, depth, np.eye(4), CAM)
    with pytest.raises(ValueError, match="depth_a"):
        matching_accuracy(q, q, depth[:10], np.eye(4), CAM)
    with pytest.raises(ValueError, match="T_ba"):
        matching_accuracy(q, q, depth, np.eye(3), CAM)
    with pytest.raises(ValueError, match="thresholds_px"):
        matching_accuracy(q, q, depth, np.eye(4), CAM, thresholds_px=(0,))


def test_real_hololens_ground_truth_matches_are_photo_consistent(hololens_dir):
    from banet_vo.evaluation.depth import load_depth

    K = np.loadtxt(hololens_dir / "K.txt")
    cam = PinholeCamera.from_K(K, 540, 360)
    poses = np.loadtxt(hololens_dir / "poses.txt").reshape(-1, 4, 4)
    a, b = 0, 2
    img_a = cv2.imread(str(hololens_dir / "images" / f"{a + 3:05d}.png"), cv2.IMREAD_GRAYSCALE).astype(
        np.float32
    )
    img_b = cv2.imread(str(hololens_dir / "images" / f"{b + 3:05d}.png"), cv2.IMREAD_GRAYSCALE).astype(
        np.float32
    )
    depth_a = load_depth(hololens_dir / "depth" / f"{a + 3:05d}.png")
    T_ba = np.linalg.inv(poses[b]) @ poses[a]
    u, v = np.meshgrid(np.arange(10, 530, 6), np.arange(10, 350, 6))
    q = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)
    gt_b, valid = ground_truth_matches(q, depth_a, T_ba, cam, cam)
    assert valid.mean() > 0.5
    qa, qb = q[valid], gt_b[valid]

    def sample(img, uv):
        return cv2.remap(
            img, uv[:, None, 0].astype(np.float32), uv[:, None, 1].astype(np.float32), cv2.INTER_LINEAR
        )

    warped = np.abs(sample(img_b, qb) - sample(img_a, qa)).mean()
    static = np.abs(sample(img_b, qa) - sample(img_a, qa)).mean()
    assert warped < 0.75 * static  # the right convention cuts the photometric error (README: to 1/2-1/4)
    acc = matching_accuracy(q, q, depth_a, T_ba, cam)  # "no motion" matches
    assert acc.mma[1.0] < 0.2  # ~8 cm / 4.6 deg apart: identity matches are mostly wrong


def test_translational_flow_of_a_rotation_is_zero_and_of_a_forward_step_radial():
    depth = np.full((48, 64), 4.0)
    q = grid_queries()
    R = np.eye(4)
    R[:3, :3] = Rotation.from_euler("xyz", [2.0, -3.0, 1.0], degrees=True).as_matrix()
    gt_b, valid = ground_truth_matches(q, depth, R, CAM, CAM, require_in_view_b=False)
    np.testing.assert_allclose(translational_flow(q, gt_b, R, CAM)[valid], 0.0, atol=1e-9)
    # Forward by 1 m towards a plane at 4 m: every point moves away from the centre by 1/3 of its offset.
    gt_b, _ = ground_truth_matches(q, depth, translation([0, 0, -1.0]), CAM, CAM, require_in_view_b=False)
    flow = translational_flow(q, gt_b, translation([0, 0, -1.0]), CAM)
    np.testing.assert_allclose(flow, (q - [CAM.cx, CAM.cy]) / 3.0, atol=1e-9)
    # The same step after a rotation: the rotation's part is taken out, the translation's stays radial
    # about where the rotation moved each ray.
    T = R @ translation([0, 0, -1.0])
    gt_b, _ = ground_truth_matches(q, depth, T, CAM, CAM, require_in_view_b=False)
    flow = translational_flow(q, gt_b, T, CAM)
    assert np.all(np.linalg.norm(flow, axis=1) > 0)
    assert np.all(np.linalg.norm(flow, axis=1) < np.linalg.norm(q - [CAM.cx, CAM.cy], axis=1))
    with pytest.raises(ValueError, match="single 4x4 pose"):
        translational_flow(q, gt_b, np.stack([T, T]), CAM)
    with pytest.raises(ValueError, match="differs"):
        translational_flow(q[:3], gt_b, T, CAM)


def test_along_flow_error_signs_a_lag_and_ignores_a_sideways_error():
    gt = np.array([[10.0, 10.0], [20.0, 5.0], [3.0, 3.0], [1.0, 1.0]])
    flow = np.array([[4.0, 0.0], [0.0, -2.0], [1.0, 1.0], [0.0, 0.0]])
    matches = gt + np.array([[-0.5, 0.0], [0.3, 0.0], [0.2, 0.2], [1.0, 0.0]])
    err = along_flow_error(matches, gt, flow)
    np.testing.assert_allclose(err[:3], [-0.5, 0.0, 0.2 * math.sqrt(2)], atol=1e-12)
    assert np.isnan(err[3])  # no flow: no direction
    with pytest.raises(ValueError, match="one shape"):
        along_flow_error(matches[:2], gt, flow)
