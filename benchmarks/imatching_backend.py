"""Window BA and adaptation-step time on CPU: pypose's dense LM (before) vs the shared GTSAM back end (after).

Real HoloLens windows from the adaptation range only (5 frames, stride 2, every `--every`-th start frame of
sequence indices 0-146); the same detached matches go to both solvers, then one adaptation step per window
is timed with each (a fresh adapter per solver, so both start from the same weights).

    nice -n 10 .venv/bin/python -m benchmarks.imatching_backend [--out FILE]

The section (command, machine, date, table) goes to --out, by default
benchmarks/results/imatching_backend.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from banet_vo.data import open_sequence
from banet_vo.evaluation.report import write_json
from imatching_online.adapt import AdaptConfig, OnlineAdapter, match_window
from imatching_online.ba import WindowConfig, solve_window
from imatching_online.matcher.io import XFEAT_PRETRAINED, load_matcher
from imatching_online.matcher.queries import fit_size, prepare_image

from benchmarks.section import write_section

SOLVERS = ("pypose", "gtsam")
RESULTS = Path(__file__).resolve().parent / "results" / "imatching_backend.md"


def _windows(seq, starts, width, stride=2, size=5):
    cam = seq.camera
    w, h = fit_size(cam.width, cam.height, width)
    camera = cam.resized(w, h)
    out = []
    for s in starts:
        frames = [prepare_image(seq[s + j * stride].image, cam, w, h) for j in range(size)]
        out.append((s, torch.cat([f[1] for f in frames]), [f[0] for f in frames]))
    return camera, out


def run(args) -> dict:
    torch.set_num_threads(1)
    seq = open_sequence(args.sequence)
    starts = list(range(0, 147 - 8, args.every))
    camera, windows = _windows(seq, starts, args.width)
    results = {}
    for name, spec in (("xfeat", XFEAT_PRETRAINED), ("own", args.own)):
        matcher, _ = load_matcher(spec)
        row = {s: {"ba_s": [], "refine_s": [], "success": 0, "step_s": []} for s in SOLVERS}
        for start, images, hosts in windows:
            with torch.no_grad():
                ba_input = match_window(matcher, images, hosts, AdaptConfig()).for_ba()
            for solver in SOLVERS:
                t0 = time.perf_counter()
                res = solve_window(camera, ba_input, 5, WindowConfig(solver=solver))
                row[solver]["ba_s"].append(time.perf_counter() - t0)
                row[solver]["success"] += int(res.success)
                if res.success:
                    row[solver]["refine_s"].append(res.timings["refine_s"])
            print(f"{name} window {start} done", file=sys.stderr)
        for solver in SOLVERS:
            m, _ = load_matcher(spec)
            adapter = OnlineAdapter(m, camera, AdaptConfig(), WindowConfig(solver=solver))
            for _start, images, hosts in windows[: args.step_windows]:
                report = adapter.step(images, hosts)
                if report.success:
                    row[solver]["step_s"].append(report.step_s)
        results[name] = {
            s: {
                "windows": len(windows),
                "solved": row[s]["success"],
                "ba_median_s": statistics.median(row[s]["ba_s"]),
                "refine_median_s": statistics.median(row[s]["refine_s"]) if row[s]["refine_s"] else None,
                "step_median_s": statistics.median(row[s]["step_s"]) if row[s]["step_s"] else None,
                "steps_timed": len(row[s]["step_s"]),
            }
            for s in SOLVERS
        }
    return {"width": args.width, "starts": starts, "results": results}


def markdown(payload: dict) -> str:
    lines = [
        "| matcher | solver | windows solved | window BA median (s) | of it LM + pruning (s) "
        "| adaptation step median (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, per in payload["results"].items():
        for solver, r in per.items():
            fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
            lines.append(
                f"| {name} | {solver} | {r['solved']}/{r['windows']} | {r['ba_median_s']:.3f} | "
                f"{fmt(r['refine_median_s'])} | {fmt(r['step_median_s'])} (n={r['steps_timed']}) |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequence", type=Path, default=Path("../shared/data/hololens_000_003-199"))
    p.add_argument("--own", default="models/matcher_synthetic.safetensors")
    p.add_argument("--width", type=int, default=288)
    p.add_argument("--every", type=int, default=12, help="start-frame spacing of the timed windows")
    p.add_argument("--step-windows", type=int, default=6, help="windows with a timed adaptation step")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--out", type=Path, default=RESULTS, help="markdown section to write")
    args = p.parse_args(argv)
    payload = run(args)
    write_section(
        args.out,
        "iMatching lower level: pypose dense LM (before) vs the shared GTSAM back end (after)",
        "benchmarks.imatching_backend",
        argv,
        f"{len(payload['starts'])} windows",
        [
            f"HoloLens (`{args.sequence}`), windows of 5 frames at stride 2 starting every {args.every} "
            f"frames (sequence indices {', '.join(map(str, payload['starts']))}), width {args.width}; the "
            "same detached matches go to both solvers; the adaptation step is timed on the first "
            f"{args.step_windows} windows with a fresh adapter per solver. Medians.",
            "",
            markdown(payload),
        ],
    )
    if args.json:
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
