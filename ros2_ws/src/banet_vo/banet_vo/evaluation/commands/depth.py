"""`banet-vo-eval depth PRED GT [PRED GT ...]`: Eigen depth metrics per image and their mean."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from banet_vo.evaluation.depth import (
    METRIC_NAMES,
    depth_metrics,
    load_depth,
    mean_depth_metrics,
    resize_depth,
)
from banet_vo.evaluation.report import format_table, write_json


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "depth",
        help="depth metrics (abs rel, sq rel, RMSE, RMSE log, scale-inv. RMSE log, delta) of predictions",
        description=(
            "Compares predicted depth maps with ground truth, pair by pair (PRED1 GT1 PRED2 GT2 ...), "
            "and prints each pair's metrics and their mean over pairs. Depth is z-depth in metres; .npy "
            "files are read as metres, 16-bit .png files are multiplied by the PNG scale; 0, NaN and "
            "negative ground truth are invalid."
        ),
    )
    parser.add_argument(
        "files", nargs="+", metavar="PRED GT", help="prediction and ground-truth files in pairs"
    )
    parser.add_argument(
        "--min-depth", type=float, help="ignore GT below this and clip predictions up to it, m"
    )
    parser.add_argument(
        "--max-depth", type=float, help="ignore GT above this and clip predictions down to it, m"
    )
    parser.add_argument(
        "--median-scaling",
        action="store_true",
        help="scale each prediction by median(GT)/median(PRED) first (for up-to-scale methods)",
    )
    parser.add_argument(
        "--pred-png-scale",
        type=float,
        default=0.001,
        help="metres per unit of a .png prediction (default: 0.001)",
    )
    parser.add_argument(
        "--gt-png-scale",
        type=float,
        default=0.001,
        help="metres per unit of a .png ground truth (default: 0.001, millimetres; KITTI 1/256, TUM 1/5000)",
    )
    parser.add_argument(
        "--resize",
        choices=("none", "nearest", "linear"),
        default="none",
        help="resize predictions to the GT size (default: none: a size mismatch is an error)",
    )
    parser.add_argument(
        "--plot-dir",
        metavar="DIR",
        help="write colour maps <pair number>_<pred stem>_pred.png and _gt.png for every pair here (the "
        "number, from 1, keeps pairs whose predictions share a file name apart)",
    )
    parser.add_argument("--json", metavar="JSON", help="write per-pair and mean metrics as JSON here")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if len(args.files) % 2:
        raise ValueError(f"files must come in PRED GT pairs, got {len(args.files)} paths")
    if args.resize == "none":
        args.resize = None
    pairs = list(zip(args.files[::2], args.files[1::2], strict=True))
    per_pair, results = [], []
    for index, (pred_path, gt_path) in enumerate(pairs):
        print(f"[{index + 1}/{len(pairs)}] {pred_path} vs {gt_path}", file=sys.stderr)
        pred = load_depth(pred_path, args.pred_png_scale)
        gt = load_depth(gt_path, args.gt_png_scale)
        if pred.shape != gt.shape:
            if args.resize is None:
                raise ValueError(
                    f"pred {pred_path} is {pred.shape} but gt {gt_path} is {gt.shape}; see --resize"
                )
            pred = resize_depth(pred, gt.shape, args.resize)
        metrics = depth_metrics(
            pred, gt, min_depth=args.min_depth, max_depth=args.max_depth, median_scaling=args.median_scaling
        )
        results.append(metrics)
        per_pair.append({"pred": pred_path, "gt": gt_path, **metrics.as_dict()})
        if args.plot_dir:
            from banet_vo.evaluation.plots import plot_depth

            # The pair's number first: predictions of several runs are often all called depth.npy.
            stem = f"{index + 1:0{len(str(len(pairs)))}d}_{Path(pred_path).stem}"
            valid_gt = gt[gt > 0]
            vmin, vmax = (float(valid_gt.min()), float(valid_gt.max())) if valid_gt.size else (None, None)
            plot_depth(pred * metrics.scale, Path(args.plot_dir) / f"{stem}_pred.png", vmin=vmin, vmax=vmax)
            plot_depth(gt, Path(args.plot_dir) / f"{stem}_gt.png", vmin=vmin, vmax=vmax)
    mean = mean_depth_metrics(results)
    if len(pairs) > 1:
        for p in per_pair:
            print(format_table([(n, p[n]) for n in METRIC_NAMES], title=f"{p['pred']} vs {p['gt']}"))
    rows = [(n, getattr(mean, n)) for n in METRIC_NAMES]
    rows += [("valid pixels", mean.n_valid), ("coverage", mean.coverage)]
    if args.median_scaling:
        rows.append(("median scale (median over pairs)", mean.scale))
    print(format_table(rows, title=f"depth: mean over {len(pairs)} pair(s)"))
    if args.json:
        path = write_json(args.json, {"pairs": per_pair, "mean": mean.as_dict()})
        print(f"wrote {path}", file=sys.stderr)
    return 0
