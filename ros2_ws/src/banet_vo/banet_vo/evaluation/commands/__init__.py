"""Registry of `banet-vo-eval` subcommands.

One module per subcommand, listed in COMMAND_MODULES. Each module defines
`add_parser(subparsers) -> argparse.ArgumentParser`, which adds its subparser and sets
`func=<callable(args) -> int>` as a default. To add a subcommand (e.g. `pairs`), write
`banet_vo/evaluation/commands/pairs.py` with that function and append "pairs" here.
"""

from __future__ import annotations

import argparse
import importlib

COMMAND_MODULES: tuple[str, ...] = ("traj", "depth")


def add_all(subparsers: argparse._SubParsersAction) -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        module.add_parser(subparsers)
