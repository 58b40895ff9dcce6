"""Where the map loses its scale on each real clip: every keyframe-to-keyframe stretch's length over the
true one (banet_vo.evaluation.scale_profile), for the xfeat front end with scale none (the map's own scale).

    .venv/bin/python -m benchmarks.scale_profile [--clips kitti06,kitti07,hololens,tartanair]
        [--seeds 0,1,2] [--scale none] [--max-frames N] [--tracking FIELD=VALUE ...] [--out FILE]

Per clip and RANSAC seed: the Sim(3) ATE, the median ratio over each third of the stretches (1: the scale
of the first stretches), and each event (banet_vo.evaluation.scale_profile: a run of stretches under half
the level before it), with the frames it spans and the level after it over the level before it. A clip
(a folder in any layout banet-vo-bag reads) may be named instead of one of ours. Results:
benchmarks/results/scale_profile.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from banet_vo.evaluation.scale_profile import EVENT_FRACTION, LEVEL_SPAN
from banet_vo.provenance import code_version

from benchmarks.real_clips import DATA, tracking_config
from benchmarks.section import write_section
from benchmarks.vo_kitti import ROOT

RESULTS = ROOT / "benchmarks" / "results" / "scale_profile.md"


def profile_clip(spec, clip, estimator, scale: str, seed: int, tracking) -> dict:
    """One run of the xfeat front end on `clip` and its scale profile."""
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.evaluation.scale_profile import scale_profile
    from banet_vo.odometry import OdometryConfig, make_odometry

    height = (spec.camera_height or 0.0) if scale == "ground_plane" else 0.0
    config = OdometryConfig(
        frontend="xfeat",
        scale_source=scale,
        camera_height=height,
        tracking=replace(tracking, ransac_seed=seed),
    )
    vo = make_odometry(estimator, config)
    try:
        run = rc.run_odometry(vo, clip)
    finally:
        vo.close()
    row = rc.odometry_row(clip, f"seed {seed}", run, scale)
    profile = scale_profile(run.stamps, run.poses, clip.stamps, clip.gt, run.keyframe_stamps)
    frame_of = {float(s): i for i, s in enumerate(clip.stamps)}
    events = [
        (
            frame_of[float(profile.starts[a])],
            frame_of[float(profile.ends[b])],
            float(profile.ratios[a : b + 1].min()),
        )
        for a, b in profile.events
    ]
    return {
        "seed": seed,
        "sim3": row.ate_sim3,
        "stretches": len(profile.ratios),
        "thirds": profile.thirds(),
        "events": events,
        "steps": profile.event_steps(),
    }


def clip_lines(name: str, results: list[dict]) -> list[str]:
    lines = []
    for r in results:
        thirds = " / ".join(f"{v:.2f}" for v in r["thirds"])
        events = "; ".join(
            f"frames {a}-{b} (lowest {low:.2f}, level after/before {step:.2f})"
            for (a, b, low), step in zip(r["events"], r["steps"], strict=True)
        )
        total = float(np.prod(r["steps"])) if r["steps"] else 1.0
        lines.append(
            f"| {name} | {r['seed']} | {r['sim3']:.3f} | {r['stretches']} | {thirds} | {len(r['events'])} | "
            f"{total:.2f} | {events or '—'} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="benchmarks.scale_profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", default="kitti06,kitti07,hololens,tartanair", help="comma-separated clips")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the clips (../shared/data)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated RANSAC seeds")
    parser.add_argument("--scale", default="none", help="scale_source (none: the map's own scale)")
    parser.add_argument("--max-frames", type=int, default=None, help="first N frames of each clip")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--tracking",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a TrackingConfig field to change (repeatable, as benchmarks.real_clips)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="markdown file to write (default benchmarks/results/scale_profile.md; "
        "runs/scale_profile_NAME.md when a clip is a folder of one's own)",
    )
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
        tracking = tracking_config(args.tracking)
    except ValueError as err:
        parser.error(str(err))
    import torch
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.model.shipped import default_model_path
    from banet_vo.odometry import SCALE_SOURCES, BANetEstimator

    if args.scale not in SCALE_SOURCES:
        parser.error(f"--scale must be one of {SCALE_SOURCES}, got {args.scale!r}")
    tokens = args.clips.split(",")
    try:
        specs = [rc.resolve_clip(token, args.data) for token in tokens]
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    unknown_height = [s.name for s in specs if args.scale == "ground_plane" and not s.camera_height]
    if unknown_height:  # refused before any clip runs (it failed after the ones before it)
        parser.error(
            f"--scale ground_plane needs a known camera height; not known for {', '.join(unknown_height)}"
        )
    if args.out is None:
        # A clip of one's own: its table goes beside the other runs, not over the committed results.
        own = any(token not in rc.ALL_CLIPS for token in tokens)
        args.out = ROOT / "runs" / f"scale_profile_{'_'.join(s.name for s in specs)}.md" if own else RESULTS
    torch.set_num_threads(args.threads)
    version = code_version()
    started = time.perf_counter()
    estimator = BANetEstimator.from_checkpoint(default_model_path(), device="cpu")
    table = []
    for spec in specs:
        clip = rc.load_clip(spec, args.data, args.max_frames)
        results = []
        for seed in seeds:
            print(f"scale_profile: {spec.name} seed {seed}", file=sys.stderr, flush=True)
            results.append(profile_clip(spec, clip, estimator, args.scale, seed, tracking))
        table += clip_lines(spec.name, results)
    write_section(
        args.out,
        f"Where the map loses its scale (xfeat, scale {args.scale})",
        "benchmarks.scale_profile",
        argv,
        f"{(time.perf_counter() - started) / 60:.1f} min",
        [
            "Each keyframe-to-keyframe stretch of the published trajectory: its length over the true length "
            "of the same stretch, relative to the first five stretches (1: the scale the trajectory started "
            "with). Thirds: the median over each third of the stretches. An event is a run of at most "
            f"{LEVEL_SPAN} stretches under {EVENT_FRACTION:g}x the level before it (the median of the "
            f"{LEVEL_SPAN} nearest stretches before it that are in no event); 'level after/before' is the "
            "same median after it over that before it. Product: all events' level changes together (the "
            "part of the last third's level the events explain).",
            "",
            "| clip | seed | Sim(3) ATE [m] | stretches | thirds | events | product "
            "| events: frames (lowest ratio, level after/before) |",
            "|---|---|---|---|---|---|---|---|",
            *table,
        ],
        code=version,
        model=default_model_path().name,
        machine_extra=f"torch threads {args.threads}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
