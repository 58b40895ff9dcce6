"""benchmarks.vo_latency: its published frames keep the advertised size; a rate is served only when every
frame sent was processed; a node that never subscribes is an error; the section records the whole command."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import vo_latency
from benchmarks.vo_latency import textured_frames


def test_textured_frames_keep_their_size_and_slide_by_the_step() -> None:
    # 150 frames at 30 Hz once ran off the texture: the last ones were 316 px wide and the node dropped them.
    frames = textured_frames(320, 240, 150, step=2)
    assert len(frames) == 150
    assert all(f.shape == (240, 320) and f.dtype == np.uint8 for f in frames)
    np.testing.assert_array_equal(frames[100][:, 2:], frames[101][:, :-2])
    assert frames[0].std() > 10  # texture, not a flat field


def test_a_rate_is_served_only_when_every_frame_was_processed() -> None:
    rows = [
        {"rate": 1.0, "sent": 30, "processed": 30, "dropped": 0},
        {"rate": 2.0, "sent": 30, "processed": 0, "dropped": 0},  # frames lost before the node
        {"rate": 3.0, "sent": 30, "processed": 29, "dropped": 1},
    ]
    assert vo_latency.served_rates(rows) == [1.0]


def test_no_subscriber_is_an_error() -> None:
    class Lonely:
        topic_name = "/image"

        def get_subscription_count(self) -> int:
            return 0

    with pytest.raises(vo_latency.NotSubscribed, match="did not subscribe"):
        vo_latency.wait_for_subscribers([Lonely()], timeout=0.05, poll=0.01)


def test_section_records_the_whole_command_and_a_lost_rate(tmp_path, monkeypatch) -> None:
    def fake_measure(context, model, device, size, rate, frames):
        processed = frames if rate == 1.0 else 0
        return {"rate": rate, "sent": frames, "processed": processed, "dropped": 0, "failed": 0,
                "p50_ms": 1.0, "p95_ms": 2.0, "inference_ms": 1.0}  # fmt: skip

    monkeypatch.setattr(vo_latency, "measure", fake_measure)
    out = tmp_path / "vo_latency.md"
    argv = ["--frames", "3", "--rates", "1,2", "--threads", "1", "--results", str(out)]
    assert vo_latency.main(argv) == 0
    text = out.read_text()
    assert f"-m benchmarks.vo_latency --frames 3 --rates 1,2 --threads 1 --results {out}`" in text
    assert "served (every frame processed, none dropped): 1 Hz" in text


def test_main_fails_when_the_node_never_subscribes(tmp_path, monkeypatch, capsys) -> None:
    def never(*args, **kwargs):
        raise vo_latency.NotSubscribed("vo_latency: the node did not subscribe to ['/image'] within 10 s")

    monkeypatch.setattr(vo_latency, "measure", never)
    out = tmp_path / "vo_latency.md"
    assert vo_latency.main(["--rates", "1", "--results", str(out)]) == 1
    assert not out.exists() and "did not subscribe" in capsys.readouterr().err
