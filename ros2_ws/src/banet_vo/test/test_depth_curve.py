"""banet_vo.evaluation.depth_curve: the local true scale, the fits (power law both ways, gain), clip
weights, a flat response, and `banet-vo-eval depth-curve` on real KITTI 07 frames."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

MODEL = Path(__file__).resolve().parents[4] / "models" / "banet_small_synthetic.safetensors"


def test_the_local_true_scale_is_the_path_length_ratio_within_one_map():
    from banet_vo.evaluation.depth_curve import local_true_scale

    rng = np.random.default_rng(1)
    gt = np.cumsum(rng.normal(size=(12, 3)), axis=0)
    epochs = np.array([0] * 6 + [1] * 6)
    mapped = np.r_[gt[:6] / 2.5, gt[6:] / 4.0 + 7.0]  # two maps, each with its own unit and origin
    scale = local_true_scale(epochs, mapped, gt, neighbours=2)
    np.testing.assert_allclose(scale[:4], 2.5)
    np.testing.assert_allclose(scale[8:], 4.0)
    assert np.isnan(scale[4:8]).all()  # their span reaches into the other map


def _samples(exponent_d_on_true: float, noise: float, n: int = 4000, seed: int = 0):
    from banet_vo.evaluation.depth_curve import ClipSamples

    rng = np.random.default_rng(seed)
    true = np.exp(rng.uniform(np.log(1.0), np.log(40.0), n))
    d = 2.0 * true**exponent_d_on_true * np.exp(rng.normal(0.0, noise, n))
    return ClipSamples("synthetic", d, true, 10, 0)


def test_both_directions_recover_a_noiseless_curve():
    from banet_vo.evaluation.depth_curve import fit_power_law

    samples = [_samples(0.5, 0.0)]
    for direction in ("inverse", "forward"):
        a, b = fit_power_law(samples, direction)
        assert b == pytest.approx(2.0, rel=1e-6)  # true = (d / 2)^2
        assert a == pytest.approx(-2.0 * math.log(2.0), abs=1e-6)


def test_with_noise_in_banets_depth_only_the_inverse_fit_undoes_the_compression():
    """d = 2 true^0.5 with 30 % log noise: regressing true on d shrinks the exponent toward 0 (the best
    guess pulls toward the mean); fitting d on true and inverting recovers 2."""
    from banet_vo.evaluation.depth_curve import fit_power_law

    samples = [_samples(0.5, 0.3)]
    _, b_inverse = fit_power_law(samples, "inverse")
    _, b_forward = fit_power_law(samples, "forward")
    assert b_inverse == pytest.approx(2.0, rel=0.05)
    assert b_forward < 1.6


def test_each_clip_counts_the_same_whatever_its_landmark_count():
    """A clip recorded twice over (every landmark twice) weighs about what it did once (the weights scale
    the residuals, which is exact for the soft-L1 loss's quadratic part only); pooled without the weights
    it would pull the curve toward itself."""
    from banet_vo.evaluation.depth_curve import ClipSamples, fit_power_law

    a = _samples(0.5, 0.2, n=500, seed=3)
    b = _samples(0.4, 0.2, n=3000, seed=4)
    twice = ClipSamples("twice", np.r_[b.d, b.d], np.r_[b.true, b.true], 20, 0)
    once = fit_power_law([a, b], "inverse")
    np.testing.assert_allclose(fit_power_law([a, twice], "inverse"), once, rtol=0.03)
    pooled = ClipSamples("pooled", np.r_[a.d, b.d], np.r_[a.true, b.true], 30, 0)
    # Slopes of d on true: 0.5 and 0.4; equal weights land midway, pooling near the larger clip.
    assert 1.0 / once[1] == pytest.approx(0.45, abs=0.02)
    assert 1.0 / fit_power_law([pooled], "inverse")[1] < 0.43


def test_a_flat_response_has_no_curve():
    """Where BA-Net's depth does not follow the true depth (TartanAir alone: slope 0.002), inverting it
    would multiply its noise without bound: refused, with the slope."""
    from banet_vo.evaluation.depth_curve import fit_power_law

    with pytest.raises(ValueError, match="barely grows"):
        fit_power_law([_samples(0.02, 0.2)], "inverse")


def test_a_gain_is_one_factor_for_every_depth():
    """--form gain: d = 0.5 true with noise gives true ≈ 2 d (exponent fixed at 1), the clips weighted
    equally."""
    from banet_vo.evaluation.depth_curve import ClipSamples, fit_gain

    rng = np.random.default_rng(5)
    true = np.exp(rng.uniform(0.0, np.log(40.0), 3000))
    half = ClipSamples("half", 0.5 * true * np.exp(rng.normal(0.0, 0.2, 3000)), true, 10, 0)
    assert math.exp(fit_gain([half])) == pytest.approx(2.0, rel=0.02)
    quarter = ClipSamples("quarter", 0.25 * true[:300], true[:300], 3, 0)
    pooled = ClipSamples("pooled", np.r_[half.d, quarter.d], np.r_[half.true, quarter.true], 13, 0)
    # 3000 and 300 landmarks: pooled, the larger clip's 2 wins; weighted, the smaller pulls the (robust,
    # L1-like) fit clearly toward its 4.
    assert math.exp(fit_gain([pooled])) < 2.1
    assert 2.2 < math.exp(fit_gain([half, quarter])) < 4.0


def _eval(argv: list[str]) -> int:
    from banet_vo.evaluation.cli import main

    return main(["depth-curve", *argv])


@pytest.mark.parametrize("clip", ["kitti06", "/data/kitti_odom06_000-050", "/data/hololens_000_003-199"])
def test_the_command_refuses_validation_clips(clip, tmp_path, capsys):
    assert _eval([clip, "--model", str(tmp_path / "m.safetensors")]) == 2
    assert "validation only" in capsys.readouterr().err


def test_a_users_own_recording_may_be_called_anything():
    from banet_vo.evaluation.depth_curve import refuse_validation

    for name in ("hololens_lab_walk", "kitti_odom06_full", "my_car"):
        refuse_validation(f"/rec/{name}", f"/rec/{name}")  # not refused
    with pytest.raises(ValueError, match="validation only"):
        refuse_validation("x", "/anywhere/hololens_000_003-052")


class _Loaded(Exception):
    """Raised by a stand-in load_clip once it has seen the spec record_clip would play."""


@pytest.mark.parametrize("token", ["kitti07", "kitti07-0-119", "FOLDER"])
def test_kitti07_is_fitted_on_its_training_frames_only(token, shared_data, monkeypatch):
    """DESIGN.md: KITTI 07 frames 0-119 train / adapt, 120-159 are held out. By name or by its folder,
    the fit plays frames 0-119 and never the held-out tail."""
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.evaluation.depth_curve import record_clip

    seen = []

    def load_clip(spec, data, *args):
        seen.append(spec)
        raise _Loaded

    monkeypatch.setattr(rc, "load_clip", load_clip)
    token = str(shared_data / "kitti_odom07_000-159") if token == "FOLDER" else token
    with pytest.raises(_Loaded):
        record_clip(token, shared_data, estimator=None)
    (spec,) = seen
    assert (spec.start, spec.stop) == (0, 120)


def test_a_fit_refuses_kitti07s_held_out_frames_and_leaves_other_clips_whole():
    from dataclasses import replace

    from banet_vo.evaluation import real_clips as rc
    from banet_vo.evaluation.depth_curve import fit_part

    with pytest.raises(ValueError, match="held out"):
        fit_part(replace(rc.CLIPS["kitti07"], start=120))
    assert fit_part(replace(rc.CLIPS["kitti07"], start=100, stop=140)).stop == 120
    assert fit_part(rc.CLIPS["tartanair"]) == rc.CLIPS["tartanair"]


def test_the_command_names_a_missing_model(tmp_path, capsys):
    assert _eval(["kitti07", "--model", str(tmp_path / "m.safetensors")]) == 2
    assert "m.safetensors not found" in capsys.readouterr().err


def test_a_named_clip_missing_under_data_is_an_error_line_not_a_traceback(tmp_path, capsys):
    # --data defaults to ../shared/data from the working directory: run elsewhere, a name finds nothing.
    assert _eval(["kitti07-0-119", "--model", str(MODEL), "--data", str(tmp_path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "kitti_odom07_000-159 not found" in err and f"looked up under --data, now {tmp_path}" in err


@pytest.mark.slow
def test_a_gain_fitted_on_a_recording_folder_is_written_beside_the_model(tmp_path, shared_data, capsys):
    """The user's path: a recording with ground-truth poses given as a folder, a copy of the model; the
    gain is written beside the copy and the estimator loaded from it carries it."""
    import shutil

    from banet_vo.odometry import BANetEstimator

    model = tmp_path / "mycar.safetensors"
    shutil.copy(MODEL, model)
    folder = shared_data / "kitti_odom07_000-159"
    assert _eval([str(folder), "--model", str(model), "--max-frames", "30"]) == 0
    assert "written:" in capsys.readouterr().out
    written = json.loads((tmp_path / "mycar.depth_calibration.json").read_text())
    assert written["fitted_on"]["form"] == "gain" and written["exponent"] == 1.0
    assert written["fitted_on"]["command"].startswith("banet-vo-eval depth-curve")
    assert written["fitted_on"]["frames"] == {str(folder): [0, 29]}
    assert 1.5 < math.exp(written["log_gain"]) < 3.5  # BA-Net's depth is about 2x short on KITTI
    loaded = BANetEstimator.from_checkpoint(model, device="cpu").depth_calibration
    assert loaded.log_gain == written["log_gain"] and loaded.exponent == 1.0
