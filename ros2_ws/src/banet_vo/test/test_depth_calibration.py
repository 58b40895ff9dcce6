"""BA-Net's depth calibration (odometry.depth_calibration): the curve, its file beside a checkpoint, and the
keyframe odometry reading its depth through it on real KITTI 06 frames."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from banet_vo.data.readers import open_sequence
from banet_vo.odometry import BANetEstimator, OdometryConfig, make_odometry
from banet_vo.odometry.depth_calibration import DepthCalibration, load_beside, path_beside

MODEL = Path(__file__).resolve().parents[4] / "models" / "banet_small_synthetic.safetensors"


def test_the_curve_is_a_power_law_on_valid_depth_only():
    cal = DepthCalibration(math.log(0.5), 2.0)
    depth = np.array([[1.0, 2.0, 4.0], [0.0, np.nan, np.inf]], dtype=np.float32)
    out = cal.apply(depth)
    assert out.dtype == np.float32 and out.shape == depth.shape
    np.testing.assert_allclose(out[0], [0.5, 2.0, 8.0], rtol=1e-6)  # 0.5 d^2
    assert out[1, 0] == 0.0 and np.isnan(out[1, 1]) and np.isinf(out[1, 2])  # left as they were
    assert depth[0, 0] == 1.0  # the input is not changed in place


def test_the_identity_curve_changes_nothing():
    depth = np.random.default_rng(0).uniform(0.1, 80.0, (48, 64)).astype(np.float32)
    np.testing.assert_allclose(DepthCalibration(0.0, 1.0).apply(depth), depth, rtol=1e-6)


def test_the_gain_at_a_views_median_depth():
    """d'/d at the median valid pixel, from BA-Net's depth or from the calibrated one (the same view); a gain
    alone is the same at every depth and needs none."""
    power = DepthCalibration(math.log(0.6), 1.4)
    raw = np.array([[2.0, 5.0, 9.0], [0.0, np.nan, 40.0], [1.0, -1.0, np.inf]], np.float32)  # median 5
    expected = 0.6 * 5.0**0.4
    assert power.gain(raw) == pytest.approx(expected, rel=1e-6)
    assert power.gain(power.apply(raw), calibrated=True) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="no valid"):
        power.gain(np.array([0.0, np.nan]))
    gain = DepthCalibration(math.log(2.5), 1.0)
    assert gain.gain(raw) == pytest.approx(2.5) and gain.gain(np.zeros(0)) == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("log_gain", "exponent", "match"),
    [
        (float("nan"), 1.0, "log_gain"),
        (0.0, float("inf"), "exponent"),
        (0.0, 0.0, r"\[0.1, 10\]"),
        (0.0, -1.0, r"\[0.1, 10\]"),
        (True, 1.0, "log_gain"),
    ],
)
def test_a_curve_that_is_no_depth_correction_is_refused(log_gain, exponent, match):
    with pytest.raises(ValueError, match=match):
        DepthCalibration(log_gain, exponent)


def test_the_file_goes_beside_the_checkpoint_and_round_trips(tmp_path):
    checkpoint = tmp_path / "net.safetensors"
    assert path_beside(checkpoint) == tmp_path / "net.depth_calibration.json"
    assert load_beside(checkpoint) is None  # no file: no calibration
    cal = DepthCalibration(-0.25, 1.5, {"clips": ["kitti07", "tartanair"], "seed": 0})
    path_beside(checkpoint).write_text(cal.to_json())
    assert load_beside(checkpoint) == cal


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not json", "not JSON"),
        ('{"form": "spline", "log_gain": 0, "exponent": 1}', "form 'power'"),
        ('{"form": "power", "exponent": 1}', "log_gain"),
        ('{"form": "power", "log_gain": 0, "exponent": 0.01}', "exponent"),
        ("[1, 2]", "form 'power'"),
    ],
)
def test_a_bad_calibration_file_names_itself(tmp_path, text, match):
    checkpoint = tmp_path / "net.safetensors"
    path_beside(checkpoint).write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        load_beside(checkpoint)
    assert "net.depth_calibration.json" in str(err.value)


def test_the_estimator_takes_the_curve_shipped_beside_its_checkpoint(tmp_path):
    copy = tmp_path / MODEL.name
    shutil.copy(MODEL, copy)
    assert BANetEstimator.from_checkpoint(copy, device="cpu").depth_calibration is None
    cal = DepthCalibration(0.1, 1.2)
    path_beside(copy).write_text(cal.to_json())
    assert BANetEstimator.from_checkpoint(copy, device="cpu").depth_calibration == cal


def _first_measurements(estimator, frames, **config):
    vo = make_odometry(estimator, OdometryConfig(frontend="xfeat", scale_source="learned", **config))
    measured = []
    vo.on_keyframe_measured = measured.append
    try:
        for frame in frames:
            vo.process(frame.image, frame.timestamp, frame.camera)
            if measured:
                return measured[0], vo.scale
    finally:
        vo.close()
    raise AssertionError("no keyframe was measured")


@pytest.mark.slow
def test_the_keyframe_odometry_reads_banets_depth_through_the_curve(kitti06_dir):
    """On KITTI 06: the first keyframe's BA-Net runs before any scale exists (no seed), so with d' = 2 d
    its measured depth, and the learned scale it gives, are exactly twice those without; with the option
    off, or a model that ships no curve, nothing changes."""
    seq = open_sequence(kitti06_dir)
    frames = [seq[i] for i in range(12)]
    plain = BANetEstimator.from_checkpoint(MODEL, device="cpu")
    doubled = BANetEstimator(plain.model, plain.device)
    doubled.depth_calibration = DepthCalibration(math.log(2.0), 1.0)

    base, base_scale = _first_measurements(plain, frames)
    off, off_scale = _first_measurements(doubled, frames)  # depth_calibration off (the default)
    on, on_scale = _first_measurements(doubled, frames, depth_calibration=True)
    none, none_scale = _first_measurements(plain, frames, depth_calibration=True)

    valid = (base.depth > 0) & (on.depth > 0)
    assert valid.mean() > 0.9
    np.testing.assert_allclose(on.depth[valid], 2.0 * base.depth[valid], rtol=1e-6)
    np.testing.assert_allclose(on.points_cam, base.points_cam)  # the same map: only the depth differs
    assert on_scale == pytest.approx(2.0 * base_scale, rel=1e-5)
    for same, scale in ((off, off_scale), (none, none_scale)):
        np.testing.assert_array_equal(same.depth, base.depth)
        assert scale == base_scale
