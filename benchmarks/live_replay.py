"""Live frame selections, replayed: the frames a live node published, run again offline and repeatably.

    .venv/bin/python -m benchmarks.live_replay [--clips kitti07,tartanair] [--tracking FIELD=VALUE]
        [--threads 1] [--seed 0] [--out benchmarks/results/live_replay.md]

A live node that cannot keep up sees every 2nd-5th frame, with stalls of a second or more, and which
frames it sees changes from run to run, so two live runs of one configuration differ more than most
changes to the pipeline do. `benchmarks/live_frames.json` records the frames that 24 live runs published
(banet-vo-run, bags at 1x, queue 1, 2 cores). This benchmark feeds exactly those frames, with their own
stamps, to the ROS-free pipeline (default configuration, window BA in line, so the result does not
depend on timing) and reports the ATE of each run, per clip the median, and what the tracker did:
relocalisations refused, frames recovered from the newest keyframe, maps rebuilt.
Results: benchmarks/results/live_replay.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
from banet_vo.evaluation.report import write_json
from banet_vo.provenance import code_version

from benchmarks.real_clips import DATA, tracking_config
from benchmarks.section import header_lines
from benchmarks.vo_kitti import DEFAULT_MODEL, ROOT

FRAMES = ROOT / "benchmarks" / "live_frames.json"
RESULTS = ROOT / "benchmarks" / "results" / "live_replay.md"


def load_selections(path: Path, clips: list[str] | None = None) -> list[dict]:
    """The runs of a live_frames.json, optionally only those of `clips`; ValueError for a malformed file
    (frames must be increasing indices >= 0) or a clip name with no run."""
    doc = json.loads(Path(path).read_text())
    runs = doc.get("runs") if isinstance(doc, dict) else None
    if not isinstance(runs, list) or not runs:
        raise ValueError(f"{path}: no 'runs' list")
    for run in runs:
        frames = run.get("frames")
        if not isinstance(run.get("clip"), str) or not isinstance(frames, list) or len(frames) < 2:
            raise ValueError(f"{path}: a run needs a clip name and at least 2 frames, got {run!r:.120}")
        if any(not isinstance(i, int) or i < 0 for i in frames) or any(np.diff(frames) <= 0):
            raise ValueError(f"{path}: frames of {run['clip']} {run.get('run')!r} must increase from >= 0")
    if clips:
        unknown = sorted(set(clips) - {r["clip"] for r in runs})
        if unknown:
            raise ValueError(f"{path} has no run of {unknown}; it has {sorted({r['clip'] for r in runs})}")
        runs = [r for r in runs if r["clip"] in clips]
    return runs


def replay(vo, clip, frames: list[int]) -> dict:
    """Feed the listed frames of `clip` to `vo` in order (rc.run_odometry on those frames only); the ATE
    of the first trajectory's poses and the tracker's counters."""
    from dataclasses import replace

    from banet_vo.evaluation import real_clips as rc

    if frames[-1] >= len(clip):
        raise ValueError(f"frame {frames[-1]} is past the clip's {len(clip)} frames")
    run = rc.run_odometry(vo, replace(clip, indices=clip.indices[frames]))
    out = {"frames": len(frames), "out": len(run.stamps), "sim3": None, "se3": None}
    if len(run.stamps) >= 3:
        out["sim3"] = rc.ate(run.stamps, run.poses, clip.stamps, clip.gt, "sim3")[0]
        out["se3"] = rc.ate(run.stamps, run.poses, clip.stamps, clip.gt, "se3")[0]
    stats = vo.stats
    out.update(reloc_refused=stats.reloc_refused, recovered=stats.recovered, rebuilt=stats.lost)
    return out


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def markdown(rows: list[dict]) -> list[str]:
    from banet_vo.evaluation import real_clips as rc

    lines = [
        "| clip | live run | frames | frames out | ATE Sim(3) [m] | ATE SE(3) [m] | relocalisations refused "
        "| recovered | maps rebuilt |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['run']} | {r['frames']} | {r['out']} | {_cell(r['sim3'])} | "
            f"{_cell(r['se3'])} | {r['reloc_refused']} | {r['recovered']} | {r['rebuilt']} |"
        )
    # A run without an ATE (lost) counts as the worst in the median: it cannot make a clip look better.
    lines += [
        "",
        "| clip | runs | runs without an ATE | median ATE Sim(3) [m] | median ATE SE(3) [m] |",
        "|---|---|---|---|---|",
    ]
    for clip in dict.fromkeys(r["clip"] for r in rows):
        mine = [r for r in rows if r["clip"] == clip]
        sim3 = rc.median_counting_failures([r["sim3"] for r in mine])
        se3 = rc.median_counting_failures([r["se3"] for r in mine])
        failed = sum(r["sim3"] is None for r in mine)
        lines.append(f"| {clip} | {len(mine)} | {failed} | {_cell(sim3)} | {_cell(se3)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="benchmarks.live_replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=Path, default=FRAMES, help="live frame selections (JSON)")
    parser.add_argument("--clips", default="", help="comma-separated clip names (default: every run)")
    parser.add_argument(
        "--tracking", action="append", default=[], metavar="FIELD=VALUE", help="a TrackingConfig field"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="tracking_ransac_seed")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="BA-Net checkpoint")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the clips (../shared/data)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown results file")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    try:
        runs = load_selections(args.frames, [c for c in args.clips.split(",") if c])
        tracking = tracking_config([*args.tracking, f"ransac_seed={args.seed}"])
    except (OSError, ValueError) as err:
        parser.error(str(err))

    import torch
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.odometry import BANetEstimator, KeyframeOdometry, OdometryConfig, make_odometry

    torch.set_num_threads(args.threads)
    code, started_at, started = code_version(), datetime.datetime.now(datetime.UTC), time.perf_counter()
    estimator = BANetEstimator.from_checkpoint(args.model, device="cpu")
    clips, rows = {}, []
    for n, run in enumerate(runs, 1):
        name = run["clip"]
        if name not in clips:
            try:
                clips[name] = rc.load_clip(rc.resolve_clip(name, args.data), args.data)
            except (ValueError, FileNotFoundError) as err:
                parser.error(str(err))
        vo = make_odometry(estimator, OdometryConfig(tracking=tracking))
        if not isinstance(vo, KeyframeOdometry):
            parser.error("the default front end is not xfeat: nothing here to replay")
        try:
            row = {"clip": name, "run": run.get("run", str(n)), **replay(vo, clips[name], run["frames"])}
        except ValueError as err:
            parser.error(f"{name} {run.get('run')!r}: {err}")
        finally:
            vo.close()
        rows.append(row)
        print(
            f"live_replay: {n}/{len(runs)} {name} {row['run']}: Sim(3) {_cell(row['sim3'])} m",
            file=sys.stderr,
        )
    minutes = (time.perf_counter() - started) / 60
    overrides = ", ".join(args.tracking) or "none"
    lines = [
        *header_lines(
            "Live frame selections, replayed offline",
            "benchmarks.live_replay",
            argv,
            machine_extra=f"torch threads {args.threads}",
            date=started_at,
            code=code,
            model=args.model.name,
            run=f"{minutes:.1f} min",
        ),
        f"Frames: {args.frames.name} ({len(runs)} runs). Default configuration (frontend xfeat, scale "
        f"learned, window BA in line), RANSAC seed {args.seed}, tracking overrides: {overrides}.",
        "",
        *markdown(rows),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    if args.json is not None:
        write_json(args.json, rows, indent=1)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
