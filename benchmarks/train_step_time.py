"""Seconds per training step of a BA-Net recipe by batch size, through the real training loop.

What a GPU training run can afford is steps x batch in the time it is lent: this measures both for the
recipe of `train_small_xfeat.yaml` (XFeat encoder, keep_aspect, bf16 autocast on CUDA) on a few rendered
indoor frames at the model's input size. The step's cost does not depend on the images' content, so the
figures hold for the real-data mix too (its KITTI pairs add the photometric term: slightly more).

    .venv/bin/python -m benchmarks.train_step_time --device cuda --batches 4,16,64 --out train_step_time.md

The first `--warmup` steps (kernel selection, allocator) are not timed; the median of the rest is reported.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml
from banet_vo.provenance import code_version, machine_description
from banet_vo.train.config import TrainConfig
from banet_vo.train.data import CachedPairs, make_specs, render_cache
from banet_vo.train.loop import train

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = ROOT / "ros2_ws/src/banet_vo/config/train_small_xfeat.yaml"


def recipe_config(path: Path, batch: int, steps: int, threads: int) -> TrainConfig:
    values = yaml.safe_load(path.read_text())
    values.update(
        data={"scenes": [], "sequences_per_scene": 0},  # the pairs are handed to train() directly
        batch_size=batch,
        steps=steps,
        max_wall_s=0,
        log_every=1,
        checkpoint_every_s=1e9,
        num_threads=threads,
    )
    return TrainConfig.from_dict(values)


def step_times(log_csv: Path, warmup: int) -> list[float]:
    with open(log_csv) as f:
        walls = [float(row["wall_s"]) for row in csv.DictReader(f)]
    return list(np.diff(walls[warmup:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--batches", default="4,16,64", help="comma-separated batch sizes")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per batch size")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device")
    if args.device == "cpu":  # the training loop picks CUDA whenever it is there; CUDA is not initialised yet
        os.environ["CUDA_VISIBLE_DEVICES"] = ""

    batches = [int(b) for b in args.batches.split(",")]
    probe = recipe_config(args.recipe, 1, 1, args.threads).model_config()
    size = (probe.image_width, probe.image_height)
    # Enough pairs for the largest batch without repeats: 8 sequences of 10 frames, strides 1 and 2.
    sequences = max(1, -(-max(batches) // 17))
    cache = render_cache(make_specs(["indoor"], sequences, 0, 10, size), progress=False)
    dataset = CachedPairs(cache, {"indoor": [1, 2]})
    rows = []
    for batch in batches:
        config = recipe_config(args.recipe, batch, args.warmup + args.steps + 1, args.threads)
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with tempfile.TemporaryDirectory() as run:
            train(config, run, dataset=dataset, progress=False, overwrite=True)
            times = step_times(Path(run) / "log.csv", args.warmup)
        median = float(np.median(times))
        peak = torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None
        rows.append((batch, median, batch / median, peak))
        print(f"batch {batch}: {median:.3f} s/step, {batch / median:.1f} pairs/s", flush=True)

    lines = [
        "# Training step time",
        "",
        f"Recipe `{args.recipe.name}` at {size[0]}x{size[1]}, device {args.device}, {args.steps} timed steps "
        f"after {args.warmup} warm-up; {datetime.date.today()}, code {code_version()}, "
        f"{machine_description()}.",
        f"Command: `python -m benchmarks.train_step_time --device {args.device} --batches {args.batches}`",
        "",
        "| batch | s/step (median) | pairs/s | peak CUDA memory MiB |",
        "|---|---|---|---|",
    ]
    lines += [f"| {b} | {m:.3f} | {r:.1f} | {'-' if p is None else f'{p:.0f}'} |" for b, m, r, p in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
