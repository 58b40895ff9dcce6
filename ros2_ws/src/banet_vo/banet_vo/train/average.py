"""Uniform average of the weights of several BA-Net checkpoints of one run (stochastic weight averaging,
Izmailov et al. 2018): one-source batches make consecutive checkpoints of a mixed-data fine-tune swing,
and the average of a few sits between them.

    python -m banet_vo.train.average OUT.safetensors IN1.safetensors IN2.safetensors ...
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from banet_vo.model.checkpoint import load_checkpoint, save_checkpoint

__all__ = ["average_checkpoints"]


def average_checkpoints(paths: Sequence[str | Path], out: str | Path) -> Path:
    """Write the mean of the weights of ``paths`` (same model config, else ValueError) to ``out``; the
    metadata names the inputs and their steps."""
    if len(paths) < 1:
        raise ValueError("average_checkpoints needs at least one checkpoint")
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    config = None
    last_meta: dict = {}
    steps = []
    for path in paths:
        state, cfg, meta = load_checkpoint(path, expected_kind="banet")
        if config is None:
            config = cfg
        elif cfg != config:
            raise ValueError(f"{path}: model config differs from {paths[0]}'s")
        if total and set(state) != set(total):
            raise ValueError(f"{path}: other weights than {paths[0]}")
        for key, value in state.items():
            total[key] = total.get(key, 0) + value.double()
            dtypes[key] = value.dtype
        steps.append(meta.get("steps"))
        last_meta = meta
    mean = {k: (v / len(paths)).to(dtypes[k]) for k, v in total.items()}
    meta = {**last_meta, "averaged_from": [str(p) for p in paths], "averaged_steps": steps}
    return save_checkpoint(out, mean, "banet", config, meta)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    print(average_checkpoints(sys.argv[2:], sys.argv[1]))
