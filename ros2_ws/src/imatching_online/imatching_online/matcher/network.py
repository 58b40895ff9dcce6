"""CAPS-like differentiable matcher: coarse global correlation + fine local expectation, in plain torch.

For query pixels in image A the network returns their matched pixels in image B as expectations over
softmax-normalised feature similarities, so the output is sub-pixel and differentiable w.r.t. the weights
(the iMatching upper level back-propagates a reprojection loss through it).

- Features: a small conv encoder to stride 8, a top-down decoder gives L2-normalised coarse features at
  stride 4 and fine features at stride 2.
- Coarse: cosine similarity of the query's coarse descriptor with every coarse cell of B, softmax with
  temperature, expectation of the cell centres -> ``uv_coarse`` and its spread ``std_coarse``.
- Fine: a (2r+1)^2 window of fine-feature samples (spacing = fine stride) centred at the detached coarse
  match; softmax expectation of the offsets -> ``uv``. The window centre is detached (CAPS does the same)
  so the coarse level learns only from its own loss term, and the fine level learns local refinement.
- Confidence: 1 / (1 + std_coarse / coarse_stride): a spread-out or multi-modal coarse distribution
  (repetitive or blank texture) gives a low confidence.

Pixel convention (docs/CONVENTIONS.md): pixel centres at integer (u, v); a feature cell (i, j) at stride
s covers image pixel centre (s·j + (s-1)/2, s·i + (s-1)/2), which is what grid_sample with
align_corners=False does when the image size is a multiple of s. Images must be multiples of 8.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from banet_vo.config_fields import config_from_dict
from torch import nn

STRIDE_COARSE = 4
STRIDE_FINE = 2
SIZE_MULTIPLE = 8


@dataclass(frozen=True)
class MatcherConfig:
    """Sizes of the matcher; the checkpoint stores this as its ``config``."""

    base_channels: int = 24  # encoder width at stride 2 (doubled at 4, x3 at 8)
    coarse_channels: int = 64
    fine_channels: int = 32
    window_radius: int = 4  # fine window: (2r+1)^2 samples, r * STRIDE_FINE px each side
    coarse_temperature: float = 0.05  # softmax temperature on cosine similarity
    fine_temperature: float = 0.05

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"MatcherConfig.{f.name} must be a positive int, got {value!r}")
            if f.type == "float" and (not isinstance(value, int | float) or not value > 0):
                raise ValueError(f"MatcherConfig.{f.name} must be a positive number, got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MatcherConfig:
        return config_from_dict(cls, data, "matcher config")


@dataclass
class MatchOutput:
    """Per query (B, M, ...): fine match ``uv``, ``uv_coarse``, spreads in px, ``confidence`` in (0, 1]."""

    uv: torch.Tensor
    uv_coarse: torch.Tensor
    std_fine: torch.Tensor
    std_coarse: torch.Tensor
    confidence: torch.Tensor


@dataclass
class Features:
    coarse: torch.Tensor  # (B, Cc, H/4, W/4), unit norm along C
    fine: torch.Tensor  # (B, Cf, H/2, W/2), unit norm along C
    size: tuple[int, int]  # image (H, W)


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    groups = 4 if cout % 4 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(groups, cout),
        nn.ReLU(inplace=True),
    )


class Matcher(nn.Module):
    """``features(images)`` once per image, then ``match(feat_a, feat_b, queries)`` per pair."""

    def __init__(self, config: MatcherConfig | None = None) -> None:
        super().__init__()
        self.config = MatcherConfig() if config is None else config
        c = self.config.base_channels
        self.down2 = nn.Sequential(_block(3, c, 2), _block(c, c))
        self.down4 = nn.Sequential(_block(c, 2 * c, 2), _block(2 * c, 2 * c))
        self.down8 = nn.Sequential(_block(2 * c, 3 * c, 2), _block(3 * c, 3 * c), _block(3 * c, 3 * c))
        cc, cf = self.config.coarse_channels, self.config.fine_channels
        self.coarse_head = nn.Sequential(_block(5 * c, cc), nn.Conv2d(cc, cc, 3, padding=1))
        self.fine_head = nn.Sequential(_block(cc + c, cf), nn.Conv2d(cf, cf, 3, padding=1))
        r = self.config.window_radius
        offsets = torch.arange(-r, r + 1, dtype=torch.float32) * STRIDE_FINE
        dv, du = torch.meshgrid(offsets, offsets, indexing="ij")
        self.register_buffer("window_offsets", torch.stack([du, dv], -1).reshape(-1, 2), persistent=False)

    def features(self, images: torch.Tensor) -> Features:
        """images (B, 3, H, W) float in [0, 1] (gray replicated), H and W multiples of 8."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(f"images height and width must be multiples of {SIZE_MULTIPLE}, got {h}x{w}")
        x = (images - 0.45) / 0.25
        f2 = self.down2(x)
        f4 = self.down4(f2)
        f8 = self.down8(f4)
        up = F.interpolate(f8, size=f4.shape[-2:], mode="bilinear", align_corners=False)
        coarse = self.coarse_head(torch.cat([up, f4], 1))
        up = F.interpolate(coarse, size=f2.shape[-2:], mode="bilinear", align_corners=False)
        fine = self.fine_head(torch.cat([up, f2], 1))
        return Features(F.normalize(coarse, dim=1), F.normalize(fine, dim=1), (h, w))

    def match(self, feat_a: Features, feat_b: Features, queries: torch.Tensor) -> MatchOutput:
        """Matches in B of query pixels (B, M, 2) of A."""
        check_queries(feat_a.coarse, feat_b.coarse, queries)
        queries = queries.to(feat_a.coarse.dtype)
        desc_c = sample_features(feat_a.coarse, queries, feat_a.size)  # (B, M, C)
        desc_f = sample_features(feat_a.fine, queries, feat_a.size)
        _, uv_c, var_c = coarse_expectation(
            desc_c, feat_b.coarse, STRIDE_COARSE, self.config.coarse_temperature
        )
        b = queries.shape[0]

        centre = uv_c.detach()
        pts = centre.unsqueeze(2) + self.window_offsets.to(centre.dtype)  # (B, M, K, 2)
        m, k = pts.shape[1], pts.shape[2]
        win = sample_features(feat_b.fine, pts.reshape(b, m * k, 2), feat_b.size).reshape(b, m, k, -1)
        prob_f = (torch.einsum("bmc,bmkc->bmk", desc_f, win) / self.config.fine_temperature).softmax(-1)
        offsets = self.window_offsets.to(centre.dtype)
        mean_off = prob_f @ offsets
        var_f = (prob_f @ offsets.square() - mean_off.square()).sum(-1).clamp_min(1e-6)
        std_c = var_c.sqrt()
        return MatchOutput(
            uv=centre + mean_off,
            uv_coarse=uv_c,
            std_fine=var_f.sqrt(),
            std_coarse=std_c,
            confidence=1.0 / (1.0 + std_c.detach() / STRIDE_COARSE),
        )

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor, queries: torch.Tensor) -> MatchOutput:
        return self.match(self.features(image_a), self.features(image_b), queries)


def cell_centres(h: int, w: int, stride: int, device=None, dtype=None) -> torch.Tensor:
    """(h*w, 2) image pixel (u, v) of every cell centre of a stride-``stride`` map, row-major."""
    v, u = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype),
        torch.arange(w, device=device, dtype=dtype),
        indexing="ij",
    )
    half = (stride - 1) / 2
    return torch.stack([u * stride + half, v * stride + half], -1).reshape(-1, 2)


def check_queries(coarse_a: torch.Tensor, coarse_b: torch.Tensor, queries: torch.Tensor) -> None:
    """The matchers' input contract: queries (B, M, 2) for a batch of B image pairs."""
    if queries.ndim != 3 or queries.shape[-1] != 2 or queries.shape[0] != coarse_a.shape[0]:
        raise ValueError(
            f"queries must have shape (B, M, 2) with B={coarse_a.shape[0]}, got {tuple(queries.shape)}"
        )
    if coarse_b.shape[0] != coarse_a.shape[0]:
        raise ValueError("feat_a and feat_b must have the same batch size")


def coarse_expectation(
    desc: torch.Tensor, coarse_b: torch.Tensor, stride: int, temperature: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft match of descriptors (B, M, C) over every cell of B's coarse map (B, C, h, w): the cell
    probabilities (B, M, h*w), their expected pixel (B, M, 2) and its variance (B, M), summed over u, v."""
    b, c, hc, wc = coarse_b.shape
    prob = (torch.einsum("bmc,bcn->bmn", desc, coarse_b.reshape(b, c, hc * wc)) / temperature).softmax(-1)
    centres = cell_centres(hc, wc, stride, coarse_b.device, coarse_b.dtype)  # (N, 2)
    uv = prob @ centres
    var = (prob @ centres.square() - uv.square()).sum(-1).clamp_min(1e-6)
    return prob, uv, var


def sample_features(feat: torch.Tensor, uv: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear features (B, M, C) at image pixels uv (B, M, 2) of an image of ``size`` (H, W).

    Points outside get border values (padding_mode="border") so gradients stay finite.
    """
    h, w = size
    grid = torch.stack([(uv[..., 0] + 0.5) / w * 2 - 1, (uv[..., 1] + 0.5) / h * 2 - 1], -1)
    out = F.grid_sample(feat, grid.unsqueeze(1), mode="bilinear", padding_mode="border", align_corners=False)
    return out.squeeze(2).transpose(1, 2)
