"""Files and folders the training writes take the modes the umask gives a plain open() / mkdir (0666 /
0777 less the umask), so another user (a ROS node in a container) can read the weights; mkstemp and
mkdtemp alone would make them 0600 / 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from banet_vo.model.checkpoint import save_checkpoint, write_atomically
from banet_vo.train.checkpoints import write_unit
from banet_vo.train.data import CACHE_FORMAT, save_cache


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_write_atomically_and_save_checkpoint_follow_the_umask(tmp_path, umask):
    assert _mode(write_atomically(tmp_path / "a.bin", b"x")) == 0o666 & ~umask
    saved = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.zeros(2)}, "banet", {}, {})
    assert _mode(saved) == 0o666 & ~umask
    assert os.umask(umask) == umask  # reading it left it as it was


def test_checkpoint_units_and_their_files_follow_the_umask(tmp_path, umask):
    unit = write_unit(
        tmp_path / "units",
        3,
        {
            "model.safetensors": lambda p: save_checkpoint(p, {"w": torch.ones(2)}, "banet", {}, {}),
            "state.pt": lambda p: torch.save({"step": 3}, p),
        },
    )
    assert _mode(unit.path) == 0o777 & ~umask
    for name in ("model.safetensors", "state.pt", "manifest.json"):
        assert _mode(unit.file(name)) == 0o666 & ~umask, name


def test_the_render_cache_follows_the_umask(tmp_path, umask):
    path = save_cache({"format": CACHE_FORMAT, "sequences": []}, tmp_path / "cache.pt")
    assert _mode(path) == 0o666 & ~umask


def test_the_umask_is_read_without_changing_it(umask, monkeypatch):
    """Read from /proc/self/status: a save on one thread must not open a window in which another thread's
    new files get mode 0666."""
    from banet_vo.model import checkpoint

    if not Path("/proc/self/status").is_file():
        pytest.skip("no /proc/self/status here: the umask is read by setting it")
    calls = []
    real = os.umask
    monkeypatch.setattr(checkpoint.os, "umask", lambda m: calls.append(m) or real(m))
    assert checkpoint.current_umask() == umask and calls == []
