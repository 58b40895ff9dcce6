"""The scale profile of a trajectory against ground truth: known drifts and events on constructed
trajectories."""

from __future__ import annotations

import numpy as np
import pytest
from banet_vo.evaluation.scale_profile import EVENT_FRACTION, LEVEL_SPAN, scale_profile
from scipy.spatial.transform import Rotation


def _walk(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A hand-held camera's path: steps of 5-10 cm in changing directions, turning as it goes."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 1.0, (n - 1, 3))
    steps *= rng.uniform(0.05, 0.10, (n - 1, 1)) / np.linalg.norm(steps, axis=1, keepdims=True)
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[1:, :3, 3] = np.cumsum(steps, axis=0)
    poses[:, :3, :3] = Rotation.from_rotvec(np.cumsum(rng.normal(0.0, 0.05, (n, 3)), axis=0)).as_matrix()
    return 0.1 * np.arange(n), poses


def _scaled_steps(poses: np.ndarray, factors: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """An estimate in another frame and unit: each step of `poses` times its factor."""
    out = poses.copy()
    steps = np.diff(poses[:, :3, 3], axis=0) * factors[:, None]
    out[:, :3, 3] = poses[0, :3, 3] + np.r_[np.zeros((1, 3)), np.cumsum(steps, axis=0)]
    R = Rotation.from_rotvec([0.3, -0.2, 1.0]).as_matrix()
    out[:, :3, 3] = 7.0 * out[:, :3, 3] @ R.T + offset
    out[:, :3, :3] = R @ out[:, :3, :3]
    return out


def test_an_event_is_found_and_the_level_it_leaves_is_measured() -> None:
    stamps, gt = _walk()
    keyframes = stamps[::3]  # a keyframe every 3 frames: stretch k spans frames 3k..3k+3
    factors = np.ones(len(stamps) - 1)
    factors[60:66] = 0.2  # stretches 20 and 21: the steps far too short
    factors[66:] = 0.7  # and the scale lower after them
    est = _scaled_steps(gt, factors, np.array([3.0, -1.0, 2.0]))
    profile = scale_profile(stamps, est, stamps, gt, keyframes)
    assert len(profile.ratios) == len(keyframes) - 1
    np.testing.assert_allclose(profile.ratios[:20], 1.0, atol=1e-9)  # in the estimate's own unit (7)
    np.testing.assert_allclose(profile.ratios[20:22], 0.2, atol=1e-9)
    np.testing.assert_allclose(profile.ratios[22:], 0.7, atol=1e-9)
    assert profile.events == [(20, 21)]
    np.testing.assert_allclose(profile.event_steps(), [0.7], atol=1e-9)
    np.testing.assert_allclose(profile.thirds(), [1.0, 1.0, 0.7], atol=1e-9)  # the middle third: 7 at 1
    np.testing.assert_allclose(
        profile.true_lengths.sum(), np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1)[:117].sum()
    )


def test_a_gradual_drift_has_no_event_and_falls_by_thirds() -> None:
    stamps, gt = _walk(seed=1)
    factors = np.geomspace(1.0, 0.5, len(stamps) - 1)  # the same loss, spread over the whole clip
    est = _scaled_steps(gt, factors, np.zeros(3))
    profile = scale_profile(stamps, est, stamps, gt, stamps[::4])
    assert profile.events == []
    first, middle, last = profile.thirds()
    assert first > middle > last
    assert last == pytest.approx(0.5 / np.sqrt(0.5) ** (1 / 3), rel=0.15)  # ~0.56: the last third's median


def test_a_dip_below_the_event_fraction_counts_and_one_above_does_not() -> None:
    stamps, gt = _walk(seed=2)
    keyframes = stamps[::2]
    for dip, found in ((EVENT_FRACTION - 0.05, True), (EVENT_FRACTION + 0.05, False)):
        factors = np.ones(len(stamps) - 1)
        factors[40:42] = dip  # stretch 20
        profile = scale_profile(stamps, _scaled_steps(gt, factors, np.zeros(3)), stamps, gt, keyframes)
        assert profile.events == ([(20, 20)] if found else [])
        if found:  # the level after it is the level before it
            assert profile.event_steps() == pytest.approx([1.0])


def test_events_close_together_are_each_found_against_the_level_outside_them() -> None:
    stamps, gt = _walk(seed=4)
    keyframes = stamps[::2]
    factors = np.ones(len(stamps) - 1)
    factors[40:46] = 0.2  # stretches 20-22
    factors[50:52] = 0.3  # stretch 25, two stretches later
    factors[52:] = 0.8
    profile = scale_profile(stamps, _scaled_steps(gt, factors, np.zeros(3)), stamps, gt, keyframes)
    assert profile.events == [(20, 22), (25, 25)]
    # Around the first: 1 before; after it 23, 24 (1) and 26-28 (0.8). Before the second: 17-19, 23, 24 (1),
    # not the first event's stretches.
    np.testing.assert_allclose(profile.event_steps(), [0.8, 0.8], atol=1e-9)


def test_the_level_follows_a_slow_drift() -> None:
    """A dip judged against the level the drift has reached, not the clip's first one."""
    stamps, gt = _walk(seed=5)
    keyframes = stamps[::2]
    factors = np.geomspace(1.0, 0.45, len(stamps) - 1)
    factors[100:102] *= 0.6  # stretch 50: 0.6x the level there, under half the first stretches' level
    profile = scale_profile(stamps, _scaled_steps(gt, factors, np.zeros(3)), stamps, gt, keyframes)
    assert profile.ratios[50] < EVENT_FRACTION
    assert profile.events == []
    factors[100:102] *= 0.6  # now 0.36x the level there
    profile = scale_profile(stamps, _scaled_steps(gt, factors, np.zeros(3)), stamps, gt, keyframes)
    assert profile.events == [(50, 50)]


def test_an_event_that_leaves_the_level_under_half_ends_and_measures_it() -> None:
    """A dip to 0.2x, then the scale stays at 0.45x: the event is its first LEVEL_SPAN stretches, the
    level it left is measured after them, and the later stretches are judged against it (the first
    version ran the event to the clip's end with a NaN level: review, 2026-12-07)."""
    stamps, gt = _walk(seed=6)
    keyframes = stamps[::2]
    factors = np.ones(len(stamps) - 1)
    factors[40:42] = 0.2  # stretch 20
    factors[42:] = 0.45
    profile = scale_profile(stamps, _scaled_steps(gt, factors, np.zeros(3)), stamps, gt, keyframes)
    assert profile.events == [(20, 20 + LEVEL_SPAN - 1)]
    np.testing.assert_allclose(profile.event_steps(), [0.45], atol=1e-9)


def test_frames_without_a_pose_and_a_still_stretch() -> None:
    stamps, gt = _walk(n=40, seed=3)
    gt[10:14, :3, 3] = gt[10, :3, 3]  # the camera stood still from frame 10 to 13
    keep = np.ones(len(stamps), bool)
    keep[[5, 25]] = False  # two frames without a pose (not keyframes)
    est = _scaled_steps(gt, np.ones(len(stamps) - 1), np.zeros(3))[keep]
    profile = scale_profile(stamps[keep], est, stamps, gt, stamps[[0, 4, 10, 13, 20, 30, 39]])
    # stretch 10-13 moved under 1 mm and is left out; the others span the frames around the missing ones
    np.testing.assert_allclose(profile.starts, stamps[[0, 4, 13, 20, 30]])
    np.testing.assert_allclose(profile.ratios, 1.0, atol=1e-9)


def test_stamps_must_match_the_ground_truth() -> None:
    stamps, gt = _walk(n=20)
    with pytest.raises(ValueError, match="ground-truth stamp"):
        scale_profile(stamps + 0.05, gt, stamps, gt, stamps[::2])
    with pytest.raises(ValueError, match="stamps for"):
        scale_profile(stamps[:-1], gt, stamps, gt, stamps[::2])


def test_an_estimate_standing_still_at_first_is_measured_from_where_it_moves() -> None:
    """The first level is taken over stretches in which the estimate moved: one that stood still over the
    first LEVEL_SPAN stretches divided by a median of 0 (NaN and inf ratios, RuntimeWarnings)."""
    stamps, gt = _walk(n=3 * 20 + 1, seed=4)
    factors = np.repeat(np.r_[np.zeros(LEVEL_SPAN), np.ones(10), np.full(5, 0.3)], 3)
    est = _scaled_steps(gt, factors, np.zeros(3))
    with np.errstate(all="raise"):
        profile = scale_profile(stamps, est, stamps, gt, stamps[::3])
    np.testing.assert_allclose(profile.ratios[:LEVEL_SPAN], 0.0, atol=1e-12)
    np.testing.assert_allclose(profile.ratios[LEVEL_SPAN : LEVEL_SPAN + 10], 1.0, atol=1e-9)
    assert profile.events == [(LEVEL_SPAN + 10, LEVEL_SPAN + 14)]  # judged against the level it moved at
    assert all(np.isfinite(profile.thirds()))
    never = _scaled_steps(gt, np.zeros(len(stamps) - 1), np.zeros(3))
    still = scale_profile(stamps, never, stamps, gt, stamps[::3])
    np.testing.assert_allclose(still.ratios, 0.0)  # never moved: no scale to be relative to, no event
    assert still.events == []
