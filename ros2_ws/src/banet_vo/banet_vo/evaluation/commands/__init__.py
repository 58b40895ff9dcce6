"""Registry of `banet-vo-eval` subcommands.

COMMAND_MODULES maps each subcommand to the module that implements it. Each module defines
`add_parser(subparsers) -> argparse.ArgumentParser`, which adds its subparser and sets
`func=<callable(args) -> int>` as a default. To add a subcommand, write the module and list it here.
Subcommands of other packages (imatching_online depends on banet_vo, not the reverse) are listed in
OPTIONAL_COMMAND_MODULES and appear only when that package is installed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util

COMMAND_MODULES: dict[str, str] = {
    "traj": "banet_vo.evaluation.commands.traj",
    "depth": "banet_vo.evaluation.commands.depth",
    "pairs": "banet_vo.evaluation.commands.pairs",
}
OPTIONAL_COMMAND_MODULES: dict[str, str] = {
    "matching": "imatching_online.evaluation",
}


def available_commands() -> dict[str, str]:
    """The subcommands this installation offers, in --help order."""
    commands = dict(COMMAND_MODULES)
    for name, module in OPTIONAL_COMMAND_MODULES.items():
        if importlib.util.find_spec(module.split(".")[0]) is not None:
            commands[name] = module
    return commands


def add_all(subparsers: argparse._SubParsersAction) -> None:
    for module in available_commands().values():
        importlib.import_module(module).add_parser(subparsers)
