"""Calibrations whose raw image is no image of the reported camera although D is zero: an equidistant
(f·θ) lens, and a P whose intrinsics differ from K. Checked against the closed-form fisheye projection,
OpenCV's fisheye point undistortion, and a rendered image of known points."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from banet_vo.geometry.rectify import CameraCalibration, Rectifier, rectification_maps, undistort_points

W, H = 320, 240
F, CX, CY = 150.0, 159.5, 119.5
K = (F, 0.0, CX, 0.0, F, CY, 0.0, 0.0, 1.0)
I3 = tuple(np.eye(3).reshape(-1))
P_K = (F, 0.0, CX, 0.0, 0.0, F, CY, 0.0, 0.0, 0.0, 1.0, 0.0)
P_OTHER = (110.0, 0.0, 150.0, 0.0, 0.0, 115.0, 125.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _blobs(pixels: np.ndarray) -> np.ndarray:
    """An image with one Gaussian blob (σ 1.5 px) at each pixel position."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    img = np.zeros((H, W))
    for u, v in pixels:
        img += np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * 1.5**2))
    return np.clip(img * 250, 0, 255).astype(np.uint8)


def _assert_blobs_at(image: np.ndarray, pixels: np.ndarray) -> None:
    for u, v in pixels:
        x0, y0 = round(float(u)) - 5, round(float(v)) - 5
        patch = image[y0 : y0 + 11, x0 : x0 + 11].astype(np.float64)
        assert patch.sum() > 0, (u, v)
        py, px = np.mgrid[0:11, 0:11]
        centroid = np.array([(patch * px).sum(), (patch * py).sum()]) / patch.sum() + [x0, y0]
        np.testing.assert_allclose(centroid, [u, v], atol=0.35)


POINTS = np.array([[0.9, 0.1, 2.0], [-0.7, 0.5, 2.5], [0.2, -0.6, 3.0], [-0.3, -0.2, 4.0], [0.5, 0.55, 2.2]])


def test_an_equidistant_lens_with_zero_coefficients_is_still_undistorted():
    calib = CameraCalibration(W, H, "equidistant", (0.0,) * 4, K, I3, P_K)
    # closed form of the f·θ lens: a raw pixel at radius r = f·θ is seen at f·tan θ in the pinhole camera
    raw = np.array([[300.0, 119.5], [159.5, 230.0], [60.0, 40.0], [200.0, 150.0]])
    d = raw - [CX, CY]
    theta = np.linalg.norm(d, axis=1, keepdims=True) / F
    expected = [CX, CY] + d * np.tan(theta) / theta
    got = undistort_points(raw, calib)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    reference = cv2.fisheye.undistortPoints(
        raw.reshape(-1, 1, 2), calib.K_matrix, np.zeros(4), P=calib.K_matrix
    )
    np.testing.assert_allclose(got, reference.reshape(-1, 2), atol=1e-6)
    # the maps send each rectified pixel to where the f·θ lens put it
    map_x, map_y = rectification_maps(calib, fixed_point=False)
    vs, us = np.mgrid[20 : H - 20 : 19, 20 : W - 20 : 23]
    back = undistort_points(np.stack([map_x[vs, us], map_y[vs, us]], axis=-1).reshape(-1, 2), calib)
    np.testing.assert_allclose(back, np.stack([us, vs], axis=-1).reshape(-1, 2), atol=0.02)
    # and a raw image of known points comes out with each where the pinhole camera projects it
    rvec = tvec = np.zeros(3)
    raw_px = cv2.fisheye.projectPoints(POINTS.reshape(-1, 1, 3), rvec, tvec, calib.K_matrix, np.zeros(4))[0]
    rectified, camera = Rectifier().rectify(_blobs(raw_px.reshape(-1, 2)), calib)
    _assert_blobs_at(
        rectified, POINTS[:, :2] / POINTS[:, 2:] * [camera.fx, camera.fy] + [camera.cx, camera.cy]
    )
    assert (
        calib.distorted and calib.needs_remap
    )  # so the node rectifies it (conversions.camera_info_to_input)


def test_a_p_other_than_k_is_remapped_so_the_image_is_the_reported_cameras():
    calib = CameraCalibration(W, H, "plumb_bob", (0.0,) * 5, K, I3, P_OTHER)
    raw_px = POINTS[:, :2] / POINTS[:, 2:] * F + [CX, CY]  # the raw image is K's
    rectified, camera = Rectifier().rectify(_blobs(raw_px), calib)
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (110.0, 115.0, 150.0, 125.0)
    _assert_blobs_at(rectified, POINTS[:, :2] / POINTS[:, 2:] * [110.0, 115.0] + [150.0, 125.0])
    assert not calib.distorted and calib.needs_remap  # no lens distortion: only the intrinsics change


@pytest.mark.parametrize("dfx", [0.0, 1e-7])
def test_a_p_equal_to_k_within_rounding_passes_the_image_through(dfx):
    P = (F + dfx, *P_K[1:])
    calib = CameraCalibration(W, H, "plumb_bob", (0.0,) * 5, K, I3, P)
    image = _blobs(np.array([[100.0, 100.0]]))
    rectifier = Rectifier()
    out, _ = rectifier.rectify(image, calib)
    assert not calib.needs_remap and out is image and rectifier.maps_built == 0
