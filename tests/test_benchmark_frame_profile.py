"""benchmarks.frame_profile's command line (its timers: banet_vo.evaluation.stage_times, tested beside it)."""

from __future__ import annotations

import pytest


def test_an_unknown_window_solver_is_refused(capsys):
    from benchmarks.frame_profile import main

    with pytest.raises(SystemExit):
        main(["--window-solvers", "gtsam,g2o", "--max-frames", "2"])
    assert "must be one of" in capsys.readouterr().err


def test_window_shapes_are_read_and_checked():
    from benchmarks.frame_profile import parse_window_shapes

    assert parse_window_shapes("") == [None]
    assert parse_window_shapes("7/5,10/5") == [(7, 5), (10, 5)]
    for bad in ("10", "10/", "ten/5", "10/5/1"):
        with pytest.raises(ValueError, match="is not WINDOW/FREE"):
            parse_window_shapes(bad)
    with pytest.raises(ValueError, match="window_keyframes"):
        parse_window_shapes("2/1")  # below TrackingConfig's range


def test_a_bad_window_shape_is_refused(capsys):
    from benchmarks.frame_profile import main

    with pytest.raises(SystemExit):
        main(["--window-shapes", "10:5", "--max-frames", "2"])
    assert "--window-shapes" in capsys.readouterr().err


def test_each_window_shape_is_profiled_in_its_own_row(kitti06_dir, tmp_path):
    """Two shapes on KITTI 06's first frames: one row each, labelled, with the window BA's time per
    keyframe."""
    from benchmarks.frame_profile import main

    out = tmp_path / "profile.md"
    assert (
        main(
            [
                "--clips",
                "kitti06",
                "--data",
                str(kitti06_dir.parent),
                "--max-frames",
                "14",
                "--threads",
                "1",
                "--window-shapes",
                "3/1,7/5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = [line for line in out.read_text().splitlines() if line.startswith("| kitti06 |")]
    assert [row.split(" | ")[2] for row in rows] == ["3/1", "7/5"]
    assert [row.split(" | ")[3] for row in rows] == ["2048", "2048"]  # the configured count
    per_keyframe = [float(row.rstrip(" |").rsplit("| ", 1)[1]) for row in rows]
    assert all(t > 0 for t in per_keyframe)


def test_each_keypoint_count_is_profiled_in_its_own_row(kitti06_dir, tmp_path):
    """Two XFeat keypoint counts on KITTI 06's first frames: one row each, labelled; bad counts refused."""
    from benchmarks.frame_profile import main, parse_keypoints

    assert parse_keypoints("") == [None] and parse_keypoints("2048,512") == [2048, 512]
    with pytest.raises(ValueError):
        parse_keypoints("4")  # below TrackingConfig's range
    with pytest.raises(ValueError):
        parse_keypoints("many")
    out = tmp_path / "profile.md"
    args = ["--clips", "kitti06", "--data", str(kitti06_dir.parent), "--max-frames", "10", "--threads", "1"]
    assert main([*args, "--max-keypoints", "1024,256", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| kitti06 |")]
    assert [row.split(" | ")[3] for row in rows] == ["1024", "256"]
