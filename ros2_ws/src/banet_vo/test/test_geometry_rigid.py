"""geometry/rigid.py, the numpy rigid-transform helpers both packages share, against references."""

import numpy as np
import pytest
from banet_vo.geometry.rigid import (
    invert,
    log_se3,
    pose_from_rotvec,
    pose_matrix,
    rotation_angle_deg,
    rotation_to_quaternion,
    skew,
)
from scipy.spatial.transform import Rotation


def _random_poses(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    T[:, :3, 3] = rng.normal(scale=5.0, size=(n, 3))
    return T


def test_invert_matches_the_general_inverse_batched_and_single():
    T = _random_poses(7).reshape(7, 1, 4, 4)
    np.testing.assert_allclose(invert(T), np.linalg.inv(T), atol=1e-12)
    np.testing.assert_allclose(invert(T[3, 0]) @ T[3, 0], np.eye(4), atol=1e-12)
    assert invert(T[0, 0].astype(np.float32)).dtype == np.float64


def test_invert_passes_nan_through_and_rejects_wrong_shapes():
    T = _random_poses(2)
    T[1, 0, 3] = np.nan
    out = invert(T)
    assert np.all(np.isfinite(out[0])) and np.isnan(out[1]).any()
    with pytest.raises(ValueError, match="4, 4"):
        invert(np.eye(3))


def test_skew_is_the_cross_product_matrix():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 5, 3))
    np.testing.assert_allclose((skew(a) @ b[..., None])[..., 0], np.cross(a, b), atol=1e-14)
    np.testing.assert_array_equal(skew([1.0, 2.0, 3.0]), [[0, -3, 2], [3, 0, -1], [-2, 1, 0]])


def test_quaternion_is_ros_order_with_nonnegative_w_and_round_trips():
    Rz90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(rotation_to_quaternion(Rz90), [0, 0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-15)
    T = _random_poses(20, seed=2)
    for Ti in T:
        q = rotation_to_quaternion(Ti[:3, :3])
        assert q[3] >= 0 and np.isclose(np.linalg.norm(q), 1.0)
        np.testing.assert_allclose(pose_matrix(Ti[:3, 3], q), Ti, atol=1e-12)
        np.testing.assert_allclose(pose_matrix(Ti[:3, 3], -q), Ti, atol=1e-12)  # both signs, one rotation


def test_rotation_angle_deg_against_the_rotation_vector_norm():
    T = _random_poses(50, seed=3)
    expected = np.degrees(np.linalg.norm(Rotation.from_matrix(T[:, :3, :3]).as_rotvec(), axis=-1))
    np.testing.assert_allclose(rotation_angle_deg(T), expected, atol=1e-9)
    np.testing.assert_allclose(rotation_angle_deg(T[:, :3, :3]), expected, atol=1e-9)
    tiny = Rotation.from_rotvec([0.0, 0.0, 1e-9]).as_matrix()
    assert rotation_angle_deg(tiny) == pytest.approx(np.degrees(1e-9), rel=1e-6)


def test_nearest_rigid_projects_onto_se3():
    from banet_vo.geometry.rigid import nearest_rigid
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec([0.3, -0.2, 0.1]).as_matrix()
    T[:3, 3] = [1.0, 2.0, 3.0]
    np.testing.assert_allclose(nearest_rigid(T), T, atol=1e-12)  # rigid stays
    drifted = T.copy()
    drifted[:3, :3] += np.random.default_rng(0).normal(0, 1e-4, (3, 3))  # composed many times
    fixed = nearest_rigid(drifted)
    np.testing.assert_allclose(fixed[:3, :3] @ fixed[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.linalg.det(fixed[:3, :3]) == pytest.approx(1.0)
    np.testing.assert_allclose(fixed[:3, :3], T[:3, :3], atol=1e-3)
    np.testing.assert_array_equal(fixed[:3, 3], T[:3, 3])
    reflected = T.copy()
    reflected[:3, 0] *= -1  # det -1: the nearest rotation, never a reflection
    assert np.linalg.det(nearest_rigid(reflected)[:3, :3]) == pytest.approx(1.0)


def test_pose_from_rotvec_is_axis_angle_and_translation():
    T = pose_from_rotvec([0.0, 0.0, np.pi / 2], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(T @ [1.0, 0.0, 0.0, 1.0], [1.0, 3.0, 3.0, 1.0], atol=1e-12)  # x → y, moved
    assert T.dtype == np.float64 and T.shape == (4, 4) and np.array_equal(T[3], [0, 0, 0, 1])
    angle = rotation_angle_deg(pose_from_rotvec([0.3, -0.4, 0.0], [0, 0, 0]))
    np.testing.assert_allclose(angle, np.degrees(0.5), rtol=1e-12)


@pytest.mark.parametrize("angle", [0.0, 1e-7, 1e-5, 2e-4, 0.3, 2.0, 3.1])
def test_log_se3_is_the_matrix_logarithm(angle: float) -> None:
    """Against scipy's matrix logarithm in float64, on both sides of the small-angle series, and exp of
    the result gives T back."""
    from scipy.linalg import expm, logm

    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    T = pose_from_rotvec(axis * angle, [1.5, -2.0, 0.7])
    xi = log_se3(T)
    L = np.real(logm(T))
    np.testing.assert_allclose(xi, [*L[:3, 3], L[2, 1], L[0, 2], L[1, 0]], atol=1e-9)
    hat = np.zeros((4, 4))
    hat[:3, :3], hat[:3, 3] = skew(xi[3:]), xi[:3]
    np.testing.assert_allclose(expm(hat), T, atol=1e-12)
    with pytest.raises(ValueError, match="one rigid transform"):
        log_se3(np.eye(3))
