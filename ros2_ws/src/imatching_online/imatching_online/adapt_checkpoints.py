"""Resumable adaptation: the whole state of an `OnlineAdapter` as one checkpoint unit.

A unit (banet_vo.train.checkpoints: files + manifest renamed into place together) holds
``matcher.safetensors`` (the current weights, the project's checkpoint format, kind matcher) and
``state.pt``: Adam's moments, the rollback guard (reference, open block, last good weights), the failure
counts, the anchor weights of ``anchor_pull``, the augmentation RNG and the caller's progress (which window
comes next, the per-window history). Restoring it continues the run as if it had never stopped: the same
windows in the same order with the same optimiser state give the same weights.

``fingerprint`` is what defines a run (sequence, frames, settings, seed; not the step budget): a unit is
only resumed by a run with the same fingerprint, so a resume never mixes two lineages.

The imatching node keeps one output file instead of units: beside ``output_model`` it writes
``<output_model>.state.pt`` (``save_resume_state``: Adam's moments, the rollback guard, the RNG), tagged with
the lineage and weights version of the save it belongs to. A restarted node that continues the output
restores it (``restore_resume_state``) only when the tags match, so Adam does not start again from zero
moments (a full learning-rate step on every weight) and the guard keeps the reference it had.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from banet_vo.model.checkpoint import load_checkpoint, save_checkpoint, write_atomically
from banet_vo.train.checkpoints import CheckpointUnit, find_latest_unit, write_unit

from imatching_online.adapt import OnlineAdapter
from imatching_online.ba.failures import FailureReason

__all__ = [
    "MATCHER_FILE",
    "RESUME_STATE_SUFFIX",
    "STATE_FILE",
    "adapter_state",
    "load_adapt_unit",
    "restore_adapter",
    "restore_resume_state",
    "resume_state",
    "resume_state_path",
    "save_adapt_unit",
    "save_resume_state",
]

MATCHER_FILE = "matcher.safetensors"
STATE_FILE = "state.pt"
RESUME_STATE_SUFFIX = ".state.pt"  # beside a node's output_model


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


def resume_state_path(output_model: str | os.PathLike) -> Path:
    """Where the node keeps the optimiser state of ``output_model``."""
    return Path(f"{os.fspath(output_model)}{RESUME_STATE_SUFFIX}")


def resume_state(adapter: OnlineAdapter) -> dict[str, Any]:
    """A copy of what a continued session needs besides the weights: ``adapter_state``'s Adam moments,
    rollback guard (reference, open block, last good weights) and RNG. Not the counts (each session reports
    its own, the guard's rollbacks too) nor the anchor (the lineage's base, loaded at every start). Call it
    while no step changes them."""
    state = adapter_state(adapter)
    guard = {k: state["guard"][k] for k in ("reference", "block", "good_state")}
    return copy.deepcopy({"optimiser": state["optimiser"], "guard": guard, "generator": state["generator"]})


def save_resume_state(path: str | Path, state: dict[str, Any], tag: dict[str, Any]) -> Path:
    """Write ``state`` (from ``resume_state``) to ``path`` atomically, tagged with the save it belongs to
    (``lineage`` and ``weights_version`` of the output written with it)."""
    return write_atomically(path, lambda f: torch.save({**state, "tag": dict(tag)}, f))


def _with_current_hyperparameters(saved: dict, optimiser: torch.optim.Optimizer) -> dict:
    """An optimiser state_dict from an earlier session with this session's settings (lr may have changed):
    its per-weight state, this optimiser's param_groups. ValueError when it is for other weights."""
    current = optimiser.state_dict()
    groups = current["param_groups"]
    if [g["params"] for g in saved.get("param_groups", [])] != [g["params"] for g in groups]:
        raise ValueError("its optimiser holds other weights")
    params = [p for group in optimiser.param_groups for p in group["params"]]
    for index, entry in saved.get("state", {}).items():
        moments = [v for k, v in entry.items() if k != "step" and isinstance(v, torch.Tensor)]
        if not 0 <= int(index) < len(params) or any(m.shape != params[int(index)].shape for m in moments):
            raise ValueError("its optimiser holds weights of other shapes")
    return {"state": saved.get("state", {}), "param_groups": groups}


def restore_resume_state(path: str | Path, adapter: OnlineAdapter, tag: dict[str, Any]) -> str:
    """Put the state at ``path`` back into ``adapter`` when its tag is ``tag`` (the output continued from).
    Returns what was done, for the log; ValueError when it was not restored, saying why (a missing file, a
    state of another save, an unreadable or malformed file): the session then goes on with a new Adam and
    guard. Everything is checked before the adapter changes, so a refused state leaves it as it was."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no optimiser state {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt file; name the file either way
        raise ValueError(f"{path} is not readable: {type(exc).__name__}: {exc}") from exc
    saved_tag = state.get("tag") if isinstance(state, dict) else None
    if saved_tag != tag:
        raise ValueError(f"{path} belongs to another save ({saved_tag} against the output's {tag})")
    try:
        optimiser = _with_current_hyperparameters(state["optimiser"], adapter.optimiser)
        guard = state["guard"]
        reference, block, good = guard["reference"], list(guard["block"]), guard["good_state"]
        if reference is not None:
            reference = float(reference)
        block = [None if r is None else float(r) for r in block]
        if good is not None:
            good = {
                "model": dict(good["model"]),
                "optimiser": _with_current_hyperparameters(good["optimiser"], adapter.optimiser),
            }
        torch.Generator().set_state(state["generator"])  # refused here, not halfway through the restore
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    except (KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise ValueError(
            f"{path} is not an optimiser state of this matcher: {type(exc).__name__}: {exc}"
        ) from exc
    with adapter.weights_lock:
        try:
            adapter.optimiser.load_state_dict(optimiser)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{path}: Adam refused its state: {type(exc).__name__}: {exc}") from exc
        adapter.guard.reference = reference
        adapter.guard.block = block
        adapter.guard.good_state = good
        adapter.generator.set_state(state["generator"])
    shown = "none yet" if reference is None else f"{reference:.3f}"
    steps = max((int(e.get("step", 0)) for e in optimiser["state"].values()), default=0)
    return f"continued Adam's moments ({steps} steps) and the rollback guard (reference {shown}) from {path}"
