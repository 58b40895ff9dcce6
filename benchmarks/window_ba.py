"""Time per window of the iMatching sliding-window BA (imatching_online.ba) on CPU, with its accuracy.

    .venv/bin/python -m benchmarks.window_ba [--queries 50 100 200 400] [--repeats 3] [--frames 5]
        [--solver gtsam|pypose]

Synthetic 5-frame windows (640x480, f = 500 px, 0.3 m sideways steps, points 3-15 m, 0.5 px noise, 30 %
outlier matches; query points of frames 0 and N/2 matched into every other frame). For each query count
the window is solved ``--repeats`` times (different seeds); we report the median wall time split into
initialisation / tracking / refinement, the LM steps, problem size, and the errors against the truth.
The solver is WindowConfig's (default gtsam: the shared sparse back end, GTSAM's LM) or --solver.
With --solver pypose (the dense LM, the only path that reads WindowConfig.torch_threads) a second table
compares torch thread settings on one size in the same run (ratios are what count on a shared machine).
Results: benchmarks/results/window_ba.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.section import header_lines

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "window_ba.md"


def _errors(window, result) -> tuple[float, float]:
    """Largest rotation error (deg) and median relative landmark depth error (scale aligned)."""
    from banet_vo.geometry.rigid import invert

    rot = max(
        np.degrees(np.arccos(np.clip((np.trace(e[:3, :3].T @ t[:3, :3]) - 1) / 2, -1, 1)))
        for e, t in zip(result.poses, window.poses, strict=True)
    )
    truth = {}
    for (a, b), pts in window.points.items():
        for q, X in zip(window.matches[(a, b)].query_ids, pts, strict=True):
            truth[(a, int(q))] = X
    T_true, T_est = invert(window.poses), invert(result.poses)
    scale = np.linalg.norm(window.poses[:, :3, 3], axis=1).max()
    rel = []
    for X, a, q in zip(result.landmarks, result.landmark_anchor, result.landmark_query, strict=True):
        z_est = (T_est[a, :3, :3] @ X + T_est[a, :3, 3])[2] * scale
        z_true = (T_true[a, :3, :3] @ truth[(a, int(q))] + T_true[a, :3, 3])[2]
        rel.append(abs(z_est - z_true) / z_true)
    return float(rot), float(np.median(rel))


def run_size(queries: int, frames: int, repeats: int, config) -> dict:
    from imatching_online.ba import solve_window
    from imatching_online.ba.synthetic import make_window

    rows = []
    for seed in range(repeats):
        window = make_window(num_frames=frames, queries_per_anchor=queries, seed=100 + seed)
        t0 = time.perf_counter()
        result = solve_window(window.camera, window.matches, config=config)
        wall = time.perf_counter() - t0
        if not result.success:
            rows.append({"ok": False, "wall": wall, "reason": f"{result.reason.value}: {result.detail}"})
            continue
        rot, depth = _errors(window, result)
        rows.append(
            {
                "ok": True,
                "wall": wall,
                "init": result.timings["initialise_s"],
                "track": result.timings["tracking_s"],
                "refine": result.timings["refine_s"],
                "steps": sum(p.steps for p in result.passes),
                "passes": len(result.passes),
                "matches": result.counts["usable_matches"],
                "landmarks": result.counts["landmarks"],
                "ba_landmarks": max(p.landmarks for p in result.passes),
                "obs": max(p.observations for p in result.passes),
                "inliers": result.counts["inlier_matches"],
                "rot": rot,
                "depth": depth,
            }
        )
        print(f"  queries {queries} seed {seed}: {wall:.2f} s", file=sys.stderr)
    return {"queries": queries, "rows": rows}


def _median(rows, key):
    return float(np.median([r[key] for r in rows]))


SOLVER_NOTES = {
    "gtsam": "The LM is GTSAM's (WindowConfig.solver gtsam: the shared sparse back end, banet_vo.backend, "
    "Huber factors over poses and 3-D landmarks); the landmark cap bounds the problem size.",
    "pypose": "The LM is pypose's dense `pp.optim.LM` (WindowConfig.solver pypose): its Jacobian is one "
    "vmapped backward pass per residual, so time per step grows with (residuals x parameters); the "
    "landmark cap bounds it.",
}


def main(argv: list[str] | None = None) -> int:
    from imatching_online.ba import WindowConfig
    from imatching_online.ba.config import SOLVERS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queries", type=int, nargs="+", default=[50, 100, 200, 400],
                   help="query points per anchor frame (two anchors per window); one row each")  # fmt: skip
    p.add_argument("--repeats", type=int, default=3, help="windows (seeds) per row; the median is reported")
    p.add_argument("--frames", type=int, default=5, help="frames per window")
    p.add_argument("--threads-queries", type=int, default=100,
                   help="query count for the torch-threads comparison (0 skips it)")  # fmt: skip
    p.add_argument("--solver", choices=SOLVERS, default=WindowConfig().solver,
                   help="window BA solver (default: WindowConfig's)")  # fmt: skip
    p.add_argument("--output", type=Path, default=RESULTS, help="markdown file to write")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.frames < 2 or any(q < 1 for q in args.queries):
        p.error("--repeats and --queries must be >= 1, --frames >= 2")

    config = WindowConfig(window_size=args.frames, solver=args.solver)
    started = datetime.datetime.now(datetime.UTC)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    run_size(30, args.frames, 1, config)  # warm-up: imports, first vmap and OpenCV calls are not timed
    sizes = []
    for q in args.queries:
        print(f"window BA, {q} queries per anchor", file=sys.stderr)
        sizes.append(run_size(q, args.frames, args.repeats, config))

    threads = []
    if args.threads_queries > 0 and args.solver == "pypose":  # torch_threads: read by the pypose path only
        import torch

        default_threads = torch.get_num_threads()
        for label, n in (("1 (default torch_threads=1)", 1), (f"{default_threads} (torch_threads=0)", 0)):
            print(f"threads comparison: {label}", file=sys.stderr)
            threads_config = WindowConfig(window_size=args.frames, solver=args.solver, torch_threads=n)
            res = run_size(args.threads_queries, args.frames, args.repeats, threads_config)
            threads.append((label, res))

    lines = [
        *header_lines(
            "iMatching window BA: time per window on CPU",
            "benchmarks.window_ba",
            argv,
            machine_extra=f"load average at start {load:.1f}",
            date=started,
        ),
        "",
        f"Synthetic {args.frames}-frame windows, 640x480, f = 500 px, 0.3 m sideways steps, points 3-15 m, "
        "0.5 px noise, 30 % outlier matches, query points of two anchor frames matched into every other "
        f"frame. WindowConfig with solver {args.solver} (LM landmarks capped at {config.max_ba_landmarks}). "
        f"Median over {args.repeats} windows per row, after one untimed warm-up window. Errors against the "
        "truth: largest rotation error over the window, median landmark depth error after scale alignment.",
        "",
        "| queries/anchor | matches | landmarks (in LM) | LM residuals | wall [s] | init [s] | track [s] "
        "| refine [s] | LM steps (passes) | s / LM step | rot err [deg] | depth err |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        ok = [r for r in size["rows"] if r["ok"]]
        if not ok:
            lines.append(f"| {size['queries']} | all windows failed: {size['rows'][0]['reason']} |")
            continue
        lines.append(
            f"| {size['queries']} | {_median(ok, 'matches'):.0f} | {_median(ok, 'landmarks'):.0f} "
            f"({_median(ok, 'ba_landmarks'):.0f}) | {2 * _median(ok, 'obs'):.0f} | {_median(ok, 'wall'):.2f} "
            f"| {_median(ok, 'init'):.2f} | {_median(ok, 'track'):.2f} | {_median(ok, 'refine'):.2f} "
            f"| {_median(ok, 'steps'):.0f} ({_median(ok, 'passes'):.0f}) "
            f"| {_median(ok, 'refine') / max(_median(ok, 'steps'), 1):.3f} | {_median(ok, 'rot'):.3f} "
            f"| {100 * _median(ok, 'depth'):.2f} % |"
        )
        failed = len(size["rows"]) - len(ok)
        if failed:
            lines.append(f"| | {failed} of {len(size['rows'])} windows failed | | | | | | | | | | |")
    if threads:
        lines += [
            "",
            f"torch threads during LM, {args.threads_queries} queries/anchor, same run (median per window):",
            "",
            "| torch threads | wall [s] | refine [s] | ratio to 1 thread (refine) |",
            "|---|---|---|---|",
        ]
        base = _median([r for r in threads[0][1]["rows"] if r["ok"]], "refine")
        for label, res in threads:
            ok = [r for r in res["rows"] if r["ok"]]
            lines.append(
                f"| {label} | {_median(ok, 'wall'):.2f} | {_median(ok, 'refine'):.2f} "
                f"| {_median(ok, 'refine') / base:.2f} |"
            )
    lines += [
        "",
        SOLVER_NOTES[args.solver] + " Timings on a shared machine are noisy: compare rows of one run.",
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
