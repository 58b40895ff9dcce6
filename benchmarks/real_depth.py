"""The depth banet_vo publishes, against the ground-truth depth of the real clips that have it (HoloLens,
TartanAir): each keyframe's depth map as the ROS-free pipeline returns it (BA-Net's resolution, before the
node resamples it to the camera), scored with banet_vo.evaluation.depth (GT resized nearest to the map, GT
in [0.1, 80] m, invalid predictions left out and counted by coverage), metric and after median scaling.

    .venv/bin/python -m benchmarks.real_depth [--clips hololens,tartanair] [--seeds 1,2,3] [--threads 1]

Rows: the xfeat front end with each scale source and `tracking_depth_correction` (global: one factor per
keyframe, the median ratio at its landmarks; landmarks: a per-pixel factor interpolated from them), BA-Net
alone (frontend none), and a reference that knows the truth's level: one depth everywhere, each map's
ground-truth median (its abs rel is what a flat map scores; a prediction below it says nothing about the
scene's shape).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmarks.section import write_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "real_depth.md"
MODEL = ROOT / "models" / "banet_small_synthetic.safetensors"
DEPTH_CLIPS = ("hololens", "tartanair")  # the clips in ../shared/data with ground-truth depth
# (front end, scale source, depth correction); BA-Net alone has no landmarks to correct with.
VARIANTS = (
    ("xfeat", "learned", "global"),
    ("xfeat", "learned", "landmarks"),
    ("xfeat", "none", "global"),
    ("xfeat", "none", "landmarks"),
    ("none", "learned", "global"),
)


@dataclass
class DepthRow:
    method: str
    maps: int
    metric: dict | None  # mean_depth_metrics as a dict; None where the unit is not metres (scale none)
    scaled: dict
    note: str = ""


def score_maps(pairs: list[tuple[np.ndarray, np.ndarray]], median_scaling: bool) -> dict:
    """Mean depth metrics of (prediction, ground truth) pairs as banet-vo-run scores them
    (evaluation.depth.published_depth_metrics); {} when no map could be scored."""
    from banet_vo.evaluation.depth import published_depth_metrics

    metrics, _ = published_depth_metrics(pairs, median_scaling)
    return metrics.as_dict() if metrics is not None else {}


def published_depth(estimator, clip, frontend: str, scale: str, correction: str, seed: int):
    """(depth map, its frame's ground-truth depth) for every result that carries a depth map."""
    from banet_vo.odometry import OdometryConfig, make_odometry

    config = OdometryConfig(frontend=frontend, scale_source=scale)
    config = replace(config, tracking=replace(config.tracking, ransac_seed=seed, depth_correction=correction))
    vo = make_odometry(estimator, config)
    truth, pairs = {}, []
    try:
        for frame in clip.frames():
            truth[frame.timestamp] = frame.depth
            result = vo.process(frame.image, frame.timestamp, frame.camera)
            if result.depth is None:
                continue
            stamp = frame.timestamp if result.depth_stamp is None else result.depth_stamp
            if truth.get(stamp) is not None:
                pairs.append((result.depth, truth[stamp]))
    finally:
        vo.close()
    return pairs


def flat_reference(clip) -> DepthRow:
    """Each map one depth, its ground truth's median (at the ground truth's own resolution)."""
    from banet_vo.evaluation.depth import PUBLISHED_MAX_DEPTH, PUBLISHED_MIN_DEPTH

    pairs = []
    for frame in clip.frames():
        g = np.nan_to_num(np.asarray(frame.depth, dtype=np.float64), nan=0.0)
        valid = (g >= PUBLISHED_MIN_DEPTH) & (g <= PUBLISHED_MAX_DEPTH)
        if valid.any():
            pairs.append((np.full(g.shape, np.median(g[valid])), g))
    scored = score_maps(pairs, median_scaling=False)
    return DepthRow(
        "one depth everywhere: the map's true median", len(pairs), scored, scored, "knows the truth"
    )


def _median_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r]
    return float(np.median(values)) if values else None


def clip_rows(estimator, clip, seeds: list[int], progress) -> list[DepthRow]:
    rows = []
    for frontend, scale, correction in VARIANTS:
        label = f"banet_vo {frontend}, scale {scale}" + (
            f", depth {correction}" if frontend == "xfeat" else ""
        )
        runs_seeds = seeds if frontend == "xfeat" else seeds[:1]  # BA-Net alone draws nothing at random
        metric_runs, scaled_runs, maps = [], [], []
        for seed in runs_seeds:
            progress(f"{clip.spec.name}: {label}, seed {seed}")
            pairs = published_depth(estimator, clip, frontend, scale, correction, seed)
            maps.append(len(pairs))
            scaled_runs.append(score_maps(pairs, median_scaling=True))
            if scale != "none":
                metric_runs.append(score_maps(pairs, median_scaling=False))
        keys = ("abs_rel", "delta_1", "rmse", "coverage")
        scaled = {k: _median_of(scaled_runs, k) for k in keys}
        metric = {k: _median_of(metric_runs, k) for k in keys} if metric_runs else None
        note = f"median of seeds {', '.join(map(str, runs_seeds))}" if len(runs_seeds) > 1 else ""
        rows.append(DepthRow(label, int(np.median(maps)), metric, scaled, note))
    rows.append(flat_reference(clip))
    return rows


def _cell(row: dict | None, key: str, fmt: str = ".3f") -> str:
    if not row or row.get(key) is None:
        return "—"
    return format(row[key], fmt)


def markdown(clip_results: list[tuple[str, list[DepthRow]]]) -> list[str]:
    lines = [
        "| clip | method | maps | abs rel (metric) | δ<1.25 (metric) | RMSE [m] | abs rel (median-scaled) "
        "| δ<1.25 (median-scaled) | coverage | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in clip_results:
        for r in rows:
            lines.append(
                f"| {name} | {r.method} | {r.maps} | {_cell(r.metric, 'abs_rel')} "
                f"| {_cell(r.metric, 'delta_1')} "
                f"| {_cell(r.metric, 'rmse')} | {_cell(r.scaled, 'abs_rel')} | {_cell(r.scaled, 'delta_1')} "
                f"| {_cell(r.scaled, 'coverage', '.2f')} | {r.note} |"
            )
    return lines


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.real_depth", description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", default=",".join(DEPTH_CLIPS), help="clips with ground-truth depth")
    p.add_argument("--seeds", default="1,2,3", help="RANSAC seeds of the xfeat rows (medians over them)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="../shared/data")
    p.add_argument("--model", type=Path, default=MODEL)
    p.add_argument("--out", type=Path, default=RESULTS)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    clips = [c for c in args.clips.split(",") if c]
    unknown = [c for c in clips if c not in DEPTH_CLIPS]
    if unknown or not clips:
        parser.error(
            f"--clips takes some of {', '.join(DEPTH_CLIPS)} (the clips with depth), got {args.clips!r}"
        )
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    if not seeds:
        parser.error("--seeds is empty")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if not args.model.is_file():
        print(f"real_depth: model {args.model} not found (--model)", file=sys.stderr)
        return 2
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

    import torch
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.odometry import BANetEstimator
    from banet_vo.provenance import code_version

    torch.set_num_threads(args.threads)
    code, started = code_version(), time.perf_counter()
    estimator = BANetEstimator.from_checkpoint(args.model, device="cpu")
    results = []
    for name in clips:
        try:
            clip = rc.load_clip(rc.resolve_clip(name, args.data), args.data)
        except (FileNotFoundError, ValueError) as err:
            print(f"real_depth: {err}", file=sys.stderr)
            return 2
        results.append((name, clip_rows(estimator, clip, seeds, lambda m: print(m, file=sys.stderr))))
    minutes = (time.perf_counter() - started) / 60
    body = [
        "Each keyframe's depth map as the pipeline returns it (BA-Net's resolution; the node resamples it to "
        "the camera), against the clip's ground-truth depth resized nearest to it, GT in [0.1, 80] m; "
        "a pixel the pipeline gives no depth is left out and counted by coverage. Metric columns only where "
        "the scale is metric. Means over maps, medians over seeds.",
        "",
        *markdown(results),
    ]
    write_section(
        args.out,
        "Real clips: the published depth against ground-truth depth",
        "benchmarks.real_depth",
        argv,
        f"seeds {','.join(map(str, seeds))}, {minutes:.1f} min",
        body,
        code=code,
        model=args.model.name,
        machine_extra=f"torch threads {args.threads}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
