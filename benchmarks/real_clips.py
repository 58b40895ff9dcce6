"""Accuracy on every real clip: banet_vo (each front end x scale source) beside classical references and
trivial baselines computed in the same run.

    .venv/bin/python -m benchmarks.real_clips [--clips kitti06,kitti07,hololens,tartanair]
        [--frontends none,...] [--scales ground_plane,...] [--max-frames N] [--threads 2] [--seeds 0,1,2]
        [--out FILE] [--json FILE]
        [--live]
    .venv/bin/python -m benchmarks.real_clips --live-only   # the node at real rate vs the offline default

Front ends and scale sources are read from banet_vo.odometry (FRONTENDS, SCALE_SOURCES) at run time, so a
new one shows up without a change here. ground_plane runs only on clips with a known camera height (KITTI,
1.65 m); scale source "none" is up to scale, so only its Sim(3) ATE is given. The logic lives in
banet_vo.evaluation.real_clips. Progress goes to stderr.

Where the table goes without --out: a run that is one of `make bench`'s (benchmarks.run_all.RUNS: the
main table is `--seeds 0,1,2,3,4 --threads 1`) writes that run's committed table under
benchmarks/results/ (real_clips.md is the "Today" table of BENCHMARKS.md); any other run writes
runs/real_clips_<what differs from the defaults>.md, e.g. runs/real_clips_reverse_frontends-xfeat.md
(runs/real_clips.md with no flag; runs/real_clips_live_... with --live-only). A run in which a clip failed
goes to runs/ as <name>_incomplete.md, and one in which no clip produced a row writes nothing (exit 1).

--live plays each clip as a bag at its real rate into the node (queue_size 1, so a slow model drops
frames as deployed) through banet-vo-run, and reports frames processed per second and its ATE beside the
offline run of the default configuration; --live-only runs just those two per clip
(benchmarks/results/real_clips_live.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from banet_vo.evaluation.report import write_json
from banet_vo.provenance import code_version

from benchmarks.section import header_lines, runs_path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "real_clips.md"
LIVE_RESULTS = ROOT / "benchmarks" / "results" / "real_clips_live.md"
DEFAULT_MODEL = ROOT / "models" / "banet_small_synthetic.safetensors"
LIVE_QUEUE_SIZE = 1
DEFAULT_MARK = " (default)"


def banet_label(frontend: str, scale: str) -> str:
    """The method column of a banet_vo row (the default configuration's adds DEFAULT_MARK)."""
    return f"banet_vo {frontend}, scale {scale}"


def _progress(message: str) -> None:
    print(f"real_clips: {message}", file=sys.stderr, flush=True)


def _frame_progress(label: str):
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        if done % 25 == 0 or done == total:
            rate = (time.perf_counter() - started) / done
            _progress(f"{label}: frame {done}/{total} ({rate:.2f} s/frame)")

    return report


def tracking_config(items: list[str]):
    """TrackingConfig from FIELD=VALUE strings, each value read as its field's default's type; ValueError
    for an unknown field, a value that does not parse, or one the config refuses."""
    from dataclasses import fields

    from banet_vo.odometry import TrackingConfig

    defaults = {f.name: f.default for f in fields(TrackingConfig)}
    values = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or name not in defaults:
            raise ValueError(f"{item!r} is not FIELD=VALUE with a field of {sorted(defaults)}")
        kind = type(defaults[name])
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(f"{name} takes true or false, got {text!r}")
            values[name] = text.lower() == "true"
        else:
            values[name] = kind(text)
    return TrackingConfig(**values)


def run_clip(spec, args, estimator, xfeat) -> tuple[list, list[str]]:
    """All rows of one clip and the notes on what was skipped (--live-only: the default configuration's
    row alone)."""
    from banet_vo.backend.background import HeldBundleAdjuster
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.odometry import FRONTENDS, SCALE_SOURCES, OdometryConfig, make_odometry

    clip = rc.load_clip(
        spec,
        args.data,
        args.max_frames,
        args.every,
        args.image_scale,
        args.jpeg_quality,
        args.reverse,
        args.gray,
        args.exposure,
    )
    rows, skipped = [], []
    default_frontend = OdometryConfig().frontend
    for frontend in FRONTENDS:
        if args.frontends and frontend not in args.frontends:
            continue
        for scale in SCALE_SOURCES:
            if args.scales and scale not in args.scales:
                continue
            is_default = (
                frontend == default_frontend
                and scale == OdometryConfig().scale_source
                and not (args.depth_calibration and frontend == "xfeat")
            )
            if args.live_only and not is_default:
                continue
            if scale == "ground_plane" and spec.camera_height is None:
                skipped.append(f"ground_plane on {spec.name} (camera height unknown)")
                continue
            height = spec.camera_height if scale == "ground_plane" else 0.0
            held = args.ba_hold is not None and frontend == "xfeat"
            try:
                config = OdometryConfig(
                    frontend=frontend,
                    scale_source=scale,
                    camera_height=height,
                    tracking=args.tracking,
                    background_ba=held,
                    depth_calibration=args.depth_calibration,
                )
            except ValueError as err:  # a combination the pipeline refuses (e.g. none + ground_plane)
                skipped.append(f"{frontend} + {scale} ({err})")
                continue
            label = banet_label(frontend, scale)
            if args.depth_calibration and frontend == "xfeat":
                label += ", depth calibrated"
            if is_default:
                label += DEFAULT_MARK
            # BA-Net alone draws nothing at random: one run says it all.
            seeds = args.seeds if frontend != "none" else args.seeds[:1]
            runs = []
            for seed in seeds:
                seeded = replace(config, tracking=replace(config.tracking, ransac_seed=seed))
                tag = f"{spec.name} {label}" + (f" seed {seed}" if len(seeds) > 1 else "")
                _progress(tag)
                worker = HeldBundleAdjuster(args.ba_hold) if held else None
                vo = make_odometry(estimator, seeded, window_ba_worker=worker)
                try:
                    run = rc.run_odometry(
                        vo,
                        clip,
                        _frame_progress(tag),
                        settle=args.settle,
                        before_frame=worker.next_frame if worker is not None else None,
                    )
                finally:
                    vo.close()  # its threads and worker
                runs.append(rc.odometry_row(clip, label, run, scale))
            rows.append(runs[0] if len(runs) == 1 else rc.seed_summary(runs, seeds))
    if args.live_only:
        return rows, skipped
    for method in args.references:
        _progress(f"{spec.name}: {rc.CLASSICAL_LABELS[method]}")
        features = xfeat if method == "xfeat" else None
        rows.append(rc.classical_row(clip, method, features))
    rows.extend(rc.trivial_rows(clip))
    return rows, skipped


def live_label(args) -> str:
    """The live rows' method: how the bag was played and the node parameters given (--live-param)."""
    return f"banet_vo live node ({', '.join(['bag at 1x', f'queue {LIVE_QUEUE_SIZE}', *args.live_param])})"


def live_row(spec, args):
    """Play the clip as a bag at its real rate into the node (queue_size 1) through banet-vo-run and
    compare its trajectory with the ground truth; returns (row, frames processed per second)."""
    from banet_vo.data.bags import write_bag
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.ros import run
    from scipy.spatial.transform import Rotation

    clip = rc.load_clip(spec, args.data, args.max_frames)
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "bag"
        write_bag(clip.sequence, bag)
        out = Path(tmp) / "run"
        command = [str(bag), "--out", str(out), "--model", str(args.model), "--device", args.device]
        command += [
            "--rate",
            "1.0",
            "--queue-size",
            str(LIVE_QUEUE_SIZE),
            "--no-plots",
            "--depth-every",
            "1000",
        ]
        for item in args.live_param:
            command += ["--param", item]
        if args.max_frames:
            command += ["--until", f"{clip.stamps[-1] - clip.stamps[0] + 0.05:.3f}"]
        rc_ = run.main(command)
        if rc_ != 0:
            raise RuntimeError(f"banet-vo-run failed with exit status {rc_}")
        summary = json.loads((out / "metrics.json").read_text())
        tum = np.loadtxt(out / "trajectory_camera.tum", ndmin=2)
    poses = np.tile(np.eye(4), (len(tum), 1, 1))
    poses[:, :3, :3] = Rotation.from_quat(tum[:, 4:8]).as_matrix()
    poses[:, :3, 3] = tum[:, 1:4]
    # The bag holds the whole folder (--until cuts it): ground truth of the clip's frames only.
    row = rc.metrics_row(spec.name, live_label(args), tum[:, 0], poses, clip.stamps, clip.gt)
    return row, summary


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_markdown(
    path: Path, args, argv: list[str], rows, skipped: list[str], live: list[str], wall_s: float
) -> str:
    from banet_vo.evaluation import real_clips as rc

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    partial = f" (first {args.max_frames} frames of each clip only)" if args.max_frames else ""
    if args.every > 1:
        partial += f", every {args.every}th frame of each clip"
    if args.image_scale != 1.0:
        partial += f", frames and intrinsics resized by {args.image_scale:g}"
    if args.jpeg_quality is not None:
        partial += f", every image through JPEG at quality {args.jpeg_quality} (references too)"
    if args.gray:
        partial += ", colour frames converted to gray as a mono camera sees them (--gray; references too)"
    if args.exposure != 1.0:
        partial += (
            f", an auto-exposure swing of each frame's gain between 1/{args.exposure:g} and "
            f"{args.exposure:g} every {rc.EXPOSURE_PERIOD_FRAMES} frames (--exposure; references too)"
        )
    if args.reverse:
        partial += ", each clip played backwards (--reverse; references too)"
    if Path(args.model).resolve() != DEFAULT_MODEL.resolve():
        partial += f", model {Path(args.model).name}"
    if args.frontends:
        partial += f", front end {' / '.join(args.frontends)} only"
    if args.scales:
        partial += f", scale {' / '.join(args.scales)} only"
    if args.tracking_overrides:
        partial += f", tracking {', '.join(args.tracking_overrides)}"
    if args.depth_calibration:
        partial += ", xfeat rows' depth through the model's calibration (--depth-calibration)"
    if args.ba_hold is not None:
        partial += f", background_ba with each window's result taken {args.ba_hold} frames late (--ba-hold)"
    if args.settle:
        partial += ", background threads waited for after each frame (--settle)"
    if args.live_param:
        partial += f", live node with {', '.join(args.live_param)}"
    text = [
        *header_lines(
            f"Real clips, live node at real rate vs offline{partial}"
            if args.live_only
            else f"Real clips: banet_vo vs classical references{partial}",
            "benchmarks.real_clips",
            argv,
            machine_extra=f"torch threads {args.threads}",
            date=args.started_at,
            code=args.code_version,
            model=f"{args.model.name} on {args.device}",
            run=f"{wall_s / 60:.1f} min, peak resident memory {peak_mb:.0f} MB",
        ),
        "",
        "ATE = RMSE of camera positions after Umeyama alignment onto ground truth (evo), Sim(3) (with the "
        "scale factor it found: 1 is a right metric scale) and SE(3) (metric). banet_vo rows: the ROS-free "
        "pipeline, every frame in order, frames out = frames with a pose; s/frame = median wall time of one "
        "process() call. References (fixed recipes, same on every clip): features, mutual nearest "
        "neighbours (ORB (ratio 0.8): Lowe's ratio test instead), essential matrix (RANSAC) + recoverPose "
        "frame to frame, step length taken from ground truth — they are given the scale, banet_vo is not. "
        "Straight line: constant velocity along the optical axis at the ground truth's mean speed; "
        "standing still: identity poses.",
        "",
        rc.markdown_table(rows),
        "",
        rc.issue_reference_note(rows),
        "",
        *true_step_lines(rows),
    ]
    if skipped:
        text += ["Not run: " + "; ".join(sorted(set(skipped))) + ".", ""]
    if live:
        text += [*live, ""]
    body = "\n".join(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return body


def true_step_lines(rows) -> list[str]:
    """A table of the banet_vo rows' shape with the scale given: each run re-chained with the true step
    lengths (the references' recipe), beside the references' own Sim(3) ATE; [] when no row has it."""
    from banet_vo.evaluation import real_clips as rc

    lines = []
    for clip in dict.fromkeys(r.clip for r in rows):
        ours = [r for r in rows if r.clip == clip and r.extra.get(rc.TRUE_STEPS_KEY) is not None]
        if not ours:
            continue
        references = [r for r in rows if r.clip == clip and r.method in rc.CLASSICAL_LABELS.values()]
        cells = [f"{r.method} {r.extra[rc.TRUE_STEPS_KEY]:.3f}" for r in ours]
        cells += [f"{r.method} {r.ate_sim3:.3f}" for r in references if r.ate_sim3 is not None]
        lines.append(f"| {clip} | {'; '.join(cells)} |")
    if not lines:
        return []
    return [
        "With the scale given as the references have it: each banet_vo run re-chained from its first pose "
        "with its own rotations and translation directions and every step's length from the ground truth "
        "(Sim(3) ATE [m], medians over the seeds), beside the references'. This is the trajectory's shape "
        "alone; the gap to the row above is what the scale costs.",
        "",
        "| clip | Sim(3) ATE with the true step lengths [m] |",
        "|---|---|",
        *lines,
        "",
    ]


def run_key(args: argparse.Namespace) -> dict[str, object]:
    """What a table depends on, from arguments as parsed (before main converts them): two runs with the
    same key make the same table. Front ends and scale sources name all of them when none is given."""
    from banet_vo.odometry import FRONTENDS, SCALE_SOURCES

    def items(text: str) -> tuple[str, ...]:
        return tuple(x.strip() for x in text.split(",") if x.strip())

    frontends, scales = items(args.frontends), items(args.scales)
    return {
        # the variant flags first, in the order of the names of the committed variant tables
        "every": args.every,
        "image_scale": args.image_scale,
        "jpeg_quality": args.jpeg_quality,
        "gray": args.gray,
        "exposure": args.exposure,
        "clips": items(args.clips),
        "camera_height": args.camera_height,
        "frontends": tuple(f for f in FRONTENDS if not frontends or f in frontends),
        "scales": tuple(x for x in SCALE_SOURCES if not scales or x in scales),
        "references": items(args.references),
        "max_frames": args.max_frames,
        "reverse": args.reverse,
        "settle": args.settle,
        "ba_hold": args.ba_hold,
        "depth_calibration": args.depth_calibration,
        "tracking": tuple(args.tracking),
        "seeds": items(args.seeds),
        "threads": args.threads,
        "model": Path(args.model).resolve(),
        "device": args.device,
        "data": Path(args.data).resolve(),
        "live": args.live or args.live_only,
        "live_only": args.live_only,
        "live_param": tuple(args.live_param),
    }


def _token(name: str, value) -> str:
    """A file-name part saying a run's `name` is `value`."""
    if isinstance(value, bool):
        return {"live_only": "live_only", "depth_calibration": "depth_calibrated"}.get(name, name)
    if value is None:
        return f"no_{name}"
    short = {"image_scale": "scale", "jpeg_quality": "jpeg", "max_frames": "first", "ba_hold": "ba_hold"}
    if name == "clips":
        return "-".join(Path(c).name for c in value)
    if name in ("model", "data"):
        return f"{name}-{value.stem if name == 'model' else value.name}"
    if isinstance(value, tuple):
        text = "-".join(v.replace(":=", "=").replace("=", "-") for v in value) or "none"
        return text if name in ("tracking", "live_param") else f"{name}-{text}"
    if isinstance(value, float):
        value = f"{value:g}"
    return f"{short.get(name, name)}{value}"


def committed_runs(parser: argparse.ArgumentParser) -> list[tuple[dict[str, object], Path]]:
    """The runs `make bench` makes of this module (benchmarks.run_all.RUNS) and the committed tables they
    write: their --out, else benchmarks/results/<topic>.md."""
    from benchmarks.run_all import RUNS

    runs = []
    for topic, (module, run_args) in RUNS.items():
        if module == "real_clips":
            given = parser.parse_args(run_args)
            runs.append((run_key(given), Path(given.out) if given.out else RESULTS.with_name(f"{topic}.md")))
    return runs


def default_out(parser: argparse.ArgumentParser, given: argparse.Namespace) -> Path:
    """Where a run without --out writes: the committed table of the `make bench` run it is (same key),
    else runs/real_clips[_<what differs from the command's defaults>].md (real_clips_live... for
    --live-only): a variant, partial or development run never lands on a committed table."""
    key = run_key(given)
    for committed, path in committed_runs(parser):
        if committed == key:
            return path
    stem = (LIVE_RESULTS if given.live_only else RESULTS).stem
    defaults = run_key(parser.parse_args(["--live-only"] if given.live_only else []))
    parts = [_token(name, value) for name, value in key.items() if value != defaults[name]]
    return runs_path(stem, parts, ROOT / "runs")


def build_parser() -> argparse.ArgumentParser:
    from banet_vo.evaluation.real_clips import ALL_CLIPS, CLASSICAL_METHODS, CLIPS

    parser = argparse.ArgumentParser(prog="benchmarks.real_clips", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clips",
        default=",".join(CLIPS),
        help=f"comma-separated: {', '.join(ALL_CLIPS)}, or any sequence folder (a path, or a folder name "
        "under --data) in a layout banet-vo-bag reads, with ground-truth poses",
    )
    parser.add_argument(
        "--camera-height",
        type=float,
        default=None,
        help="camera height above the ground [m] for the ground_plane rows of clips whose height is not "
        "known (a KITTI-layout folder is taken as KITTI's car: 1.65 m)",
    )
    parser.add_argument(
        "--frontends",
        default="",
        help="comma-separated front ends (default: all in banet_vo.odometry.FRONTENDS)",
    )
    parser.add_argument(
        "--scales", default="", help="comma-separated scale sources (default: all in SCALE_SOURCES)"
    )
    parser.add_argument(
        "--references", default=",".join(CLASSICAL_METHODS), help="classical references to run"
    )
    parser.add_argument(
        "--max-frames", type=int, default=None, help="first N frames of each clip (development)"
    )
    parser.add_argument(
        "--every",
        type=int,
        default=1,
        help="keep every k-th frame of each clip, as a node that keeps up with 1/k of the camera rate "
        "sees it (not with --live; default 1: every frame)",
    )
    parser.add_argument(
        "--depth-calibration",
        action="store_true",
        help="xfeat rows read BA-Net's depth through the calibration shipped beside --model "
        "(OdometryConfig.depth_calibration; benchmarks.depth_calibration fits it)",
    )
    parser.add_argument(
        "--reverse",
        action="store_true",
        help="play each clip backwards, stamps still increasing: a camera that backs up (not with --live)",
    )
    parser.add_argument(
        "--image-scale",
        type=float,
        default=1.0,
        help="resize every frame and its intrinsics by this factor: the clips through a camera of another "
        "resolution (not with --live; default 1)",
    )
    parser.add_argument(
        "--jpeg-quality",
        type=int,
        default=None,
        help="pass every image (references' too) through JPEG at this quality (1-100), as a camera that "
        "streams compressed images (not with --live; default: the clips' own images)",
    )
    parser.add_argument(
        "--gray",
        action="store_true",
        help="convert colour frames to gray (BT.601 luma; references' too), as a mono camera sees the clips "
        "(not with --live; gray clips such as KITTI's are unchanged)",
    )
    parser.add_argument(
        "--exposure",
        type=float,
        default=1.0,
        help="peak gain of an auto-exposure swing: each frame's intensities times between 1/EXPOSURE and "
        "EXPOSURE, one swing every 40 frames, saturating at 255 (references' too; not with --live; "
        "default 1: none)",
    )
    parser.add_argument(
        "--tracking",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a TrackingConfig field for the xfeat rows (repeatable; the node's tracking_FIELD parameter), "
        "e.g. --tracking feature_max_pixels=500000 (ransac_seed: use --seeds)",
    )
    parser.add_argument(
        "--settle",
        action="store_true",
        help="after each frame, wait for the odometry's background threads (tracking_mapping background, "
        "background_banet), so that their runs are repeatable: a keyframe made in the mapping thread then "
        "joins the map at the next frame, as for a camera slower than its mapping (not with --live)",
    )
    parser.add_argument(
        "--ba-hold",
        type=int,
        default=None,
        metavar="N",
        help="xfeat rows with background_ba, each window BA solved in line but its result taken only N "
        "frames after it was submitted (backend.background.HeldBundleAdjuster): a repeatable stand-in for "
        "the worker's lag live, where a solve takes 2-4 frames on 2 cores (not with --live)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument(
        "--seeds",
        default="0",
        help="comma-separated RANSAC seeds (tracking_ransac_seed) for the xfeat rows: with several, each row "
        "is the median of the runs and its note gives their spread (default 0: one run)",
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="BA-Net checkpoint")
    parser.add_argument("--device", default="cpu", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the clips (../shared/data)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="markdown results file (default: the committed table of the `make bench` run this is, else "
        "runs/real_clips_<what differs>.md; see the module's help)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--live", action="store_true", help="also play each clip as a bag into the node")
    parser.add_argument(
        "--live-param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="node parameter for the live runs (repeatable), e.g. --live-param background_ba:=true",
    )
    parser.add_argument(
        "--live-only",
        action="store_true",
        help="only the live node and the offline default configuration (as `make bench` runs it: "
        "benchmarks/results/real_clips_live.md)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from banet_vo.evaluation.real_clips import ALL_CLIPS, CLASSICAL_METHODS, check_image_scale, resolve_clip

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    as_given = argparse.Namespace(**vars(args))  # main converts args in place; the output name reads these
    args.live = args.live or args.live_only
    if args.every < 1:
        parser.error(f"--every must be >= 1, got {args.every}")
    if args.every > 1 and args.live:
        parser.error("--every drops frames offline; the live node drops its own (leave out --live)")
    if args.reverse and args.live:
        parser.error("--reverse plays the clips backwards offline; the bags play forward (leave out --live)")
    if args.depth_calibration and args.live_only:
        parser.error(
            "--depth-calibration is for the offline rows; the live node takes --live-param "
            "depth_calibration:=true (and the model with its curve beside it)"
        )
    if args.settle and args.live:
        parser.error("--settle waits for the threads offline; live, timing decides (leave out --live)")
    if args.ba_hold is not None:
        if args.ba_hold < 0:
            parser.error(f"--ba-hold must be >= 0, got {args.ba_hold}")
        if args.live:
            parser.error("--ba-hold stands in for the live worker offline (leave out --live)")
    try:
        check_image_scale(args.image_scale, "--image-scale")
    except ValueError as err:
        parser.error(str(err))
    if args.image_scale != 1.0 and args.live:
        parser.error(
            "--image-scale resizes the frames offline; the live node plays the clip's own (leave out --live)"
        )
    if args.jpeg_quality is not None:
        if not 1 <= args.jpeg_quality <= 100:
            parser.error(f"--jpeg-quality must lie in [1, 100], got {args.jpeg_quality}")
        if args.live:
            parser.error("--jpeg-quality re-encodes the frames offline (leave out --live)")
    if args.gray and args.live:
        parser.error("--gray converts the frames offline (leave out --live)")
    from banet_vo.evaluation import real_clips as rc

    if not (math.isfinite(args.exposure) and 1.0 <= args.exposure <= rc.MAX_EXPOSURE):
        parser.error(f"--exposure must lie in [1, {rc.MAX_EXPOSURE:g}], got {args.exposure}")
    if args.exposure != 1.0 and args.live:
        parser.error("--exposure changes the frames offline (leave out --live)")
    args.code_version = code_version()  # at the start: the tree may change during a long run
    args.started_at = datetime.datetime.now(datetime.UTC)
    out_given = args.out
    args.clips = [c for c in args.clips.split(",") if c]
    try:
        args.seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if not args.seeds or min(args.seeds) < 0:
        parser.error("--seeds needs at least one seed >= 0")
    from banet_vo.odometry import FRONTENDS, SCALE_SOURCES

    args.frontends = [f for f in args.frontends.split(",") if f]
    if any(f not in FRONTENDS for f in args.frontends):
        parser.error(f"--frontends: each of {args.frontends} must be one of {FRONTENDS}")
    args.tracking_overrides = list(args.tracking)  # as given, for the title
    if any(item.partition("=")[0] == "ransac_seed" for item in args.tracking):
        parser.error(
            "--tracking ransac_seed: the RANSAC seed is --seeds' (each xfeat row runs once per seed), "
            "e.g. --seeds 7"
        )
    try:
        args.tracking = tracking_config(args.tracking)
    except ValueError as err:
        parser.error(f"--tracking: {err}")

    args.scales = [x for x in args.scales.split(",") if x]
    if any(x not in SCALE_SOURCES for x in args.scales):
        parser.error(f"--scales: each of {args.scales} must be one of {SCALE_SOURCES}")
    args.references = [r for r in args.references.split(",") if r]
    unknown = [r for r in args.references if r not in CLASSICAL_METHODS]
    if unknown:
        parser.error(f"unknown reference: {', '.join(unknown)}")
    if not args.data.is_dir() and any(c in ALL_CLIPS for c in args.clips):
        print(f"real_clips: data folder {args.data} not found (--data)", file=sys.stderr)
        return 2
    try:
        args.specs = [resolve_clip(c, args.data, args.camera_height) for c in args.clips]
    except ValueError as err:
        parser.error(f"--clips: {err}")
    parts = [spec.name for spec in args.specs if spec.start != 0 or spec.stop is not None]
    if parts and args.live:
        # The live row plays the clip's whole folder as a bag: frames outside the clip (held-out ones too)
        # would reach the node, and its ATE would not be the offline row's.
        parser.error(f"--live plays whole folders; {', '.join(parts)} is part of one (leave out --live)")
    if out_given is None:
        args.out = default_out(parser, as_given)
    if not args.model.is_file():
        print(f"real_clips: model {args.model} not found (--model)", file=sys.stderr)
        return 2
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))

    import torch
    from banet_vo.evaluation.real_clips import make_features, markdown_table
    from banet_vo.odometry import BANetEstimator

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    estimator = BANetEstimator.from_checkpoint(args.model, device=args.device)
    xfeat = make_features("xfeat") if "xfeat" in args.references and not args.live_only else None
    rows, skipped, live, failed = [], [], [], []
    for spec in args.specs:
        try:
            clip_rows, clip_skipped = run_clip(spec, args, estimator, xfeat)
        except (ValueError, OSError) as err:  # e.g. an image file that cannot be read, mid-clip
            failed.append(spec)
            skipped.append(f"{spec.name}: failed ({err})")
            print(f"real_clips: {spec.name} failed: {err}", file=sys.stderr, flush=True)
            continue
        rows += clip_rows
        skipped += clip_skipped
        print(markdown_table(clip_rows), file=sys.stderr, flush=True)
    if args.live:
        live = [
            "Live node, each clip played at its real rate (bag, queue_size 1: a frame that arrives while "
            "one is processed replaces the waiting one). Frames/s and drops depend on the machine's load.",
            "",
        ]
        live_rows = []
        for spec in args.specs:
            name = spec.name
            if any(spec is f for f in failed):
                continue
            _progress(f"{name}: live node")
            row, summary = live_row(spec, args)
            live_rows.append(row)
            offline = next((r for r in rows if r.clip == name and r.method.endswith(DEFAULT_MARK)), None)
            versus = ""
            if offline is not None and offline.ate_sim3 is not None:
                versus = (
                    f"; offline default: ATE Sim(3) {offline.ate_sim3:.3f} m, "
                    f"SE(3) {offline.ate_se3 if offline.ate_se3 is not None else float('nan'):.3f} m"
                )
            live.append(
                f"- {name}: {summary['processed_per_s']:.2f} frames processed/s "
                f"({summary['frames_per_s']:.2f} poses/s), published "
                f"{summary['frames_published']} of {row.frames_total}, dropped "
                f"{int(summary['node']['dropped'])}; ATE Sim(3) {_fmt(row.ate_sim3)} m, "
                f"SE(3) {_fmt(row.ate_se3)} m{versus}"
            )
        live += ["", markdown_table(live_rows)]
        json_rows = [*rows, *live_rows]
    else:
        json_rows = rows
    if not json_rows:
        print("real_clips: error: no clip produced a row; nothing written", file=sys.stderr)
        return 1
    if failed and out_given is None and not args.out.is_relative_to(ROOT / "runs"):
        # A committed table keeps every clip's rows: an incomplete run goes beside the other runs.
        args.out = runs_path(f"{args.out.stem}_incomplete", [], ROOT / "runs")
        _progress(f"{len(failed)} clip(s) failed: the table goes to {args.out}, not over the committed one")
    body = write_markdown(args.out, args, argv, rows, skipped, live, time.perf_counter() - started)
    print(body)
    if args.json:
        write_json(args.json, [r.as_dict() for r in json_rows], indent=1)
    _progress(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
