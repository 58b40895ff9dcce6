"""Basis-depth generator (paper §4.4): encoder-decoder on the reference image → K basis maps B and an
initial depth D0, both at half the input resolution.

D0 = act(w0ᵀB + b) is a learned 1x1 convolution of the bases (as in the paper), made positive by
``config.depth_activation``: softplus (metres; the oldest checkpoints) or exp (log depth, so an optimiser step
is a relative change of D0 whatever the scene's scale). The BA then optimises D = D0 + B·w starting from
w = 0 (the authors' code), with a smooth floor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from banet_vo.model.backbone import conv_norm_relu
from banet_vo.model.config import BANetConfig
from banet_vo.model.fpn import upsample_to

__all__ = ["BasisDepthDecoder"]

_LOG_MAX_DEPTH = math.log(1e4)


class BasisDepthDecoder(nn.Module):
    """Backbone maps [C2..C6] of the reference image → (basis (B, K, H/2, W/2), depth0 (B, 1, H/2, W/2))."""

    def __init__(self, in_channels: list[int], config: BANetConfig) -> None:
        super().__init__()
        norm = config.norm
        chans = config.decoder_channels
        # Stage j upsamples to the skip at stride 32 / 2^(j+1): C5, C4, C3, C2.
        skips = in_channels[-2::-1]
        stages = []
        cin = in_channels[-1]
        for cout, cskip in zip(chans, skips, strict=True):
            stages.append(
                nn.Sequential(
                    conv_norm_relu(cin + cskip, cout, 3, 1, norm), conv_norm_relu(cout, cout, 3, 1, norm)
                )
            )
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.basis_head = nn.Conv2d(cin, config.num_basis, 3, padding=1)
        self.depth_head = nn.Conv2d(config.num_basis, 1, 1)
        self.depth_activation = config.depth_activation
        # Start D0 near the configured depth: act(b) = initial_depth; small weights on the bases.
        nn.init.normal_(self.depth_head.weight, std=1e-3)
        if config.depth_activation == "exp":
            bias = math.log(config.initial_depth)
        else:
            bias = math.log(math.expm1(config.initial_depth))
        nn.init.constant_(self.depth_head.bias, bias)

    def forward(self, backbone_maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x = backbone_maps[-1]
        for stage, skip in zip(self.stages, backbone_maps[-2::-1], strict=True):
            x = stage(torch.cat([upsample_to(x, skip), skip], dim=1))
        basis = self.basis_head(x)
        head = self.depth_head(basis)
        if self.depth_activation == "exp":
            # fp32 (the head may run under bf16 autocast); the cap at 1e4 m only guards against overflow.
            depth0 = torch.exp(head.float().clamp(max=_LOG_MAX_DEPTH))
        else:
            depth0 = F.softplus(head)
        return basis, depth0
