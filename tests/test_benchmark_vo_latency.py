"""benchmarks.vo_latency's published frames: every one the advertised size, however many are sent."""

from __future__ import annotations

import numpy as np

from benchmarks.vo_latency import textured_frames


def test_textured_frames_keep_their_size_and_slide_by_the_step() -> None:
    # 150 frames at 30 Hz once ran off the texture: the last ones were 316 px wide and the node dropped them.
    frames = textured_frames(320, 240, 150, step=2)
    assert len(frames) == 150
    assert all(f.shape == (240, 320) and f.dtype == np.uint8 for f in frames)
    np.testing.assert_array_equal(frames[100][:, 2:], frames[101][:, :-2])
    assert frames[0].std() > 10  # texture, not a flat field
