"""Time of one published depth map at the input image's resolution (banet_vo.odometry.depth_output): the
model's 128x96 depth resampled to the clips' and common robot cameras' sizes, by both `depth_upsampling`
methods. It runs on the node's inference thread for every published depth.

    .venv/bin/python -m benchmarks.depth_upsampling [--repeats 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.section import header_lines

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "depth_upsampling.md"
# (name, width, height): the clips' cameras, then common robot cameras.
TARGETS = [
    ("TartanAir", 320, 240),
    ("HoloLens", 540, 360),
    ("VGA", 640, 480),
    ("KITTI", 1226, 370),
    ("720p", 1280, 720),
    ("1080p", 1920, 1080),
]
MODEL_SIZE = (128, 96)


def time_one(method: str, width: int, height: int, repeats: int) -> float:
    """Median seconds of one upsample_depth call from the model's size to width x height."""
    from banet_vo.geometry import PinholeCamera
    from banet_vo.odometry.depth_output import upsample_depth

    target = PinholeCamera(0.8 * width, 0.8 * width, (width - 1) / 2, (height - 1) / 2, width, height)
    source = target.resized(*MODEL_SIZE)
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 30.0, (MODEL_SIZE[1], MODEL_SIZE[0])).astype(np.float32)
    depth[rng.random(depth.shape) < 0.05] = np.nan
    upsample_depth(depth, source, target, method)  # first call: allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        upsample_depth(depth, source, target, method)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.depth_upsampling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per cell (median)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown file to write")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    rows = []
    for name, width, height in TARGETS:
        cells = [f"{1e3 * time_one(m, width, height, args.repeats):.1f}" for m in ("nearest", "edge_aware")]
        rows.append(f"| {name} | {width}x{height} | {' | '.join(cells)} |")
        print(f"depth_upsampling: {rows[-1]}", file=sys.stderr)
    text = "\n".join(
        [
            *header_lines(
                "Depth output at the input resolution: time per published map",
                "benchmarks.depth_upsampling",
                argv,
                run=f"median of {args.repeats} calls per cell",
                torch_info=False,
            ),
            "",
            f"The model's {MODEL_SIZE[0]}x{MODEL_SIZE[1]} depth resampled to the camera's pixels "
            "(`depth_upsampling`), milliseconds per map, on the node's inference thread.",
            "",
            "| camera | pixels | nearest [ms] | edge_aware [ms] |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )
    args.out.write_text(text)
    print(f"depth_upsampling: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
