"""The depth-curve fits of docs/preregistered/depth_calibration*.txt, on the training clips by default.

    .venv/bin/python -m benchmarks.depth_calibration [--clips kitti07,tartanair] [--model M] [--seed 0]
        [--threads 1] [--form power|gain] [--direction inverse|forward] [--max-frames N] [--out PATH]
        [--dry-run]

The same fit as `banet-vo-eval depth-curve` (banet_vo.evaluation.depth_curve: the procedure, the data
rule), with the pre-registered tests' defaults: the training clips KITTI 07 and TartanAir, the shipped
model, a power law fitted in the inverse direction.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from banet_vo.evaluation.depth_curve import DIRECTIONS, FORMS

from benchmarks.real_clips import DATA
from benchmarks.vo_kitti import DEFAULT_MODEL


def main(argv: list[str] | None = None) -> int:
    from banet_vo.evaluation.commands.depth_curve import run

    parser = argparse.ArgumentParser(
        prog="benchmarks.depth_calibration", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--clips", default="kitti07,tartanair", help="training clips, comma-separated")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="BA-Net checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="tracking_ransac_seed of the recording runs")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--max-frames", type=int, help="first N frames of each clip (development, tests)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the clips (../shared/data)")
    parser.add_argument("--out", type=Path, help="JSON to write (default: beside --model)")
    parser.add_argument("--direction", choices=DIRECTIONS, default="inverse", help="power law: fit direction")
    parser.add_argument("--form", choices=FORMS, default="power", help="power (default) or gain")
    parser.add_argument("--dry-run", action="store_true", help="fit and print, write nothing")
    args = parser.parse_args(argv)
    args.clips = [c for c in args.clips.split(",") if c]
    command = "python -m benchmarks.depth_calibration " + " ".join(sys.argv[1:] if argv is None else argv)
    rc = run(args, command)
    if rc == 2:
        parser.error("see above")
    return rc


if __name__ == "__main__":
    sys.exit(main())
