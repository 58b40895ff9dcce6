"""benchmarks/device_train.sh train: the weights and log it hands back are the run's own; a run that fails
or is refused leaves none, not even an earlier run's under the same name."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Stands in for Python: `-m banet_vo.train.cli CONFIG --out runs/NAME ...` writes weights and a log into
# the run folder when asked, then exits with $FAKE_RC.
FAKE_PY = """#!/bin/bash
out=$5
if [ "${FAKE_WRITE:-0}" = 1 ]; then
  mkdir -p "$out" && echo "$FAKE_TAG" > "$out/last.safetensors" && echo step > "$out/log.csv"
fi
echo "fake training, exit $FAKE_RC"
exit "$FAKE_RC"
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A copy of the script in a folder of its own (it works from its parent folder: runs/, ../shared)."""
    root = tmp_path / "repo"
    (root / "benchmarks").mkdir(parents=True)
    shutil.copy(REPO / "benchmarks" / "device_train.sh", root / "benchmarks")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_PY)
    fake.chmod(0o755)
    return root


def _train(site: Path, rc: int, write: bool, tag: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ, "OUT": str(site / "out"), "PY": str(site.parent / "fake_python"), "FAKE_RC": str(rc),
        "FAKE_WRITE": "1" if write else "0", "FAKE_TAG": tag,
    }  # fmt: skip
    return subprocess.run(
        ["bash", "benchmarks/device_train.sh", "train", "c.yaml", "net"],
        cwd=site, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


@pytest.mark.parametrize("rc", [0, 130, 143])
def test_a_finished_or_stopped_run_hands_back_its_weights(site, rc):
    result = _train(site, rc, write=True, tag="this run")
    assert result.returncode == rc
    assert (site / "out" / "net.safetensors").read_text() == "this run\n"
    assert (site / "out" / "net_log.csv").is_file()


@pytest.mark.parametrize("rc", [1, 2])
def test_a_failed_run_hands_back_no_weights_not_even_the_last_runs(site, rc):
    assert _train(site, 0, write=True, tag="earlier run").returncode == 0
    result = _train(site, rc, write=False, tag="")  # refused: runs/net still holds the earlier weights
    assert result.returncode == rc
    assert not (site / "out" / "net.safetensors").exists() and not (site / "out" / "net_log.csv").exists()
    assert "no weights copied" in result.stderr
    assert (site / "out" / "net_train.log").read_text().startswith("fake training")
