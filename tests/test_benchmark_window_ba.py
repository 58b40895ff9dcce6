"""benchmarks/window_ba.py: the section names the solver the windows ran with (it said pypose's dense LM,
while WindowConfig's default is gtsam), every window is solved with --frames and --solver (the threads
comparison built WindowConfig(torch_threads=n) without window_size: --frames 7 crashed), and the torch
threads table, which only the pypose path reads, is shown for the pypose solver only."""

from __future__ import annotations

from pathlib import Path

import pytest
from imatching_online.ba import WindowConfig

from benchmarks import window_ba

ROW = dict.fromkeys(
    (
        "matches",
        "landmarks",
        "ba_landmarks",
        "obs",
        "wall",
        "init",
        "track",
        "refine",
        "steps",
        "passes",
        "rot",
    ),
    1.0,
)


@pytest.mark.parametrize("solver", ["gtsam", "pypose"])
def test_solver_and_frames_reach_every_window(solver, tmp_path: Path, monkeypatch) -> None:
    configs = []

    def fake_run_size(queries, frames, repeats, config):
        configs.append((frames, config))
        return {"queries": queries, "rows": [{**ROW, "rot": 0.1, "depth": 0.01, "ok": True}]}

    monkeypatch.setattr(window_ba, "run_size", fake_run_size)
    out = tmp_path / "window_ba.md"
    argv = ["--frames", "7", "--queries", "10", "--repeats", "1", "--output", str(out)]
    assert window_ba.main([*argv, "--solver", solver]) == 0
    assert all(frames == 7 and c.window_size == 7 and c.solver == solver for frames, c in configs)
    text = out.read_text()
    assert ("torch threads during LM" in text) == (solver == "pypose")
    assert ("pp.optim.LM" in text) == (solver == "pypose")
    assert len(configs) == (4 if solver == "pypose" else 2)  # warm-up, one size (+ 2 thread settings)


def test_default_solver_is_window_configs() -> None:
    assert WindowConfig().solver == "gtsam"
