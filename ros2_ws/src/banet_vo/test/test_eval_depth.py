"""Depth metrics against hand-computed values, caps, masks, median scaling, file loading, real data."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from banet_vo.evaluation.depth import depth_metrics, load_depth, mean_depth_metrics, resize_depth

LN2 = math.log(2.0)


def test_metrics_by_hand():
    gt = np.array([[1.0, 2.0], [4.0, 0.0]])  # 0 = invalid
    pred = np.array([[2.0, 2.0], [2.0, 5.0]])
    m = depth_metrics(pred, gt)
    assert m.n_valid == 3 and m.coverage == 1.0 and m.scale == 1.0
    assert m.abs_rel == pytest.approx((1 / 1 + 0 + 2 / 4) / 3, abs=1e-15)
    assert m.sq_rel == pytest.approx((1 / 1 + 0 + 4 / 4) / 3, abs=1e-15)
    assert m.rmse == pytest.approx(math.sqrt(5 / 3), abs=1e-15)
    # log differences: ln2, 0, -ln2 -> mean 0, so the scale-invariant value equals rmse_log
    assert m.rmse_log == pytest.approx(LN2 * math.sqrt(2 / 3), abs=1e-15)
    assert m.si_rmse_log == pytest.approx(LN2 * math.sqrt(2 / 3), abs=1e-15)
    assert (m.delta_1, m.delta_2, m.delta_3) == pytest.approx((1 / 3, 1 / 3, 1 / 3))


def test_scale_invariant_log_by_hand_and_invariance():
    gt = np.array([[1.0, 1.0, 1.0, 1.0]])
    pred = np.array([[1.0, 1.0, 2.0, 2.0]])  # z = 0, 0, ln2, ln2: var = ln2^2 / 4
    m = depth_metrics(pred, gt)
    assert m.si_rmse_log == pytest.approx(LN2 / 2, abs=1e-15)
    assert m.rmse_log == pytest.approx(LN2 / math.sqrt(2), abs=1e-15)
    assert (m.delta_1, m.delta_2, m.delta_3) == (0.5, 0.5, 0.5)  # ratio 2 > 1.25^3 = 1.953
    assert depth_metrics(7.3 * pred, gt).si_rmse_log == pytest.approx(m.si_rmse_log, abs=1e-12)


def test_delta_thresholds_by_hand():
    gt = np.ones((1, 4))
    m = depth_metrics(np.array([[1.2, 1 / 1.5, 1.9, 2.5]]), gt)  # ratios 1.2, 1.5, 1.9, 2.5
    assert (m.delta_1, m.delta_2, m.delta_3) == (0.25, 0.5, 0.75)


def test_median_scaling_removes_global_scale():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0.5, 10.0, (6, 8))
    m = depth_metrics(gt / 3.0, gt, median_scaling=True)
    assert m.scale == pytest.approx(3.0, rel=1e-12)
    assert m.abs_rel == pytest.approx(0.0, abs=1e-12) and m.rmse == pytest.approx(0.0, abs=1e-12)
    assert depth_metrics(gt / 3.0, gt).abs_rel == pytest.approx(2 / 3, abs=1e-12)
    # the scale comes from pixels with a usable prediction only
    holes = gt / 3.0
    holes[0, :4] = -1.0
    m = depth_metrics(holes, gt, median_scaling=True)
    assert m.abs_rel == pytest.approx(0.0, abs=1e-12) and m.coverage == pytest.approx(44 / 48)


def test_caps_clip_prediction_and_drop_ground_truth():
    gt = np.array([[0.5, 2.0, 50.0, 100.0]])
    pred = np.array([[0.5, -1.0, 90.0, 100.0]])
    m = depth_metrics(pred, gt, min_depth=1.0, max_depth=80.0)
    # valid gt: 2.0 and 50.0; predictions clipped to [1, 80]: -1 -> 1, 90 -> 80
    assert m.n_valid == 2 and m.coverage == 1.0
    assert m.abs_rel == pytest.approx((1.0 / 2.0 + 30.0 / 50.0) / 2, abs=1e-15)
    assert m.rmse == pytest.approx(math.sqrt((1.0 + 900.0) / 2), abs=1e-12)


def test_invalid_predictions_lower_coverage_and_mask_restricts():
    gt = np.full((2, 2), 2.0)
    pred = np.array([[2.0, np.nan], [-1.0, 4.0]])
    m = depth_metrics(pred, gt)
    assert m.n_valid == 2 and m.coverage == pytest.approx(0.5)
    assert m.abs_rel == pytest.approx(0.5)
    mask = np.array([[True, False], [False, False]])
    assert depth_metrics(pred, gt, mask).abs_rel == 0.0
    assert depth_metrics(pred, gt, mask).coverage == 1.0


def test_bad_input_names_field():
    gt = np.ones((2, 2))
    with pytest.raises(ValueError, match="pred shape"):
        depth_metrics(np.ones((3, 2)), gt)
    with pytest.raises(ValueError, match="gt has no valid"):
        depth_metrics(gt, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="min_depth"):
        depth_metrics(gt, gt, min_depth=0.0)
    with pytest.raises(ValueError, match="max_depth"):
        depth_metrics(gt, gt, min_depth=2.0, max_depth=1.0)
    with pytest.raises(ValueError, match="mask"):
        depth_metrics(gt, gt, np.ones((2, 2)))
    with pytest.raises(ValueError, match="pred has no finite positive"):
        depth_metrics(-gt, gt)
    with pytest.raises(ValueError, match="gt must be a 2-D"):
        depth_metrics(gt, np.ones(4))


def test_mean_over_images_weighs_images_equally():
    gt = np.ones((1, 4))
    a = depth_metrics(np.full((1, 4), 2.0), gt)  # abs rel 1
    b = depth_metrics(np.ones((1, 2)), np.ones((1, 2)))  # abs rel 0, fewer pixels
    mean = mean_depth_metrics([a, b])
    assert mean.abs_rel == pytest.approx(0.5) and mean.n_valid == 6
    with pytest.raises(ValueError, match="per_image"):
        mean_depth_metrics([])


def test_load_png_and_npy_round_trip(tmp_path):
    depth_mm = np.array([[0, 1000], [2500, 65535]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), depth_mm)
    loaded = load_depth(tmp_path / "d.png")
    assert loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, depth_mm * 0.001, rtol=1e-6)
    np.testing.assert_allclose(load_depth(tmp_path / "d.png", png_scale=1 / 256), depth_mm / 256, rtol=1e-6)
    np.save(tmp_path / "d.npy", loaded)
    np.testing.assert_array_equal(load_depth(tmp_path / "d.npy"), loaded)
    with pytest.raises(ValueError, match="does not exist"):
        load_depth(tmp_path / "missing.npy")
    (tmp_path / "d.txt").write_text("1")
    with pytest.raises(ValueError, match=r"\.npy or \.png"):
        load_depth(tmp_path / "d.txt")


def test_resize_depth_nearest_keeps_values():
    d = np.arange(12, dtype=np.float32).reshape(3, 4)
    up = resize_depth(d, (6, 8))
    assert up.shape == (6, 8)
    np.testing.assert_array_equal(up[::2, ::2], d)
    with pytest.raises(ValueError, match="method"):
        resize_depth(d, (6, 8), "cubic")


def test_resize_depth_nearest_takes_the_pixel_under_each_output_centre():
    """Halving: output pixel i's centre falls on the boundary of source pixels 2i and 2i + 1, and the rule
    training uses (model.input_image.resize_depth_nearest) takes 2i + 1; a corner-aligned nearest
    (OpenCV's INTER_NEAREST) takes 2i."""
    from banet_vo.model.input_image import resize_depth_nearest

    d = np.arange(1, 17, dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(resize_depth(d, (2, 2)), d[1::2, 1::2])
    wide = np.arange(1, 1 + 7 * 9, dtype=np.float32).reshape(7, 9)  # a non-integer ratio both ways
    np.testing.assert_array_equal(resize_depth(wide, (3, 4)), resize_depth_nearest(wide, 4, 3))


def test_real_hololens_depth(hololens_dir):
    gt = load_depth(hololens_dir / "depth" / "00003.png")
    assert gt.shape == (360, 540)
    valid = gt > 0
    assert 0.6 < valid.mean() < 0.95  # README: ~78 % valid
    assert 0.2 < float(np.median(gt[valid])) < 10.0  # indoor metres
    m = depth_metrics(gt * 1.1, gt)
    assert m.abs_rel == pytest.approx(0.1, rel=1e-5)
    assert m.si_rmse_log == pytest.approx(0.0, abs=1e-6)
    assert m.rmse_log == pytest.approx(math.log(1.1), rel=1e-5)
    assert depth_metrics(gt * 1.1, gt, median_scaling=True).abs_rel == pytest.approx(0.0, abs=1e-6)
