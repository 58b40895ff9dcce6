"""Photometric BA baseline (BA-Net Table 1, "photometric BA"): the very same LM/BA layer
(``banet_vo.model.ba_layer.bundle_adjust``) run on image intensities instead of learned features, with a
fixed damping λ (no MLP). Features per level are the gray image area-resized to that level's grid and
lightly blurred (a wider basin, as any direct method does), coarse → fine at the same sizes as BA-Net's
feature pyramid (the finest at the depth resolution, half the input).

The depth parameterisation is an argument: callers pass the basis B and initial depth D0 (the evaluation
uses the trained basis-depth generator's, so photometric and feature BA differ only in features and λ).
"""

from __future__ import annotations

from collections.abc import Sequence

import pypose as pp
import torch
import torch.nn.functional as F

from banet_vo.model.ba_layer import BAResult, bundle_adjust
from banet_vo.model.config import BAOptions

__all__ = ["intensity_pyramid", "photometric_ba"]


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    radius = max(1, round(2 * sigma))
    k = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (k / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(
        F.pad(x, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c
    )
    return F.conv2d(
        F.pad(x, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c
    )


def intensity_pyramid(
    images: torch.Tensor, sizes: Sequence[tuple[int, int]], sigma: float = 1.0
) -> list[torch.Tensor]:
    """Images (B, 3, H, W) in [0, 1] → gray maps (B, 1, h, w) for each (h, w) in ``sizes``, area-resized and
    blurred with a Gaussian of ``sigma`` pixels (of that level)."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (B, 1 or 3, H, W), got {tuple(images.shape)}")
    gray = images.mean(dim=1, keepdim=True)
    return [_gaussian_blur(F.interpolate(gray, size=tuple(s), mode="area"), sigma) for s in sizes]


def photometric_ba(
    image_ref: torch.Tensor,
    image_tgt: torch.Tensor,
    basis: torch.Tensor,
    depth0: torch.Tensor,
    depth_intrinsics: torch.Tensor,
    options: BAOptions,
    lam: float,
    sigma: float = 1.0,
    pose_init: pp.LieTensor | None = None,
) -> BAResult:
    """LM on intensities. ``basis`` (B, K, h, w) and ``depth0`` (B, 1, h, w) at the depth resolution with
    ``depth_intrinsics``; ``options`` as in ``bundle_adjust``, its iterations per level coarse → fine (level l
    has the depth size / 2^(L-1-l)). Pass the model's options, so only the features differ."""
    if not lam > 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    h, w = basis.shape[-2:]
    levels = len(options.iterations)
    sizes = [(h // 2 ** (levels - 1 - i), w // 2 ** (levels - 1 - i)) for i in range(levels)]
    feats_ref = intensity_pyramid(image_ref, sizes, sigma)
    feats_tgt = intensity_pyramid(image_tgt, sizes, sigma)
    return bundle_adjust(
        feats_ref,
        feats_tgt,
        basis,
        depth0,
        depth_intrinsics,
        options,
        [float(lam)] * levels,
        pose_init=pose_init,
    )
