"""The iMatching accuracy benchmark refuses adapted matchers that saw the held-out measurement frames."""

from __future__ import annotations

import pytest

from benchmarks.imatching import HELD_OUT_START, adaptation_frames


def test_adaptation_frames_come_from_the_metadata_and_must_precede_the_held_out_frames():
    assert adaptation_frames({"frames": [0, 20]}, "m") == range(0, 20)
    assert adaptation_frames({"frames": [0, HELD_OUT_START]}, "m").stop == HELD_OUT_START
    with pytest.raises(ValueError, match="overlap the held-out"):
        adaptation_frames({"frames": [0, HELD_OUT_START + 1]}, "m")
    with pytest.raises(ValueError, match="no adaptation 'frames'"):
        adaptation_frames({"steps": 3}, "m")
