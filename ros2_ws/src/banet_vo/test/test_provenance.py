"""Provenance: CPU model from cpuinfo, the machine line of benchmark headers, and the code version."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from banet_vo import provenance
from banet_vo.model import checkpoint
from banet_vo.provenance import code_version, cpu_model, machine_description

HERE = Path(__file__).resolve().parent

X86_CPUINFO = """\
processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu vme

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: Some Other CPU
"""

# aarch64 kernels list no "model name"
ARM_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 50.00
CPU implementer\t: 0x41
"""


def test_cpu_model_reads_first_model_name(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(X86_CPUINFO)
    assert cpu_model(path) == "AMD EPYC 7B13 64-Core Processor"
    assert cpu_model(str(path)) == "AMD EPYC 7B13 64-Core Processor"


@pytest.mark.parametrize("processor, expected", [("aarch64", "aarch64"), ("", "unknown CPU")])
def test_cpu_model_falls_back_without_model_name(tmp_path, monkeypatch, processor, expected):
    monkeypatch.setattr(platform, "processor", lambda: processor)
    arm = tmp_path / "cpuinfo"
    arm.write_text(ARM_CPUINFO)
    assert cpu_model(arm) == expected
    assert cpu_model(tmp_path / "missing") == expected


def test_machine_description_without_torch_info(tmp_path, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text(X86_CPUINFO)
    monkeypatch.setattr(provenance, "CPUINFO", fake)
    expected = (
        f"{os.cpu_count()} CPUs (nproc), AMD EPYC 7B13 64-Core Processor; Python {platform.python_version()}"
    )
    assert machine_description(torch_info=False) == expected


def test_machine_description_with_torch_info(tmp_path, monkeypatch):
    import torch

    fake = tmp_path / "cpuinfo"
    fake.write_text(X86_CPUINFO)
    monkeypatch.setattr(provenance, "CPUINFO", fake)
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
    assert machine_description() == (
        f"{os.cpu_count()} CPUs (nproc), AMD EPYC 7B13 64-Core Processor; {cuda}; torch {torch.__version__}; "
        f"Python {platform.python_version()}"
    )


def test_machine_description_without_torch_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    parts = machine_description().split("; ")
    assert parts[-2:] == ["no torch", f"Python {platform.python_version()}"]


def test_module_does_not_import_torch():
    code = (
        "import sys, banet_vo.provenance as p; p.cpu_model(); p.code_version(); "
        "p.machine_description(torch_info=False); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_code_version_matches_git_describe():
    expected = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=HERE, capture_output=True, text=True, timeout=30
    )
    if expected.returncode != 0:
        pytest.skip("the tests are not in a git checkout")
    assert code_version() == expected.stdout.strip() != ""
    assert code_version(HERE) == expected.stdout.strip()


def test_code_version_outside_git_is_unknown(tmp_path, monkeypatch):
    # Stop git's upward search at tmp_path, in case the temporary folder lies inside some checkout.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv("GIT_DIR", raising=False)
    assert code_version(tmp_path) == "unknown"


def test_code_version_without_git_is_unknown(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable on PATH
    assert code_version() == "unknown"


def test_checkpoint_reexports_code_version():
    assert checkpoint.code_version is code_version
