"""Sub-pixel refinement of matched keypoints (frontend.refine) on known image motions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from banet_vo.frontend.refine import MAX_SHIFT_PX, refine_matched
from banet_vo.frontend.xfeat import Features, XFeatExtractor, match_mutual


def _texture(height=240, width=320, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (height, width)).astype(np.float32)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 2.0), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def _warp(image: np.ndarray, A: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(image, A, image.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _features(image: np.ndarray, keypoints: np.ndarray, scale=(1.0, 1.0)) -> Features:
    """Features at given keypoints (camera pixels) whose kept image is `image` (the working image)."""
    n = len(keypoints)
    return Features(
        np.asarray(keypoints, np.float64),
        torch.zeros(n, 64),
        np.ones(n, np.float32),
        image.astype(np.float32) / 255.0,
        scale,
    )


def _grid(height=240, width=320, margin=30, step=20) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(margin, width - margin, step), np.arange(margin, height - margin, step))
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)


def _pairs(n: int) -> np.ndarray:
    return np.stack([np.arange(n), np.arange(n)], axis=1)


def test_whole_pixel_keypoints_that_lag_are_moved_to_the_true_position():
    """The content moves by (1.3, -0.7) px; the detected keypoints sit on whole pixels one pixel short
    of the motion. Refined, they are within 0.1 px of where the reference's points went."""
    a = _texture()
    b = _warp(a, np.array([[1.0, 0.0, 1.3], [0.0, 1.0, -0.7]]))
    points = _grid()
    truth = points + np.array([1.3, -0.7])
    detected = np.round(points + np.array([0.3, -0.3]))  # lagging, on whole pixels
    refined, moved = refine_matched([_features(a, points)], _features(b, detected), [_pairs(len(points))])
    assert moved >= 0.95 * len(points)
    err = np.linalg.norm(refined.keypoints - truth, axis=1)
    assert np.median(err) < 0.05
    assert np.percentile(err, 95) < 0.1
    assert np.median(np.linalg.norm(detected - truth, axis=1)) > 0.5  # the test has something to fix


def test_a_zoom_is_followed_without_lag():
    """Forward motion seen as a 4 % zoom about the centre: the error along the flow has no bias."""
    a = _texture()
    s, c = 1.04, np.array([159.5, 119.5])
    b = _warp(a, np.array([[s, 0.0, c[0] * (1 - s)], [0.0, s, c[1] * (1 - s)]]))
    points = _grid()
    truth = points * s + c * (1 - s)
    flow = truth - points
    detected = np.round(truth - 0.8 * flow / np.linalg.norm(flow, axis=1, keepdims=True))  # 0.8 px behind
    refined, _ = refine_matched([_features(a, points)], _features(b, detected), [_pairs(len(points))])
    along = np.sum((refined.keypoints - truth) * flow, axis=1) / np.linalg.norm(flow, axis=1)
    assert abs(np.median(along)) < 0.05
    assert np.median(np.abs(along)) < 0.1


def test_a_keypoint_too_far_from_where_lk_goes_keeps_its_detected_position():
    a = _texture()
    b = _warp(a, np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]))
    points = _grid()[:10]
    detected = points + np.array([2.0, 0.0])
    detected[0] += np.array([MAX_SHIFT_PX + 1.5, 0.0])  # a wrong match, beyond the shift LK may make
    refined, moved = refine_matched([_features(a, points)], _features(b, detected), [_pairs(10)])
    np.testing.assert_array_equal(refined.keypoints[0], detected[0])
    assert moved == 9
    np.testing.assert_allclose(refined.keypoints[1:], points[1:] + np.array([2.0, 0.0]), atol=0.1)


def test_unmatched_keypoints_and_the_inputs_are_left_as_they_were():
    a = _texture()
    b = _warp(a, np.array([[1.0, 0.0, 1.5], [0.0, 1.0, 0.5]]))
    points = _grid()
    detected = np.round(points + np.array([1.5, 0.5]))
    current = _features(b, detected)
    before = current.keypoints.copy()
    matched = _pairs(len(points))[::2]  # every other keypoint matched
    refined, moved = refine_matched([_features(a, points)], current, [matched])
    np.testing.assert_array_equal(current.keypoints, before)  # not changed in place
    np.testing.assert_array_equal(refined.keypoints[1::2], before[1::2])
    assert moved == len(matched) or moved >= 0.95 * len(matched)
    assert refined.descriptors is current.descriptors


def test_the_first_reference_that_confirms_a_keypoint_refines_it():
    """Two references match the same keypoint; the first (newest) decides. A reference whose image
    shows other content confirms nothing, and the next one refines."""
    a = _texture()
    b = _warp(a, np.array([[1.0, 0.0, 1.25], [0.0, 1.0, 0.0]]))
    points = _grid()
    detected = np.round(points + np.array([1.25, 0.0]))
    stranger = _features(_texture(seed=5), points)
    refined, moved = refine_matched(
        [stranger, _features(a, points)], _features(b, detected), [_pairs(len(points))] * 2
    )
    assert moved >= 0.95 * len(points)
    np.testing.assert_allclose(np.median(refined.keypoints - points, axis=0), [1.25, 0.0], atol=0.05)


def test_keypoints_of_a_downscaled_working_image_are_refined_in_camera_pixels():
    """XFeat ran at half size (Features.scale 2): LK works on the half-size images, and the refined
    keypoints come back in the camera's pixels (pixel centres at integers)."""
    a = _texture()
    b = _warp(a, np.array([[1.0, 0.0, 0.6], [0.0, 1.0, -0.4]]))  # working pixels
    points = _grid()
    to_camera = lambda x: (x + 0.5) * 2.0 - 0.5  # noqa: E731
    truth = to_camera(points + np.array([0.6, -0.4]))
    detected = to_camera(np.round(points + np.array([0.6, -0.4])))
    refined, _ = refine_matched(
        [_features(a, to_camera(points), (2.0, 2.0))],
        _features(b, detected, (2.0, 2.0)),
        [_pairs(len(points))],
    )
    assert np.median(np.linalg.norm(refined.keypoints - truth, axis=1)) < 0.1


def test_bad_input_is_refused():
    a = _texture()
    f = _features(a, _grid()[:5])
    with pytest.raises(ValueError, match="references"):
        refine_matched([f], f, [])
    bare = Features(f.keypoints, f.descriptors, f.scores)
    with pytest.raises(ValueError, match="keep_image"):
        refine_matched([bare], f, [_pairs(5)])
    small = _features(_texture(120, 160), _grid(120, 160)[:5])
    with pytest.raises(ValueError, match="size"):
        refine_matched([small], f, [_pairs(5)])


def test_xfeat_matches_of_a_real_frame_under_zoom_lose_their_lag(kitti06_dir):
    """A KITTI frame and its 5 % zoom, matched by XFeat: the detected keypoints trail the motion (median
    error ~1 px); refined, the median error falls below 0.4 px and the median error along the flow to
    within 0.05 px of zero."""
    path = sorted((kitti06_dir / "image_l").glob("*.png"))[20]
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    s, c = 1.05, np.array([w / 2 - 0.5, h / 2 - 0.5])
    zoomed = cv2.warpAffine(image, np.array([[s, 0.0, c[0] * (1 - s)], [0.0, s, c[1] * (1 - s)]]), (w, h))
    extractor = XFeatExtractor(top_k=1024)
    fa = extractor.extract(image, keep_image=True)
    fb = extractor.extract(zoomed, keep_image=True)
    m = match_mutual(fa, fb)
    truth = fa.keypoints[m[:, 0]] * s + c * (1 - s)
    inside = np.all((truth > 10) & (truth < [w - 10, h - 10]), axis=1)
    refined, _ = refine_matched([fa], fb, [m])
    before = fb.keypoints[m[:, 1]] - truth
    after = refined.keypoints[m[:, 1]] - truth
    good = inside & (np.linalg.norm(before, axis=1) < 4)  # true matches
    flow = (truth - fa.keypoints[m[:, 0]])[good]
    along = np.sum(after[good] * flow, axis=1) / np.linalg.norm(flow, axis=1)
    assert good.sum() > 300
    assert np.median(np.linalg.norm(before[good], axis=1)) > 0.7
    assert np.median(np.linalg.norm(after[good], axis=1)) < 0.4
    assert abs(np.median(along)) < 0.05
