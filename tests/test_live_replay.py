"""benchmarks.live_replay: the recorded live frame selections and their offline replay."""

from __future__ import annotations

import json

import pytest

from benchmarks.live_replay import FRAMES, load_selections, main, markdown


def test_the_committed_selections_are_valid_and_cover_the_four_clips():
    runs = load_selections(FRAMES)
    assert len(runs) == 24
    assert {r["clip"] for r in runs} == {"kitti06", "kitti07", "hololens", "tartanair"}
    # what a live node that cannot keep up sees: gaps between published frames
    assert all(max(b - a for a, b in zip(r["frames"], r["frames"][1:], strict=False)) > 1 for r in runs)
    assert [r["clip"] for r in load_selections(FRAMES, ["kitti07"])] == ["kitti07"] * 6


@pytest.mark.parametrize(
    "name", ["live_frames_confirm.json", "live_frames_confirm2.json", "live_frames_single_executor.json"]
)
def test_the_other_committed_selections_are_valid(name):
    runs = load_selections(FRAMES.with_name(name))
    assert len(runs) == 12
    assert sorted({r["clip"] for r in runs}) == ["hololens", "kitti06", "kitti07", "tartanair"]


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"runs": []}, "no 'runs' list"),
        ({"runs": [{"clip": "kitti06", "frames": [3]}]}, "at least 2 frames"),
        ({"runs": [{"clip": "kitti06", "frames": [0, 5, 5]}]}, "must increase"),
        ({"runs": [{"clip": "kitti06", "frames": [-1, 5]}]}, "must increase"),
    ],
)
def test_malformed_selections_are_refused(tmp_path, doc, match):
    path = tmp_path / "frames.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=match):
        load_selections(path)


def test_an_unknown_clip_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"no run of \['kitti99'\]; it has \['hololens'"):
        load_selections(FRAMES, ["kitti99"])


def test_markdown_gives_per_clip_medians_a_failed_run_counting_as_the_worst():
    row = dict(frames=10, out=10, se3=1.0, reloc_refused=0, recovered=0, rebuilt=0)
    rows = [
        {"clip": "a", "run": "1", "sim3": 1.0, **row},
        {"clip": "a", "run": "2", "sim3": 3.0, **row},
        {"clip": "a", "run": "3", "sim3": None, **row},  # too few poses: no figure, not a zero
        {"clip": "b", "run": "1", "sim3": 0.5, **row},
    ]
    text = "\n".join(markdown(rows))
    assert "| a | 3 | 1 | 3.000 | 1.000 |" in text  # 1, 3 and a lost run: the median is 3, not 2
    assert "| b | 1 | 0 | 0.500 | 1.000 |" in text
    assert "| a | 3 | 10 | 10 | — |" in text


@pytest.mark.slow
def test_replays_a_selection_end_to_end(shared_data, tmp_path, capsys):
    """Every 2nd of KITTI 06's first 21 frames, with a stall after frame 10: poses out and a figure."""
    frames = tmp_path / "frames.json"
    frames.write_text(
        json.dumps({"runs": [{"clip": "kitti06", "run": "t", "frames": [*range(0, 11, 2), 16, 18, 20]}]})
    )
    out = tmp_path / "replay.md"
    assert (
        main(
            [
                "--frames",
                str(frames),
                "--data",
                str(shared_data),
                "--out",
                str(out),
                "--json",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    (row,) = json.loads((tmp_path / "r.json").read_text())
    assert row["frames"] == 9 and row["out"] >= 7
    assert row["sim3"] is not None and row["sim3"] < 0.5  # the first 2 s of KITTI 06 drive straight
    assert "| kitti06 | t | 9 |" in out.read_text()
