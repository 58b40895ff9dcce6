"""Training checkpoints as atomic units: every file of one step lands together or not at all.

A unit is a directory ``<root>/step-<step:09d>/`` holding the files of one step (for BA-Net training:
``model.safetensors`` + ``state.pt``) and a ``manifest.json`` naming each file with its size and SHA-256.
It is written under a temporary name (``.step-….tmp``), the manifest last, every file fsync'd, and then
renamed into place: a rename within one directory is atomic, so a process killed at any instant leaves
either the complete unit or a temporary directory that no reader looks at. Writing weights and optimiser
state one after the other under fixed names, as before, let 6 of 21 SIGKILLs fall between the two and
leave a run that could never resume.

Readers take the newest unit whose manifest and files check out and say which newer ones they skipped and
why; the ``keep`` newest units that check out are kept, so a unit damaged after it was written (a full
disk, a bad copy) still leaves the one before it. Retention counts consistent units only and removes
damaged ones: a run resumed from step 100 past a damaged step 200 keeps 100 when it saves step 150, not
the damaged 200. ``remove_stale_temps`` (banet_vo.model.checkpoint) clears what killed writers left
behind; call ``recover_set_aside`` first: a unit rewritten for its own step is moved aside
(``.step-N.old.….tmp/step-N``) for the instant before the new one is renamed in, and a writer killed in that
instant leaves the only copy there.

Units get the modes a plain ``mkdir`` / ``open`` would give them (0777 / 0666 less the umask), not
mkdtemp's private 0700, so that another user (a ROS node in a container) can read the weights.

Used by banet_vo.train.loop and by imatching_online's adaptation CLI.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from banet_vo.model.checkpoint import current_umask

__all__ = [
    "MANIFEST",
    "UNIT_FORMAT",
    "CheckpointUnit",
    "UnitError",
    "find_latest_unit",
    "list_units",
    "read_unit",
    "recover_set_aside",
    "write_unit",
]

logger = logging.getLogger(__name__)

UNIT_FORMAT = "banet-vo-checkpoint-unit/1"
MANIFEST = "manifest.json"
_UNIT_NAME = re.compile(r"^step-(\d{9,})$")
_SET_ASIDE = re.compile(r"^\.(step-\d{9,})\.old\..*\.tmp$")


class UnitError(ValueError):
    """A checkpoint unit that is incomplete or damaged; the message names the unit and the problem."""


@dataclass(frozen=True)
class CheckpointUnit:
    path: Path
    step: int
    manifest: dict

    def file(self, name: str) -> Path:
        return self.path / name


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    # Makes a rename durable; some file systems cannot open a directory for this, which only weakens
    # durability after a power cut, not the atomicity the readers rely on.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        logger.debug("cannot fsync directory %s: %s", path, exc)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unit_name(step: int) -> str:
    return f"step-{int(step):09d}"


def write_unit(
    root: str | Path,
    step: int,
    writers: dict[str, Callable[[Path], None]],
    info: dict | None = None,
    keep: int = 2,
) -> CheckpointUnit:
    """Write one unit for ``step``: ``writers[name](path)`` writes file ``name``; ``info`` (JSON) goes into
    the manifest. Replaces a unit of the same step, then keeps the ``keep`` newest consistent units (this
    one among them) and deletes the others, damaged ones included (module docstring)."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    if not writers or any(name == MANIFEST or "/" in name for name in writers):
        raise ValueError(f"writers must name plain files other than {MANIFEST}, got {list(writers)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / unit_name(step)
    dir_mode = 0o777 & ~current_umask()
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    try:
        os.chmod(tmp, dir_mode)
        files = {}
        for name, write in writers.items():
            path = tmp / name
            write(path)
            _fsync_file(path)
            files[name] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        manifest = {"format": UNIT_FORMAT, "step": int(step), "files": files, "info": info or {}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        _fsync_file(tmp / MANIFEST)
        _fsync_dir(tmp)
        if final.exists():  # same step written again (a final save right after a periodic one)
            aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", suffix=".tmp", dir=root))
            os.replace(final, aside / final.name)
            try:
                os.rename(tmp, final)
            except BaseException:  # e.g. a second Ctrl-C: the old unit goes back, it is the only copy
                if not final.exists():
                    os.replace(aside / final.name, final)
                raise
            shutil.rmtree(aside)
        else:
            os.rename(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _retain(root, final, keep)
    return CheckpointUnit(final, int(step), manifest)


def _retain(root: Path, written: Path, keep: int) -> None:
    """Delete all units but the ``keep`` newest consistent ones; ``written`` (just written) counts as one
    unchecked. Reads only until ``keep`` are found."""
    kept = 0
    for _, path in list_units(root):
        if kept < keep:
            try:
                if path != written:
                    read_unit(path)
                kept += 1
                continue
            except UnitError as exc:
                logger.warning("removing damaged checkpoint unit: %s", exc)
        shutil.rmtree(path)


def recover_set_aside(root: str | Path) -> list[Path]:
    """Move back each unit that a same-step rewrite set aside (``.step-N.old.….tmp/step-N``) and whose
    ``step-N`` is missing: the writer was killed between moving it aside and renaming the new one in. Call
    before ``remove_stale_temps``, which would delete it. Returns the units recovered."""
    root = Path(root)
    if not root.is_dir():
        return []
    recovered = []
    for entry in sorted(root.iterdir()):
        match = _SET_ASIDE.match(entry.name)
        if match is None or not entry.is_dir():
            continue
        final = root / match.group(1)
        if (entry / final.name).is_dir() and not final.exists():
            os.replace(entry / final.name, final)
            logger.warning("recovered checkpoint unit %s from %s (its rewrite was interrupted)", final, entry)
            recovered.append(final)
    if recovered:
        _fsync_dir(root)
    return recovered


def list_units(root: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every directory named like a unit under ``root``, newest first (unchecked)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = _UNIT_NAME.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found, reverse=True)


def read_unit(path: str | Path) -> CheckpointUnit:
    """The unit at ``path`` after checking its manifest and every file's size and SHA-256; UnitError
    otherwise."""
    path = Path(path)
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise UnitError(f"checkpoint unit {path} has no {MANIFEST}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnitError(f"checkpoint unit {path}: unreadable {MANIFEST}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != UNIT_FORMAT:
        raise UnitError(f"checkpoint unit {path}: {MANIFEST} is not a {UNIT_FORMAT} manifest")
    match = _UNIT_NAME.match(path.name)
    if match is None or int(match.group(1)) != manifest.get("step"):
        raise UnitError(
            f"checkpoint unit {path}: manifest step {manifest.get('step')} does not match the name"
        )
    for name, expected in manifest.get("files", {}).items():
        try:
            _check_file(path, name, expected)
        except OSError as exc:  # removed or unreadable while being checked
            raise UnitError(f"checkpoint unit {path}: cannot read {name}: {exc}") from exc
    return CheckpointUnit(path, int(manifest["step"]), manifest)


def _check_file(path: Path, name: str, expected: dict) -> None:
    file = path / name
    if not file.is_file():
        raise UnitError(f"checkpoint unit {path}: {name} is missing")
    size = file.stat().st_size
    if size != expected.get("bytes"):
        raise UnitError(
            f"checkpoint unit {path}: {name} has {size} bytes, the manifest says {expected.get('bytes')}"
        )
    if _sha256(file) != expected.get("sha256"):
        raise UnitError(f"checkpoint unit {path}: {name} does not match its SHA-256 (damaged)")


def find_latest_unit(
    root: str | Path, accept: Callable[[CheckpointUnit], None] | None = None
) -> tuple[CheckpointUnit | None, list[str]]:
    """(the newest consistent unit or None, one line per newer unit skipped and why).

    ``accept(unit)`` may check more (e.g. load the files) and raise ValueError to skip a unit."""
    skipped = []
    for _, path in list_units(root):
        try:
            unit = read_unit(path)
            if accept is not None:
                accept(unit)
        except ValueError as exc:
            skipped.append(str(exc))
            continue
        return unit, skipped
    return None, skipped
