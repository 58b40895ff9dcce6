"""`banet-vo-train CONFIG --out DIR`: train BA-Net from a YAML config (see docs/training.md).

Single process: ``banet-vo-train config/train_small.yaml --out runs/small``. Several GPUs or machines:
``torchrun --nproc-per-node 4 -m banet_vo.train.cli config/train_paper.yaml --out runs/paper`` (DDP; each
process takes ``batch_size`` pairs per step). ``--resume`` continues from the newest consistent checkpoint
unit in DIR/checkpoints (``--lr`` / ``--plateau-patience`` then apply to the loaded optimiser; a change of
data, seed, batch size or model is refused); a new run into a DIR that holds one needs ``--overwrite``.
Ctrl-C / SIGTERM stop after the current step with a checkpoint (exit status 130 / 143); a second one stops
at once (the same status, no checkpoint). Exit status 2: bad input (one line on stderr); 1: the training
diverged (non-finite weights: no checkpoint written).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from banet_vo.train.config import load_train_config

# Shell convention 128 + signal number: a run stopped by a signal did not finish, even with a checkpoint.
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="banet-vo-train",
        description="Train BA-Net (supervised: quaternion rotation, metric translation and berHu depth "
        "losses; Adam, learning rate halved on plateaus) on pre-rendered synthetic scenes and real "
        "sequences. Writes DIR/log.csv, DIR/checkpoints/step-N/ (weights + optimiser state, written as one "
        "unit; the newest two are kept) and DIR/last.safetensors (the newest weights). Run under torchrun "
        "for DDP. Ctrl-C or SIGTERM: checkpoint, then exit 130 / 143.",
    )
    parser.add_argument("config", help="training YAML (e.g. ros2_ws/src/banet_vo/config/train_small.yaml)")
    parser.add_argument("--out", required=True, help="run directory for logs and checkpoints (created)")
    run = parser.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    run.add_argument(
        "--overwrite", action="store_true", help="replace the run already in --out (default: refuse)"
    )
    parser.add_argument("--steps", type=int, help="override the config's total number of steps")
    parser.add_argument("--max-wall-s", type=float, help="override the config's training time limit, s")
    parser.add_argument("--batch-size", type=int, help="override the config's per-process batch size")
    parser.add_argument("--lr", type=float, help="override the config's learning rate")
    parser.add_argument(
        "--lr-multiplier",
        action="append",
        default=[],
        metavar="PREFIX=FACTOR",
        help="learning-rate factor for parameters whose names start with PREFIX (repeatable)",
    )
    parser.add_argument("--init-weights", help="start from the weights of this BA-Net checkpoint")
    parser.add_argument(
        "--init-skip",
        action="append",
        default=[],
        metavar="PREFIX",
        help="with --init-weights: keep parameters whose names start with PREFIX at their fresh "
        "initialisation (repeatable; e.g. decoder.depth_head when changing the depth activation)",
    )
    parser.add_argument("--plateau-patience", type=int, help="override the config's plateau patience")
    parser.add_argument("--render-only", action="store_true", help="render the data cache and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr)
    overrides = {}
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.max_wall_s is not None:
        overrides["max_wall_s"] = args.max_wall_s
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    if args.lr is not None:
        overrides["lr"] = args.lr
    if args.init_weights:
        overrides["init_weights"] = args.init_weights
    if args.init_skip:
        overrides["init_skip"] = list(args.init_skip)
    if args.plateau_patience is not None:
        overrides["plateau_patience"] = args.plateau_patience
    try:
        if args.lr_multiplier:
            pairs = [item.split("=", 1) for item in args.lr_multiplier]
            if any(len(p) != 2 for p in pairs):
                raise ValueError(f"--lr-multiplier must be PREFIX=FACTOR, got {args.lr_multiplier}")
            try:
                overrides["lr_multipliers"] = {prefix: float(factor) for prefix, factor in pairs}
            except ValueError:
                raise ValueError(
                    f"--lr-multiplier factors must be numbers, got {args.lr_multiplier}"
                ) from None
        config = load_train_config(args.config, overrides)
        if args.render_only:
            from banet_vo.train.loop import build_dataset

            _, description = build_dataset(config, progress=not args.quiet)
            print(json.dumps(description, indent=2))
            return 0
        from banet_vo.train.loop import TrainingDivergedError, train

        try:
            result = train(
                config, args.out, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite
            )
        except TrainingDivergedError as exc:  # the run failed; the input was fine
            print(f"banet-vo-train: error: {exc}", file=sys.stderr)
            return 1
    except ValueError as exc:
        print(f"banet-vo-train: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"trained to step {result.step} in {result.wall_s:.0f} s, last loss {result.last_loss:.4f}, "
        f"{result.skipped_steps} skipped steps; checkpoint {result.checkpoint}",
        file=sys.stderr,
    )
    if result.stopped_by in SIGNAL_EXIT:
        print(f"stopped by {result.stopped_by}; --resume continues", file=sys.stderr)
        return SIGNAL_EXIT[result.stopped_by]
    return 0


if __name__ == "__main__":
    sys.exit(main())
