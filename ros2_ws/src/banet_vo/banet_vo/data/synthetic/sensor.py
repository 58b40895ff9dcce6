"""Camera sensor model: auto-exposure with lag and per-frame jitter, Poisson-Gaussian noise, 8-bit output.

Works on linear radiance; the gain multiplies it before noise, the display transfer (gamma 2.2) and
quantisation. Everything is seeded, so a sequence is reproducible bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from banet_vo.data.synthetic.atlas import to_display
from banet_vo.data.synthetic.render import quantize


@dataclass(frozen=True)
class SensorModel:
    """`target`: mean linear brightness auto-exposure aims at; `adaptation`: fraction of the way the gain
    moves towards its target per frame (lag); `exposure_jitter`: std of the smooth log-gain wobble on
    top; `shot_noise` (variance per unit signal) and `read_noise` (std), both in linear units."""

    target: float = 0.2
    adaptation: float = 0.3
    exposure_jitter: float = 0.08
    shot_noise: float = 4e-4
    read_noise: float = 2e-3

    def __post_init__(self) -> None:
        for name in ("target", "adaptation"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        for name in ("exposure_jitter", "shot_noise", "read_noise"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


class Sensor:
    """Stateful over one sequence: call `expose` once per frame, in order."""

    def __init__(self, model: SensorModel, seed: int, frames: int) -> None:
        self.model = model
        self.seed = seed
        rng = np.random.default_rng([seed, 5])
        k = np.arange(frames, dtype=float)
        wobble = sum(np.sin(2 * np.pi * k / rng.uniform(8, 40) + rng.uniform(0, 2 * np.pi)) for _ in range(3))
        self.jitter = np.exp(model.exposure_jitter * wobble / np.sqrt(1.5))
        self.gain: float | None = None
        self.frame = 0

    def expose(self, radiance: torch.Tensor) -> tuple[np.ndarray, float]:
        """Linear radiance (H, W, 3) -> (uint8 image, gain used)."""
        if self.frame >= len(self.jitter):
            raise ValueError(f"sensor was set up for {len(self.jitter)} frames")
        wanted = self.model.target / max(float(radiance.mean()), 1e-6)
        self.gain = wanted if self.gain is None else self.gain * (wanted / self.gain) ** self.model.adaptation
        gain = self.gain * float(self.jitter[self.frame])
        signal = (radiance * gain).clamp(0.0, 1.0)
        if self.model.shot_noise > 0 or self.model.read_noise > 0:
            generator = torch.Generator().manual_seed(
                int(np.random.SeedSequence([self.seed, 6, self.frame]).generate_state(1)[0])
            )
            sigma = (self.model.shot_noise * signal + self.model.read_noise**2).sqrt()
            signal = signal + sigma * torch.randn(signal.shape, generator=generator)
        self.frame += 1
        return quantize(to_display(signal)), gain
