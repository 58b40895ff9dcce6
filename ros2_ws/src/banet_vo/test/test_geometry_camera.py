"""PinholeCamera: built from K, P or CameraInfo-like objects; resize and crop keep projections right."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from banet_vo.geometry import PinholeCamera, project

CAMERA = PinholeCamera(fx=500.0, fy=480.0, cx=319.5, cy=239.5, width=640, height=480)
POINTS = np.array([[0.3, -0.2, 2.0], [-1.0, 0.7, 5.0], [0.0, 0.0, 1.0]])


def _project(camera: PinholeCamera, points: np.ndarray) -> np.ndarray:
    h = points @ camera.K.T
    return h[:, :2] / h[:, 2:]


def test_from_K_and_projection_and_camera_info_agree():
    K = CAMERA.K
    P = np.hstack([K, [[-120.0], [0.0], [0.0]]])  # stereo baseline term is ignored
    from_k = PinholeCamera.from_K(K, 640, 480)
    from_p = PinholeCamera.from_projection(P.ravel(), 640, 480)
    info = SimpleNamespace(width=640, height=480, k=list(K.ravel()), p=list(P.ravel()))
    from_info = PinholeCamera.from_camera_info(info)
    assert from_k == from_p == from_info == CAMERA
    np.testing.assert_array_equal(CAMERA.to_projection(), np.hstack([K, np.zeros((3, 1))]))


def test_camera_info_prefers_rectified_p_and_falls_back_to_k():
    rectified = PinholeCamera(450.0, 450.0, 300.0, 200.0, 640, 480)
    info = SimpleNamespace(
        width=640, height=480, k=list(CAMERA.K.ravel()), p=list(rectified.to_projection().ravel())
    )
    assert PinholeCamera.from_camera_info(info) == rectified
    info.p = [0.0] * 12
    assert PinholeCamera.from_camera_info(info) == CAMERA
    info.k = [0.0] * 9
    with pytest.raises(ValueError, match="uncalibrated"):
        PinholeCamera.from_camera_info(info)
    with pytest.raises(ValueError, match="width"):
        PinholeCamera.from_camera_info(SimpleNamespace(height=480, k=[0.0] * 9, p=[0.0] * 12))


def test_resize_moves_projections_by_the_pixel_centre_rule():
    for width, height in ((320, 240), (1280, 960), (500, 300)):
        small = CAMERA.resized(width, height)
        sx, sy = width / 640, height / 480
        expected = (_project(CAMERA, POINTS) + 0.5) * [sx, sy] - 0.5
        np.testing.assert_allclose(_project(small, POINTS), expected, atol=1e-12)
        assert small.size == (width, height)
    # The image centre stays the image centre.
    half = CAMERA.scaled(0.5)
    assert (half.width, half.height) == (320, 240) and (half.cx, half.cy) == (159.5, 119.5)


def test_crop_shifts_projections_by_the_window_origin():
    crop = CAMERA.cropped(100, 40, 400, 300)
    np.testing.assert_allclose(_project(crop, POINTS), _project(CAMERA, POINTS) - [100, 40], atol=1e-12)
    assert crop.size == (400, 300)
    with pytest.raises(ValueError, match="crop"):
        CAMERA.cropped(300, 0, 400, 300)
    with pytest.raises(ValueError, match="crop"):
        CAMERA.cropped(-1, 0, 10, 10)


def test_as_tensor_feeds_the_torch_projection():
    uv, _, valid = project(torch.from_numpy(POINTS)[None], CAMERA.as_tensor(dtype=torch.float64)[None])
    assert bool(valid.all())
    np.testing.assert_allclose(uv[0].numpy(), _project(CAMERA, POINTS), atol=1e-12)
    assert CAMERA.as_tensor().dtype == torch.float32


def test_invalid_cameras_raise_value_errors_naming_the_field():
    with pytest.raises(ValueError, match="focal"):
        PinholeCamera(0.0, 1.0, 0.0, 0.0, 10, 10)
    with pytest.raises(ValueError, match="cx"):
        PinholeCamera(1.0, 1.0, float("nan"), 0.0, 10, 10)
    with pytest.raises(ValueError, match="size"):
        PinholeCamera(1.0, 1.0, 0.0, 0.0, 0, 10)
    with pytest.raises(ValueError, match="K"):
        PinholeCamera.from_K(np.eye(2), 10, 10)
    with pytest.raises(ValueError, match="skew"):
        PinholeCamera.from_K([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], 10, 10)
    with pytest.raises(ValueError, match="P"):
        PinholeCamera.from_projection(np.zeros(12), 10, 10)
