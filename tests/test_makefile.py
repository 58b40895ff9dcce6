"""`make setup` with a stand-in interpreter that records its calls: a new TORCH_SPEC re-runs the torch step
and replaces the installed build; an unchanged one does nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CUDA_SPEC = "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"


@pytest.fixture
def fake_venv(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "calls.log"
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    python.chmod(0o755)
    return venv, log


def _setup(venv: Path, *spec: str) -> None:
    args = ["make", "-s", "setup", f"VENV={venv}", *(f"TORCH_SPEC={s}" for s in spec)]
    subprocess.run(args, cwd=ROOT, check=True, env={**os.environ, "MAKEFLAGS": ""}, capture_output=True)


def test_a_new_torch_spec_reinstalls_torch_and_an_unchanged_one_does_nothing(fake_venv):
    venv, log = fake_venv
    _setup(venv)
    first = log.read_text().splitlines()
    # the CPU build by default: the requirements file names PyTorch's CPU index beside the pin
    assert any(
        line.endswith("install -q --disable-pip-version-check --no-deps -r requirements/torch-cpu.txt")
        for line in first
    )
    # its dependencies from the usual indexes, without TORCH_SPEC's
    assert any(line.endswith("install -q --disable-pip-version-check torch") for line in first)
    spec = (ROOT / "requirements" / "torch-cpu.txt").read_text().split("\n")
    assert "torch==2.13.0" in spec and "--extra-index-url https://download.pytorch.org/whl/cpu" in spec
    assert not any("--force-reinstall" in line for line in first)  # a first install replaces nothing
    log.write_text("")
    _setup(venv)
    assert log.read_text() == ""  # nothing changed: "Nothing to be done"
    _setup(venv, CUDA_SPEC)
    calls = log.read_text().splitlines()
    assert any("--force-reinstall --no-deps " + CUDA_SPEC in line for line in calls)
    assert any("-r requirements/base.txt" in line for line in calls)  # the rest re-checked on top
    assert len(list(venv.glob(".torch-*"))) == 1
