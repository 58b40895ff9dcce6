"""Run the CPU benchmarks one after another, then assemble BENCHMARKS.md and docs/benchmarks-history.md
from benchmarks/results/.

    .venv/bin/python -m benchmarks.run_all [--only synthetic,normal_equations] [--assemble-only]

Each benchmark writes its own section to benchmarks/results/<topic>.md (command, machine, date, figures).
BENCHMARKS.md holds today's figures (the TODAY topics: accuracy on the real clips, speed, memory) and
links the rest, which goes to docs/benchmarks-history.md with its dates. Long benchmarks take minutes on
2 cores; GPU figures come from runs on a lent GPU and are kept as they are.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import time
from pathlib import Path

from banet_vo.odometry.tracking_config import LIVE_BANET_MIN_INTERVAL

from benchmarks.glance import glance_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUTPUT = ROOT / "BENCHMARKS.md"
HISTORY = ROOT / "docs" / "benchmarks-history.md"

# Order of the sections (a results file not listed here goes last, by name).
TOPICS = [
    "real_clips",
    "real_clips_ground_plane",
    "real_clips_depth_gain",
    "real_depth",
    "real_clips_live",
    "real_clips_live_background",
    "real_clips_live_background_ceres",
    "live_replay",
    "live_replay_single_executor",
    "real_clips_every5",
    "real_clips_scale0.5",
    "real_clips_scale0.5_min_pixels",
    "real_clips_min_pixels",
    "real_clips_min_pixels_baseline",
    "real_clips_scale2",
    "real_clips_scale2_cap500k_px",
    "real_clips_scale1.5",
    "real_clips_scale1.5_cap500k_px",
    "real_clips_scale1.5_ground_plane",
    "real_clips_scale1.5_cap500k_px_ground_plane",
    "real_clips_model_xfeat",
    "real_clips_jpeg95",
    "real_clips_jpeg75",
    "real_clips_gray",
    "frame_profile",
    "live_profile",
    "long_run",
    "long_drive_synthetic",
    "keypoint_lag",
    "scale_profile",
    "window_drift_sim",
    "depth_upsampling",
    "device_check",
    "covariance_nees",
    "synthetic",
    "normal_equations",
    "banet_pairs",
    "banet_latency",
    "xfeat_latency",
    "vo_kitti",
    "vo_latency",
    "window_ba",
    "backend_ordering",
    "backend_solver",
    "imatching",
    "imatching_accuracy",
]

JPEG_RUN_ARGS = "--threads 1 --frontends xfeat --scales learned,ground_plane --seeds 0,1,2,3,4".split()
# A camera of another resolution (docs/preregistered/feature_max_pixels*.txt): today's default and the cap.
CAP = ["--tracking", "feature_max_pixels=500000"]
HALF_SIZE_RUN_ARGS = (
    "--threads 1 --clips kitti06,kitti07,hololens,tartanair --frontends xfeat --scales "
    "learned,ground_plane,none --seeds 1,2,3 --references orb --image-scale 0.5"
).split()
# Sections made by several commands (a fit then runs, a bag then the node, a rendered drive) or on a lent
# GPU: each gives its commands; `make bench` keeps them as they are and says so.
# real_clips_min_pixels(_baseline): real_clips runs written to runs/min_pixels/ND.md and NA.md (their Command
# lines), then copied here; a rerun of those commands would not write these files.
MANUAL = (
    "real_clips_depth_gain",
    "live_profile",
    "long_drive_synthetic",
    "device_check",
    "real_clips_min_pixels",
    "real_clips_min_pixels_baseline",
)
SCALE_RUN_ARGS = "--threads 1 --frontends xfeat --scales learned,ground_plane --seeds 0,1,2".split()
GRAY_RUN_ARGS = (
    "--threads 1 --clips hololens,tartanair --frontends xfeat --scales learned,none --seeds 1,2,3 "
    "--references orb"
).split()
MODEL_XFEAT_RUN_ARGS = [
    *"--threads 1 --frontends xfeat --scales learned,ground_plane --seeds 0,1,2,3,4".split(),
    "--model",
    str(ROOT / "models" / "banet_small_xfeat.safetensors"),
]
GROUND_10 = "--threads 1 --frontends xfeat --scales ground_plane --seeds 0,1,2,3,4,5,6,7,8,9".split()


def _scale_run(base: list[str], clips: str, factor: str, tag: str, suffix: str = "") -> tuple[str, list[str]]:
    """real_clips at --image-scale `factor`; tag "_cap500k_px" adds the feature cap."""
    out = RESULTS / f"real_clips_scale{factor}{tag}{suffix}.md"
    cap = CAP if tag else []
    return "real_clips", [*base, "--clips", clips, "--image-scale", factor, *cap, "--out", str(out)]


# Topics written by another benchmark module than their name: topic -> (module, arguments).
RUNS = {
    # The main table: medians of 5 RANSAC seeds at one torch thread (the README quotes it).
    "real_clips": ("real_clips", ["--seeds", "0,1,2,3,4", "--threads", "1"]),
    "real_clips_live": ("real_clips", ["--live-only"]),
    # The default keypoint count beside half of it (docs/preregistered/max_keypoints.txt).
    "frame_profile": ("frame_profile", ["--threads", "2", "--max-keypoints", "2048,1024"]),
    "real_clips_every5": ("real_clips", ["--every", "5", "--seeds", "0,1,2,3,4", "--threads", "1"]),
    # The other shipped BA-Net (XFeat's encoder, real-appearance training), beside the main table's default.
    "real_clips_model_xfeat": (
        "real_clips",
        [
            *MODEL_XFEAT_RUN_ARGS,
            "--out",
            str(RESULTS / "real_clips_model_xfeat.md"),
        ],
    ),
    # Half size, as published (docs/preregistered/feature_min_pixels.txt): without and with the upscale.
    **{
        f"real_clips_scale0.5{tag}": (
            "real_clips",
            [
                *HALF_SIZE_RUN_ARGS,
                *extra,
                "--out",
                str(RESULTS / f"real_clips_scale0.5{tag}.md"),
            ],
        )
        for tag, extra in (("", []), ("_min_pixels", ["--tracking", "feature_min_pixels=486400"]))
    },
    # The ground-plane scale depends on the RANSAC seed far more than the rest: ten seeds.
    "real_clips_ground_plane": (
        "real_clips",
        [
            "--clips",
            "kitti06,kitti07",
            "--frontends",
            "xfeat",
            "--scales",
            "ground_plane",
            "--seeds",
            "0,1,2,3,4,5,6,7,8,9",
            "--threads",
            "1",
            "--out",
            str(RESULTS / "real_clips_ground_plane.md"),
        ],
    ),
    # Every image through JPEG, as a camera streaming compressed images (docs/preregistered/jpeg_input.txt).
    **{
        f"real_clips_jpeg{q}": (
            "real_clips",
            [*JPEG_RUN_ARGS, "--jpeg-quality", str(q)],
        )
        for q in (95, 75)
    },
    # The colour clips through a mono camera (BA-Net's depth reads colour: augment.py's gray).
    "real_clips_gray": (
        "real_clips",
        [*GRAY_RUN_ARGS, "--gray"],
    ),
    **{
        f"real_clips_scale{factor}{tag}": _scale_run(SCALE_RUN_ARGS, clips, factor, tag)
        for factor, clips in (("2", "kitti06,kitti07,hololens"), ("1.5", "kitti06,kitti07"))
        for tag in ("", "_cap500k_px")
    },
    **{
        f"real_clips_scale1.5{tag}_ground_plane": _scale_run(
            [*GROUND_10, "--references", "orb,sift"], "kitti06,kitti07", "1.5", tag, "_ground_plane"
        )
        for tag in ("", "_cap500k_px")
    },
    # The recommended live setting (docs/preregistered/banet_min_interval.txt).
    "real_clips_live_background": (
        "real_clips",
        [
            "--live-only",
            "--live-param",
            "background_ba:=true",
            "--live-param",
            f"tracking_banet_min_interval:={LIVE_BANET_MIN_INTERVAL:g}",
            "--out",
            str(RESULTS / "real_clips_live_background.md"),
        ],
    ),
    # The live node's frames since the single-threaded executor (docs/node.md, "Executor").
    "live_replay_single_executor": (
        "live_replay",
        [
            "--frames",
            str(ROOT / "benchmarks" / "live_frames_single_executor.json"),
            "--out",
            str(RESULTS / "live_replay_single_executor.md"),
        ],
    ),
    # The published runs (their Command lines): 10 passes in blocks of 160 frames; 20 timed passes.
    "long_run": ("long_run", ["--clip", "kitti07", "--passes", "10", "--block", "160"]),
    "banet_latency": (
        "banet_latency",
        [
            "--repeats",
            "20",
            "--threads",
            "2",
            "--models",
            "small,paper,models/banet_small_synthetic.safetensors,models/banet_small_xfeat.safetensors",
        ],
    ),
    # benchmarks.imatching writes imatching.md (speed) and imatching_accuracy.md (accuracy); with no
    # subcommand it has nothing to run.
    "imatching": ("imatching", ["speed"]),
    "imatching_accuracy": (
        "imatching",
        [
            "accuracy",
            "--hololens-adapted",
            "models/matcher_hololens_adapted.safetensors",
            "--kitti-adapted",
            "models/matcher_kitti_adapted.safetensors",
            "--threads",
            "2",
        ],
    ),
    # docs/preregistered/live_ceres_background.txt (rejected)
    "real_clips_live_background_ceres": (
        "real_clips",
        [
            "--live-only",
            "--live-param",
            "background_ba:=true",
            "--live-param",
            "window_solver:=ceres",
            "--out",
            str(RESULTS / "real_clips_live_background_ceres.md"),
        ],
    ),
}

# Today's headline figures, in BENCHMARKS.md in this order; every other topic (the robustness studies:
# other resolutions, JPEG, gray, every 5th frame, replayed live selections, NEES) goes to
# docs/benchmarks-history.md, linked from BENCHMARKS.md.
TODAY = [
    "real_clips",
    "real_clips_ground_plane",
    "real_clips_depth_gain",
    "real_depth",
    "real_clips_live",
    "real_clips_live_background",
    "frame_profile",
    "live_profile",
    "long_run",
    "long_drive_synthetic",
    "banet_latency",
    "xfeat_latency",
    "vo_latency",
    "device_check",
]

HEADER = """# Benchmarks: today

Today's figures: accuracy on each real clip beside classical references, BA-Net's speed and memory, and
the node's latency. Each section gives the command that produced it, the machine and the date;
regenerate one with its command (or all with `make bench`). Earlier figures and the studies (model runs,
matcher adaptation, window BA, synthetic world, the real clips through other resolutions, JPEG, gray
conversion and dropped frames, covariance consistency) are in
[docs/benchmarks-history.md](docs/benchmarks-history.md). This file is assembled from
`benchmarks/results/*.md` by `python -m benchmarks.run_all --assemble-only`.
Timings on the shared 2-core development machines are noisy: variants are compared as ratios measured in
the same run.
"""

HISTORY_HEADER = """# Benchmarks: history and studies

Figures kept from earlier runs and the longer studies, each with its command, machine and date (today's
figures are in [BENCHMARKS.md](../BENCHMARKS.md)). Assembled from `benchmarks/results/*.md` by
`python -m benchmarks.run_all --assemble-only`.
"""


def _anchor(title: str) -> str:
    """GitHub's anchor for a markdown heading, before duplicates are told apart (`_anchors`)."""
    kept = "".join(c for c in title.strip().lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def _anchors(markdown: str, taken: dict[str, int] | None = None) -> list[str]:
    """The anchor of each ATX heading of a document, in order, as GitHub gives them: a slug already taken
    gets -1, -2, ... (github-slugger's rule), so two sections with one title link to two places. Lines in
    fenced code blocks are not headings. `taken`: the slugs of the document before this part (updated)."""
    taken = {} if taken is None else taken
    anchors, fence = [], ""
    for line in markdown.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            marker = stripped[:3]
            fence = "" if fence == marker else fence or marker
            continue
        heading = re.match(r" {0,3}#{1,6}(?:\s+(.*?))?\s*$", line)
        if fence or not heading:
            continue
        base = slug = _anchor(re.sub(r"\s+#+$", "", heading.group(1) or ""))
        while slug in taken:
            taken[base] += 1
            slug = f"{base}-{taken[base]}"
        taken[slug] = 0
        anchors.append(slug)
    return anchors


def assemble() -> Path:
    files = {p.stem: p for p in RESULTS.glob("*.md")}
    order = [t for t in TOPICS if t in files] + sorted(set(files) - set(TOPICS))
    sections = {t: files[t].read_text().strip() for t in order}
    today = [t for t in TODAY if t in sections]
    history = [t for t in order if t not in TODAY]
    # Each section opens with its title heading; its anchor counts every heading before it in the file.
    taken: dict[str, int] = {}
    _anchors(HISTORY_HEADER, taken)
    links = []
    for t in history:
        title = sections[t].splitlines()[0].lstrip("# ").strip()
        links.append(f"- [{title}](docs/benchmarks-history.md#{_anchors(sections[t], taken)[0]})")
    glance = glance_section(sections["real_clips"]) if "real_clips" in sections else None
    body = "\n\n".join(([glance] if glance else []) + [sections[t] for t in today])
    OUTPUT.write_text(f"{HEADER}\n{body}\n\n## Studies and earlier figures\n\n" + "\n".join(links) + "\n")
    HISTORY.parent.mkdir(parents=True, exist_ok=True)
    HISTORY.write_text(HISTORY_HEADER + "\n" + "\n\n".join(sections[t] for t in history) + "\n")
    return OUTPUT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated benchmark modules to run (default: all)")
    parser.add_argument("--assemble-only", action="store_true", help="only rebuild BENCHMARKS.md")
    args = parser.parse_args(argv)
    if not args.assemble_only:
        topics = args.only.split(",") if args.only else TOPICS
        failed = []
        for topic in topics:
            if topic in MANUAL:
                print(
                    f"bench: {topic} kept as it is (its section gives the commands that make it)",
                    file=sys.stderr,
                )
                continue
            name, topic_args = RUNS.get(topic, (topic, []))
            try:
                module = importlib.import_module(f"benchmarks.{name}")
            except ModuleNotFoundError as exc:
                print(f"bench: benchmarks.{topic} not found ({exc})", file=sys.stderr)
                failed.append(topic)
                continue
            start = time.monotonic()
            print(f"bench: {topic} ...", file=sys.stderr)
            rc = module.main(list(topic_args))
            print(f"bench: {topic} done in {time.monotonic() - start:.0f} s (exit {rc})", file=sys.stderr)
            if rc:
                failed.append(topic)
        if failed:
            print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    path = assemble()
    print(f"bench: wrote {path}", file=sys.stderr)
    return 1 if not args.assemble_only and failed else 0


if __name__ == "__main__":
    sys.exit(main())
