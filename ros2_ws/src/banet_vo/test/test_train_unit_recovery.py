"""Rewriting a checkpoint unit for its own step never loses the only copy: an interrupt between moving
the old unit aside and renaming the new one in puts the old one back, and a unit a killed writer left set
aside is moved back before stale temporaries are cleared."""

from __future__ import annotations

import os

import pytest
from banet_vo.model.checkpoint import remove_stale_temps
from banet_vo.train import checkpoints
from banet_vo.train.checkpoints import find_latest_unit, read_unit, recover_set_aside, write_unit


def _writers(text: str) -> dict:
    return {
        "model.safetensors": lambda p: p.write_text(f"weights {text}"),
        "state.pt": lambda p: p.write_text(text),
    }


def test_an_interrupted_same_step_rewrite_puts_the_old_unit_back(tmp_path, monkeypatch):
    write_unit(tmp_path, 5, _writers("old"))
    real_rename = os.rename

    def interrupted(src, dst):  # a second Ctrl-C right after the old unit was moved aside
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints.os, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_unit(tmp_path, 5, _writers("new"))
    monkeypatch.setattr(checkpoints.os, "rename", real_rename)
    remove_stale_temps(tmp_path)
    unit, skipped = find_latest_unit(tmp_path)
    assert unit is not None and not skipped and unit.file("state.pt").read_text() == "old"


def test_a_unit_left_set_aside_by_a_killed_rewrite_is_recovered(tmp_path):
    write_unit(tmp_path, 5, _writers("old"))
    aside = tmp_path / ".step-000000005.old.k1ll3d.tmp"  # what a SIGKILL between the two renames leaves
    aside.mkdir()
    os.replace(tmp_path / "step-000000005", aside / "step-000000005")
    assert recover_set_aside(tmp_path) == [tmp_path / "step-000000005"]
    assert remove_stale_temps(tmp_path) == [aside]  # now empty: cleared
    assert read_unit(tmp_path / "step-000000005").file("state.pt").read_text() == "old"


def test_a_set_aside_unit_whose_rewrite_finished_is_left_to_be_cleared(tmp_path):
    write_unit(tmp_path, 5, _writers("new"))
    aside = tmp_path / ".step-000000005.old.k1ll3d.tmp"  # killed after the rename, before the rmtree
    (aside / "step-000000005").mkdir(parents=True)
    assert recover_set_aside(tmp_path) == []
    remove_stale_temps(tmp_path)
    assert read_unit(tmp_path / "step-000000005").file("state.pt").read_text() == "new"
