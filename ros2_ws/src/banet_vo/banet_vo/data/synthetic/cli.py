"""`banet-vo-synth OUT --scene driving|indoor --frames N --size WxH --seed S`: render a synthetic sequence
and write it in our on-disk format (docs/data-format.md)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from banet_vo.data.readers.banet import MAX_DEPTH_M, write_sequence
from banet_vo.data.sequence import Frame
from banet_vo.data.synthetic.generate import DEFAULT_FOV_DEG, KINDS, render_sequence
from banet_vo.data.synthetic.sensor import SensorModel


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 320x240, got {text!r}") from None
    if width < 8 or height < 8:
        raise argparse.ArgumentTypeError(f"--size must be at least 8x8, got {text!r}")
    return width, height


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="banet-vo-synth",
        description="Render a procedural sequence (street or room) with exact depth, camera-to-world poses "
        "and intrinsics, and write it as images/, depth/, K.txt, poses.txt, times.txt.",
    )
    parser.add_argument("out", metavar="OUT", help="output directory (created; see --overwrite)")
    parser.add_argument(
        "--scene",
        choices=KINDS,
        default="driving",
        help="driving: street, 10 Hz, 0.5-1.5 m/frame; indoor: room, hand-held, 30 Hz (default: %(default)s)",
    )
    parser.add_argument(
        "--frames", type=_positive_int, default=50, help="number of frames (default: %(default)s)"
    )
    parser.add_argument(
        "--size",
        type=_size,
        default=(320, 240),
        metavar="WxH",
        help="image size in pixels (default: 320x240)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="scene, trajectory and noise seed (default: %(default)s)"
    )
    parser.add_argument(
        "--fov",
        type=float,
        default=None,
        metavar="DEG",
        help=f"horizontal field of view in degrees (default: {DEFAULT_FOV_DEG['driving']:g} "
        f"driving, {DEFAULT_FOV_DEG['indoor']:g} indoor)",
    )
    parser.add_argument("--blur", action="store_true", help="motion blur: average 5 poses across the shutter")
    parser.add_argument(
        "--supersample",
        type=_positive_int,
        default=1,
        metavar="K",
        help="K x K rays per pixel for smoother edges, K² times slower (default: %(default)s)",
    )
    parser.add_argument(
        "--no-noise",
        action="store_true",
        help="ideal sensor: fixed exposure, no noise (default: auto-exposure, jitter and noise)",
    )
    parser.add_argument(
        "--max-depth",
        type=float,
        default=MAX_DEPTH_M,
        metavar="M",
        help="depth beyond this is written as 0 (invalid); the format stores uint16 mm, so at "
        "most %(default)s m (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch CPU threads; the renderer's tensors are small, so one thread per process "
        "is fastest on busy machines; run several processes for throughput (default: %(default)s)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing sequence in OUT")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.max_depth <= MAX_DEPTH_M:
        print(
            f"banet-vo-synth: --max-depth must be in (0, {MAX_DEPTH_M}], got {args.max_depth}",
            file=sys.stderr,
        )
        return 2
    out_dir = Path(args.out)
    if not args.overwrite and any((out_dir / name).exists() for name in ("images", "K.txt")):
        # Fail before rendering; write_sequence checks again (and fully) when writing.
        print(f"banet-vo-synth: {out_dir} already holds a sequence; pass --overwrite", file=sys.stderr)
        return 1
    start = time.perf_counter()
    try:
        sequence = render_sequence(
            args.scene,
            args.frames,
            args.size,
            args.seed,
            args.fov,
            args.blur,
            sensor=None if args.no_noise else SensorModel(),
            supersample=args.supersample,
            progress=True,
            threads=args.threads,
        )
    except ValueError as error:
        print(f"banet-vo-synth: {error}", file=sys.stderr)
        return 2
    clipped = 0
    frames = []
    for frame in sequence:
        depth = frame.depth.copy()
        far = depth > args.max_depth
        clipped += int(far.sum())
        depth[far] = 0.0
        frames.append(Frame(frame.index, frame.timestamp, frame.image, frame.camera, depth, frame.pose))
    try:
        out = write_sequence(frames, args.out, overwrite=args.overwrite)
    except (FileExistsError, ValueError) as error:
        print(f"banet-vo-synth: {error}", file=sys.stderr)
        return 1
    total = len(frames) * sequence.camera.width * sequence.camera.height
    sky = sum(int((f.depth == 0).sum()) for f in sequence)
    elapsed = time.perf_counter() - start
    print(
        f"wrote {len(frames)} frames to {out} in {elapsed:.1f} s; depth 0 (invalid): "
        f"sky {100 * sky / total:.1f} %, beyond {args.max_depth:g} m {100 * clipped / total:.1f} %",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
