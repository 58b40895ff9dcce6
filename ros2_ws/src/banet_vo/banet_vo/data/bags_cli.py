"""The `banet-vo-bag` command line: any sequence banet_vo reads → a ROS 2 bag (library: data/bags.py)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from banet_vo.data.bags import BAG_VERSIONS, IMAGE_CODECS, STORAGES, start_time_ns, write_bag
from banet_vo.data.readers import READERS, open_sequence


def _seconds(text: str) -> str:
    """--start-time as written (write_bag reads it to the exact nanosecond; a float would not)."""
    try:
        start_time_ns(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="banet-vo-bag",
        description=(
            "Write a sequence (KITTI, TUM, EuRoC, HoloLens, TartanAir, synthetic…) to a ROS 2 bag: "
            "/camera/image_raw, /camera/camera_info, /ground_truth/odometry (with poses) and /tf_static."
        ),
    )
    parser.add_argument("src", type=Path, help="sequence directory (layout detected unless --format)")
    parser.add_argument("out", type=Path, help="bag directory to create (must not exist)")
    parser.add_argument(
        "--format", choices=sorted(READERS), default=None, help="sequence layout (default: detected from SRC)"
    )
    parser.add_argument("--storage", choices=STORAGES, default="mcap", help="storage plugin (default: mcap)")
    parser.add_argument(
        "--bag-version",
        type=int,
        choices=BAG_VERSIONS,
        default=8,
        help="rosbag2 metadata version: 8 is read by Jazzy and Kilted, 9 by Kilted only (default: 8)",
    )
    parser.add_argument(
        "--camera-frame", default="camera_optical", help="optical frame id (default: camera_optical)"
    )
    parser.add_argument(
        "--body-frame", default="base_link", help="parent of the camera in /tf_static (default: base_link)"
    )
    parser.add_argument(
        "--world-frame", default="world", help="frame of the ground-truth odometry (default: world)"
    )
    parser.add_argument(
        "--start-time",
        type=_seconds,
        default="0",
        help="seconds added to every sequence time, e.g. a Unix time, taken to the nanosecond as written "
        "(default: 0)",
    )
    parser.add_argument("--max-frames", type=int, default=None, help="write only the first N frames")
    parser.add_argument(
        "--depth", action="store_true", help="also write z-depth to /camera/depth/image (32FC1)"
    )
    parser.add_argument(
        "--image-codec",
        choices=IMAGE_CODECS,
        default="raw",
        help="raw: sensor_msgs/Image on /camera/image_raw (default); png (lossless) or jpeg: "
        "sensor_msgs/CompressedImage on /camera/image_raw/compressed, as image_transport records it",
    )
    return parser


@contextlib.contextmanager
def _reader_logs(live: bool):
    """The readers' INFO messages (images left out, frames dropped, a gap in the numbering) on stderr while
    the command runs: what a user converting a dataset needs to see; once (not also through a handler the
    caller set up), and on a line of their own on a terminal (`live`), where progress rewrites its line."""
    logger = logging.getLogger("banet_vo")
    handler = logging.StreamHandler(sys.stderr)
    start = "\n" if live else ""
    handler.setFormatter(logging.Formatter(start + "[banet-vo-bag] %(levelname)s %(name)s: %(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # On a terminal one progress line is rewritten; in a log (not a tty) a line per tenth of the frames.
    live = sys.stderr.isatty()
    with _reader_logs(live):
        return _run(args, live)


def _run(args: argparse.Namespace, live: bool) -> int:
    end_line = "\n" if live else ""
    try:
        sequence = open_sequence(args.src, format=args.format)

        def report(done: int, total: int) -> None:
            step = 10 if live else max(1, -(-total // 10))
            if done == total or done % step == 0:
                if live:
                    print(f"\r[banet-vo-bag] {done}/{total} frames", end="", file=sys.stderr, flush=True)
                else:
                    print(f"[banet-vo-bag] {done}/{total} frames", file=sys.stderr, flush=True)

        summary = write_bag(
            sequence,
            args.out,
            storage=args.storage,
            version=args.bag_version,
            camera_frame=args.camera_frame,
            body_frame=args.body_frame,
            world_frame=args.world_frame,
            start_time=args.start_time,
            max_frames=args.max_frames,
            include_depth=args.depth,
            image_codec=args.image_codec,
            progress=report,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"{end_line}banet-vo-bag: error: {err}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{topic} {n}" for topic, n in summary.message_counts.items())
    duration = (summary.end_ns - summary.start_ns) / 1e9
    print(
        f"{end_line}[banet-vo-bag] wrote {summary.path} ({summary.storage}, {duration:.3f} s): {counts}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
