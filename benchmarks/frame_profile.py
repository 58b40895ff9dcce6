"""Where the time of one frame goes: the xfeat front end's stages on real clips, offline, every frame.

    .venv/bin/python -m benchmarks.frame_profile [--clips kitti07,hololens] [--threads 2]
        [--window-solvers gtsam,ceres] [--window-shapes 7/5,10/5] [--max-keypoints 2048,1024]

Each stage's functions are wrapped with a wall-clock timer while the clip runs through the pipeline in its
default configuration (KITTI with the ground-plane scale), the window BA in line (what a live node pays
on one process unless background_ba is on), once per window solver, window shape and keypoint count named
(one row each, in one run; a shape is window_keyframes/free_keyframes, a keypoint count XFeat's top_k,
tracking max_keypoints).
Shares are of the summed process() time; "other" is what no
stage covers (keyframe bookkeeping, triangulation, covariances). Results: benchmarks/results/frame_profile.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from banet_vo.evaluation.stage_times import STAGES, StageTimes, timed_stages
from banet_vo.provenance import code_version

from benchmarks.real_clips import DATA
from benchmarks.section import header_lines
from benchmarks.vo_kitti import DEFAULT_MODEL, ROOT

RESULTS = ROOT / "benchmarks" / "results" / "frame_profile.md"


def parse_window_shapes(text: str) -> list[tuple[int, int] | None]:
    """ "7/5,10/5" -> [(7, 5), (10, 5)] (window_keyframes, free_keyframes); "" -> [None] (the defaults).
    ValueError for anything TrackingConfig would refuse."""
    from banet_vo.odometry import TrackingConfig

    if not text:
        return [None]
    shapes = []
    for token in text.split(","):
        window, sep, free = token.partition("/")
        if not sep or not window.strip().isdigit() or not free.strip().isdigit():
            raise ValueError(f"window shape {token!r} is not WINDOW/FREE (e.g. 10/5)")
        shape = (int(window), int(free))
        TrackingConfig(window_keyframes=shape[0], free_keyframes=shape[1])  # its ranges, or ValueError
        shapes.append(shape)
    return shapes


def _shape_label(shape: tuple[int, int] | None) -> str:
    from banet_vo.odometry import TrackingConfig

    if shape is None:
        default = TrackingConfig()
        shape = (default.window_keyframes, default.free_keyframes)
    return f"{shape[0]}/{shape[1]}"


def parse_keypoints(text: str) -> list[int | None]:
    """ "2048,1024" -> [2048, 1024] (tracking max_keypoints); "" -> [None] (the default). ValueError for
    anything TrackingConfig would refuse."""
    from banet_vo.odometry import TrackingConfig

    if not text:
        return [None]
    counts = []
    for token in text.split(","):
        if not token.strip().isdigit():
            raise ValueError(f"keypoint count {token!r} is not a whole number")
        TrackingConfig(max_keypoints=int(token))  # its range, or ValueError
        counts.append(int(token))
    return counts


def profile_clip(
    name: str,
    args,
    estimator,
    solver: str,
    shape: tuple[int, int] | None = None,
    keypoints: int | None = None,
) -> dict:
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.odometry import OdometryConfig, make_odometry

    spec = rc.ALL_CLIPS[name]
    clip = rc.load_clip(spec, args.data, args.max_frames)
    scale = "ground_plane" if spec.camera_height else "learned"
    config = OdometryConfig(scale_source=scale, camera_height=spec.camera_height or 0.0)
    overrides = {} if shape is None else {"window_keyframes": shape[0], "free_keyframes": shape[1]}
    if keypoints is not None:
        overrides["max_keypoints"] = keypoints
    config = replace(config, tracking=replace(config.tracking, **overrides))
    vo = make_odometry(estimator, replace(config, background_ba=False, window_solver=solver))
    times = StageTimes()
    with timed_stages(times):
        run = rc.run_odometry(vo, clip)
    total = float(sum(run.seconds))
    return {
        "clip": name,
        "solver": solver,
        "shape": _shape_label(shape),
        "keypoints": config.tracking.max_keypoints,
        "frames": run.frames_total,
        "keyframes": vo.stats.keyframes,
        "total": total,
        "stages": times.totals(),
    }


def markdown(results: list[dict], args, argv: list[str], seconds: float) -> str:
    stages = list(STAGES)
    head = (
        "| clip | window solver | window (keyframes/free) | keypoints | frames (keyframes) | s/frame | "
        + " | ".join(stages)
        + " | other | window BA s/keyframe |"
    )
    lines = [head, "|" + "---|" * (len(stages) + 8)]
    for r in results:
        spent = [r["stages"].get(s, 0.0) for s in stages]
        covered = sum(spent)
        cells = [f"{t / r['frames']:.3f} ({100 * t / r['total']:.0f} %)" for t in spent]
        other = r["total"] - covered
        per_keyframe = r["stages"].get("window BA", 0.0) / max(r["keyframes"], 1)
        lines.append(
            f"| {r['clip']} | {r['solver']} | {r['shape']} | {r['keypoints']} | "
            f"{r['frames']} ({r['keyframes']}) | "
            f"{r['total'] / r['frames']:.3f} | "
            + " | ".join(cells)
            + f" | {other / r['frames']:.3f} ({100 * other / r['total']:.0f} %) | {per_keyframe:.3f} |"
        )
    return "\n".join(
        [
            *header_lines(
                "Time per frame, by stage (xfeat front end, offline)",
                "benchmarks.frame_profile",
                argv,
                machine_extra=f"torch threads {args.threads}; BA-Net and XFeat on {args.device}",
                code=args.code_version,
                model=args.model.name,
                run=f"{seconds / 60:.1f} min",
            ),
            "",
            "Each cell: seconds per frame (all frames of the clip, keyframes or not) and share of the "
            "summed process() time. The default configuration, window BA in line; KITTI with the "
            "ground-plane scale. A live node at the clip's 10 Hz needs under 0.1 s per frame.",
            "",
            *lines,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="benchmarks.frame_profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", default="kitti07,hololens", help="comma-separated clip names")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the clips (../shared/data)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="BA-Net checkpoint")
    parser.add_argument("--device", default="cpu", choices=("auto", "cuda", "cpu"), help="BA-Net and XFeat")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--max-frames", type=int, default=None, help="first N frames of each clip")
    parser.add_argument(
        "--window-solvers",
        default="gtsam",
        help="comma-separated window BA solvers to profile, one row each (gtsam, ceres; default gtsam)",
    )
    parser.add_argument(
        "--window-shapes",
        default="",
        help="comma-separated window shapes WINDOW/FREE (tracking window_keyframes/free_keyframes) to "
        "profile, one row each (default: the configured shape)",
    )
    parser.add_argument(
        "--max-keypoints",
        default="",
        help="comma-separated XFeat keypoint counts (tracking max_keypoints) to profile, one row each "
        "(default: the configured count)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown file to write")
    args = parser.parse_args(argv)
    try:
        shapes = parse_window_shapes(args.window_shapes)
    except ValueError as err:
        parser.error(f"--window-shapes: {err}")
    try:
        keypoint_counts = parse_keypoints(args.max_keypoints)
    except ValueError as err:
        parser.error(f"--max-keypoints: {err}")
    from banet_vo.backend.window_ba import SOLVERS

    solvers = args.window_solvers.split(",")
    if not solvers or any(s not in SOLVERS for s in solvers):
        parser.error(f"--window-solvers: each of {solvers} must be one of {SOLVERS}")
    import torch
    from banet_vo.evaluation.real_clips import ALL_CLIPS
    from banet_vo.odometry.estimator import BANetEstimator

    clips = args.clips.split(",")
    unknown = [c for c in clips if c not in ALL_CLIPS]
    if unknown:
        parser.error(f"unknown clips {unknown}; known: {', '.join(ALL_CLIPS)}")
    if not args.model.is_file():
        parser.error(f"model {args.model} not found")
    torch.set_num_threads(args.threads)
    args.code_version = code_version()
    started = time.perf_counter()
    estimator = BANetEstimator.from_checkpoint(args.model, device=args.device)
    results = []
    for name in clips:
        for solver in solvers:
            for shape in shapes:
                for keypoints in keypoint_counts:
                    print(
                        f"frame_profile: {name} ({solver}, window {_shape_label(shape)}, keypoints "
                        f"{keypoints or 'default'})",
                        file=sys.stderr,
                        flush=True,
                    )
                    results.append(profile_clip(name, args, estimator, solver, shape, keypoints))
    text = markdown(results, args, argv, time.perf_counter() - started)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
