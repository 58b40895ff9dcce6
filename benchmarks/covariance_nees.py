"""Is the published covariance honest? NEES of the per-frame relative motion on the real clips.

    .venv/bin/python -m benchmarks.covariance_nees --clips kitti07,tartanair --fit   # development: fit
    .venv/bin/python -m benchmarks.covariance_nees --clips kitti06,hololens          # confirmation
    .venv/bin/python -m benchmarks.covariance_nees --from-cache --clips kitti06,kitti07,hololens,tartanair

Runs the ROS-free default odometry (banet_vo.odometry.make_odometry, OdometryConfig()) on each clip, keeps
every frame's relative motion and relative covariance beside the ground truth's (cached under
runs/covariance_nees/, git-ignored, so a report or a fit does not need a rerun), and writes the NEES per
clip, per block (translation as published = "metric", translation up to one scale per clip = "shape",
rotation, and both jointly), before calibration (both scales 1, the floors) and after it (CovarianceConfig()
as shipped), to benchmarks/results/covariance_nees.md. --fit applies the pre-registered rule
(docs/preregistered/covariance_calibration.txt) to the clips given and prints the scales. Definitions:
banet_vo.evaluation.covariance_consistency. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from banet_vo.evaluation import covariance_consistency as cc
from banet_vo.evaluation.real_clips import ALL_CLIPS, load_clip
from banet_vo.odometry import BANetEstimator, OdometryConfig, make_odometry
from banet_vo.odometry.output_covariance import CovarianceConfig, calibrated
from banet_vo.provenance import code_version
from scipy.stats import chi2

from benchmarks.section import header_lines, variant_out

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / "runs" / "covariance_nees"
RESULTS = ROOT / "benchmarks" / "results" / "covariance_nees.md"
DEFAULT_MODEL = ROOT / "models" / "banet_small_synthetic.safetensors"
DEVELOPMENT = ("kitti07", "tartanair")  # the pre-registered split
GT_TOLERANCE_S = 1e-3
# Before calibration: the pipeline's covariance as it comes, with the floors that are always added.
RAW = replace(CovarianceConfig(), position_scale=1.0, orientation_scale=1.0)
ROWS = (  # (label, translation as "metric" or "shape", block)
    ("translation, metric", "metric", "translation"),
    ("translation, shape", "shape", "translation"),
    ("rotation", "metric", "rotation"),
    ("6-dof, metric", "metric", "joint"),
    ("6-dof, shape", "shape", "joint"),
)


def _progress(message: str) -> None:
    print(f"covariance_nees: {message}", file=sys.stderr, flush=True)


def run_clip(name: str, args, estimator) -> dict:
    """Run the default odometry on one clip; the steps and counts (also written to the cache)."""
    clip = load_clip(ALL_CLIPS[name], args.data, args.max_frames)
    config = OdometryConfig()
    if config.frontend != "xfeat":
        # collect_steps pairs each frame with the previous published one: xfeat's relative covariances
        # are step-relative; BA-Net alone's are keyframe-relative (FrameResult.relative_reference)
        raise RuntimeError(f"the default front end is {config.frontend!r}: pair frames with their keyframe")
    vo = make_odometry(estimator, config)
    gt = dict(zip(clip.stamps.tolist(), clip.gt, strict=True))
    stamps = np.asarray(sorted(gt))

    def gt_at(stamp: float):
        i = int(np.argmin(np.abs(stamps - stamp)))
        return gt[stamps[i]] if abs(stamps[i] - stamp) <= GT_TOLERANCE_S else None

    results, started = [], time.perf_counter()
    for k, frame in enumerate(clip.frames()):
        r = vo.process(frame.image, frame.timestamp, frame.camera)
        results.append(replace(r, depth=None))  # depth is not needed and is the bulk of the memory
        if (k + 1) % 25 == 0 or k + 1 == len(clip):
            _progress(
                f"{name}: frame {k + 1}/{len(clip)} ({(time.perf_counter() - started) / (k + 1):.2f} s/frame)"
            )
    steps, left_out = cc.collect_steps(results, gt_at, config.T_base_camera)
    record = {
        "clip": name,
        "frames_total": len(clip),
        "frames_with_pose": sum(r.T_odom_base is not None for r in results),
        "left_out": left_out,
        "code": args.code_version,
        "date": args.started_at,
        # what --from-cache must match: a --max-frames smoke run or another model is not the clip's run
        "max_frames": args.max_frames,
        "model": str(Path(args.model).resolve()),
        "seconds": time.perf_counter() - started,
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(
        CACHE / f"{name}.npz",
        stamps=steps.stamps,
        D_est=steps.D_est,
        D_true=steps.D_true,
        covariance=steps.covariance,
        record=json.dumps(record),
    )
    return {"steps": steps, **record}


def load_cached(name: str, max_frames: int | None = None, model: str | Path | None = None) -> dict:
    """The clip's cached run; ValueError when it was made with other --max-frames or another model (a
    cache written before those were recorded counts as a whole-clip run of any model)."""
    path = CACHE / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: run the clip first (without --from-cache)")
    z = np.load(path)
    record = json.loads(str(z["record"]))
    if record.get("max_frames") != max_frames:
        raise ValueError(
            f"{path} holds a run with --max-frames {record.get('max_frames')}, not {max_frames}: run the "
            "clip again without --from-cache"
        )
    if model is not None and record.get("model") not in (None, str(Path(model).resolve())):
        raise ValueError(f"{path} holds a run of {record['model']}, not {model}: run the clip again")
    steps = cc.Steps(z["stamps"], z["D_est"], z["D_true"], z["covariance"])
    return {"steps": steps, **record}


def published(steps: cc.Steps, translation: str, config: CovarianceConfig) -> tuple[np.ndarray, np.ndarray]:
    """(errors, published covariances) of the steps, translation "metric" or "shape" (module doc)."""
    s = steps.rescaled(steps.scale_ratio()) if translation == "shape" else steps
    covs = np.stack([calibrated(c, config) for c in s.covariance]) if len(s) else s.covariance
    return s.errors(), covs


def statistics(steps: cc.Steps, translation: str, block: str, config: CovarianceConfig) -> cc.Consistency:
    errors, covs = published(steps, translation, config)
    dof = cc.BLOCKS[block].stop - cc.BLOCKS[block].start
    return cc.consistency(cc.nees(errors, covs, block) if len(steps) else np.zeros(0), dof)


def fit(runs: list[dict]) -> CovarianceConfig:
    """The pre-registered fit: per block, the scale at which the mean over the clips of the fraction of
    frames inside the 95 % ellipsoid is 0.95 (translation on the shape), floors unchanged; 2 digits."""

    def mean_inside(translation: str, block: str, field: str):
        def fraction(s: float) -> float:
            config = replace(RAW, **{field: s})
            return float(np.mean([statistics(r["steps"], translation, block, config).inside for r in runs]))

        return fraction

    position = cc.fit_scale(mean_inside("shape", "translation", "position_scale"))
    orientation = cc.fit_scale(mean_inside("metric", "rotation", "orientation_scale"))
    round2 = lambda x: float(f"{x:.2g}")  # noqa: E731
    return replace(RAW, position_scale=round2(position), orientation_scale=round2(orientation))


# The rule's confirmation criterion: fraction inside the 95 % ellipsoid and median NEES (3 dof).
INSIDE_RANGE = (0.85, 1.0)
MEDIAN_RANGE = (0.59, 9.5)  # χ²_3's median 2.37 within a factor 4


def check(steps: cc.Steps, config: CovarianceConfig) -> list[str]:
    """The criterion per block (translation shape, rotation), as "block: inside, median: pass/FAIL"."""
    out = []
    for label, translation, block in (
        ("translation shape", "shape", "translation"),
        ("rotation", "metric", "rotation"),
    ):
        c = statistics(steps, translation, block, config)
        ok = INSIDE_RANGE[0] <= c.inside <= INSIDE_RANGE[1] and MEDIAN_RANGE[0] <= c.median <= MEDIAN_RANGE[1]
        out.append(
            f"{label} {100 * c.inside:.0f} % inside, median {c.median:.3g}: {'pass' if ok else 'FAIL'}"
        )
    return out


def _cell(c: cc.Consistency) -> str:
    if c.n == 0:
        return "— | — | —"
    return f"{c.mean:.3g} ({c.lower:.2f}–{c.upper:.2f}) | {c.median:.3g} | {100 * c.inside:.0f} %"


def clip_table(run: dict, after: CovarianceConfig) -> list[str]:
    steps = run["steps"]
    role = "development" if run["clip"] in DEVELOPMENT else "confirmation"
    left = "; ".join(f"{v} {k}" for k, v in sorted(run["left_out"].items())) or "none"
    step = np.linalg.norm(steps.D_true[:, :3, 3], axis=1) if len(steps) else np.zeros(1)
    lines = [
        f"### {run['clip']} ({role})",
        "",
        f"{len(steps)} frames evaluated of {run['frames_total']} ({run['frames_with_pose']} with a pose; "
        f"left out: {left}). Ground-truth step: median {np.median(step):.3f} m. Shape rescale (true / "
        f"estimated length, Steps.scale_ratio): {steps.scale_ratio():.3f}. "
        f"Code {run['code']}, {run['date']}.",
        "",
        "| NEES of | dof | before: mean (95 % bounds) | median | inside 95 % | after: mean (95 % bounds) | "
        "median | inside 95 % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, translation, block in ROWS:
        before = statistics(steps, translation, block, RAW)
        now = statistics(steps, translation, block, after)
        lines.append(f"| {label} | {before.dof} | {_cell(before)} | {_cell(now)} |")
    return [*lines, ""]


def write_markdown(runs: list[dict], argv: list[str], args) -> str:
    after = CovarianceConfig()
    text = [
        *header_lines(
            "Covariance consistency (NEES) on the real clips",
            "benchmarks.covariance_nees",
            argv,
            machine_extra=f"torch threads {args.threads}",
            date=args.started,
            code=args.code_version,
            run="date and code of this report; each clip's run: its own line below",
        ),
        "",
        "Default odometry (frontend xfeat, scale learned), every frame in order. For each frame with a "
        "relative covariance: the error ξ of its motion from the previous published frame, D_true = "
        "D_est·Exp(ξ), base_link axes, ROS order; NEES = ξᵀ Σ⁻¹ ξ with Σ = D·Σ_rel·D + floor, the frame's "
        "relative covariance as output_covariance.calibrated publishes it (the twist covariance times dt² "
        "once the pipeline marks it step-relative: FrameResult.relative_reference). "
        "A consistent covariance gives a mean NEES inside the "
        "bounds and 95 % of frames inside the 95 % ellipsoid (NEES ≤ χ²_d(0.95): "
        f"{chi2.ppf(0.95, 3):.2f} for 3 dof, {chi2.ppf(0.95, 6):.2f} for 6); χ²_d's median is "
        f"{chi2.median(3):.2f} / {chi2.median(6):.2f}. metric: translation as published (learned scale); "
        "shape: the clip's steps and their translation covariance rescaled by one factor (true / "
        "estimated length, least squares), so that the metric-scale bias is told apart from per-frame noise.",
        "",
        f"Before: both scales 1 (the pipeline's covariance) + floors {RAW.position_floor:g} m², "
        f"{RAW.orientation_floor:g} rad². After: CovarianceConfig() as shipped: position_scale "
        f"{after.position_scale:g}, orientation_scale {after.orientation_scale:g}, floors "
        f"{after.position_floor:g} m², {after.orientation_floor:g} rad².",
        "",
    ]
    for run in runs:
        text += clip_table(run, after)
    text += [
        "### The pre-registered check (docs/preregistered/covariance_calibration.txt)",
        "",
        f"After calibration, per block: {INSIDE_RANGE[0]:.0%} to {INSIDE_RANGE[1]:.0%} of frames inside "
        f"the 95 % ellipsoid and a median NEES in [{MEDIAN_RANGE[0]}, {MEDIAN_RANGE[1]}]. It decides on the "
        "confirmation clips; on the development clips it shows what the fit itself reached.",
        "",
    ]
    for run in runs:
        text.append(f"- {run['clip']}: " + "; ".join(check(run["steps"], after)))
    body = "\n".join(text) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(body)
    return body


def variant(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """How this run differs from the committed one (all four clips, in any order; no fit; every frame)."""
    differs = []
    if set(args.clips) != set(parser.get_default("clips").split(",")):
        differs.append("clips-" + "-".join(args.clips))
    if args.fit:
        differs.append("fit")
    if args.max_frames is not None:
        differs.append(f"first{args.max_frames}")
    if Path(args.model).resolve() != Path(parser.get_default("model")).resolve():
        differs.append(f"model-{Path(args.model).stem}")
    return differs


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="benchmarks.covariance_nees", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", default="kitti06,kitti07,hololens,tartanair", help="comma-separated")
    parser.add_argument(
        "--from-cache", action="store_true", help="use the cached runs (runs/covariance_nees)"
    )
    parser.add_argument("--fit", action="store_true", help="apply the pre-registered fit to these clips")
    parser.add_argument("--max-frames", type=int, default=None, help="first N frames (smoke runs only)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="BA-Net checkpoint")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the clips (../shared/data)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="markdown results file (default: benchmarks/results/covariance_nees.md for the committed run, "
        "all four clips without --fit or --max-frames; else runs/covariance_nees_<what differs>.md)",
    )
    args = parser.parse_args(argv)
    args.clips = [c for c in args.clips.split(",") if c]
    unknown = [c for c in args.clips if c not in ALL_CLIPS]
    if unknown:
        parser.error(f"unknown clip: {', '.join(unknown)}")
    args.out = variant_out(args.out, RESULTS, variant(args, parser))
    args.code_version = code_version()
    args.started = datetime.datetime.now(datetime.UTC)
    args.started_at = f"{args.started:%Y-%m-%d %H:%M} UTC"  # each clip's cached run records it
    torch.set_num_threads(args.threads)
    if args.from_cache:
        try:
            runs = [load_cached(name, args.max_frames, args.model) for name in args.clips]
        except (FileNotFoundError, ValueError) as err:
            print(f"covariance_nees: {err}", file=sys.stderr)
            return 2
    else:
        estimator = BANetEstimator.from_checkpoint(args.model, device="cpu")
        runs = [run_clip(name, args, estimator) for name in args.clips]
    if args.fit:
        fitted = fit(runs)
        print(
            f"pre-registered fit on {', '.join(args.clips)}: position_scale {fitted.position_scale:g}, "
            f"orientation_scale {fitted.orientation_scale:g} (floors {fitted.position_floor:g} m², "
            f"{fitted.orientation_floor:g} rad²)"
        )
    print(write_markdown(runs, argv, args))
    _progress(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
