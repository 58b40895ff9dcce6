"""benchmarks.real_depth: scoring of published depth maps (invalid pixels out, counted by coverage; median
scaling), the flat reference, and its arguments."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import real_depth


def test_scoring_leaves_out_invalid_pixels_and_median_scales():
    gt = np.full((4, 4), 2.0)
    pred = np.full((2, 2), 1.0, np.float32)  # half the truth everywhere, one pixel invalid
    pred[0, 0] = 0.0
    metric = real_depth.score_maps([(pred, gt)], median_scaling=False)
    scaled = real_depth.score_maps([(pred, gt)], median_scaling=True)
    assert metric["abs_rel"] == pytest.approx(0.5) and metric["coverage"] == pytest.approx(0.75)
    assert scaled["abs_rel"] == pytest.approx(0.0) and scaled["delta_1"] == 1.0
    assert real_depth.score_maps([(np.zeros((2, 2)), gt)], median_scaling=False) == {}


def test_the_flat_reference_scores_a_flat_truth_perfectly():
    depth = np.full((6, 8), 3.0)
    depth[0] = 4.0
    frames = [SimpleNamespace(depth=depth), SimpleNamespace(depth=np.full((6, 8), 5.0))]
    row = real_depth.flat_reference(SimpleNamespace(frames=lambda: iter(frames)))
    assert row.maps == 2
    # first map: median 3, the top row 4 is off by 1/4 (8 of 48 pixels); second map exact
    assert row.metric["abs_rel"] == pytest.approx((8 / 48 * 0.25 + 0.0) / 2)


@pytest.mark.parametrize(
    "argv",
    [["--clips", "kitti06"], ["--clips", ""], ["--seeds", "a"], ["--seeds", ","], ["--threads", "0"]],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        real_depth.main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_missing_model_exits_2(tmp_path, capsys):
    assert real_depth.main(["--model", str(tmp_path / "none.safetensors")]) == 2
    assert "not found" in capsys.readouterr().err
