"""Run the CPU benchmarks one after another, then assemble BENCHMARKS.md from benchmarks/results/.

    .venv/bin/python -m benchmarks.run_all [--only synthetic,normal_equations] [--assemble-only]

Each benchmark writes its own section to benchmarks/results/<topic>.md (command, machine, date, figures).
Long ones take minutes on 2 cores; GPU figures come from runs on a lent GPU and are kept as they are.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUTPUT = ROOT / "BENCHMARKS.md"

# Order of the sections in BENCHMARKS.md (a results file not listed here goes last, by name).
TOPICS = [
    "synthetic",
    "normal_equations",
    "banet_pairs",
    "banet_latency",
    "vo_kitti",
    "vo_latency",
    "window_ba",
    "imatching",
    "imatching_accuracy",
]

HEADER = """# Benchmarks

Speed, memory and accuracy figures, each with the command that produced it, the machine and the date.
Regenerate one with its command (or all with `make bench`); this file is assembled from
`benchmarks/results/*.md` by `python -m benchmarks.run_all --assemble-only`. Timings on the shared
2-core development machines are noisy: variants are compared as ratios measured in the same run.
"""


def assemble() -> Path:
    files = {p.stem: p for p in RESULTS.glob("*.md")}
    order = [t for t in TOPICS if t in files] + sorted(set(files) - set(TOPICS))
    sections = [files[t].read_text().strip() for t in order]
    OUTPUT.write_text(HEADER + "\n" + "\n\n".join(sections) + "\n")
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
            try:
                module = importlib.import_module(f"benchmarks.{topic}")
            except ModuleNotFoundError as exc:
                print(f"bench: benchmarks.{topic} not found ({exc})", file=sys.stderr)
                failed.append(topic)
                continue
            start = time.monotonic()
            print(f"bench: {topic} ...", file=sys.stderr)
            rc = module.main([])
            print(f"bench: {topic} done in {time.monotonic() - start:.0f} s (exit {rc})", file=sys.stderr)
            if rc:
                failed.append(topic)
        if failed:
            print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    path = assemble()
    print(f"bench: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
