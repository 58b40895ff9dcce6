"""benchmarks.glance: BENCHMARKS.md's first section reads issue 14's standing from the main table."""

from __future__ import annotations

from pathlib import Path

from benchmarks import glance, run_all

TABLE = """## Real clips: banet_vo vs classical references

| clip | method | ATE Sim(3) [m] | ATE SE(3) [m] | Sim(3) scale | frames out | s/frame | note |
|---|---|---|---|---|---|---|---|
| kitti06 | banet_vo xfeat, scale learned (default) | 1.903 | 10.422 | 2.472 | 50/51 | 0.460 | a note |
| kitti06 | banet_vo xfeat, scale ground_plane | 0.227 | 0.307 | 1.006 | 50/51 | 0.471 |  |
| kitti06 | banet_vo xfeat, scale none | 0.147 | — | 2.431 | 50/51 | 0.470 |  |
| kitti06 | OpenCV ORB + 5-point | 0.505 | 0.530 | 1.009 | 51/51 | 0.091 | step length from GT |
| tartanair | banet_vo xfeat, scale learned (default) | 0.307 | 0.700 | 1.072 | 189/189 | 0.172 |  |
| tartanair | OpenCV SIFT + 5-point | 0.507 | 1.048 | 1.305 | 189/189 | 0.009 |  |

| clip | with the true step lengths |
|---|---|
| kitti06 | banet_vo xfeat, scale learned (default) 0.018 |
"""


def _row(section: str, clip: str) -> list[str]:
    line = next(line for line in section.splitlines() if line.startswith(f"| {clip} |"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_each_clip_gets_its_default_target_and_metric_check():
    section = glance.glance_section(TABLE)
    assert section.startswith(f"## {glance.TITLE}")
    kitti = _row(section, "kitti06")
    # default, target 0.505 (issue 14), missed; ground plane 0.307 / 0.227 = 1.35x <= 1.5x; none Sim(3)
    assert kitti[1:6] == ["1.903 / 10.422", "0.505", "no", "0.227 / 0.307", "0.147"]
    assert kitti[7] == "0.505" and kitti[8] == "—"  # ORB measured, SIFT not in this table
    assert kitti[9] == "ground plane 1.35x (≤ 1.5x: met)"
    tartan = _row(section, "tartanair")
    assert tartan[1:4] == ["0.307 / 0.700", "1.355", "yes"]
    assert tartan[8] == "0.507"
    assert tartan[9] == "learned 2.28x (≤ 2x: missed)"
    # only the first table is read: the true-step table's rows are not clips of their own
    assert section.count("| kitti06 |") == 1


def test_no_default_row_gives_no_section():
    assert glance.glance_section(TABLE.replace(" (default)", "")) is None


def test_assembly_puts_it_first_in_benchmarks_md(tmp_path: Path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    (results / "real_clips.md").write_text(TABLE)
    (results / "banet_latency.md").write_text("## Pair latency\n\nfigure\n")
    monkeypatch.setattr(run_all, "RESULTS", results)
    monkeypatch.setattr(run_all, "OUTPUT", tmp_path / "BENCHMARKS.md")
    monkeypatch.setattr(run_all, "HISTORY", tmp_path / "history.md")
    run_all.assemble()
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert text.index(glance.TITLE) < text.index("## Real clips: banet_vo vs classical references")
    assert text.index("## Real clips") < text.index("## Pair latency")
