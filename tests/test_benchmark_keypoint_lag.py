"""benchmarks.keypoint_lag on TartanAir's first frames: it runs, writes its table, and the figures say
what the benchmark is for (Lucas-Kanade's positions are sharper than XFeat's whole pixels)."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_a_short_run_writes_its_table(shared_data: Path, tmp_path):
    from benchmarks.keypoint_lag import main

    out = tmp_path / "lag.md"
    args = [
        "--clips",
        "tartanair",
        "--data",
        str(shared_data),
        "--frames",
        "16",
        "--gap",
        "3",
        "--stride",
        "4",
    ]
    assert main([*args, "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| tartanair |")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    xfeat = {c[1]: c for c in cells if c[2] == "XFeat"}
    lk = {c[1]: c for c in cells if c[2] == "XFeat + LK"}
    assert xfeat and set(xfeat) == set(lk)
    for flow in xfeat:
        assert int(xfeat[flow][3]) >= 20 and int(lk[flow][3]) > 0
        assert 0.5 < float(xfeat[flow][4]) < 4.0  # XFeat: whole pixels, ~1-2 px off
        assert float(lk[flow][4]) < float(xfeat[flow][4])
    assert "frame i matched to i + 3" in out.read_text()


def test_a_clip_without_depth_and_bad_arguments_are_refused(kitti06_dir: Path, capsys):
    from benchmarks.keypoint_lag import main

    with pytest.raises(SystemExit, match="no depth"):
        main(["--clips", "kitti06", "--data", str(kitti06_dir.parent), "--frames", "5", "--gap", "1"])
    with pytest.raises(SystemExit):
        main(["--frames", "3", "--gap", "3"])
    assert "frames > gap" in capsys.readouterr().err
