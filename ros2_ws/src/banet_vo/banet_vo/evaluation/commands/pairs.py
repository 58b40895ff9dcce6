"""`banet-vo-eval pairs`: two-view pose and depth errors of BA-Net, its ablations and the baselines.

The evaluation itself is banet_vo.evaluation.pairs; this module parses the flags and prints the tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from banet_vo.evaluation.pairs import (
    METHODS,
    PairEstimator,
    build_sets,
    choose_lambdas,
    evaluate_sets,
    format_results,
    load_model,
)
from banet_vo.evaluation.report import write_json


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "pairs",
        help="two-view pose/depth errors of BA-Net, its ablations, photometric and geometric BA",
        description=(
            "Evaluates METHODS on image pairs: the held-out synthetic test set (rendered once into a cache; "
            "scene seeds never trained on) or real sequences (any directory banet_vo.data.open_sequence "
            "reads; depth metrics only where it has depth). Prints a table; --json writes everything."
        ),
    )
    parser.add_argument("--model", required=True, help="BA-Net checkpoint (.safetensors)")
    parser.add_argument(
        "--sequence",
        action="append",
        default=[],
        help="real sequence directory (repeatable); without it the held-out synthetic test set is used",
    )
    parser.add_argument("--strides", default="1", help="frame offsets for --sequence pairs, comma separated")
    parser.add_argument(
        "--frames",
        help="FIRST-LAST: only --sequence pairs whose frames both lie at these positions (0-based, "
        "inclusive; hololens_000_003-199 starts at frame 3, so frames 150-199 are positions 147-196)",
    )
    parser.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma separated subset of {', '.join(METHODS)}"
    )
    parser.add_argument(
        "--cache-dir", default="runs/cache", help="where the rendered test/validation sets are cached"
    )
    parser.add_argument(
        "--fixed-lambda", type=float, help="λ of the ablations (default: swept on validation)"
    )
    parser.add_argument("--photometric-lambda", type=float, help="λ of photometric BA (default: swept)")
    parser.add_argument(
        "--validation",
        action="store_true",
        help="without --sequence: the synthetic validation scenes (seeds 50000-50003, strides 1 and 2) "
        "instead of the held-out test set",
    )
    parser.add_argument("--max-pairs", type=int, help="evaluate only the first N pairs of each set")
    parser.add_argument("--batch-size", type=int, default=4, help="pairs per forward pass")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--json", type=Path, help="write all results (and the λ sweep) to this JSON file")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ValueError(f"--methods names no method; choose from {', '.join(METHODS)}")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"--methods: unknown method {m!r}; choose from {METHODS}")
    for flag, value in (("--threads", args.threads), ("--batch-size", args.batch_size)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    torch.set_num_threads(args.threads)
    try:
        strides = [int(s) for s in args.strides.split(",")]
    except ValueError:
        raise ValueError(f"--strides must be comma separated ints, got {args.strides!r}") from None
    frames = None
    if args.frames:
        try:
            first, last = (int(v) for v in args.frames.split("-"))
        except ValueError:
            raise ValueError(f"--frames must be FIRST-LAST, got {args.frames!r}") from None
        frames = (first, last)
    estimator = PairEstimator(load_model(args.model))
    config = estimator.config
    lambdas, sweep = choose_lambdas(
        estimator, methods, args.cache_dir, args.fixed_lambda, args.photometric_lambda
    )
    sets = build_sets(args.sequence, strides, config, args.cache_dir, frames, args.validation)
    results = evaluate_sets(estimator, sets, methods, lambdas, args.batch_size, args.max_pairs)
    for name, per_method in results.items():
        print(format_results(name, per_method))
        print()
    if args.json:
        report = {"model": str(args.model), "methods": methods, "lambda": lambdas, "lambda_sweep": sweep}
        report["sets"] = results
        write_json(args.json, report)
    return 0
