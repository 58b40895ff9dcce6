"""Optical flow of keypoints (frontend.flow) on known image motions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from banet_vo.frontend import flow


def _texture(height=240, width=320, seed=0) -> np.ndarray:
    """Smooth random texture (blurred noise): trackable everywhere, no repeated pattern."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (height, width)).astype(np.float32)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 2.0), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def _shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The image content moved by (dx, dy) pixels (sub-pixel, bilinear)."""
    M = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return cv2.warpAffine(image, M, image.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _grid(image: np.ndarray, margin: int = 30, step: int = 20) -> np.ndarray:
    h, w = image.shape
    xs, ys = np.meshgrid(np.arange(margin, w - margin, step), np.arange(margin, h - margin, step))
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)


@pytest.mark.parametrize(("dx", "dy"), [(3.3, -2.1), (-14.6, 9.25)])
def test_a_known_shift_is_found_to_a_tenth_of_a_pixel(dx, dy):
    a = _texture()
    b = _shift(a, dx, dy)
    points = _grid(a)
    found, ok = flow.follow(a, b, points)
    assert ok.mean() > 0.95
    np.testing.assert_allclose(found[ok] - points[ok], np.tile([dx, dy], (int(ok.sum()), 1)), atol=0.1)


def test_a_motion_beyond_the_pyramid_is_found_from_a_predicted_position():
    """40.5 px of fine texture: lost from the start position, found from a guess 3 px off."""
    a = _texture()
    b = _shift(a, 40.5, 0.0)
    points = _grid(a, margin=50)
    _, ok = flow.follow(a, b, points)
    assert ok.mean() < 0.5
    found, ok = flow.follow(a, b, points, guess=points + np.array([43.5, 1.0]))
    assert ok.mean() > 0.95
    np.testing.assert_allclose(found[ok] - points[ok], np.tile([40.5, 0.0], (int(ok.sum()), 1)), atol=0.1)
    with pytest.raises(ValueError, match="guess"):
        flow.follow(a, b, points, guess=points[:3])


def test_points_that_leave_the_image_or_meet_other_content_are_dropped():
    a = _texture()
    b = _shift(a, 25.0, 0.0)
    b[:, :160] = _texture(seed=1)[:, :160]  # the left half shows something else
    points = np.array([[300.0, 120.0], [200.0, 100.0], [60.0, 120.0], [100.0, 60.0]])
    found, ok = flow.follow(a, b, points)
    # 300 + 25 is off the 320-pixel image; 60 and 100 (-> 85, 125) land in the new content.
    assert ok.tolist() == [False, True, False, False]
    np.testing.assert_allclose(found[1], [225.0, 100.0], atol=0.1)


def test_nothing_to_follow_and_mismatched_sizes():
    a = _texture()
    found, ok = flow.follow(a, a, np.zeros((0, 2)))
    assert found.shape == (0, 2) and ok.shape == (0,)
    with pytest.raises(ValueError, match="differ in size"):
        flow.follow(a, a[:100], np.ones((3, 2)))


def test_gray_of_rgb_and_gray_images():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 1] = 200
    gray = flow.gray_u8(rgb)
    assert gray.shape == (4, 5) and gray.dtype == np.uint8 and 0 < gray[0, 0] < 200
    g = np.full((4, 5), 7, np.uint8)
    copy = flow.gray_u8(g)  # an array of its own: the odometry keeps it while the caller reuses g
    assert np.array_equal(copy, g) and not np.shares_memory(copy, g)
    for bad in (np.zeros((4, 5), np.float32), np.zeros((4, 5, 4), np.uint8)):
        with pytest.raises(ValueError, match="uint8"):
            flow.gray_u8(bad)
