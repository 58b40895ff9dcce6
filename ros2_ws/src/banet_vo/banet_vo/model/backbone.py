"""DRN-54-style backbone in plain torch: bottleneck residual blocks, strides where DRN has dilations.

The paper swaps DRN's dilated (stride-1) stages for strided ones to save memory; so this is a ResNet-like
encoder with DRN's convolutional stem (no max-pooling, which gives smoother features for BA). Outputs the
feature maps at strides 2, 4, 8, 16, 32 of the input, fine to coarse.
"""

from __future__ import annotations

import torch
from torch import nn

from banet_vo.model.config import BANetConfig

__all__ = ["Backbone", "Bottleneck", "make_norm"]


def make_norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm (DRN) or GroupNorm with up to 8 groups (independent of the batch size)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"norm must be 'batch' or 'group', got {kind!r}")


def conv_norm_relu(cin: int, cout: int, kernel: int, stride: int, norm: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        make_norm(norm, cout),
        nn.ReLU(inplace=True),
    )


class Bottleneck(nn.Module):
    """1x1 reduce → 3x3 (carries the stride) → 1x1 expand, plus a projected shortcut when shapes change."""

    def __init__(self, cin: int, planes: int, stride: int, expansion: int, norm: str) -> None:
        super().__init__()
        cout = planes * expansion
        self.body = nn.Sequential(
            conv_norm_relu(cin, planes, 1, 1, norm),
            conv_norm_relu(planes, planes, 3, stride, norm),
            nn.Conv2d(planes, cout, 1, bias=False),
            make_norm(norm, cout),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), make_norm(norm, cout)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class Backbone(nn.Module):
    """Images (B, 3, H, W) normalised → [C2, C3, C4, C5, C6] at strides [2, 4, 8, 16, 32]."""

    def __init__(self, config: BANetConfig) -> None:
        super().__init__()
        norm = config.norm
        s = config.stem_channels
        self.stem = nn.Sequential(
            conv_norm_relu(3, s, 7, config.stem_stride, norm),
            conv_norm_relu(s, s, 3, 1, norm),
        )
        self.level2 = conv_norm_relu(s, config.level2_channels, 3, 2 // config.stem_stride, norm)
        stages = []
        cin = config.level2_channels
        for planes, blocks in zip(config.bottleneck_planes, config.bottleneck_blocks, strict=True):
            layers = []
            for i in range(blocks):
                layers.append(Bottleneck(cin, planes, 2 if i == 0 else 1, config.bottleneck_expansion, norm))
                cin = planes * config.bottleneck_expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.out_channels = [config.level2_channels] + [
            p * config.bottleneck_expansion for p in config.bottleneck_planes
        ]
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Zero the last norm of each residual body so every block starts as (almost) the identity.
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.body[-1].weight)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.level2(self.stem(x))
        outputs = [x]
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs
