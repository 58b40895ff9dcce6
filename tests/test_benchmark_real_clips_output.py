"""benchmarks.real_clips: where its table goes and what its title says. Only the runs `make bench` makes
(benchmarks.run_all.RUNS) write the committed tables; any other run (a variant, a subset, a partial or
failed run) goes to runs/ under a name saying what differs, and a run with no row writes nothing."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import pytest
from banet_vo.evaluation import real_clips as rc

from benchmarks import real_clips, run_all

ROOT = real_clips.ROOT
RUNS_DIR = ROOT / "runs"
MAIN = ["--seeds", "0,1,2,3,4", "--threads", "1"]  # run_all's main table


def _out(argv: list[str]) -> Path:
    parser = real_clips.build_parser()
    return real_clips.default_out(parser, parser.parse_args(argv))


def _without_out(argv: list[str]) -> tuple[list[str], str | None]:
    if "--out" not in argv:
        return argv, None
    at = argv.index("--out")
    return argv[:at] + argv[at + 2 :], argv[at + 1]


def test_each_make_bench_run_keeps_its_committed_table() -> None:
    """Every section run_all makes with this module lands where it is (its --out, else results/<topic>.md),
    with --out given or not."""
    topics = [t for t, (module, _) in run_all.RUNS.items() if module == "real_clips"]
    assert {"real_clips", "real_clips_live", "real_clips_every5", "real_clips_gray"} <= set(topics)
    for topic in topics:
        argv, out = _without_out(run_all.RUNS[topic][1])
        assert _out(argv) == Path(out or real_clips.RESULTS.with_name(f"{topic}.md")), topic
    assert _out(MAIN) == real_clips.RESULTS
    assert _out(["--live-only"]) == real_clips.LIVE_RESULTS


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        ([], "real_clips.md"),  # the command's defaults are not the committed run (5 seeds, 1 thread)
        (["--reverse"], "real_clips_reverse.md"),
        (["--settle"], "real_clips_settle.md"),
        (["--max-frames", "20"], "real_clips_first20.md"),
        (["--tracking", "feature_max_pixels=500000"], "real_clips_feature_max_pixels-500000.md"),
        (["--ba-hold", "2"], "real_clips_ba_hold2.md"),
        (["--depth-calibration"], "real_clips_depth_calibrated.md"),
        (["--frontends", "xfeat"], "real_clips_frontends-xfeat.md"),
        (["--frontends", "xfeat,none"], "real_clips.md"),  # all of them, as by default
        (["--scales", "learned,none"], "real_clips_scales-learned-none.md"),
        (["--live", "--live-param", "background_ba:=true"], "real_clips_live_background_ba-true.md"),
        (["--seeds", "0,1,2"], "real_clips_seeds-0-1-2.md"),
        (["--model", "models/other.safetensors"], "real_clips_model-other.md"),
        (["--clips", "/data/my_clip"], "real_clips_my_clip.md"),  # README.md: runs/real_clips_<clip>.md
        (["--every", "5", "--reverse"], "real_clips_every5_reverse.md"),
        (["--every", "5"], "real_clips_every5.md"),
        ([*MAIN, "--reverse"], "real_clips_reverse_seeds-0-1-2-3-4_threads1.md"),
        ([*MAIN, "--exposure", "1.5"], "real_clips_exposure1.5_seeds-0-1-2-3-4_threads1.md"),
        (["--live-only", "--live-param", "background_ba:=true"], "real_clips_live_background_ba-true.md"),
        (["--live-only", "--seeds", "3"], "real_clips_live_seeds-3.md"),
    ],
)
def test_any_other_run_goes_to_runs_named_for_what_differs(argv, name) -> None:
    assert _out(argv) == RUNS_DIR / name


@pytest.fixture
def stubbed(monkeypatch, tmp_path):
    """main() on the shared clips with the model and the odometry stubbed (every frame at its true pose)
    and the committed and runs/ folders moved into tmp_path."""
    import banet_vo.odometry as odometry

    monkeypatch.setattr(odometry.BANetEstimator, "from_checkpoint", classmethod(lambda cls, *a, **k: None))

    class FakeOdometry:
        def close(self) -> None:
            pass

    monkeypatch.setattr(odometry, "make_odometry", lambda *a, **k: FakeOdometry())

    def fake_run(vo, clip, *a, **k):
        n = len(clip)
        return rc.OdometryRun(clip.stamps, clip.gt.copy(), n, [0.01], {"ok": n}, {"learned": n}, 0)

    monkeypatch.setattr(rc, "run_odometry", fake_run)
    results = tmp_path / "root" / "benchmarks" / "results"
    monkeypatch.setattr(real_clips, "ROOT", tmp_path / "root")
    monkeypatch.setattr(real_clips, "RESULTS", results / "real_clips.md")
    monkeypatch.setattr(real_clips, "LIVE_RESULTS", results / "real_clips_live.md")
    return tmp_path / "root"


def _written(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.md"))


SMALL = ["--clips", "kitti06,kitti07", "--max-frames", "5", "--references", "", "--frontends", "none"]


def test_a_run_without_rows_writes_nothing(stubbed, shared_data, capsys) -> None:
    """--max-frames 2 leaves every clip too short to align: exit 1, no table (an empty one was written
    over real_clips.md, and run_all assembled it)."""
    assert real_clips.main([*MAIN, "--clips", "kitti06", "--max-frames", "2", "--references", ""]) == 1
    assert "no clip produced a row; nothing written" in capsys.readouterr().err
    assert _written(stubbed) == []


def test_the_committed_run_writes_its_table_and_an_incomplete_one_goes_to_runs(
    stubbed, shared_data, monkeypatch, capsys
) -> None:
    monkeypatch.setitem(run_all.RUNS, "real_clips", ("real_clips", [*MAIN, *SMALL]))
    assert real_clips.main([*MAIN, *SMALL]) == 0
    assert _written(stubbed) == ["benchmarks/results/real_clips.md"]
    assert real_clips.main([*MAIN, *SMALL, "--reverse"]) == 0
    assert [p for p in _written(stubbed) if p.startswith("runs/")] == [
        "runs/real_clips_kitti06-kitti07_frontends-none_references-none_first5_reverse_seeds-0-1-2-3-4"
        "_threads1.md"
    ]
    real_load = rc.load_clip

    def failing(spec, *args, **kwargs):
        if spec.name == "kitti07":
            raise ValueError("an image file could not be decoded")
        return real_load(spec, *args, **kwargs)

    monkeypatch.setattr(rc, "load_clip", failing)
    before = (stubbed / "benchmarks/results/real_clips.md").read_text()
    assert real_clips.main([*MAIN, *SMALL]) == 1
    assert (stubbed / "benchmarks/results/real_clips.md").read_text() == before
    incomplete = (stubbed / "runs/real_clips_incomplete.md").read_text()
    assert "| kitti06 |" in incomplete and "kitti07: failed (an image file" in incomplete


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tracking", "ransac_seed=7"], "--tracking ransac_seed: the RANSAC seed is --seeds'"),
        (["--frontends", "xfaet"], "--frontends: each of ['xfaet'] must be one of"),
    ],
)
def test_ransac_seed_and_unknown_front_ends_are_refused(flags, message, capsys, tmp_path) -> None:
    # A missing model and an --out of its own: a run that is not refused stops before it runs anything.
    safe = ["--model", str(tmp_path / "no_model.safetensors"), "--out", str(tmp_path / "t.md")]
    with pytest.raises(SystemExit) as exit_info:
        real_clips.main([*flags, *safe])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def _args(**changes) -> argparse.Namespace:
    base = dict(
        max_frames=None, every=1, image_scale=1.0, jpeg_quality=None, gray=False, exposure=1.0,
        reverse=False, frontends=[], scales=[], tracking_overrides=[], depth_calibration=False,
        ba_hold=None, settle=False, live_param=[], live_only=False, threads=1,
        started_at=datetime.datetime.now(datetime.UTC), code_version="x", model=real_clips.DEFAULT_MODEL,
        device="cpu",
    )  # fmt: skip
    return argparse.Namespace(**{**base, **changes})


def test_the_title_says_what_was_run(tmp_path) -> None:
    """--settle, --live-param, --depth-calibration and a subset of front ends are in the title (the first
    two were not: two different runs had one title, and BENCHMARKS.md's links one anchor)."""

    def title(**changes) -> str:
        body = real_clips.write_markdown(tmp_path / "t.md", _args(**changes), [], [], [], [], 1.0)
        return body.splitlines()[0]

    assert title() == "## Real clips: banet_vo vs classical references"
    assert title(settle=True).endswith("background threads waited for after each frame (--settle)")
    assert title(frontends=["xfeat"]).endswith(", front end xfeat only")
    other = title(model=Path("models/banet_small_xfeat.safetensors"), frontends=["xfeat"])  # not the default
    assert other.endswith(", model banet_small_xfeat.safetensors, front end xfeat only")
    assert "calibration (--depth-calibration)" in title(depth_calibration=True)
    live = ["background_ba:=true", "tracking_banet_min_interval:=0.5"]
    assert title(live_only=True) == "## Real clips, live node at real rate vs offline"
    assert title(live_only=True, live_param=live).endswith(
        "live node with background_ba:=true, tracking_banet_min_interval:=0.5"
    )
    assert real_clips.live_label(_args()) == "banet_vo live node (bag at 1x, queue 1)"
    assert real_clips.live_label(_args(live_param=live)) == (
        "banet_vo live node (bag at 1x, queue 1, background_ba:=true, tracking_banet_min_interval:=0.5)"
    )
