"""BA-Net's keyframe-pair pose in the keyframe odometry's units (odometry.keyframe_banet with the window
BA's factors): with a depth calibration its translation is in BA-Net's own depth unit, the map's scale is
measured on the calibrated depth. Built from the pieces directly against known geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.frames import left_to_right_covariance, pose_covariance_from_hessian
from banet_vo.geometry.rigid import invert, pose_from_rotvec
from banet_vo.odometry import OdometryConfig
from banet_vo.odometry.depth_calibration import DepthCalibration
from banet_vo.odometry.estimator import PairEstimate, PreparedFrame, with_mean_intensity
from banet_vo.odometry.keyframe_banet import BanetKeyframesMixin
from banet_vo.odometry.keyframe_window_ba import WindowBAMixin
from banet_vo.odometry.keyframes import Keyframe
from banet_vo.odometry.tracking_config import BANET_INPUT_GAINS, BANET_INPUT_MEAN, TrackingConfig

DEPTH_CAMERA = PinholeCamera(20.0, 20.0, 7.5, 5.5, 16, 12)
SCALE = 0.8  # metres (of the calibrated depth) per map unit


class _Odometry(BanetKeyframesMixin, WindowBAMixin):
    """The state these two parts of KeyframeOdometry read, and nothing else."""

    def __init__(self, calibration: DepthCalibration | None) -> None:
        self.config = OdometryConfig(banet_pose_factor="full", depth_calibration=True)
        self._depth_calibration = calibration
        self.scale = SCALE
        self._keyframes: list[Keyframe] = []
        self.landmarks = np.zeros((0, 3))  # the previous keyframe's landmarks in its camera (map units)

    def _points_in(self, kf: Keyframe) -> np.ndarray:
        return self.landmarks


def _keyframe(kf_id: int, T_wc: np.ndarray) -> Keyframe:
    return Keyframe(kf_id, float(kf_id), T_wc, None, np.zeros(0, dtype=np.int64), None)


def _hessian() -> np.ndarray:
    A = np.random.default_rng(0).normal(size=(40, 6 + 4))
    return A.T @ A


@pytest.mark.parametrize(
    ("log_gain", "exponent"),
    [(math.log(2.5), 1.0), (math.log(0.6), 1.4), (0.0, 1.0)],
    ids=["gain", "power", "identity"],
)
def test_banets_pose_factor_and_seed_are_in_the_units_each_side_expects(log_gain, exponent):
    calibration = DepthCalibration(log_gain, exponent)
    raw_depth = 6.0  # BA-Net's depth (uniform: a power law's gain is then exact too)
    gain = math.exp(log_gain) * raw_depth ** (exponent - 1.0)  # calibrated metres per BA-Net unit there
    prev = _keyframe(0, pose_from_rotvec([0.02, -0.1, 0.0], [1.0, 0.2, 3.0]))
    kf = _keyframe(1, prev.T_wc @ pose_from_rotvec([0.0, 0.05, 0.01], [0.3, -0.1, 1.5]))
    T_true = invert(prev.T_wc) @ kf.T_wc  # map units
    T_banet = T_true.copy()
    T_banet[:3, 3] *= SCALE / gain  # what BA-Net finds: its translation in its own depth's unit
    depth = np.full((12, 16), raw_depth, np.float32)
    estimate = PairEstimate(T_banet, depth, DEPTH_CAMERA, _hessian(), 0.01, 0.1, 100)

    odometry = _Odometry(calibration)
    odometry._keyframes = [prev, kf]
    out_depth, _, message = odometry._use_banet(kf, prev, estimate)
    assert message == "" and out_depth[0, 0] == pytest.approx(gain * raw_depth, rel=1e-6)
    [factor] = odometry._banet_factors()
    assert (factor.i, factor.j) == (prev.id, kf.id)
    np.testing.assert_allclose(factor.T_i_j, T_true, rtol=0, atol=1e-12)
    # its covariance: BA-Net's (right perturbation of its own pose), translation rows taken to map units
    cov = left_to_right_covariance(T_banet, pose_covariance_from_hessian(estimate.hessian, 0.01))
    to_map = np.diag([gain / SCALE] * 3 + [1.0] * 3)
    np.testing.assert_allclose(factor.covariance, to_map @ cov @ to_map, rtol=1e-9, atol=0)

    # and the seed handed to BA-Net for this pair is the true motion in BA-Net's unit, read with the
    # previous keyframe's (calibrated) depth
    prev.depth = (calibration.apply(depth), DEPTH_CAMERA)
    seed = odometry._banet_seed(kf.T_wc, prev)
    np.testing.assert_allclose(seed, T_banet, rtol=0, atol=1e-7)  # the calibrated depth is float32


def test_a_seed_without_the_previous_keyframes_depth_reads_its_landmarks(caplog):
    """A power law's gain depends on depth: with no BA-Net depth on the previous keyframe (banet_min_interval
    skipped it) its landmarks, in metres through the scale, stand in; with none of those either BA-Net
    starts unseeded and the log says why."""
    calibration = DepthCalibration(math.log(0.6), 1.4)
    prev = _keyframe(0, np.eye(4))
    T_wc = pose_from_rotvec([0.0, 0.05, 0.0], [0.2, 0.0, 1.0])
    odometry = _Odometry(calibration)
    raw_depth = 6.0
    calibrated = float(calibration.apply(np.array([raw_depth], np.float32))[0])
    odometry.landmarks = np.array([[0.0, 0.0, calibrated / SCALE]] * 3)
    gain = calibrated / raw_depth
    expected = T_wc.copy()
    expected[:3, 3] *= SCALE / gain
    np.testing.assert_allclose(odometry._banet_seed(T_wc, prev), expected, rtol=0, atol=1e-6)
    odometry.landmarks = np.zeros((0, 3))
    assert odometry._banet_seed(T_wc, prev) is None
    assert "BA-Net starts unseeded" in caplog.text and "no valid" in caplog.text


def _prepared(level: float, seed: int) -> PreparedFrame:
    image = np.random.default_rng(seed).uniform(0.0, 2.0 * level, (3, 12, 16)).astype(np.float32)
    return PreparedFrame(float(seed), image, DEPTH_CAMERA, DEPTH_CAMERA)


def test_with_mean_intensity_is_an_exposure_gain():
    frame = _prepared(0.2, 0)
    out = with_mean_intensity(frame, 0.3)
    gain = 0.3 / frame.image.mean()
    np.testing.assert_allclose(out.image, frame.image * gain, rtol=1e-6)  # nothing saturates here
    assert out.image.mean() == pytest.approx(0.3, rel=1e-5)
    assert (out.stamp, out.camera) == (frame.stamp, frame.camera)
    bright = with_mean_intensity(frame, 0.8)  # gain 4: the bright half saturates, as a sensor's would
    assert bright.image.max() == 1.0 and bright.image.mean() < 0.8
    black = PreparedFrame(0.0, np.zeros((3, 4, 4), np.float32), DEPTH_CAMERA, DEPTH_CAMERA)
    assert with_mean_intensity(black, 0.45) is black


class _Gains(BanetKeyframesMixin):
    def __init__(self, mode: str) -> None:
        self.tracking = TrackingConfig(banet_input_gain=mode)
        self._banet_gain_level = None


@pytest.mark.parametrize("mode", BANET_INPUT_GAINS)
def test_banet_input_gain_brings_each_pair_to_one_brightness(mode):
    """none hands the keyframes' images on as they are; mean scales both to the input normalisation's
    centre; first to the trajectory's first BA-Net image (its previous keyframe), which later pairs keep:
    an exposure swing of the camera no longer reaches BA-Net."""
    odometry = _Gains(mode)
    first_prev, first_new = _prepared(0.30, 1), _prepared(0.33, 2)
    later_prev, later_new = _prepared(0.15, 3), _prepared(0.6, 4)  # the camera's exposure swung
    pairs = [odometry._banet_inputs(first_new, first_prev), odometry._banet_inputs(later_new, later_prev)]
    if mode == "none":
        assert pairs == [(first_new, first_prev), (later_new, later_prev)]
        return
    target = BANET_INPUT_MEAN if mode == "mean" else float(first_prev.image.mean())
    for pair in pairs:
        for frame in pair:
            assert frame.image.mean() == pytest.approx(target, rel=1e-4)
