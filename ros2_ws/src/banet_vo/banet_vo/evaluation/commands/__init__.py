"""Registry of `banet-vo-eval` subcommands.

COMMAND_MODULES lists banet_vo's own subcommands, imported normally. Each module defines
`add_parser(subparsers) -> argparse.ArgumentParser`, which adds its subparser and sets
`func=<callable(args) -> int>` as a default. Another package adds a subcommand by declaring an
`add_parser` of that shape under the entry-point group PLUGIN_GROUP in its setup.py (imatching_online
declares `matching` there: it depends on banet_vo, not the reverse); installed plugins follow ours.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib.metadata import entry_points
from types import ModuleType

from banet_vo.evaluation.commands import depth, depth_curve, pairs, traj

PLUGIN_GROUP = "banet_vo.eval_commands"
COMMAND_MODULES: dict[str, ModuleType] = {
    "traj": traj,
    "depth": depth,
    "pairs": pairs,
    "depth-curve": depth_curve,
}

AddParser = Callable[[argparse._SubParsersAction], argparse.ArgumentParser]


def available_commands() -> dict[str, AddParser]:
    """Each subcommand this installation offers and its add_parser, in --help order."""
    commands: dict[str, AddParser] = {name: module.add_parser for name, module in COMMAND_MODULES.items()}
    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        if plugin.name in commands:
            raise ValueError(f"{PLUGIN_GROUP}: {plugin.value} declares {plugin.name!r}, which banet_vo has")
        commands[plugin.name] = plugin.load()
    return commands


def add_all(subparsers: argparse._SubParsersAction) -> None:
    for add_parser in available_commands().values():
        add_parser(subparsers)
