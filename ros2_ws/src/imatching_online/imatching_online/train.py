"""`imatching-train`: supervised pretraining of the matcher on the synthetic world.

Renders (or loads) pairs with dense ground-truth correspondences, trains with the CAPS-style loss,
evaluates MMA on held-out synthetic scenes (a different render seed) and writes the weights in the
shared checkpoint format (kind "matcher") with data, steps, time, hardware and metrics in its metadata.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from banet_vo.provenance import cpu_model

from imatching_online.matcher.io import save_matcher
from imatching_online.matcher.network import Matcher, MatcherConfig
from imatching_online.matcher.synthetic_pairs import PairSet, render_pairs
from imatching_online.matcher.train import TrainSettings, train


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imatching-train", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="output checkpoint (.safetensors)")
    p.add_argument(
        "--work-dir", type=Path, default=Path("runs/matcher"), help="rendered pairs and resumable state"
    )
    p.add_argument("--width", type=int, default=192, help="training image width (multiple of 8)")
    p.add_argument("--height", type=int, default=128, help="training image height (multiple of 8)")
    p.add_argument("--scenes", type=int, default=80, help="synthetic scenes rendered for training")
    p.add_argument("--val-scenes", type=int, default=6, help="held-out scenes (different seed) for MMA")
    p.add_argument("--frames", type=int, default=8, help="frames rendered per scene")
    p.add_argument("--steps", type=int, default=3000, help="maximum optimiser steps")
    p.add_argument(
        "--minutes", type=float, default=35.0, help="wall-clock budget; the LR schedule ends with it"
    )
    p.add_argument("--batch-size", type=int, default=6, help="pairs per step")
    p.add_argument("--queries", type=int, default=160, help="query pixels per pair and step")
    p.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate (cosine decay)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (shared machines: keep 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of rendering, sampling and initialisation")
    p.add_argument("--resume", action="store_true", help="continue from WORK_DIR/state.pt if present")
    p.add_argument(
        "--export-only", action="store_true", help="only write --out from WORK_DIR/state.pt (no training)"
    )
    return p


def _pairs(path: Path, scenes: int, frames: int, width: int, height: int, seed: int) -> PairSet:
    if path.is_file():
        pairs = PairSet.load(path)
        if pairs.images_a.shape[1:3] == (height, width):
            print(f"loaded {len(pairs)} pairs from {path}", file=sys.stderr)
            return pairs
    pairs = render_pairs(scenes, frames, width, height, seed=seed)
    pairs.save(path)
    return pairs


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("width", "height"):
        if getattr(args, name) % 8:
            print(f"imatching-train: error: --{name} must be a multiple of 8", file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    state_path = args.work_dir / "state.pt"
    t0 = time.perf_counter()
    tag = f"{args.width}x{args.height}"
    train_pairs = _pairs(
        args.work_dir / f"train_{tag}_s{args.seed}.npz",
        args.scenes,
        args.frames,
        args.width,
        args.height,
        args.seed,
    )
    val_pairs = _pairs(
        args.work_dir / f"val_{tag}_s{args.seed}.npz",
        args.val_scenes,
        args.frames,
        args.width,
        args.height,
        args.seed + 1000,
    )
    render_s = time.perf_counter() - t0

    config = MatcherConfig()
    resume = None
    if (args.resume or args.export_only) and state_path.is_file():
        resume = torch.load(state_path, weights_only=True)
        config = MatcherConfig.from_dict(resume["config"])
    elif args.export_only:
        print(f"imatching-train: error: no training state at {state_path}", file=sys.stderr)
        return 2
    matcher = Matcher(config)
    settings = TrainSettings(
        steps=args.steps,
        minutes=args.minutes,
        batch_size=args.batch_size,
        queries=args.queries,
        lr=args.lr,
        seed=args.seed,
    )
    if args.export_only:
        matcher.load_state_dict(resume["model"])
        history, step, elapsed = resume["history"], resume["step"], resume["elapsed_s"]
    else:
        state = train(matcher, train_pairs, val_pairs, settings, state_path, resume)
        history, step, elapsed = state.history, state.step, state.elapsed_s
    meta = {
        "trained_by": "imatching-train (supervised, synthetic ground truth)",
        "data": {
            "source": "banet_vo.data.synthetic (rooms: hand-held; streets: driving)",
            "train_pairs": len(train_pairs),
            "val_pairs": len(val_pairs),
            "scenes": args.scenes,
            "val_scenes": args.val_scenes,
            "image_size": [args.width, args.height],
            "seed": args.seed,
        },
        "settings": settings.__dict__,
        "steps": step,
        "train_time_s": round(elapsed, 1),
        "render_time_s": round(render_s, 1),
        "hardware": {"cpu": cpu_model(), "torch_threads": args.threads, "device": "cpu"},
        "torch": torch.__version__,
        "metrics_synthetic_val": history[-1] if history else {},
        "history": history,
    }
    save_matcher(args.out, matcher, meta)
    print(
        f"wrote {args.out} after {step} steps; val: {json.dumps(meta['metrics_synthetic_val'])}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
