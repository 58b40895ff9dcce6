"""The shipped default model is found from a checkout and from an installed package's share folder, and a
missing one is an error that names where it was looked for."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
from banet_vo.model import shipped
from banet_vo.model.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[4]


def _shipped_module_at(path: Path):
    """A copy of banet_vo/model/shipped.py loaded from `path` (as if installed there)."""
    path.parent.mkdir(parents=True)
    shutil.copy(shipped.__file__, path)
    spec = importlib.util.spec_from_file_location("shipped_copy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_checkout_finds_the_repositorys_model_and_it_is_a_banet_checkpoint():
    path = shipped.default_model_path()
    assert path.read_bytes() == (REPO / "models" / shipped.DEFAULT_MODEL_NAME).read_bytes()
    state, config, _ = load_checkpoint(path, expected_kind="banet")  # raises for any other kind
    assert state and config


def test_an_installed_package_finds_the_model_in_its_share_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "elsewhere"))
    prefix = tmp_path / "install" / "banet_vo"  # colcon's per-package prefix (pip's is the venv)
    module = _shipped_module_at(prefix / "lib/python3.11/site-packages/banet_vo/model/shipped.py")
    with pytest.raises(FileNotFoundError) as missing:
        module.default_model_path()
    message = str(missing.value)
    assert str(prefix / "share/banet_vo/models") in message and "reinstall the package" in message
    model = prefix / "share/banet_vo/models" / module.DEFAULT_MODEL_NAME
    model.parent.mkdir(parents=True)
    model.write_bytes(b"weights")
    assert module.default_model_path() == model


def test_a_folder_given_first_wins(tmp_path):
    (tmp_path / shipped.DEFAULT_MODEL_NAME).write_bytes(b"weights")
    assert shipped.default_model_path([tmp_path]) == tmp_path / shipped.DEFAULT_MODEL_NAME
    assert shipped.model_search_dirs([tmp_path])[0] == tmp_path
