"""`banet-vo-eval traj EST.tum GT.tum`: ATE, RPE and KITTI segment errors of a trajectory."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from banet_vo.evaluation.report import format_table, write_json
from banet_vo.evaluation.trajectory import TrajectoryReport, evaluate_trajectory, read_tum


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "traj",
        help="trajectory errors (ATE, RPE, KITTI segments) of a TUM estimate against TUM ground truth",
        description=(
            "Associates EST and GT by timestamp, aligns EST onto GT (Umeyama), then reports the "
            "absolute trajectory error (translation, m), the relative pose error (m and deg) and, when "
            "the ground-truth path is longer than 100 m, KITTI segment errors (% and deg/100 m). "
            "Poses are camera-to-world."
        ),
    )
    parser.add_argument("est", help="estimated trajectory, TUM format (t tx ty tz qx qy qz qw)")
    parser.add_argument("gt", help="ground-truth trajectory, TUM format")
    parser.add_argument(
        "--align",
        choices=("se3", "sim3", "none"),
        default="se3",
        help="alignment of EST onto GT: se3 (rotation+translation), sim3 (+scale, monocular), none "
        "(default: se3)",
    )
    parser.add_argument(
        "--max-diff",
        type=float,
        default=0.01,
        help="max timestamp difference for association, s (default: 0.01)",
    )
    parser.add_argument("--rpe-delta", type=float, default=1, help="RPE pair spacing (default: 1)")
    parser.add_argument(
        "--rpe-unit", choices=("frames", "m"), default="frames", help="unit of --rpe-delta (default: frames)"
    )
    parser.add_argument("--plot", metavar="PNG", help="write a top view of GT and aligned EST here")
    parser.add_argument(
        "--plane",
        default="auto",
        help="axes of the top view, e.g. xz or xy (default: auto, the two world axes across the mean "
        "camera y (down) axis of GT)",
    )
    parser.add_argument("--error-plot", metavar="PNG", help="write the ATE per pose against time here")
    parser.add_argument(
        "--json", metavar="JSON", help="write all figures (and the per-pose ATE) as JSON here"
    )
    parser.set_defaults(func=run)
    return parser


def report_rows(report: TrajectoryReport) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [
        ("alignment", report.align),
        ("scale", report.scale),
        ("matched poses", f"{report.n_matched} (est {report.n_est}, gt {report.n_gt})"),
    ]
    rows += [(f"ATE {k} [m]", report.ate[k]) for k in ("rmse", "mean", "median", "std", "max")]
    rows += [(f"RPE trans {k} [m] ({report.rpe_delta})", report.rpe_translation[k]) for k in ("rmse", "mean")]
    rows += [
        (f"RPE rot {k} [deg] ({report.rpe_delta})", report.rpe_rotation_deg[k]) for k in ("rmse", "mean")
    ]
    kitti = report.kitti
    if kitti.n_segments:
        rows += [
            ("KITTI trans [%]", kitti.translation_pct),
            ("KITTI rot [deg/100m]", kitti.rotation_deg_per_100m),
            ("KITTI segments", kitti.n_segments),
        ]
    else:
        rows.append(("KITTI segments", "none (see note)"))
    return rows


def run(args: argparse.Namespace) -> int:
    if args.plot:  # before any figure is printed or file written (matplotlib only when a plot is asked for)
        from banet_vo.evaluation.plots import check_plane

        check_plane(args.plane)
    est, gt = read_tum(args.est), read_tum(args.gt)
    print(
        f"evaluating {args.est} ({est.num_poses} poses) against {args.gt} ({gt.num_poses})", file=sys.stderr
    )
    report = evaluate_trajectory(
        est, gt, align=args.align, max_diff=args.max_diff, rpe_delta=args.rpe_delta, rpe_unit=args.rpe_unit
    )
    print(format_table(report_rows(report), title=f"trajectory: {args.est} vs {args.gt}"))
    if report.kitti.reason:
        print(f"note: no KITTI segment errors: {report.kitti.reason}")
    if args.plot:
        # matplotlib only when a plot is asked for
        from banet_vo.evaluation.plots import plot_trajectory_top_view, top_view_plane_from_poses

        plane = top_view_plane_from_poses(np.asarray(gt.poses_se3)) if args.plane == "auto" else args.plane
        path = plot_trajectory_top_view(
            report.gt_xyz, report.est_xyz, args.plot, plane=plane, title=f"{args.align} aligned"
        )
        print(f"wrote {path}", file=sys.stderr)
    if args.error_plot:
        from banet_vo.evaluation.plots import plot_error_over_time

        path = plot_error_over_time(
            report.timestamps, {"ATE": report.ate_errors}, args.error_plot, ylabel="ATE [m]"
        )
        print(f"wrote {path}", file=sys.stderr)
    if args.json:
        data = {"est": args.est, "gt": args.gt, **report.as_dict()}
        print(f"wrote {write_json(args.json, data)}", file=sys.stderr)
    return 0
