"""Which weights an online adaptation starts from: its own earlier output, or the base matcher.

A restarted imatching node that began again from the base matcher would throw away every earlier session
and, at its first periodic save, replace that session's result without a word. So by default
(``start_from="output"``) it continues from ``output_model`` when that file holds an adaptation of the
same base matcher (its lineage: the base path and the base checkpoint's metadata, both recorded in every
saved output). Any other case is decided explicitly:

- output_model missing: start from the base matcher (nothing to lose);
- output_model of another lineage (adapted from another base): refuse, naming both, unless
  ``start_from="matcher"`` says to start over and replace it (then a warning says what is replaced);
- output_model unreadable or with non-finite weights: refuse, naming the problem (the file is left as is).

No ROS here: the node calls `choose_start` and logs `StartChoice.message`.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from banet_vo.model.checkpoint import CheckpointNotFoundError

from imatching_online.matcher.io import XFEAT_PRETRAINED, load_matcher
from imatching_online.matcher.network import Matcher

__all__ = [
    "START_FROM",
    "StartChoice",
    "choose_start",
    "lineage_meta",
    "resolved_source",
    "same_base",
    "total_steps",
    "weights_version",
]

START_FROM = ("output", "matcher")


@dataclass
class StartChoice:
    matcher: Matcher  # the weights to adapt from now
    base_matcher: Matcher  # the base matcher (the anchor of anchor_pull: the lineage's root)
    base_meta: dict
    resumed_meta: dict | None  # meta of the output continued from, None when starting from the base
    message: str  # what was chosen and why (the node logs it)
    replaces: bool = False  # True when an existing output of another lineage will be overwritten


def resolved_source(path: str | os.PathLike) -> str:
    """One spelling of a matcher source: the real path of a file (relative, absolute, through a link),
    or XFeat's pretrained weights as they are."""
    if os.fspath(path) == XFEAT_PRETRAINED:  # not a file: the same base from any working directory
        return XFEAT_PRETRAINED
    return os.path.realpath(os.fspath(path))


def total_steps(meta: dict) -> int:
    """Optimiser steps of a lineage up to the save that wrote ``meta`` (all sessions)."""
    return int(meta.get("earlier_optimiser_steps", 0)) + int(meta.get("optimiser_steps", 0))


def weights_version(meta: dict) -> int:
    """The version of the weights a save wrote (changes in all sessions; an output written before versions
    counted rollbacks has its optimiser steps, the version it announced then)."""
    if "weights_version" in meta:
        return int(meta["weights_version"])
    return total_steps(meta)


def lineage_meta(choice: StartChoice) -> dict:
    """What the next session records in every output it saves, so that a later start can continue it. A new
    lineage gets a new id: its versions count from 0 again, and a listener told only the numbers could take
    a new version for one it has seen (MatcherUpdate.lineage)."""
    earlier = choice.resumed_meta
    lineage = earlier.get("lineage") if earlier is not None else None
    return {
        "lineage": lineage if isinstance(lineage, str) and lineage else uuid.uuid4().hex,
        "sessions": 1 if earlier is None else int(earlier.get("sessions", 1)) + 1,
        "earlier_optimiser_steps": 0 if earlier is None else total_steps(earlier),
        "earlier_weight_changes": 0 if earlier is None else weights_version(earlier),
    }


def same_base(output_meta: dict, matcher_path: str, base_meta: dict) -> bool:
    """Whether an output's metadata says it was adapted from this base matcher (path and metadata)."""
    adapted_from = output_meta.get("adapted_from")
    if not isinstance(adapted_from, str):
        return False
    return (
        resolved_source(adapted_from) == resolved_source(matcher_path)
        and output_meta.get("base_meta") == base_meta
    )


def choose_start(
    base: Matcher,
    base_meta: dict,
    matcher_path: str,
    output_path: str,
    start_from: str = "output",
    device="cpu",
) -> StartChoice:
    """The weights to start from, given the loaded base matcher (see the module docstring). ValueError for an
    output that must not be replaced or cannot be read, naming the file and what to set instead."""
    if start_from not in START_FROM:
        raise ValueError(f"start_from must be one of {START_FROM}, got {start_from!r}")
    if not output_path:
        return StartChoice(base, base, base_meta, None, f"starting from the base matcher {matcher_path}")
    try:
        output, output_meta = load_matcher(output_path, device=device)
    except CheckpointNotFoundError:
        return StartChoice(
            base,
            base,
            base_meta,
            None,
            f"starting from the base matcher {matcher_path} ({output_path} is new)",
        )
    except ValueError as err:
        if start_from == "matcher":
            return StartChoice(
                base, base, base_meta, None,
                f"starting from the base matcher {matcher_path}; replacing unusable {output_path} ({err})",
                replaces=True,
            )  # fmt: skip
        raise ValueError(
            f"output_model {output_path} is unusable ({err}); remove it, or set start_from:=matcher to "
            "replace it with a new adaptation"
        ) from err
    if Path(output_path).exists() and start_from == "matcher":
        steps = output_meta.get("optimiser_steps", "?")
        return StartChoice(
            base, base, base_meta, None,
            f"start_from=matcher: starting from the base matcher {matcher_path} and REPLACING {output_path} "
            f"({steps} optimiser steps adapted from {output_meta.get('adapted_from')!r})",
            replaces=True,
        )  # fmt: skip
    if not same_base(output_meta, matcher_path, base_meta):
        raise ValueError(
            f"output_model {output_path} holds a matcher adapted from {output_meta.get('adapted_from')!r}, "
            f"not from matcher {matcher_path}: choose another output_model, or set start_from:=matcher to "
            "replace it"
        )
    message = (
        f"continuing the adaptation in {output_path} ({total_steps(output_meta)} optimiser steps in "
        f"{int(output_meta.get('sessions', 1))} earlier session(s), saved "
        f"{output_meta.get('saved_at_utc', '?')}) of base matcher {matcher_path}"
    )
    return StartChoice(output, base, base_meta, output_meta, message)
