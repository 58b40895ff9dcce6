"""The BA-Net-alone pipeline chains float32 relative poses over many keyframes: its poses stay rigid."""

from __future__ import annotations

import numpy as np
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.rigid import pose_from_rotvec
from banet_vo.odometry import OdometryConfig, VisualOdometry
from banet_vo.odometry.estimator import PairEstimate, PreparedFrame

CAMERA = PinholeCamera(40.0, 40.0, 31.5, 23.5, 64, 48)


class Float32Estimator:
    """A small random motion per pair, rounded to float32 as BA-Net hands it over (RᵀR = I to ~1e-7)."""

    input_size = (32, 24)

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.exact: list[np.ndarray] = []  # the float64 motions before rounding

    def estimate(self, reference: PreparedFrame, target: PreparedFrame, pose_init=None) -> PairEstimate:
        t = self.rng.normal(0.0, 0.05, 3)
        t[2] += 0.1  # forward
        T = pose_from_rotvec(self.rng.normal(0.0, 0.02, 3), t)
        self.exact.append(T)
        depth = np.full((12, 16), 10.0, np.float32)
        hessian = np.eye(6 + 4) * 1e4
        T32 = T.astype(np.float32).astype(np.float64)
        return PairEstimate(T32, depth, reference.camera.resized(16, 12), hessian, 0.01, 0.1)


def test_chained_float32_poses_stay_rigid():
    estimator = Float32Estimator(seed=0)
    vo = VisualOdometry(estimator, OdometryConfig(keyframe_mode="consecutive", motion_prior=False))
    image = np.random.default_rng(1).integers(0, 255, (48, 64), dtype=np.uint8)
    n = 150
    for i in range(n):
        result = vo.process(image, 1.0 + 0.1 * i, CAMERA)
        assert result.has_pose and result.is_keyframe
    C = result.T_odom_camera
    R = C[:3, :3]
    # unprojected, the chain is off SO(3) by ~4e-7 here (and ~1e-4 after 20k keyframes)
    np.testing.assert_allclose(R.T @ R, np.eye(3), rtol=0, atol=1e-9)
    assert abs(np.linalg.det(R) - 1.0) < 1e-9
    np.testing.assert_array_equal(C[3], [0.0, 0.0, 0.0, 1.0])
    expected = np.linalg.multi_dot(estimator.exact)  # the projection costs no accuracy: float32 rounding only
    np.testing.assert_allclose(C, expected, rtol=0, atol=1e-4)
