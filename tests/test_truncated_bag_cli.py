"""banet-vo-play and banet-vo-run on truncated bags: play what is intact and say how much was lost; exit
non-zero (2) only when nothing is readable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from banet_vo.data.bags import write_bag
from banet_vo.data.sequence import Frame
from banet_vo.geometry import PinholeCamera

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy", reason="banet-vo-play and banet-vo-run need rclpy")
from banet_vo.ros import bag_player, run  # noqa: E402

N = 24


@pytest.fixture(scope="module")
def cut_bags(tmp_path_factory) -> dict[str, Path]:
    """An mcap bag of N noisy 320x240 frames cut to 60 %, and one cut to a few bytes."""
    camera = PinholeCamera(200.0, 200.0, 159.5, 119.5, 320, 240)
    rng = np.random.default_rng(2)
    frames = []
    for i in range(N):
        T = np.eye(4)
        T[2, 3] = 0.2 * i
        image = rng.integers(0, 256, (240, 320), dtype=np.uint8)
        frames.append(Frame(i, 0.1 * i, image, camera, None, T))
    root = tmp_path_factory.mktemp("cut")
    write_bag(frames, root / "intact", storage="mcap", start_time=1.0)
    bags = {}
    for name, fraction in (("partial", 0.6), ("empty", 0.0002)):
        bag = root / name
        bag.mkdir()
        for src in (root / "intact").iterdir():
            data = src.read_bytes()
            (bag / src.name).write_bytes(data if src.suffix == ".yaml" else data[: int(len(data) * fraction)])
        bags[name] = bag
    return bags


def _warned(caplog) -> str:
    # The CLIs log to stderr; under pytest the records go to caplog instead.
    return "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_play_plays_the_intact_part_and_says_what_was_lost(cut_bags, capsys, caplog):
    rc = bag_player.main([str(cut_bags["partial"]), "--rate", "20", "--topics", "/camera/image_raw"])
    err = capsys.readouterr().err
    assert rc == 0, err
    warned = _warned(caplog)
    assert "is damaged" in warned and "% lost" in warned and "/camera/image_raw " in warned
    done = [line for line in err.splitlines() if "done:" in line]
    played = int(done[-1].split("done:")[1].split()[0])
    assert 0 < played < N


def test_play_and_run_exit_2_when_nothing_is_readable(cut_bags, tmp_path, capsys, still_estimator):
    assert bag_player.main([str(cut_bags["empty"])]) == 2
    err = capsys.readouterr().err
    assert "nothing" in err and "Traceback" not in err and "AnyReaderError" not in err
    rc = run.main([str(cut_bags["empty"]), "--out", str(tmp_path / "o")], estimator=still_estimator)
    err = capsys.readouterr().err
    assert rc == 2 and "nothing" in err and "Traceback" not in err


def test_run_processes_the_intact_part(cut_bags, tmp_path, capsys, caplog, still_estimator):
    out = tmp_path / "out"
    rc = run.main([str(cut_bags["partial"]), "--out", str(out), "--rate", "5"], estimator=still_estimator)
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "is damaged" in _warned(caplog)
    summary = json.loads((out / "metrics.json").read_text())
    assert 0 < summary["frames_published"] < N
