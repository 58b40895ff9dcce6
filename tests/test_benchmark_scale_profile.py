"""benchmarks.scale_profile on KITTI 06's first frames: it runs the odometry, writes one row per seed with
the figures the profile gives, and refuses what it cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_a_short_run_writes_one_row_per_seed(shared_data: Path, tmp_path):
    from benchmarks.scale_profile import main

    out = tmp_path / "profile.md"
    args = ["--clips", "kitti06", "--data", str(shared_data), "--seeds", "0,1", "--max-frames", "20"]
    assert main([*args, "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| kitti06 |")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [c[1] for c in cells] == ["0", "1"]
    for c in cells:
        assert 0.0 < float(c[2]) < 0.5  # Sim(3) ATE of 20 frames of a straight drive (0.1 m measured)
        assert int(c[3]) >= 8  # keyframe stretches: a car at 10 Hz makes a keyframe every frame or two
        thirds = [float(v) for v in c[4].split(" / ")]
        assert all(0.5 < v < 2.0 for v in thirds)  # the map keeps its scale over 2 s of driving
        assert int(c[5]) == 0 and c[7] == "—"  # no event


def test_a_clip_of_ones_own_goes_to_runs_not_over_the_committed_results(shared_data, monkeypatch, tmp_path):
    import benchmarks.scale_profile as sp

    monkeypatch.setattr(sp, "ROOT", tmp_path)
    monkeypatch.setattr(sp, "RESULTS", tmp_path / "results.md")
    folder = shared_data / "kitti_odom06_000-050"
    assert sp.main(["--clips", str(folder), "--seeds", "0", "--max-frames", "12"]) == 0
    written = list((tmp_path / "runs").glob("scale_profile_*.md"))
    assert len(written) == 1 and not (tmp_path / "results.md").exists()
    assert "| kitti_odom06_000-050 | 0 |" in written[0].read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clips", "no_such_clip"], "unknown clip"),
        (["--scale", "metres"], "--scale must be one of"),
        (["--seeds", "a"], "invalid literal"),
        # hololens has no known camera height: refused up front (a traceback after the KITTI clips ran)
        (["--clips", "hololens", "--scale", "ground_plane", "--max-frames", "3"], "not known for hololens"),
    ],
)
def test_bad_arguments_are_refused(shared_data: Path, tmp_path, capsys, args, message):
    from benchmarks.scale_profile import main

    with pytest.raises(SystemExit) as exc:
        main(["--data", str(shared_data), "--out", str(tmp_path / "x.md"), *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_tracking_is_repeatable(monkeypatch, tmp_path):
    """Each --tracking counts (nargs="*" kept only the last one given)."""
    from benchmarks import scale_profile

    seen = []

    def stop(items):
        seen.append(list(items))
        raise ValueError("stop here")

    monkeypatch.setattr(scale_profile, "tracking_config", stop)
    with pytest.raises(SystemExit):
        scale_profile.main(["--tracking", "a=1", "--tracking", "b=2", "--out", str(tmp_path / "x.md")])
    assert seen == [["a=1", "b=2"]]
