"""Bilinear sampling: values against grid_sample, analytic gradients against finite differences, masks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from banet_vo.geometry import bilinear_sample

F64 = torch.float64
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def _interior_points(gen: torch.Generator, batch: int, n: int, height: int, width: int) -> torch.Tensor:
    """Random points strictly inside the image and away from integer coordinates (the kinks)."""
    cell = torch.randint(0, width - 1, (batch, n), generator=gen).to(F64)
    row = torch.randint(0, height - 1, (batch, n), generator=gen).to(F64)
    frac = torch.rand(batch, n, 2, generator=gen, dtype=F64) * 0.8 + 0.1
    return torch.stack([cell, row], dim=-1) + frac


def _grid_sample_reference(features: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """PyTorch's own bilinear sampler (align_corners=True: -1/+1 are the centres of the corner pixels)."""
    _, _, H, W = features.shape
    grid = torch.stack([uv[..., 0] / (W - 1) * 2 - 1, uv[..., 1] / (H - 1) * 2 - 1], dim=-1)
    out = F.grid_sample(features, grid[:, :, None, :], mode="bilinear", align_corners=True)
    return out[..., 0].transpose(1, 2)  # (B, N, C)


@pytest.mark.parametrize("device", DEVICES)
def test_values_match_grid_sample(device):
    gen = torch.Generator().manual_seed(1)
    features = torch.rand(2, 5, 9, 13, generator=gen, dtype=F64).to(device)
    uv = (torch.rand(2, 60, 2, generator=gen, dtype=F64) * torch.tensor([12.0, 8.0], dtype=F64)).to(device)
    values, gradients, valid = bilinear_sample(features, uv)
    assert values.shape == (2, 60, 5) and gradients.shape == (2, 60, 5, 2) and valid.shape == (2, 60)
    assert bool(valid.all())
    torch.testing.assert_close(values, _grid_sample_reference(features, uv), rtol=0, atol=1e-12)


def test_integer_points_return_the_pixel_values_including_the_last_row_and_column():
    features = torch.arange(2 * 4 * 6, dtype=F64).reshape(1, 2, 4, 6)
    uv = torch.tensor([[[0.0, 0.0], [5.0, 0.0], [0.0, 3.0], [5.0, 3.0], [2.0, 1.0]]], dtype=F64)
    values, _, valid = bilinear_sample(features, uv)
    assert bool(valid.all())
    expected = torch.stack([features[0, :, 0, 0], features[0, :, 0, 5], features[0, :, 3, 0],
                            features[0, :, 3, 5], features[0, :, 1, 2]])  # fmt: skip
    torch.testing.assert_close(values[0], expected, rtol=0, atol=0)


def test_linear_image_gives_exact_values_and_constant_gradient_everywhere():
    H, W = 7, 11
    v, u = torch.meshgrid(torch.arange(H, dtype=F64), torch.arange(W, dtype=F64), indexing="ij")
    features = torch.stack([2.0 * u - 3.0 * v + 1.0, -0.5 * u + 0.25 * v])[None]  # (1, 2, H, W)
    gen = torch.Generator().manual_seed(2)
    uv = torch.rand(1, 200, 2, generator=gen, dtype=F64) * torch.tensor([W - 1.0, H - 1.0], dtype=F64)
    uv[0, :4] = torch.tensor([[0.0, 0.0], [W - 1.0, H - 1.0], [W - 1.0, 2.5], [3.5, H - 1.0]], dtype=F64)
    values, gradients, valid = bilinear_sample(features, uv)
    assert bool(valid.all())
    uu, vv = uv[0, :, 0], uv[0, :, 1]
    torch.testing.assert_close(values[0, :, 0], 2.0 * uu - 3.0 * vv + 1.0, rtol=0, atol=1e-12)
    torch.testing.assert_close(values[0, :, 1], -0.5 * uu + 0.25 * vv, rtol=0, atol=1e-12)
    expected = torch.tensor([[2.0, -3.0], [-0.5, 0.25]], dtype=F64).expand(200, 2, 2)
    torch.testing.assert_close(gradients[0], expected, rtol=0, atol=1e-12)


def test_analytic_gradients_match_finite_differences():
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(3, 4, 10, 12, generator=gen, dtype=F64)
    uv = _interior_points(gen, 3, 80, 10, 12)
    _, gradients, _ = bilinear_sample(features, uv)
    step = 1e-6
    numeric = []
    for k in range(2):
        e = torch.zeros_like(uv)
        e[..., k] = step
        numeric.append(
            (bilinear_sample(features, uv + e)[0] - bilinear_sample(features, uv - e)[0]) / (2 * step)
        )
    numeric = torch.stack(numeric, dim=-1)
    assert float((gradients - numeric).norm() / numeric.norm()) < 1e-6


def test_autograd_through_uv_equals_the_analytic_gradient_and_gradcheck_passes():
    gen = torch.Generator().manual_seed(4)
    features = torch.randn(2, 3, 6, 8, generator=gen, dtype=F64, requires_grad=True)
    uv = _interior_points(gen, 2, 10, 6, 8).requires_grad_(True)
    values, gradients, _ = bilinear_sample(features, uv)
    weights = torch.randn(values.shape, generator=gen, dtype=F64)
    (values * weights).sum().backward()
    expected = (gradients.detach() * weights[..., None]).sum(dim=2)
    torch.testing.assert_close(uv.grad, expected, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda f, p: bilinear_sample(f, p)[0], (features, uv))
    assert torch.autograd.gradcheck(lambda f, p: bilinear_sample(f, p)[1], (features, uv))


def test_points_outside_or_non_finite_are_invalid_zero_and_do_not_leak_nan():
    gen = torch.Generator().manual_seed(5)
    H, W = 5, 6
    features = torch.randn(1, 3, H, W, generator=gen, dtype=F64, requires_grad=True)
    nan, inf = float("nan"), float("inf")
    uv = torch.tensor(
        [[[2.5, 1.5], [-0.01, 2.0], [W - 1 + 0.01, 2.0], [2.0, -0.5], [2.0, H - 0.5], [nan, 1.0], [1.0, inf],
          [-1e9, 1e9]]],
        dtype=F64,
        requires_grad=True,
    )  # fmt: skip
    values, gradients, valid = bilinear_sample(features, uv)
    assert valid.tolist() == [[True] + [False] * 7]
    assert bool(torch.isfinite(values).all()) and bool(torch.isfinite(gradients).all())
    assert float(values.detach()[0, 1:].abs().max()) == 0.0
    assert float(gradients.detach()[0, 1:].abs().max()) == 0.0
    (values.sum() + gradients.sum()).backward()
    assert bool(torch.isfinite(uv.grad).all()) and bool(torch.isfinite(features.grad).all())
    assert float(uv.grad[0, 1:].abs().max()) == 0.0


def test_round_off_just_outside_the_border_still_counts_as_inside():
    features = torch.arange(20, dtype=F64).reshape(1, 1, 4, 5)
    uv = torch.tensor([[[-1e-9, 0.0], [4.0 + 1e-9, 3.0 + 1e-9]]], dtype=F64)
    values, _, valid = bilinear_sample(features, uv)
    assert bool(valid.all())
    torch.testing.assert_close(values[0, :, 0], torch.tensor([0.0, 19.0], dtype=F64))


def test_single_row_and_single_column_images():
    features = torch.tensor([[[[1.0, 3.0, 7.0]]]], dtype=F64)  # H = 1
    values, gradients, valid = bilinear_sample(features, torch.tensor([[[1.5, 0.0], [1.5, 0.5]]], dtype=F64))
    assert valid.tolist() == [[True, False]]
    assert float(values[0, 0, 0]) == 5.0 and gradients[0, 0, 0].tolist() == [4.0, 0.0]
    column = features.transpose(2, 3)  # W = 1
    values, gradients, valid = bilinear_sample(column, torch.tensor([[[0.0, 0.25]]], dtype=F64))
    assert bool(valid.all()) and float(values[0, 0, 0]) == 1.5 and gradients[0, 0, 0].tolist() == [0.0, 2.0]


def test_float32_features_with_float64_points_keep_the_feature_dtype():
    features = torch.rand(1, 2, 4, 4)
    values, gradients, _ = bilinear_sample(features, torch.tensor([[[1.5, 1.5]]], dtype=F64))
    assert values.dtype == torch.float32 and gradients.dtype == torch.float32


def test_bad_shapes_raise_value_errors_naming_the_argument():
    with pytest.raises(ValueError, match="features"):
        bilinear_sample(torch.zeros(3, 4, 5), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="features"):
        bilinear_sample(torch.zeros(1, 3, 4, 5, dtype=torch.int64), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="uv"):
        bilinear_sample(torch.zeros(1, 3, 4, 5), torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="uv batch"):
        bilinear_sample(torch.zeros(1, 3, 4, 5), torch.zeros(2, 2, 2))
