"""Damping predictor (paper §4.3, Fig. 4b): four fully connected layers map the mean absolute residual
per feature channel to the LM damping λ (one λ, or with ``outputs=2`` one for the pose and one for the
depth coefficients). This replaces LM's accept/reject if-else, so the whole BA is
differentiable. Softplus (not the paper's ReLU) keeps λ strictly positive and its gradient alive.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DampingMLP", "mean_abs_residual", "split_shared_damping"]

# State-dict keys of DampingMLP's output layer (net[6], the last Linear) wherever the MLPs sit.
_OUTPUT_LAYER_KEY = re.compile(r"(^|\.)damping\.\d+\.net\.6\.(weight|bias)$")


def mean_abs_residual(residual: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Residuals (B, N, C) and valid mask (B, N) → mean |e| per channel over valid pixels, (B, C)."""
    weight = mask.to(residual.dtype)[..., None]
    count = weight.sum(dim=1).clamp_min(1.0)
    return (residual.abs() * weight).sum(dim=1) / count


class DampingMLP(nn.Module):
    """(B, C) mean |residual| per channel → λ > 0: (B,) with ``outputs=1``, (B, 2) [pose, depth] with 2."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        initial_lambda: float = 0.1,
        min_lambda: float = 1e-4,
        outputs: int = 1,
    ) -> None:
        super().__init__()
        if outputs not in (1, 2):
            raise ValueError(f"DampingMLP outputs must be 1 (shared λ) or 2 (pose, depth), got {outputs}")
        self.outputs = outputs
        if not initial_lambda > min_lambda > 0:
            raise ValueError(
                f"DampingMLP needs initial_lambda > min_lambda > 0, got {initial_lambda} and {min_lambda}"
            )
        self.channels = channels
        self.min_lambda = min_lambda
        self.net = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, outputs),
        )
        # Start at λ ≈ initial_lambda whatever the input, and let training shape the response.
        last = self.net[-1]
        nn.init.normal_(last.weight, std=1e-3)
        nn.init.constant_(last.bias, math.log(math.expm1(initial_lambda - min_lambda)))

    def forward(self, mean_abs: torch.Tensor) -> torch.Tensor:
        if mean_abs.dim() != 2 or mean_abs.shape[-1] != self.channels:
            raise ValueError(f"mean_abs must have shape (B, {self.channels}), got {tuple(mean_abs.shape)}")
        # The MLP's weights set its dtype; the BA may run in float64 (tests).
        out = self.net(mean_abs.to(self.net[0].weight.dtype)).to(mean_abs.dtype)
        if self.outputs == 1:
            out = out.squeeze(-1)
        return F.softplus(out) + self.min_lambda


def split_shared_damping(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights of shared-λ damping MLPs turned into pose/depth ones that start out identical: the output
    layer's single row is duplicated. Other tensors pass through."""
    out = dict(state_dict)
    for key, value in state_dict.items():
        if _OUTPUT_LAYER_KEY.search(key):
            if value.shape[0] != 1:
                raise ValueError(f"split_shared_damping: {key} has {value.shape[0]} outputs, expected 1")
            out[key] = torch.cat([value, value])
    return out
