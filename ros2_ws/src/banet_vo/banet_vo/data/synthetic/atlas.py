"""Mip-mapped texture atlas with trilinear and anisotropic filtering, vectorised in torch.

Textures are stored in linear light (display values ** 2.2) so that the mip levels average radiance, as a
camera pixel does. Texture coordinates are in "texture units": 1.0 spans one whole texture; the texel
centre of texel i at level l sits at (i + 0.5) / S_l (the same centre convention as our pixels).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

GAMMA = 2.2
WRAP_REPEAT = 0  # periodic textures (procedural)
WRAP_MIRROR = 1  # photos: mirrored repeat is seamless for any image


def to_linear(display: np.ndarray | torch.Tensor):
    return display**GAMMA


def to_display(linear: torch.Tensor) -> torch.Tensor:
    return linear.clamp(0.0, 1.0) ** (1.0 / GAMMA)


class TextureAtlas:
    """All textures of a scene (same power-of-two size S) and their mip pyramids in one flat buffer.

    Every level is stored with a one-texel border (wrapped for periodic textures, replicated for
    mirrored ones), so a bilinear tap never needs index wrapping: coordinates are folded into one
    period first, which is exact for both wrap modes.
    """

    def __init__(self, textures: list[np.ndarray], wraps: list[int]) -> None:
        if not textures:
            raise ValueError("textures must not be empty")
        if len(wraps) != len(textures):
            raise ValueError(f"wraps has {len(wraps)} entries for {len(textures)} textures")
        size = textures[0].shape[0]
        if size < 2 or size & (size - 1):
            raise ValueError(f"texture size must be a power of two, got {size}")
        for i, tex in enumerate(textures):
            if tex.shape != (size, size, 3):
                raise ValueError(f"texture {i} has shape {tex.shape}, expected {(size, size, 3)}")
        self.size = size
        self.levels = int(math.log2(size)) + 1
        self.count = len(textures)
        self.wraps = torch.tensor(wraps, dtype=torch.long)
        mirror = self.wraps == WRAP_MIRROR
        level = torch.from_numpy(to_linear(np.stack(textures).astype(np.float32))).permute(0, 3, 1, 2)
        chunks, offsets, offset = [], [], 0
        for _ in range(self.levels):
            padded = torch.where(
                mirror[:, None, None, None],
                F.pad(level, (1, 1, 1, 1), mode="replicate"),
                F.pad(level, (1, 1, 1, 1), mode="circular"),
            )
            offsets.append(offset)
            chunks.append(padded.permute(0, 2, 3, 1).reshape(-1, 3))
            offset += chunks[-1].shape[0]
            if level.shape[-1] > 1:  # 2x2 box filter: exact for both wrap modes since S is even
                level = F.avg_pool2d(level, 2)
        self.buffer = torch.cat(chunks).contiguous()
        self.level_offsets = torch.tensor(offsets, dtype=torch.long)
        self.level_sizes = torch.tensor([size >> k for k in range(self.levels)], dtype=torch.long)

    def _fold(self, tex: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """uv folded into one period: [0, 1) for repeat, [0, 1] for mirrored repeat."""
        repeated = uv - torch.floor(uv)
        twice = uv - 2.0 * torch.floor(0.5 * uv)
        mirrored = torch.where(twice > 1.0, 2.0 - twice, twice)
        return torch.where((self.wraps[tex] == WRAP_MIRROR).unsqueeze(1), mirrored, repeated)

    def _bilinear(self, tex: torch.Tensor, uv: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """uv already folded; level (P,) long."""
        size = self.level_sizes[level]
        padded = size + 2
        xy = uv * size.unsqueeze(1).to(uv.dtype) - 0.5
        corner = torch.floor(xy)
        frac = xy - corner
        corner = corner.long() + 1  # index in the bordered level
        i00 = self.level_offsets[level] + (tex * padded + corner[:, 1]) * padded + corner[:, 0]
        taps = self.buffer[torch.stack([i00, i00 + 1, i00 + padded, i00 + padded + 1])]  # (4, P, 3)
        fx, fy = frac[:, :1], frac[:, 1:]
        return (taps[0] + (taps[1] - taps[0]) * fx) * (1 - fy) + (taps[2] + (taps[3] - taps[2]) * fx) * fy

    def sample(self, tex: torch.Tensor, uv: torch.Tensor, lod: torch.Tensor) -> torch.Tensor:
        """Trilinear lookup: tex (P,) long, uv (P, 2) texture units, lod (P,) level of detail -> (P, 3)."""
        lod = lod.clamp(0.0, self.levels - 1.0)
        l0 = torch.floor(lod)
        w = (lod - l0).unsqueeze(1)
        l0 = l0.long()
        l1 = (l0 + 1).clamp(max=self.levels - 1)
        folded = self._fold(tex, uv)
        both = self._bilinear(tex.repeat(2), folded.repeat(2, 1), torch.cat([l0, l1]))
        n = tex.shape[0]
        return both[:n] + (both[n:] - both[:n]) * w

    def sample_footprint(
        self,
        tex: torch.Tensor,
        uv: torch.Tensor,
        duv_dx: torch.Tensor,
        duv_dy: torch.Tensor,
        max_aniso: int = 4,
    ) -> torch.Tensor:
        """Filtered lookup over a pixel's footprint (the Jacobian of uv w.r.t. the pixel, in texture units).

        Anisotropic: up to `max_aniso` trilinear probes spread along the footprint's long axis, each at the
        level of the short axis, so grazing surfaces (the road) neither alias nor blur to mush.
        """
        if max_aniso < 1:
            raise ValueError(f"max_aniso must be >= 1, got {max_aniso}")
        len_x = duv_dx.norm(dim=1) * self.size
        len_y = duv_dy.norm(dim=1) * self.size
        x_major = len_x >= len_y
        major = torch.where(x_major, len_x, len_y)
        minor = torch.where(x_major, len_y, len_x).clamp(min=1e-8)
        probes = torch.ceil(major / minor).clamp(1, max_aniso)
        lod = torch.log2(torch.maximum(major / probes, minor).clamp(min=1e-8))
        axis = torch.where(x_major.unsqueeze(1), duv_dx, duv_dy)
        result = torch.zeros(uv.shape[0], 3, dtype=self.buffer.dtype)
        for k in range(int(probes.max().item()) if probes.numel() else 0):
            active = torch.nonzero(probes > k).squeeze(1)
            n = probes[active]
            offset = ((k + 0.5) / n - 0.5).unsqueeze(1)
            value = self.sample(tex[active], uv[active] + offset * axis[active], lod[active])
            result.index_add_(0, active, value / n.unsqueeze(1))
        return result
