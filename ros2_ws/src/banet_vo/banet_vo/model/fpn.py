"""Top-down feature pyramid (paper §4.2): upsample ×2 bilinearly, concatenate with the next finer backbone
map, 3x3 conv to C channels; repeat down to stride 2. Bilinear (not nearest) upsampling keeps the features
smooth, which widens the BA's convergence basin.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from banet_vo.model.config import BANetConfig

__all__ = ["FeaturePyramid", "upsample_to"]


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of x to the spatial size of ``like`` (sizes may be odd, e.g. 15 → 30 or 8 → 15)."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class FeaturePyramid(nn.Module):
    """Backbone maps [C2..C6] (fine → coarse) → BA features, coarse → fine, ``num_levels`` maps of C channels.

    The finest output has stride 2 (the depth resolution); the coarsest of three has stride 8.
    """

    def __init__(self, in_channels: list[int], config: BANetConfig) -> None:
        super().__init__()
        c = config.channels
        self.num_levels = config.num_levels
        self.top = nn.Conv2d(in_channels[-1], c, 3, padding=1)
        # merges[i] fuses the upsampled coarser map with backbone map in_channels[i] (i = 0 is stride 2).
        self.merges = nn.ModuleList(nn.Conv2d(c + cin, c, 3, padding=1) for cin in in_channels[:-1])

    def forward(self, backbone_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        x = self.top(backbone_maps[-1])
        outputs = []
        for i in range(len(backbone_maps) - 2, -1, -1):
            skip = backbone_maps[i]
            x = self.merges[i](torch.cat([upsample_to(x, skip), skip], dim=1))
            if i < self.num_levels:
                outputs.append(x)
        return outputs  # coarse → fine
