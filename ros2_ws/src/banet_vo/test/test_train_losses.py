"""Training losses against closed forms and a numpy berHu reference."""

from __future__ import annotations

import math

import numpy as np
import pypose as pp
import pytest
import torch
from banet_vo.train.losses import (
    LossWeights,
    banet_loss,
    berhu_loss,
    downsample_depth_nearest,
    rotation_loss,
    translation_loss,
)


def _se3_about_z(angle: float, t=(0.0, 0.0, 0.0)) -> pp.LieTensor:
    q = [0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2)]
    return pp.SE3(torch.tensor([[*t, *q]], dtype=torch.float64))


def test_rotation_loss_closed_form_and_sign_invariance():
    theta = 0.3
    # ‖q − q*‖ between a rotation by θ and the identity is 2·sin(θ/4).
    loss = rotation_loss(_se3_about_z(theta), _se3_about_z(0.0))
    assert float(loss) == pytest.approx(2 * math.sin(theta / 4), rel=1e-12)
    # −q is the same rotation: zero loss.
    pose = _se3_about_z(theta)
    flipped = pose.tensor().clone()
    flipped[:, 3:] *= -1
    assert float(rotation_loss(pose, pp.SE3(flipped))) == pytest.approx(0.0, abs=1e-12)


def test_translation_loss_metres_and_matrix_gt():
    est = _se3_about_z(0.1, (1.0, 2.0, 3.0))
    gt = _se3_about_z(0.1, (1.0, 2.0, 7.0))
    assert float(translation_loss(est, gt)) == pytest.approx(4.0)
    # Ground truth as 4x4 matrices gives the same value.
    assert float(translation_loss(est, gt.matrix())) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="pose_gt"):
        translation_loss(est, torch.zeros(1, 3))


def _berhu_numpy(pred, gt, valid, frac=0.2):
    x = np.abs(pred - gt)[valid]
    c = frac * x.max()
    return np.where(x <= c, x, (x**2 + c**2) / (2 * c)).mean()


def test_berhu_matches_numpy_reference_and_ignores_invalid():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 1, 6, 5, generator=g, dtype=torch.float64) * 10
    gt = torch.rand(2, 1, 6, 5, generator=g, dtype=torch.float64) * 10
    valid = torch.rand(2, 1, 6, 5, generator=g) > 0.3
    ref = _berhu_numpy(pred.numpy(), gt.numpy(), valid.numpy())
    assert float(berhu_loss(pred, gt, valid)) == pytest.approx(ref, rel=1e-12)
    # Changing invalid pixels changes nothing.
    pred2 = pred.clone()
    pred2[~valid] = 1e6
    assert float(berhu_loss(pred2, gt, valid)) == pytest.approx(ref, rel=1e-12)


def test_berhu_gradient_is_finite_and_no_valid_pixels_gives_zero():
    pred = torch.full((1, 1, 2, 2), 2.0, requires_grad=True)
    gt = torch.ones(1, 1, 2, 2)
    none = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    loss = berhu_loss(pred, gt, none)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.all(pred.grad == 0)
    with pytest.raises(ValueError, match="valid"):
        berhu_loss(pred, gt, none.float())


def test_downsample_depth_nearest_never_averages():
    depth = torch.tensor([[[[1.0, 0.0, 5.0, 5.0], [1.0, 1.0, 5.0, 0.0]]]])  # 2x4 with holes
    out = downsample_depth_nearest(depth, (1, 2))
    # Every output value is one of the inputs (no 0.5 or 2.5 blends).
    assert set(out.flatten().tolist()) <= set(depth.flatten().tolist())
    assert out.shape == (1, 1, 1, 2)


def test_banet_loss_sums_levels_with_weights():
    gt_pose = _se3_about_z(0.0, (0.0, 0.0, 1.0))
    coarse = _se3_about_z(0.2, (0.0, 0.0, 0.0))
    fine = _se3_about_z(0.1, (0.0, 0.0, 0.5))
    depth_gt = torch.full((1, 1, 8, 8), 2.0, dtype=torch.float64)
    d_coarse = torch.full((1, 1, 4, 4), 3.0, dtype=torch.float64)
    d_fine = torch.full((1, 1, 4, 4), 2.5, dtype=torch.float64)
    w = LossWeights(
        rotation=2.0, translation=3.0, depth=4.0, initial_depth=0.0, coarse_levels=0.25, depth_space="metric"
    )
    total, terms = banet_loss([coarse, fine], [d_coarse, d_fine], gt_pose, depth_gt, w)

    def level(angle, t_err, d_err):
        # Uniform error x: c = 0.2·x < x, so berHu = (x² + c²) / 2c = 2.6·x.
        return 2.0 * 2 * math.sin(angle / 4) + 3.0 * t_err + 4.0 * 2.6 * d_err

    expected = 0.25 * level(0.2, 1.0, 1.0) + level(0.1, 0.5, 0.5)
    assert float(total) == pytest.approx(expected, rel=1e-10)
    assert terms["translation"] == pytest.approx(0.5)
    # Log space: uniform depth ratio r gives a uniform log error |log r|, so berHu = 2.6·|log r|.
    w_log = LossWeights(rotation=0.0, translation=0.0, depth=1.0, initial_depth=0.0, coarse_levels=0.0)
    total_log, _ = banet_loss([coarse, fine], [d_coarse, d_fine], gt_pose, depth_gt, w_log)
    assert float(total_log) == pytest.approx(2.6 * math.log(2.5 / 2.0), rel=1e-10)
    with pytest.raises(ValueError, match="depth_space"):
        LossWeights(depth_space="inverse")
    with pytest.raises(ValueError, match="poses_per_level"):
        banet_loss([], [], gt_pose, depth_gt, w)
    with pytest.raises(ValueError, match=r"LossWeights\.depth"):
        LossWeights(depth=-1.0)


def test_initial_depth_term_supervises_d0_and_is_off_at_zero():
    gt_pose = _se3_about_z(0.0, (0.0, 0.0, 1.0))
    depth_gt = torch.full((1, 1, 8, 8), 2.0, dtype=torch.float64)
    depth_gt[..., :2, :] = 0.0  # invalid rows are not scored
    d_fine = torch.full((1, 1, 4, 4), 2.5, dtype=torch.float64)
    d0 = torch.full((1, 1, 4, 4), 8.0, dtype=torch.float64, requires_grad=True)
    base = LossWeights(rotation=0.0, translation=0.0, depth=1.0, initial_depth=0.0, coarse_levels=0.0)
    off, terms_off = banet_loss([gt_pose], [d_fine], gt_pose, depth_gt, base, depth_init=d0)
    assert "depth_init" not in terms_off
    assert float(off) == pytest.approx(2.6 * math.log(2.5 / 2.0), rel=1e-10)
    w = LossWeights(rotation=0.0, translation=0.0, depth=1.0, initial_depth=0.5, coarse_levels=0.0)
    on, terms = banet_loss([gt_pose], [d_fine], gt_pose, depth_gt, w, depth_init=d0)
    # Uniform log error log(8/2) on D0: berHu = 2.6·|x|, weighted 0.5, on top of the final-depth term.
    assert terms["depth_init"] == pytest.approx(2.6 * math.log(4.0), rel=1e-10)
    assert float(on.detach()) == pytest.approx(float(off.detach()) + 0.5 * 2.6 * math.log(4.0), rel=1e-10)
    on.backward()
    assert d0.grad is not None and float(d0.grad[0, 0, 1:].abs().sum()) > 0
    with pytest.raises(ValueError, match="depth_init is required"):
        banet_loss([gt_pose], [d_fine], gt_pose, depth_gt, w)
    with pytest.raises(ValueError, match=r"LossWeights\.initial_depth"):
        LossWeights(initial_depth=-1.0)
