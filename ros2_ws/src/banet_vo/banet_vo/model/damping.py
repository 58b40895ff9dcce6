"""Damping predictor (paper §4.3, Fig. 4b): four fully connected layers map the mean absolute residual
per feature channel to the LM damping λ. This replaces LM's accept/reject if-else, so the whole BA is
differentiable. Softplus (not the paper's ReLU) keeps λ strictly positive and its gradient alive.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DampingMLP", "mean_abs_residual"]


def mean_abs_residual(residual: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Residuals (B, N, C) and valid mask (B, N) → mean |e| per channel over valid pixels, (B, C)."""
    weight = mask.to(residual.dtype)[..., None]
    count = weight.sum(dim=1).clamp_min(1.0)
    return (residual.abs() * weight).sum(dim=1) / count


class DampingMLP(nn.Module):
    """(B, C) mean |residual| per channel → λ (B,) > 0."""

    def __init__(
        self, channels: int, hidden: int, initial_lambda: float = 0.1, min_lambda: float = 1e-4
    ) -> None:
        super().__init__()
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
            nn.Linear(hidden, 1),
        )
        # Start at λ ≈ initial_lambda whatever the input, and let training shape the response.
        last = self.net[-1]
        nn.init.normal_(last.weight, std=1e-3)
        nn.init.constant_(last.bias, math.log(math.expm1(initial_lambda - min_lambda)))

    def forward(self, mean_abs: torch.Tensor) -> torch.Tensor:
        if mean_abs.dim() != 2 or mean_abs.shape[-1] != self.channels:
            raise ValueError(f"mean_abs must have shape (B, {self.channels}), got {tuple(mean_abs.shape)}")
        # The MLP's weights set its dtype; the BA may run in float64 (tests).
        out = self.net(mean_abs.to(self.net[0].weight.dtype)).squeeze(-1).to(mean_abs.dtype)
        return F.softplus(out) + self.min_lambda
