"""benchmarks.xfeat_latency on a real clip's first frames: it runs, writes its table, and the fast path
agrees with the wheel's code where it says it does."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_a_short_run_writes_its_table(kitti06_dir: Path, tmp_path):
    from benchmarks.xfeat_latency import main

    out = tmp_path / "xfeat.md"
    args = ["--clips", "kitti06", "--data", str(kitti06_dir.parent), "--frames", "3", "--repeats", "1"]
    assert main([*args, "--threads", "1", "--out", str(out)]) == 0
    row = next(line for line in out.read_text().splitlines() if line.startswith("| kitti06 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "1226x370" and cells[2] == "1" and cells[3] == "3"
    assert float(cells[4]) > 0 and float(cells[5]) > 0
    assert float(cells[7].rstrip(" %")) >= 98.0  # the same keypoints up to float rounding
    assert float(cells[8]) < 1e-3


def test_bad_arguments_are_refused(capsys):
    from benchmarks.xfeat_latency import main

    with pytest.raises(SystemExit):
        main(["--clips", "kitti99"])
    assert "unknown clips" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--threads", "two"])
    assert "comma-separated integers" in capsys.readouterr().err
