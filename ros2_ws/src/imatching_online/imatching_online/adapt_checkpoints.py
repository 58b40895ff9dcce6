"""Resumable adaptation: the whole state of an `OnlineAdapter` as one checkpoint unit.

A unit (banet_vo.train.checkpoints: files + manifest renamed into place together) holds
``matcher.safetensors`` (the current weights, the project's checkpoint format, kind matcher) and
``state.pt``: Adam's moments, the rollback guard (reference, open block, last good weights), the failure
counts, the anchor weights of ``anchor_pull``, the augmentation RNG and the caller's progress (which window
comes next, the per-window history). Restoring it continues the run as if it had never stopped: the same
windows in the same order with the same optimiser state give the same weights.

``fingerprint`` is what defines a run (sequence, frames, settings, seed; not the step budget): a unit is
only resumed by a run with the same fingerprint, so a resume never mixes two lineages.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch
from banet_vo.model.checkpoint import load_checkpoint, save_checkpoint
from banet_vo.train.checkpoints import CheckpointUnit, find_latest_unit, write_unit

from imatching_online.adapt import OnlineAdapter
from imatching_online.ba.failures import FailureReason

__all__ = [
    "MATCHER_FILE",
    "STATE_FILE",
    "adapter_state",
    "load_adapt_unit",
    "restore_adapter",
    "save_adapt_unit",
]

MATCHER_FILE = "matcher.safetensors"
STATE_FILE = "state.pt"


def adapter_state(adapter: OnlineAdapter) -> dict[str, Any]:
    """Everything but the weights that the next step depends on (torch.save-able, weights_only-loadable)."""
    guard = adapter.guard
    stats = adapter.stats
    return {
        "optimiser": adapter.optimiser.state_dict(),
        "guard": {
            "reference": guard.reference,
            "block": list(guard.block),
            "rollbacks": guard.rollbacks,
            "good_state": guard.good_state,
        },
        "stats": {
            "windows": stats.windows,
            "successes": stats.successes,
            "failures": {reason.value: n for reason, n in stats.failures.items()},
        },
        "steps_taken": adapter.steps_taken,
        "anchor": adapter.anchor,
        "generator": adapter.generator.get_state(),
    }


def restore_adapter(adapter: OnlineAdapter, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Put ``weights`` and ``state`` (from ``adapter_state``) back into ``adapter``."""
    adapter.matcher.load_state_dict(weights)
    adapter.optimiser.load_state_dict(state["optimiser"])
    guard = state["guard"]
    adapter.guard.reference = guard["reference"]
    adapter.guard.block = list(guard["block"])
    adapter.guard.rollbacks = int(guard["rollbacks"])
    adapter.guard.good_state = guard["good_state"]
    stats = state["stats"]
    adapter.stats.windows = int(stats["windows"])
    adapter.stats.successes = int(stats["successes"])
    adapter.stats.failures = Counter({FailureReason(k): int(n) for k, n in stats["failures"].items()})
    adapter.steps_taken = int(state["steps_taken"])
    anchor = state["anchor"]
    if (anchor is None) != (adapter.anchor is None):
        raise ValueError("the checkpoint and this run disagree on anchor_pull being on")
    if anchor is not None:
        for p0, saved in zip(adapter.anchor, anchor, strict=True):
            p0.copy_(saved)
    adapter.generator.set_state(state["generator"])


def save_adapt_unit(
    root: str | Path,
    index: int,
    adapter: OnlineAdapter,
    meta: dict,
    progress: dict,
    fingerprint: dict,
    keep: int = 2,
) -> CheckpointUnit:
    """Write unit ``index`` (windows processed so far) under ``root``."""
    weights = {k: v.detach().cpu().contiguous() for k, v in adapter.matcher.state_dict().items()}
    state = {**adapter_state(adapter), "progress": progress, "fingerprint": fingerprint}
    config = adapter.matcher.config.to_dict()
    return write_unit(
        root,
        index,
        {
            MATCHER_FILE: lambda p: save_checkpoint(p, weights, "matcher", config, meta),
            STATE_FILE: lambda p: torch.save(state, p),
        },
        info={"kind": "imatching-adapt", "windows": index},
        keep=keep,
    )


def load_adapt_unit(
    root: str | Path, adapter: OnlineAdapter, fingerprint: dict
) -> tuple[CheckpointUnit | None, dict, list[str]]:
    """Restore the newest consistent unit under ``root`` that belongs to this run into ``adapter``.

    Returns (unit or None, its progress dict, one line per newer unit skipped and why)."""
    loaded: dict[str, Any] = {}

    def accept(unit: CheckpointUnit) -> None:
        weights, _, _ = load_checkpoint(unit.file(MATCHER_FILE), expected_kind="matcher")
        try:
            state = torch.load(unit.file(STATE_FILE), weights_only=True)
        except Exception as exc:  # torch raises several types for a corrupt file; name the file either way
            raise ValueError(f"{unit.file(STATE_FILE)} is not a readable adaptation state: {exc}") from exc
        if state.get("fingerprint") != fingerprint:
            differ = sorted(
                k
                for k in set(fingerprint) | set(state.get("fingerprint") or {})
                if fingerprint.get(k) != (state.get("fingerprint") or {}).get(k)
            )
            raise ValueError(f"{unit.path} belongs to a run with other settings ({', '.join(differ)})")
        loaded.update(weights=weights, state=state)

    unit, skipped = find_latest_unit(root, accept)
    if unit is None:
        return None, {}, skipped
    restore_adapter(adapter, loaded["weights"], loaded["state"])
    return unit, loaded["state"]["progress"], skipped
