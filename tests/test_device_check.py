"""benchmarks/device_check.sh, the one prepared GPU script: its plan (dry run) and its CPU smoke mode."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "device_check.sh"


def _run(*args: str, out: Path, timeout: float, **env_extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUT": str(out), **env_extra}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("mode", "steps"),
    [
        ("--cpu-smoke", ["gpu_tests", "pair_latency", "exp_latency", "node_30hz", "node_30hz_processed"]),
        ("--cuda", ["gpu_tests", "pair_latency", "exp_latency", "node_30hz", "node_30hz_processed"]),
    ],
)
def test_dry_run_lists_the_steps_and_writes_nothing(tmp_path: Path, mode: str, steps: list[str]) -> None:
    out = tmp_path / "out"
    result = _run("--dry-run", mode, out=out, timeout=30)
    assert result.returncode == 0, result.stderr
    listed = [line[1:].split(",")[0] for line in result.stdout.splitlines() if line.startswith("[")]
    assert listed[: len(steps)] == steps
    assert ("cuda" in result.stdout) == (mode == "--cuda")
    assert not out.exists()


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    result = _run("--fast", out=tmp_path, timeout=30)
    assert result.returncode == 2
    assert "unknown option" in result.stderr


@pytest.mark.parametrize(
    ("mode", "only"),
    [
        ("--cpu-smoke", "pair_latancy"),
        ("--cpu-smoke", "real_clips"),
        ("--cuda", "pair_latency,nope"),
        ("--cuda", ""),
    ],
)
def test_only_refuses_a_name_not_in_the_plan(tmp_path: Path, mode: str, only: str) -> None:
    """A typo, or a step of the other mode (real_clips runs on CUDA only), ran nothing and exited 0."""
    for dry in (["--dry-run"], []):
        result = _run(*dry, mode, "--only", only, out=tmp_path / "out", timeout=30)
        assert result.returncode == 2, result.stderr
        assert "device_check: --only" in result.stderr
        assert not (tmp_path / "out").exists()


def test_a_clip_step_without_data_is_reported_skipped(tmp_path: Path) -> None:
    """Without ../shared/data or .devdata the clip steps were left out without a word."""
    dry = _run("--dry-run", "--cuda", out=tmp_path / "out", timeout=30, DEVICE_CHECK_DATA="/nonexistent")
    assert dry.returncode == 0, dry.stderr
    assert "[real_clips, limit 180s] skipped: no data" in dry.stdout
    assert "[frame_profile, limit 60s] skipped: no data" in dry.stdout
    out = tmp_path / "out"
    result = _run(
        "--cpu-smoke", "--only", "frame_profile", out=out, timeout=60, DEVICE_CHECK_DATA="/nonexistent"
    )
    assert result.returncode == 0, result.stderr
    summary = (out / "summary.md").read_text()
    assert "| frame_profile | skipped: no data" in summary
    assert "Skipped steps: frame_profile" in summary and "Failed steps: 0" in summary
    assert "skipped: frame_profile" in result.stderr.splitlines()[-1]


@pytest.mark.slow
def test_cpu_smoke_pair_latency_writes_both_presets(tmp_path: Path) -> None:
    result = _run("--cpu-smoke", "--only", "pair_latency", out=tmp_path, timeout=120)
    assert result.returncode == 0, (result.stderr, (tmp_path / "device_check.log").read_text())
    rows = json.loads((tmp_path / "latency.json").read_text())
    assert [r["preset"] for r in rows] == ["small", "paper"]
    assert all(r["device"] == "cpu" and r["median_s"] > 0 for r in rows)
    assert all(r["median_s"] == statistics.median(r["times_s"]) for r in rows)  # not the upper middle one
    summary = (tmp_path / "summary.md").read_text()
    assert "| pair_latency | 0 |" in summary
    assert "Failed steps: 0" in summary


@pytest.mark.slow
def test_train_step_time_times_the_training_loop(tmp_path: Path) -> None:
    """benchmarks.train_step_time runs the real loop on the CPU: a row per batch size, a positive time."""
    out = tmp_path / "steps.md"
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'ros2_ws/src/banet_vo'}"}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.train_step_time", "--device", "cpu", "--threads", "1",
         "--batches", "1,2", "--steps", "2", "--warmup", "1", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in out.read_text().splitlines() if line[:3] in ("| 1", "| 2")]
    assert [int(r[0]) for r in rows] == [1, 2]
    assert all(float(r[1]) > 0 and r[3].strip() == "-" for r in rows)
