"""Window BA by solver (banet_vo.backend: COLMAP's Ceres adjuster vs GTSAM's LM) on windows of real clips.

    .venv/bin/python -m benchmarks.backend_solver [--clips kitti07 hololens] [--frames 60] [--every 2]

The odometry (default front end, scale none, GTSAM windows, seed 0) runs over the first `--frames` frames
of each clip and records every window BA it submits; each `--every`-th recorded window is then solved by
both solvers in one process, alternating which goes first, so the ratio is what counts on a shared
machine. Reported per clip: median seconds per window (the whole solve() call: building the problem, both
passes, pruning), the final cost of each (half the sum of Huber-robustified squared pixel residuals), and
how far the solutions are apart (largest keyframe position difference over how far GTSAM moved the
keyframes). Results: benchmarks/results/backend_solver.md.
"""

from __future__ import annotations

import argparse
import datetime
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from banet_vo.provenance import code_version, machine_description

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "backend_solver.md"
DATA = ROOT.parent / "shared" / "data"
MODEL = ROOT / "models" / "banet_small_synthetic.safetensors"


@dataclass
class Window:
    camera: object
    poses: dict
    points: dict
    observations: object
    fixed: set


def record_windows(clip_name: str, frames: int) -> list[Window]:
    """Every window the odometry solves on the clip's first `frames` frames (GTSAM, as before the switch)."""
    import torch
    from banet_vo.backend import window_ba
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.odometry import BANetEstimator, OdometryConfig, make_odometry

    torch.set_num_threads(1)
    windows: list[Window] = []

    class Recording(window_ba.WindowBundleAdjuster):
        def solve(self, poses, points, observations, fixed, relative=None):
            windows.append(
                Window(
                    self.camera,
                    {k: T.copy() for k, T in poses.items()},
                    {j: P.copy() for j, P in points.items()},
                    observations,
                    set(fixed),
                )
            )
            return super().solve(poses, points, observations, fixed, relative)

    from banet_vo.odometry import keyframe_vo

    original = keyframe_vo.WindowBundleAdjuster
    keyframe_vo.WindowBundleAdjuster = Recording
    try:
        clip = rc.load_clip(rc.ALL_CLIPS[clip_name], DATA, frames)
        estimator = BANetEstimator.from_checkpoint(MODEL, device="cpu")
        vo = make_odometry(estimator, replace(OdometryConfig(scale_source="none"), window_solver="gtsam"))
        rc.run_odometry(vo, clip)
    finally:
        keyframe_vo.WindowBundleAdjuster = original
    return windows


def compare(windows: list[Window]) -> dict:
    from banet_vo.backend import WindowBAConfig, WindowBundleAdjuster

    seconds = {"ceres": [], "gtsam": []}
    cost = {"ceres": [], "gtsam": []}
    apart = []
    for i, w in enumerate(windows):
        results = {}
        for solver in ("ceres", "gtsam") if i % 2 == 0 else ("gtsam", "ceres"):
            ba = WindowBundleAdjuster(w.camera, WindowBAConfig(solver=solver))
            started = time.perf_counter()
            results[solver] = ba.solve(w.poses, w.points, w.observations, w.fixed)
            seconds[solver].append(time.perf_counter() - started)
            cost[solver].append(results[solver].final_error)
        moved = max(np.linalg.norm(results["gtsam"].poses[k][:3, 3] - w.poses[k][:3, 3]) for k in w.poses)
        diff = max(
            np.linalg.norm(results["ceres"].poses[k][:3, 3] - results["gtsam"].poses[k][:3, 3])
            for k in w.poses
        )
        apart.append(diff / moved if moved > 0 else 0.0)
    return {
        "windows": len(windows),
        "landmarks": int(np.median([len(w.points) for w in windows])),
        "observations": int(np.median([len(w.observations) for w in windows])),
        "ceres_s": float(np.median(seconds["ceres"])),
        "gtsam_s": float(np.median(seconds["gtsam"])),
        "cost_ratio": float(np.median(np.array(cost["ceres"]) / np.array(cost["gtsam"]))),
        "ceres_lower": int(np.sum(np.array(cost["ceres"]) < np.array(cost["gtsam"]))),
        "apart": float(np.median(apart)),
        "apart_max": float(np.max(apart)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", nargs="+", default=["kitti07", "hololens"], help="clip names (real_clips)")
    p.add_argument("--frames", type=int, default=60, help="frames of each clip the odometry runs over")
    p.add_argument("--every", type=int, default=2, help="solve every k-th recorded window")
    args = p.parse_args(argv)
    if args.frames < 2 or args.every < 1:
        p.error("--frames must be >= 2 and --every >= 1")
    rows = []
    for name in args.clips:
        print(f"{name}: recording windows over {args.frames} frames ...", flush=True)
        windows = record_windows(name, args.frames)[:: args.every]
        print(f"{name}: solving {len(windows)} windows with both solvers ...", flush=True)
        rows.append((name, compare(windows)))
    lines = [
        "# Window BA by solver: COLMAP's Ceres adjuster vs GTSAM's LM",
        "",
        f"`.venv/bin/python -m benchmarks.backend_solver --clips {' '.join(args.clips)} "
        f"--frames {args.frames} --every {args.every}` — {datetime.date.today()}, code {code_version()}, "
        f"{machine_description()}",
        "",
        "Windows recorded from the odometry (scale none, GTSAM, seed 0), each solved by both in one process.",
        "Cost: final half-sum of Huber-robustified squared pixel residuals (ceres / gtsam, median over",
        "windows). Apart: largest keyframe position difference / largest keyframe move by GTSAM.",
        "",
        "| clip | windows | landmarks | observations | ceres s/window | gtsam s/window | ratio | cost ratio "
        "| ceres cost lower | apart (median / max) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['windows']} | {r['landmarks']} | {r['observations']} | {r['ceres_s']:.3f} | "
            f"{r['gtsam_s']:.3f} | {r['ceres_s'] / r['gtsam_s']:.2f} | {r['cost_ratio']:.4f} | "
            f"{r['ceres_lower']}/{r['windows']} | {r['apart']:.3f} / {r['apart_max']:.3f} |"
        )
    lines.append("")
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
