"""benchmarks.frame_profile's command line (its timers: banet_vo.evaluation.stage_times, tested beside it)."""

from __future__ import annotations

import pytest


def test_an_unknown_window_solver_is_refused(capsys):
    from benchmarks.frame_profile import main

    with pytest.raises(SystemExit):
        main(["--window-solvers", "gtsam,g2o", "--max-frames", "2"])
    assert "must be one of" in capsys.readouterr().err
