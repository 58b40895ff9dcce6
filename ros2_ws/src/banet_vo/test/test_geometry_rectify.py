"""Rectification from a ROS calibration: maps checked against OpenCV's independent point undistortion,
and a rendered raw image checked against the pinhole projection of known 3D points."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from banet_vo.geometry.rectify import (
    CameraCalibration,
    Rectifier,
    rectification_maps,
    undistort_points,
)
from scipy.spatial.transform import Rotation

W, H = 320, 240
K = (260.0, 0.0, 161.5, 0.0, 255.0, 118.5, 0.0, 0.0, 1.0)
R_SMALL = tuple(Rotation.from_rotvec([0.01, -0.02, 0.005]).as_matrix().reshape(-1))
P_NEW = (240.0, 0.0, 158.0, 0.0, 0.0, 240.0, 121.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CASES = {
    "plumb_bob": ((-0.28, 0.09, 0.001, -0.0005, -0.012), R_SMALL),
    "rational_polynomial": ((-0.3, 0.1, 0.0008, 0.0004, 0.01, -0.02, 0.03, 0.005), R_SMALL),
    "equidistant": ((0.05, -0.01, 0.004, -0.001), tuple(np.eye(3).reshape(-1))),
}


def _calibration(model: str) -> CameraCalibration:
    d, r = CASES[model]
    return CameraCalibration(W, H, model, d, K, r, P_NEW)


def _project_raw(points: np.ndarray, calib: CameraCalibration) -> np.ndarray:
    """Raw (distorted) pixels of camera-frame 3D points, by OpenCV's forward models."""
    rvec = tvec = np.zeros(3)
    D = np.asarray(calib.D)
    if calib.distortion_model == "equidistant":
        return cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), rvec, tvec, calib.K_matrix, D)[0].reshape(
            -1, 2
        )
    return cv2.projectPoints(points, rvec, tvec, calib.K_matrix, D)[0].reshape(-1, 2)


def _project_rect(points: np.ndarray, model: str) -> np.ndarray:
    """Pixels of the same points in the rectified camera: P · (R · X), R and P read from the test's own
    row-major tuples (CameraInfo's layout), not from the calibration under test."""
    X = points @ np.reshape(CASES[model][1], (3, 3)).T
    uvw = X @ np.reshape(P_NEW, (3, 4))[:, :3].T
    return uvw[:, :2] / uvw[:, 2:]


@pytest.mark.parametrize("model", sorted(CASES))
def test_maps_invert_opencv_point_undistortion(model):
    calib = _calibration(model)
    map_x, map_y = rectification_maps(calib, fixed_point=False)
    vs, us = np.mgrid[20 : H - 20 : 17, 20 : W - 20 : 23]
    raw = np.stack([map_x[vs, us], map_y[vs, us]], axis=-1).reshape(-1, 2)  # rectified pixel -> raw pixel
    back = undistort_points(raw, calib)
    np.testing.assert_allclose(back, np.stack([us, vs], axis=-1).reshape(-1, 2), atol=0.02)


@pytest.mark.parametrize("model", sorted(CASES))
def test_rectified_image_puts_points_where_the_pinhole_projects_them(model):
    calib = _calibration(model)
    rng = np.random.default_rng(1)
    points = np.column_stack(
        [rng.uniform(-0.8, 0.8, 12), rng.uniform(-0.6, 0.6, 12), rng.uniform(2.0, 4.0, 12)]
    )
    raw_px = _project_raw(points, calib)
    expected = _project_rect(points, model)
    keep = (
        (expected[:, 0] > 15) & (expected[:, 0] < W - 15) & (expected[:, 1] > 15) & (expected[:, 1] < H - 15)
    )
    for i in range(len(points)):  # blobs closer than 14 px would bias each other's centroid
        near = np.linalg.norm(expected - expected[i], axis=1) < 14
        near[i] = False
        keep[i] &= not np.any(near & keep)
    assert keep.sum() >= 6
    # render the raw image: one Gaussian blob (σ 1.5 px) at each distorted projection
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    raw = np.zeros((H, W))
    for u, v in raw_px[keep]:
        raw += np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * 1.5**2))
    image = np.clip(raw * 250, 0, 255).astype(np.uint8)
    rectified, camera = Rectifier().rectify(image, calib)
    assert camera.size == (W, H) and camera.fx == pytest.approx(240.0) and camera.cy == pytest.approx(121.0)
    for u, v in expected[keep]:
        x0, y0 = round(float(u)) - 5, round(float(v)) - 5
        patch = rectified[y0 : y0 + 11, x0 : x0 + 11].astype(np.float64)
        assert patch.sum() > 0, (model, u, v)
        py, px = np.mgrid[0:11, 0:11]
        centroid = np.array([(patch * px).sum(), (patch * py).sum()]) / patch.sum() + [x0, y0]
        np.testing.assert_allclose(centroid, [u, v], atol=0.35)


def test_undistorted_calibration_leaves_the_image_alone_and_maps_are_cached():
    plain = CameraCalibration(W, H, "plumb_bob", (0.0,) * 5, K, (0.0,) * 9, (0.0,) * 12)
    assert not plain.distorted and plain.rectified_camera().fx == 260.0  # P unset: K
    image = np.arange(W * H, dtype=np.uint32).astype(np.uint8).reshape(H, W)
    rectifier = Rectifier(cache_size=1)
    out, _ = rectifier.rectify(image, plain)
    assert out is image and rectifier.maps_built == 0
    calib = _calibration("plumb_bob")
    for _ in range(3):
        rectifier.rectify(image, _calibration("plumb_bob"))  # equal calibrations share one map
    assert rectifier.maps_built == 1
    rectifier.rectify(image, _calibration("rational_polynomial"))
    rectifier.rectify(image, calib)  # evicted by the other one (cache_size 1): built again
    assert rectifier.maps_built == 3
    with pytest.raises(ValueError, match="image is 10x10 but its calibration is 320x240"):
        rectifier.rectify(np.zeros((10, 10), np.uint8), calib)


def test_unknown_models_and_bad_coefficients_are_refused_with_a_way_out():
    with pytest.raises(
        ValueError, match=r"'kannala_brandt8' is not supported.*image_rect with rectify:=false"
    ):
        CameraCalibration(W, H, "kannala_brandt8", (0.1,) * 8, K, (0.0,) * 9, P_NEW)
    with pytest.raises(ValueError, match="equidistant takes 4 coefficients, got 5"):
        CameraCalibration(W, H, "equidistant", (0.1,) * 5, K, (0.0,) * 9, P_NEW)
    with pytest.raises(ValueError, match="K is all zeros"):
        CameraCalibration(W, H, "plumb_bob", (0.0,) * 5, (0.0,) * 9, (0.0,) * 9, P_NEW)
    # an unknown model with zero coefficients is harmless (nothing to undistort)
    assert not CameraCalibration(W, H, "", (), K, (0.0,) * 9, P_NEW).distorted
