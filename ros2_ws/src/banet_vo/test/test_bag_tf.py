"""banet_vo.data.bag_tf: transforms between any two frames of a /tf_static tree, against composed matrices."""

from __future__ import annotations

import numpy as np
from banet_vo.data.bag_tf import transform_between
from scipy.spatial.transform import Rotation


def _T(rotvec, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = t
    return T


# base ─ arm ─ wrist ─ cam;  base ─ mast ─ lidar;  world (alone)
A, B, C = _T([0.1, 0.2, 0.3], [1, 2, 3]), _T([0.0, -0.4, 0.1], [0.5, 0, 0]), _T([0.3, 0, 0], [0, 0.1, 0])
D, E = _T([0, 0, 1.0], [0, 0, 2]), _T([0.2, 0.2, 0], [0.1, 0, 0.3])
TREE = {
    "arm": ("base", A),
    "wrist": ("arm", B),
    "cam": ("wrist", C),
    "mast": ("base", D),
    "lidar": ("mast", E),
}


def test_down_up_and_across_the_tree():
    np.testing.assert_allclose(transform_between(TREE, "base", "cam"), A @ B @ C, atol=1e-12)
    np.testing.assert_allclose(transform_between(TREE, "cam", "base"), np.linalg.inv(A @ B @ C), atol=1e-12)
    # siblings meet at their lowest common ancestor (base), not the root of a longer path
    expected = np.linalg.inv(D @ E) @ A @ B @ C
    np.testing.assert_allclose(transform_between(TREE, "lidar", "cam"), expected, atol=1e-12)
    np.testing.assert_allclose(transform_between(TREE, "arm", "cam"), B @ C, atol=1e-12)
    np.testing.assert_allclose(transform_between(TREE, "cam", "cam"), np.eye(4))
    np.testing.assert_allclose(transform_between(TREE, "/base", "/cam"), A @ B @ C, atol=1e-12)


def test_unconnected_frames_give_none():
    assert transform_between(TREE, "world", "cam") is None
    assert transform_between(TREE, "base", "nowhere") is None
    cyclic = {"a": ("b", np.eye(4)), "b": ("a", np.eye(4))}
    assert transform_between(cyclic, "a", "c") is None  # a cycle ends the walk instead of looping
