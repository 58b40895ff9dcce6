"""benchmarks.depth_calibration, the pre-registered tests' front end to banet_vo.evaluation.depth_curve: the
data rule and a fit on real KITTI 07 frames written beside a model."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("clip", ["kitti06", "hololens", "hololens150-199", "/x/kitti_odom06_000-050"])
def test_validation_clips_are_refused(clip, capsys):
    from benchmarks.depth_calibration import main

    with pytest.raises(SystemExit):
        main(["--clips", f"kitti07,{clip}", "--dry-run"])
    assert "validation only" in capsys.readouterr().err


@pytest.mark.slow
def test_a_fit_on_real_kitti07_frames_is_written_beside_the_model(tmp_path, shared_data, capsys):
    import shutil

    from banet_vo.odometry import BANetEstimator

    from benchmarks.depth_calibration import main
    from benchmarks.vo_kitti import DEFAULT_MODEL

    model = tmp_path / DEFAULT_MODEL.name
    shutil.copy(DEFAULT_MODEL, model)
    args = ["--clips", "kitti07", "--max-frames", "30", "--model", str(model), "--data", str(shared_data)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| kitti07 |" in out and "written:" in out
    written = json.loads((tmp_path / "banet_small_synthetic.depth_calibration.json").read_text())
    assert written["fitted_on"]["clips"] == ["kitti07"] and written["fitted_on"]["form"] == "power"
    assert written["fitted_on"]["landmarks"]["kitti07"] > 1000
    assert written["fitted_on"]["command"].startswith("python -m benchmarks.depth_calibration --clips")
    # BA-Net's depth is compressed on KITTI (short at range): the curve stretches it.
    assert written["fitted_on"]["direction"] == "inverse" and written["exponent"] > 1.0
    loaded = BANetEstimator.from_checkpoint(model, device="cpu").depth_calibration
    assert loaded.exponent == written["exponent"]
