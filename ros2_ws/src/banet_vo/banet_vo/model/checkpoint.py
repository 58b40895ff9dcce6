"""The project's one checkpoint format, shared by BA-Net and the iMatching matcher.

A single ``.safetensors`` file: tensors = the state_dict; metadata (str → str) =
``{"format": "banet-vo-checkpoint/1", "kind": "banet" | "matcher", "config": <json>, "meta": <json>}``.
safetensors (not torch.save/pickle) because loading it cannot execute code and it is readable without
torch. ``meta`` carries data, steps, metrics, wall time, hardware and ``code_version`` (``git describe``
when available, added if the caller did not). Writes are atomic: a temporary file in the same folder,
fsync'd, then renamed, so a crash never leaves a half-written checkpoint under the real name; a process
killed mid-write leaves a ``.<name>.<random>.tmp`` file that ``remove_stale_temps`` clears at the next start.
Loading refuses weights with NaN or inf (naming the tensor): such a model fails every frame it is given.

``RUNTIME_FIELDS`` of a BA-Net config say how a model computes, not what its weights are: a GPU training run
autocasts to bf16 while its weights stay fp32. Training saves the configured value and resumes across them;
``load_banet`` runs a stored ``bf16`` only on CUDA (older GPU checkpoints stored it) and fp32 elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from banet_vo.model.banet import BANet
from banet_vo.model.config import BANetConfig
from banet_vo.provenance import code_version  # re-exported: callers use checkpoint.code_version

__all__ = [
    "FORMAT",
    "KINDS",
    "RUNTIME_FIELDS",
    "CheckpointError",
    "CheckpointNotFoundError",
    "code_version",
    "current_umask",
    "load_banet",
    "load_checkpoint",
    "non_finite_tensors",
    "remove_stale_temps",
    "save_checkpoint",
    "state_mismatch",
    "write_atomically",
]

FORMAT = "banet-vo-checkpoint/1"
KINDS = ("banet", "matcher")
RUNTIME_FIELDS = ("backbone_dtype",)  # BANetConfig fields that are runtime precision (module docstring)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist (both a ValueError and a FileNotFoundError)."""


def _json(value: Any, name: str) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint {name} must be JSON-serialisable: {exc}") from exc


def unwritable_reason(path: str | Path) -> str | None:
    """Why save_checkpoint could not write ``path``, found without writing anything (None: it can, as far
    as the file system says now): the path is a folder, a folder on the way is a file, or the nearest
    existing folder is not writable (save_checkpoint creates the missing ones)."""
    path = Path(path).absolute()  # as save_checkpoint takes it (no ~ expansion there either)
    if path.is_dir():
        return f"{path} is a folder"
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the folder {parent} is not writable"
    return None


def save_checkpoint(
    path: str | Path, state_dict: dict[str, torch.Tensor], kind: str, config: dict, meta: dict
) -> Path:
    """Write ``state_dict`` with its kind, config and meta to ``path`` (atomically). Returns the path."""
    path = Path(path)
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(config, dict):
        raise ValueError(f"checkpoint config must be a dict, got {type(config).__name__}")
    if not isinstance(meta, dict):
        raise ValueError(f"checkpoint meta must be a dict, got {type(meta).__name__}")
    tensors = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"checkpoint state_dict[{key!r}] must be a tensor, got {type(value).__name__}")
        # Own, contiguous CPU copies: safetensors refuses views that share storage.
        tensors[str(key)] = value.detach().to("cpu").contiguous().clone()
    meta = dict(meta)
    meta.setdefault("code_version", code_version())
    metadata = {
        "format": FORMAT,
        "kind": kind,
        "config": _json(config, "config"),
        "meta": _json(meta, "meta"),
    }
    # Serialised in memory and written to our own temporary file: safetensors' save_file writes through a
    # temporary of its own (".tmpXXXXXX"), which a kill would leave behind under a name we cannot own.
    return write_atomically(path, save(tensors, metadata=metadata))


def current_umask() -> int:
    """The process's umask, read from /proc/self/status (Linux 4.7+) so that it is never changed: where
    that is not there, reading it means setting it, to 0 and back at once (a thread creating a file in
    between, e.g. a node's other callbacks, would get mode 0666 / 0777)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: str | Path, data: bytes | Callable[[BinaryIO], object]) -> Path:
    """Write ``data`` (bytes, or a function that writes to the open binary file, e.g. a ``torch.save``)
    to ``path`` through a fsync'd ``.<name>.<random>.tmp`` beside it and a rename: a reader sees the old
    file or the new one, never part of one; a kill leaves only the temporary, which ``remove_stale_temps``
    clears. The file gets the mode a plain ``open()`` would give it (0666 less the umask): mkstemp's private
    0600 kept another user, e.g. a ROS node in a container, from reading weights. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it visible under the real name
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temps(
    folder: str | Path, name: str | None = None, unmodified_s: float | None = None
) -> list[Path]:
    """Delete the temporary files that killed ``save_checkpoint`` calls left in ``folder`` (those for the
    checkpoint ``name`` only, when given; and the ``.*.tmp`` directories of killed checkpoint-unit writes).
    Call it where one process owns the folder, at its start; where others may be writing the same file
    (a shared render cache), pass ``unmodified_s``: only temporaries not written to for that long go (a
    live writer streams into its own). Returns what was deleted."""

    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = f".{name}.*.tmp" if name else ".*.tmp"
    removed = []
    now = time.time()
    for entry in sorted(folder.glob(pattern)):
        try:  # another process may rename or remove it meanwhile (a shared folder): then it is not ours
            info = entry.lstat()
            if unmodified_s is not None and now - info.st_mtime < unmodified_s:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            continue
        removed.append(entry)
    return removed


def state_mismatch(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str | None:
    """How `state` fails to fit a module whose state_dict is `expected` (missing / unexpected keys, shape
    mismatches), or None when it fits."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        return f"missing={missing[:5]}, unexpected={unexpected[:5]}, shape mismatch={shapes[:5]}"
    return None


def non_finite_tensors(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold a NaN or an infinity, each with its count."""
    bad = []
    for key, value in state_dict.items():
        if value.is_floating_point() or value.is_complex():
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                bad.append(f"{key} ({int((~finite).sum())} of {value.numel()} values)")
    return bad


def load_checkpoint(
    path: str | Path, expected_kind: str | None = None
) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """(state_dict on CPU, config dict, meta dict) of a checkpoint; ``CheckpointError`` (a ValueError) for a
    missing, truncated, corrupt or foreign file, a wrong format tag, a kind other than ``expected_kind`` or
    weights with NaN / inf (the message names the tensors)."""
    path = Path(path)
    if expected_kind is not None and expected_kind not in KINDS:
        raise ValueError(f"expected_kind must be one of {KINDS} or None, got {expected_kind!r}")
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state_dict = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is not a readable safetensors file (truncated or corrupt?): {exc}"
        ) from exc
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format tag {metadata.get('format')!r}, expected {FORMAT!r} "
            "(a safetensors file, but not one written by banet_vo.model.checkpoint)"
        )
    kind = metadata.get("kind")
    if kind not in KINDS:
        raise CheckpointError(f"checkpoint {path} has unknown kind {kind!r}; expected one of {KINDS}")
    if expected_kind is not None and kind != expected_kind:
        raise CheckpointError(f"checkpoint {path} holds a {kind!r} model, expected {expected_kind!r}")
    parsed = {}
    for name in ("config", "meta"):
        try:
            parsed[name] = json.loads(metadata[name])
        except (KeyError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"checkpoint {path} has a missing or invalid {name!r} entry: {exc}"
            ) from exc
        if not isinstance(parsed[name], dict):
            raise CheckpointError(f"checkpoint {path}: {name!r} must be a JSON object")
    bad = non_finite_tensors(state_dict)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise CheckpointError(f"checkpoint {path} has non-finite weights (NaN or inf) in {shown}")
    return state_dict, parsed["config"], parsed["meta"]


def load_banet(path: str | Path, device: str | torch.device = "cpu"):
    """A ``BANet`` in eval mode on ``device`` from a ``kind="banet"`` checkpoint. ``CheckpointError`` when
    the stored config is invalid or the weights do not fit it (naming missing, unexpected and
    shape-mismatched keys). A stored ``backbone_dtype: bf16`` (a GPU training run's autocast) holds only
    on CUDA; on any other device the model runs fp32, the reference its weights (fp32 either way) are
    evaluated against: bf16 autocast on a CPU moved the shipped small model's D0 by up to 1.6 %."""

    state_dict, config_dict, _ = load_checkpoint(path, expected_kind="banet")
    try:
        config = BANetConfig.from_dict(config_dict)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path}: invalid BA-Net config: {exc}") from exc
    if config.backbone_dtype == "bf16" and torch.device(device).type != "cuda":
        config = config.replace(backbone_dtype="fp32")
    model = BANet(config)
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(
        f"{k}: stored {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if own[k].shape != state_dict[k].shape
    )
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"checkpoint {path}: weights do not fit its config (missing keys {missing}, unexpected keys "
            f"{unexpected}, shape mismatches {shapes})"
        )
    model.load_state_dict(state_dict)
    return model.to(device).eval()
