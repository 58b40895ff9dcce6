"""`banet-vo-eval depth-curve CLIP [CLIP ...] --model M`: fit a curve for BA-Net's depth on recordings with
ground-truth poses and write it beside the model (banet_vo.evaluation.depth_curve)."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from banet_vo.evaluation.depth_curve import DIRECTIONS, FORMS, refuse_validation


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "depth-curve",
        help="fit BA-Net's depth curve (a gain or a power law) on recordings with ground-truth poses",
        description=(
            "Runs the xfeat pipeline on each recording, puts its map in metres with the ground-truth "
            "poses and fits BA-Net's depth to it: d' = exp(a) d (--form gain, the one that carried from "
            "one drive of a car to another) or d' = exp(a) d^b (power). The curve is written beside the "
            "model as <model>.depth_calibration.json; run the node with that model and "
            "depth_calibration:=true (docs/frontend.md, step 6)."
        ),
    )
    parser.add_argument(
        "clips",
        nargs="+",
        metavar="CLIP",
        help="sequence folders with ground-truth poses (ours, KITTI, TUM, EuRoC, HoloLens, TartanAir "
        "layouts), or clip names under --data (kitti07, tartanair); the shipped KITTI 07 clip is fitted "
        "on its frames 0-119 (120-159 are held out)",
    )
    parser.add_argument("--model", type=Path, required=True, help="BA-Net checkpoint the curve is for")
    parser.add_argument(
        "--form",
        choices=FORMS,
        default="gain",
        help="gain: d' = exp(a) d, one factor for every depth (default); power: d' = exp(a) d^b",
    )
    parser.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default="inverse",
        help="power only: inverse fits BA-Net's depth on the true one and inverts it (default); forward "
        "fits the true depth on BA-Net's",
    )
    parser.add_argument("--seed", type=int, default=0, help="tracking_ransac_seed of the runs (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--max-frames", type=int, help="first N frames of each recording")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data"),
        help="folder of named clips (default ../shared/data, relative to the working directory)",
    )
    parser.add_argument("--out", type=Path, help="JSON to write (default: beside --model)")
    parser.add_argument("--dry-run", action="store_true", help="fit and print, write nothing")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace, command: str | None = None) -> int:
    """Fit and write; 2 for bad arguments (a validation clip, a missing model, an unreadable recording), 1
    when no curve fits."""
    try:
        for token in args.clips:
            refuse_validation(token, token)
    except ValueError as err:
        print(f"depth-curve: {err}", file=sys.stderr)
        return 2
    if not args.model.is_file():
        print(f"depth-curve: model {args.model} not found", file=sys.stderr)
        return 2

    import torch

    from banet_vo.evaluation.depth_curve import fit_gain, fit_power_law, ratio_table, record_clip
    from banet_vo.odometry import BANetEstimator
    from banet_vo.odometry.depth_calibration import DepthCalibration, path_beside
    from banet_vo.provenance import code_version

    torch.set_num_threads(args.threads)
    estimator = BANetEstimator.from_checkpoint(args.model, device="cpu")
    estimator.depth_calibration = None  # recorded on BA-Net's own depth
    try:
        samples = [record_clip(c, args.data, estimator, args.seed, args.max_frames) for c in args.clips]
    except ValueError as err:  # a folder no reader understands, or without ground-truth poses
        print(f"depth-curve: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:  # a named clip not under --data (a relative path: from where it runs)
        print(
            f"depth-curve: {err} (named clips are looked up under --data, now {args.data})", file=sys.stderr
        )
        return 2
    try:
        a, b = (fit_gain(samples), 1.0) if args.form == "gain" else fit_power_law(samples, args.direction)
    except ValueError as err:
        print(f"depth-curve: {err}", file=sys.stderr)
        print(ratio_table(samples, DepthCalibration(0.0, 1.0)))
        return 1
    calibration = DepthCalibration(
        a,
        b,
        {
            "clips": list(args.clips),
            "frames": {s.name: list(s.frames) for s in samples if s.frames is not None},
            "landmarks": {s.name: len(s.d) for s in samples},
            "keyframes_used": {s.name: s.keyframes_used for s in samples},
            "keyframes_left_out": {s.name: s.keyframes_left_out for s in samples},
            "model": args.model.name,
            "seed": args.seed,
            "form": args.form,
            "direction": args.direction if args.form == "power" else None,
            "code": code_version(),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command or "banet-vo-eval depth-curve " + " ".join(sys.argv[2:]),
        },
    )
    print(f"fit: {calibration.describe()} (a = {a:.4f}, b = {b:.4f})")
    print(ratio_table(samples, calibration))
    if not args.dry_run:
        out = args.out or path_beside(args.model)
        out.write_text(calibration.to_json())
        print(f"written: {out}")
    return 0
