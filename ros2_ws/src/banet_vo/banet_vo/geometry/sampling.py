"""Bilinear sampling of feature maps at sub-pixel points, with the interpolant's spatial gradient.

The gradient is analytic from the same four taps as the value, so it is exactly the derivative of what
is sampled (a Sobel image sampled at the point would not be); BA's feature-metric Jacobian needs that.
Pixel (u, v) = (column, row), integer coordinates at pixel centres (align_corners=True semantics).
"""

from __future__ import annotations

import torch

__all__ = ["BORDER_TOLERANCE_PX", "bilinear_sample"]

# Points this close outside the image still count as inside (and are clamped onto the border): an
# identity warp must not lose its border pixels to float round-off in back-project → project.
BORDER_TOLERANCE_PX = 1e-3


def _check_inputs(features: torch.Tensor, uv: torch.Tensor) -> None:
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        shape = tuple(getattr(features, "shape", ()))
        raise ValueError(f"features must have shape (B, C, H, W), got {shape}")
    if not features.is_floating_point():
        raise ValueError(f"features must be a floating-point tensor, got {features.dtype}")
    if not isinstance(uv, torch.Tensor) or uv.dim() != 3 or uv.shape[-1] != 2:
        raise ValueError(f"uv must have shape (B, N, 2), got {tuple(getattr(uv, 'shape', ()))}")
    if uv.shape[0] != features.shape[0]:
        raise ValueError(f"uv batch {uv.shape[0]} does not match features batch {features.shape[0]}")


def bilinear_sample(
    features: torch.Tensor, uv: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample (B, C, H, W) at points uv (B, N, 2).

    Returns ``values`` (B, N, C), ``gradients`` (B, N, C, 2) = [d/du, d/dv] of the bilinear interpolant,
    and ``valid`` (B, N): uv finite and inside [0, W−1] × [0, H−1] (up to ``BORDER_TOLERANCE_PX``,
    such points are clamped onto the border). Invalid rows are exactly zero and
    carry zero gradient. Differentiable w.r.t. features and uv (the gradient w.r.t. uv is the same
    analytic gradient; it jumps across integer coordinates, where the interpolant has a kink).
    """
    _check_inputs(features, uv)
    B, C, H, W = features.shape
    N = uv.shape[1]
    uv = uv.to(features.dtype)
    u, v = uv.unbind(-1)
    tol = BORDER_TOLERANCE_PX
    valid = torch.isfinite(uv).all(dim=-1)
    valid = valid & (u >= -tol) & (u <= W - 1 + tol) & (v >= -tol) & (v <= H - 1 + tol)
    u = torch.where(valid, u, torch.zeros_like(u)).clamp(0, W - 1)
    v = torch.where(valid, v, torch.zeros_like(v)).clamp(0, H - 1)

    # Left/top tap clamped so the right/bottom tap stays inside; on the last column du = 1.
    u0 = u.detach().floor().clamp(0, max(W - 2, 0))
    v0 = v.detach().floor().clamp(0, max(H - 2, 0))
    du = (u - u0)[..., None]
    dv = (v - v0)[..., None]
    x0, y0 = u0.long(), v0.long()
    x1, y1 = (x0 + 1).clamp(max=W - 1), (y0 + 1).clamp(max=H - 1)

    # Channels last, one row per pixel of every image: each tap copies whole rows. index_select does that
    # ~10x faster than a gather of each element (64x48, 32 channels, on a CPU); the values are the same.
    flat = features.permute(0, 2, 3, 1).reshape(B * H * W, C)
    first = (torch.arange(B, device=features.device) * (H * W))[:, None]

    def tap(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat.index_select(0, (first + y * W + x).reshape(-1)).view(B, N, C)

    f00, f01, f10, f11 = tap(y0, x0), tap(y0, x1), tap(y1, x0), tap(y1, x1)
    top = f00 + du * (f01 - f00)
    bottom = f10 + du * (f11 - f10)
    values = top + dv * (bottom - top)
    grad_u = (f01 - f00) + dv * ((f11 - f10) - (f01 - f00))
    grad_v = bottom - top
    gradients = torch.stack([grad_u, grad_v], dim=-1)

    mask = valid[..., None]
    values = torch.where(mask, values, torch.zeros_like(values))
    gradients = torch.where(mask[..., None], gradients, torch.zeros_like(gradients))
    return values, gradients, valid
