"""The downstream benchmark refuses an adapted matcher that saw the frames it is to be tested on."""

from __future__ import annotations

import pytest
from banet_vo.evaluation.real_clips import ALL_CLIPS

from benchmarks.matcher_downstream import check_held_out

HOLOLENS = "../shared/data/hololens_000_003-199"


def test_adaptation_frames_must_not_overlap_the_test_frames_of_the_same_sequence():
    held_out = ALL_CLIPS["hololens150-199"]  # sequence indices 147-196
    check_held_out({"sequence": HOLOLENS, "frames": [0, 147]}, held_out, "m")  # up to the test frames
    check_held_out({"sequence": "/data/kitti_odom07_000-159", "frames": [0, 160]}, ALL_CLIPS["kitti06"], "m")
    with pytest.raises(ValueError, match="overlap the test frames"):
        check_held_out({"sequence": HOLOLENS, "frames": [0, 148]}, held_out, "m")
    with pytest.raises(ValueError, match="overlap the test frames"):  # the whole clip is the test
        check_held_out({"sequence": HOLOLENS, "frames": [0, 20]}, ALL_CLIPS["hololens"], "m")
    with pytest.raises(ValueError, match="does not say"):
        check_held_out({"steps": 3}, held_out, "m")
