"""benchmarks/run_all.py assembly: today's topics in BENCHMARKS.md, every other section moved (not dropped)
to docs/benchmarks-history.md and linked from BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import run_all


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    results = tmp_path / "results"
    results.mkdir()
    for topic, title in [
        ("real_clips", "Real clips: table"),
        ("banet_latency", "Pair latency"),
        ("vo_kitti", "KITTI 06 frames 0-50: banet_vo vs baselines"),
        ("zz_extra", "An unlisted topic"),
    ]:
        (results / f"{topic}.md").write_text(f"## {title}\n\nfigure of {topic}\n")
    monkeypatch.setattr(run_all, "RESULTS", results)
    monkeypatch.setattr(run_all, "OUTPUT", tmp_path / "BENCHMARKS.md")
    monkeypatch.setattr(run_all, "HISTORY", tmp_path / "docs" / "benchmarks-history.md")
    return tmp_path


def test_today_first_history_moved_and_linked(layout: Path) -> None:
    run_all.assemble()
    today = (layout / "BENCHMARKS.md").read_text()
    history = (layout / "docs" / "benchmarks-history.md").read_text()
    assert today.index("figure of real_clips") < today.index("figure of banet_latency")
    for topic in ("vo_kitti", "zz_extra"):
        assert f"figure of {topic}" in history and f"figure of {topic}" not in today
    assert "figure of real_clips" not in history
    assert "(docs/benchmarks-history.md#kitti-06-frames-0-50-banet_vo-vs-baselines)" in today
    assert "(docs/benchmarks-history.md#an-unlisted-topic)" in today


def test_anchor_follows_github_rules() -> None:
    assert run_all._anchor("BA-Net pair latency (CPU, fp32)") == "ba-net-pair-latency-cpu-fp32"


def test_each_today_section_has_a_module_or_is_kept(layout: Path, monkeypatch, capsys) -> None:
    """`make bench` runs each of today's topics with the arguments its section was made with, keeps the
    sections made by several commands, and exits non-zero when a topic fails (it printed "failed" and
    exited 0)."""
    import importlib

    for topic in run_all.TODAY:
        name, _ = run_all.RUNS.get(topic, (topic, []))
        if topic not in run_all.MANUAL:
            importlib.import_module(f"benchmarks.{name}")  # raises for a topic with no module
    assert run_all.RUNS["real_clips"][1] == ["--seeds", "0,1,2,3,4", "--threads", "1"]

    calls = []

    class Fake:
        @staticmethod
        def main(argv):
            calls.append(argv)
            return 1

    monkeypatch.setattr(importlib, "import_module", lambda name: Fake)
    assert run_all.main(["--only", "real_clips,device_check"]) == 1
    assert calls == [["--seeds", "0,1,2,3,4", "--threads", "1"]]
    err = capsys.readouterr().err
    assert "device_check kept as it is" in err and "failed: real_clips" in err


def test_duplicate_titles_link_to_their_own_sections(layout: Path) -> None:
    """Two history sections with one title: GitHub anchors the second `-1` (and a third `-2`), counting
    every heading above it, not those in code blocks; each link in BENCHMARKS.md points at its own
    section (both pointed at the first)."""
    results = layout / "results"
    (results / "aa_first.md").write_text("## Same title\n\n```\n## Same title\n```\n\n### Note\n")
    (results / "ab_second.md").write_text("## Same title\n\n### Note\n")
    (results / "ac_third.md").write_text("## Same title\n\ntext\n")
    (results / "ad_note.md").write_text("## Note\n\ntext\n")  # after two '### Note' subheadings
    run_all.assemble()
    today = (layout / "BENCHMARKS.md").read_text()
    links = [line for line in today.splitlines() if line.startswith("- [")]
    assert "- [Same title](docs/benchmarks-history.md#same-title)" in links
    assert "- [Same title](docs/benchmarks-history.md#same-title-1)" in links
    assert "- [Same title](docs/benchmarks-history.md#same-title-2)" in links
    assert "- [Note](docs/benchmarks-history.md#note-2)" in links
    history = (layout / "docs" / "benchmarks-history.md").read_text()
    assert run_all._anchors(history).count("same-title-1") == 1
    assert run_all._anchors("# A\n## A\n## A-1\n## A\n") == ["a", "a-1", "a-1-1", "a-2"]
