"""`banet-vo-eval`: evaluation command line. Subcommands come from banet_vo.evaluation.commands."""

from __future__ import annotations

import argparse
import logging
import sys

from banet_vo.evaluation.commands import add_all


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="banet-vo-eval",
        description="Evaluate banet-vo outputs: trajectories (ATE/RPE/KITTI), depth maps, and more.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_all(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        return int(args.func(args))
    except (ValueError, OSError) as exc:  # bad input, or an output path that cannot be written
        print(f"banet-vo-eval {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
