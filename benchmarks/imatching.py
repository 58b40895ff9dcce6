"""iMatching benchmarks: speed (BA per window, adaptation step, peak memory) and accuracy (the Table 1/2
reproduction: MMA on HoloLens held-out pairs, pose AUC on HoloLens and KITTI 06 held-out pairs, for the
pretrained and the adapted matchers with SIFT/ORB reference rows).

    .venv/bin/python -m benchmarks.imatching speed --matcher models/matcher_synthetic.safetensors
    .venv/bin/python -m benchmarks.imatching accuracy --pretrained models/matcher_synthetic.safetensors \\
        --hololens-adapted models/matcher_hololens_adapted.safetensors \\
        --kitti-adapted models/matcher_kitti_adapted.safetensors

Real data comes from ../shared/data (never copied here). Split: adaptation only ever sees frames before 30
(the shipped matchers: settings chosen with adaptation on 0-19 and validation pairs of 20-29, then refit
on 0-29); every measurement uses pairs drawn from
frames 30 to the end. An adapted matcher whose metadata says it saw frame 30 or later is refused.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from banet_vo.evaluation.report import write_json
from imatching_online.evaluation import RANSAC_TRIALS

from benchmarks.process_memory import proc_status_mb
from benchmarks.section import header_lines

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
HOLOLENS = DATA / "hololens_000_003-052"
KITTI = DATA / "kitti_odom06_000-050"
RESULTS = ROOT / "benchmarks" / "results"
HELD_OUT_START = 30  # measurement pairs come from frames 30-end; adaptation may only see earlier ones
GAPS = [1, 2, 3]  # frame gaps of the measurement pairs


def _header(title: str, argv: list[str]) -> list[str]:
    return [
        *header_lines(
            title,
            "benchmarks.imatching",
            argv,
            machine_extra=f"{torch.get_num_threads()} torch thread(s); "
            "CPU shared with other jobs (timings are noisy)",
        ),
        "",
    ]


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def speed(args, argv) -> int:
    from banet_vo.data import open_sequence
    from imatching_online.adapt import AdaptConfig, OnlineAdapter, match_window
    from imatching_online.ba import WindowConfig, solve_window
    from imatching_online.matcher.io import load_matcher
    from imatching_online.matcher.queries import prepare_image

    torch.set_num_threads(args.threads)
    matcher, _ = load_matcher(args.matcher)
    seq = open_sequence(HOLOLENS)
    frames = {}
    camera = None
    for i in range(30):
        host, tensor, camera = prepare_image(seq[i].image, seq.camera, 240, 160)
        frames[i] = (host, tensor)
    ba_config = WindowConfig(passes=2, lm_iterations=5, min_parallax_deg=0.5)
    config = AdaptConfig()
    starts = list(range(0, 22, 3))
    windows = [[s + 2 * j for j in range(5)] for s in starts]

    ba_times, ba_ok, match_times = [], [], []
    with torch.no_grad():  # warm-up (first-call allocations, pypose/OpenCV initialisation) is not timed
        warm = match_window(
            matcher, torch.cat([frames[i][1] for i in windows[0]]), [frames[i][0] for i in windows[0]], config
        )
    solve_window(camera, warm.for_ba(), 5, ba_config)
    for idx in windows:
        images = torch.cat([frames[i][1] for i in idx])
        hosts = [frames[i][0] for i in idx]
        t0 = time.perf_counter()
        with torch.no_grad():
            matches = match_window(matcher, images, hosts, config)
        match_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = solve_window(camera, matches.for_ba(), 5, ba_config)
        ba_times.append(time.perf_counter() - t0)
        ba_ok.append(result.success)

    adapter = OnlineAdapter(matcher, camera, config, ba_config)
    step_times, ba_in_step, peaks, skipped = [], [], [], 0
    base_rss = proc_status_mb("VmRSS")
    for idx in windows:
        images = torch.cat([frames[i][1] for i in idx])
        hosts = [frames[i][0] for i in idx]
        can_reset = _reset_peak_rss()
        before = proc_status_mb("VmRSS")
        report = adapter.step(images, hosts)
        if can_reset:
            peaks.append(proc_status_mb("VmHWM") - before)
        if report.success:
            step_times.append(report.step_s)
            ba_in_step.append(report.ba_s)
        else:
            skipped += 1

    solved_ba = [t for t, ok in zip(ba_times, ba_ok, strict=True) if ok]
    failed_ba = [t for t, ok in zip(ba_times, ba_ok, strict=True) if not ok]

    def stats(x):
        return f"{np.median(x):.2f} s median, {np.min(x):.2f}–{np.max(x):.2f} s" if x else "n/a"

    lines = _header("Speed: window BA and adaptation step (HoloLens, 240x160, CPU)", argv)
    lines += [
        f"Windows: 5 frames (every 2nd frame), starts {starts} of HoloLens frames 0-29; corner queries "
        f"({config.queries_per_frame} max) of frames 0 and 2 of the window matched into the other 4 "
        f"(8 pairs). BA: {ba_config.passes} passes x {ba_config.lm_iterations} LM iterations.",
        "",
        "| what | time | notes |",
        "|---|---|---|",
        f"| matching, 5 frames / 8 pairs (no grad) | {stats(match_times)} | |",
        f"| window BA (solve_window), solved windows | {stats(solved_ba)} | {len(solved_ba)}/{len(ba_ok)} "
        "windows solved |",
        f"| window BA, rejected windows | {stats(failed_ba)} | failures are detected early |",
        f"| adaptation step, BA solved (match+BA+loss+backward+Adam) | {stats(step_times)} | "
        f"BA part {stats(ba_in_step)}; {skipped} windows skipped |",
        f"| peak extra RSS during one adaptation step | {np.max(peaks):.0f} MiB max, "
        f"{np.median(peaks):.0f} MiB median | process RSS before: {base_rss:.0f} MiB |"
        if peaks
        else "| peak extra RSS | n/a | /proc/self/clear_refs not writable |",
        "",
    ]
    _write(RESULTS / "imatching.md", lines)
    return 0


def accuracy(args, argv) -> int:
    from banet_vo.data import open_sequence
    from imatching_online.evaluation import (
        BOOTSTRAP_SAMPLES,
        evaluate,
        make_pairs,
        markdown_table,
        matcher_method,
        opencv_method,
    )
    from imatching_online.matcher.io import load_matcher

    torch.set_num_threads(args.threads)
    lines = _header("Accuracy: pretrained vs adapted matcher (held-out pairs), SIFT/ORB reference rows", argv)
    lines += [
        f"Adaptation used frames before {HELD_OUT_START} only (the span each adapted matcher's metadata "
        f"records), without labels; measurement pairs are drawn from frames {HELD_OUT_START}-end with gaps "
        f"{', '.join(map(str, GAPS[:-1]))} and {GAPS[-1]}. MMA (pooled over all valid queries) needs GT "
        "depth, so it is HoloLens only; pose AUC uses the GT poses (HoloLens: headset tracking; KITTI: "
        f"GPS/INS). Pose AUC pools {args.ransac_trials} RANSAC draws per pair (seeded permutations of the "
        "matches; one OpenCV draw is too noisy to rank matchers, docs/imatching.md). Differences to the "
        f"pretrained matcher carry 95 % paired-bootstrap intervals ({BOOTSTRAP_SAMPLES} resamples) in moving "
        f"blocks of {max(GAPS)} consecutive start frames, so pairs that share a frame are resampled "
        "together.",
        "",
    ]
    raw = {}
    for label, path, adapted in (
        ("HoloLens 000 (240x160)", HOLOLENS, args.hololens_adapted),
        ("KITTI 06 (416x128)", KITTI, args.kitti_adapted),
    ):
        seq = open_sequence(path)
        pairs = make_pairs(range(HELD_OUT_START, len(seq)), GAPS)
        methods = {"SIFT (mutual NN)": opencv_method("sift"), "ORB (mutual NN)": opencv_method("orb")}
        reference = "matcher, synthetic pretrained"
        methods[reference] = matcher_method(load_matcher(args.pretrained)[0])
        if adapted:
            matcher, meta = load_matcher(adapted)
            seen_frames = adaptation_frames(meta, adapted)
            name = f"matcher, adapted on frames {seen_frames.start}-{seen_frames.stop - 1} (iMatching)"
            methods[name] = matcher_method(matcher)
        width = 240 if "HoloLens" in label else 416
        print(f"{label}: {len(pairs)} pairs", file=sys.stderr)
        results = evaluate(seq, pairs, methods, width, args.ransac_trials, reference)
        raw[label] = results
        lines += [f"### {label}, {len(pairs)} pairs", "", markdown_table(results), ""]
        if adapted:
            # Diagnostic, not a generalisation measure: the frames adaptation saw (labels only to measure).
            seen = make_pairs(seen_frames, GAPS)
            matchers = {k: v for k, v in methods.items() if k.startswith("matcher")}
            seen_results = evaluate(seq, seen, matchers, width, args.ransac_trials, reference)
            span = f"{seen_frames.start}-{seen_frames.stop - 1}"
            raw[label + f" (adaptation frames {span})"] = seen_results
            lines += [
                f"Diagnostic: the same matchers on {len(seen)} pairs of frames {span}, the frames adaptation "
                "saw (without labels). Not a held-out measurement.",
                "",
                markdown_table(seen_results),
                "",
            ]
    write_json(ROOT / "runs" / "imatching_accuracy.json", raw)
    _write(RESULTS / "imatching_accuracy.md", lines)
    return 0


def adaptation_frames(meta: dict, path) -> range:
    """Frames an adapted matcher saw (its metadata); they must end before the held-out measurement frames."""
    frames = meta.get("frames")
    if not (isinstance(frames, list) and len(frames) == 2):
        raise ValueError(
            f"{path}: metadata has no adaptation 'frames' [start, stop]; not an imatching-adapt output"
        )
    seen = range(int(frames[0]), int(frames[1]))
    if seen.stop > HELD_OUT_START:
        raise ValueError(
            f"{path} was adapted on frames {seen.start}-{seen.stop - 1}, which overlap the held-out "
            f"measurement frames ({HELD_OUT_START}-end)"
        )
    return seen


# Hand-written sections after this marker (e.g. pre-registered follow-ups) survive a rerun.
KEEP_MARKER = "## Follow-up"


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    if path.exists() and KEEP_MARKER in (old := path.read_text()):
        text += "\n" + old[old.index(KEEP_MARKER) :]
    path.write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="benchmarks.imatching", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what")
    s = sub.add_parser("speed", help="BA time per window, adaptation step time and peak memory")
    s.add_argument("--matcher", default=str(ROOT / "models" / "matcher_synthetic.safetensors"))
    s.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    a = sub.add_parser("accuracy", help="MMA / pose AUC table on held-out real pairs")
    a.add_argument("--pretrained", default=str(ROOT / "models" / "matcher_synthetic.safetensors"))
    a.add_argument("--hololens-adapted", default=None, help="matcher adapted on HoloLens frames < 30")
    a.add_argument("--kitti-adapted", default=None, help="matcher adapted on KITTI 06 frames < 30")
    a.add_argument(
        "--ransac-trials",
        type=int,
        default=RANSAC_TRIALS,
        help="RANSAC draws per pair that pose AUC pools (>= 1)",
    )
    if not argv:  # benchmarks.run_all: both parts with the shipped weights
        rc = main(["speed"])
        shipped = [ROOT / "models" / f"matcher_{n}_adapted.safetensors" for n in ("hololens", "kitti")]
        extra = []
        for flag, path in zip(("--hololens-adapted", "--kitti-adapted"), shipped, strict=True):
            extra += [flag, str(path)] if path.is_file() else []
        return rc or main(["accuracy", *extra])
    a.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    if not HOLOLENS.is_dir() or not KITTI.is_dir():
        print(f"benchmarks.imatching: error: real clips not found under {DATA}", file=sys.stderr)
        return 2
    return speed(args, argv) if args.what == "speed" else accuracy(args, argv)


if __name__ == "__main__":
    sys.exit(main())
