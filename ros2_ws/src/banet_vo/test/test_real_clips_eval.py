"""banet_vo.evaluation.real_clips: classical reference VO, trivial baselines and metric rows, checked on
synthetic data with known motion and on hand-built trajectories (evo and closed forms as references)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from banet_vo.data import compressed_image
from banet_vo.evaluation import real_clips as rc
from scipy.spatial.transform import Rotation


def _poses(positions: np.ndarray, rotvecs: np.ndarray | None = None) -> np.ndarray:
    poses = np.tile(np.eye(4), (len(positions), 1, 1))
    poses[:, :3, 3] = positions
    if rotvecs is not None:
        poses[:, :3, :3] = Rotation.from_rotvec(rotvecs).as_matrix()
    return poses


def _random_walk(n: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    stamps = 0.1 * np.arange(n)
    positions = np.cumsum(rng.normal(0.0, 0.3, (n, 3)), axis=0)
    return stamps, _poses(positions, rng.normal(0.0, 0.3, (n, 3)))


def _similarity(scale: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    S = np.eye(4)
    S[:3, :3] = scale * Rotation.from_rotvec(rng.normal(0.0, 1.0, 3)).as_matrix()
    S[:3, 3] = rng.normal(0.0, 5.0, 3)
    return S


def _apply(S: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Positions mapped by the similarity S; orientations rotated by its rotation."""
    out = poses.copy()
    scale = np.cbrt(np.linalg.det(S[:3, :3]))
    R = S[:3, :3] / scale
    out[:, :3, 3] = poses[:, :3, 3] @ S[:3, :3].T + S[:3, 3]
    out[:, :3, :3] = R @ poses[:, :3, :3]
    return out


# -- metric rows -----------------------------------------------------------------------------------------


def test_metrics_row_rigidly_moved_ground_truth_is_exact() -> None:
    stamps, gt = _random_walk()
    row = rc.metrics_row("clip", "m", stamps, _apply(_similarity(1.0), gt), stamps, gt)
    assert row.ate_sim3 == pytest.approx(0.0, abs=1e-9)
    assert row.ate_se3 == pytest.approx(0.0, abs=1e-9)
    assert row.scale == pytest.approx(1.0, abs=1e-9)
    assert (row.frames_out, row.frames_total) == (len(stamps), len(stamps))


def test_metrics_row_scaled_estimate_gives_the_inverse_scale() -> None:
    stamps, gt = _random_walk()
    row = rc.metrics_row("clip", "m", stamps, _apply(_similarity(2.5), gt), stamps, gt)
    assert row.ate_sim3 == pytest.approx(0.0, abs=1e-9)
    assert row.scale == pytest.approx(1 / 2.5, rel=1e-9)  # GT / estimate
    assert row.ate_se3 > 1.0  # a metric error: the estimate is 2.5x too long


def test_metrics_row_known_offset_and_missing_frames() -> None:
    """Every other estimated pose is missing; the remaining ones, unaligned, sit 0.3 m off along x in
    alternating directions: the best alignment cannot remove that, so ATE = 0.3 m."""
    stamps, gt = _random_walk(n=40)
    keep = np.arange(0, 40, 2)
    est = gt[keep].copy()
    est[:, 0, 3] += 0.3 * np.where(np.arange(keep.size) % 2 == 0, 1.0, -1.0)
    row = rc.metrics_row("clip", "m", stamps[keep], est, stamps, gt, se3=False)
    assert (row.frames_out, row.frames_total) == (20, 40)
    assert row.ate_se3 is None
    assert row.ate_sim3 == pytest.approx(0.3, abs=0.02)


def test_true_step_lengths_undo_a_drifting_scale_and_keep_a_wrong_direction() -> None:
    """Re-chaining with the true step lengths (the references' recipe) removes a scale that drifts along
    the trajectory, exactly; a step whose direction is wrong stays wrong."""
    stamps, gt = _random_walk(n=40)
    steps = [np.linalg.inv(gt[k - 1]) @ gt[k] for k in range(1, len(gt))]
    drift = np.linspace(1.0, 0.3, len(steps))  # a map that shrinks to 0.3x
    est = [np.eye(4)]  # another start than the ground truth's: Sim(3) aligns it
    for step, s in zip(steps, drift, strict=True):
        scaled = step.copy()
        scaled[:3, 3] *= 0.7 * s
        est.append(est[-1] @ scaled)
    est = np.stack(est)
    assert rc.metrics_row("c", "m", stamps, est, stamps, gt).ate_sim3 > 0.2  # measured 0.28
    shape = rc.with_true_step_lengths(stamps, est, stamps, gt)
    assert rc.metrics_row("c", "m", stamps, shape, stamps, gt).ate_sim3 == pytest.approx(0.0, abs=1e-9)
    # Every other frame left out: the steps span two ground-truth frames and take their length.
    keep = np.arange(0, 40, 2)
    shape = rc.with_true_step_lengths(stamps[keep], est[keep], stamps, gt)
    lengths = np.linalg.norm(np.diff(shape[:, :3, 3], axis=0), axis=1)
    np.testing.assert_allclose(lengths, np.linalg.norm(np.diff(gt[keep, :3, 3], axis=0), axis=1))
    # One step reversed: the error stays.
    bad = est.copy()
    flip = np.linalg.inv(bad[19]) @ bad[20]
    flip[:3, 3] *= -1
    bad[20:] = bad[19] @ flip @ np.linalg.inv(bad[20]) @ bad[20:]
    shape = rc.with_true_step_lengths(stamps, bad, stamps, gt)
    assert rc.metrics_row("c", "m", stamps, shape, stamps, gt).ate_sim3 > 0.05
    with pytest.raises(ValueError, match="no ground-truth stamp"):
        rc.with_true_step_lengths(stamps + 0.05, est, stamps, gt)


def test_metrics_row_too_few_poses_says_why() -> None:
    stamps, gt = _random_walk()
    row = rc.metrics_row("clip", "m", stamps[:2], gt[:2], stamps, gt)
    assert row.ate_sim3 is None and row.ate_se3 is None
    assert "too few" in row.note


@pytest.mark.parametrize("align", ["se3", "sim3"])
def test_collinear_ate_matches_evo_on_a_barely_perturbed_line(align: str) -> None:
    """evo refuses an exact line; a line perturbed by 1e-6 m is aligned by evo's Umeyama to the same ATE."""
    stamps, gt = _random_walk()
    line = rc.straight_line(stamps, gt)
    ours, scale = rc.collinear_ate(line[:, :3, 3], gt[:, :3, 3], align)
    perturbed = line.copy()
    perturbed[:, :3, 3] += np.random.default_rng(3).normal(0.0, 1e-6, (len(line), 3))
    reference, ref_scale = rc.ate(stamps, perturbed, stamps, gt, align)
    assert ours == pytest.approx(reference, rel=1e-4)
    assert scale == pytest.approx(ref_scale, rel=1e-3)


def test_standing_still_is_the_spread_about_the_centroid() -> None:
    _, gt = _random_walk()
    expected = np.sqrt(np.mean(np.sum((gt[:, :3, 3] - gt[:, :3, 3].mean(axis=0)) ** 2, axis=1)))
    for align in ("se3", "sim3"):
        value, scale = rc.collinear_ate(rc.standing_still(len(gt))[:, :3, 3], gt[:, :3, 3], align)
        assert value == pytest.approx(expected, rel=1e-12)
        assert scale is None


def test_straight_line_moves_along_the_optical_axis_at_the_mean_speed() -> None:
    stamps, gt = _random_walk()
    line = rc.straight_line(stamps, gt)
    path = np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum()
    assert line[-1, 2, 3] == pytest.approx(path)
    assert np.allclose(line[:, :2, 3], 0.0)


def test_direction_cosine_sign() -> None:
    _, gt = _random_walk()
    p = gt[:, :3, 3] - gt[0, :3, 3]
    assert rc.direction_cosine(p, p) == pytest.approx(1.0)
    assert rc.direction_cosine(-p, p) == pytest.approx(-1.0)


def test_markdown_table_marks_missing_values() -> None:
    row = rc.Row("kitti06", "m", 0.1234, None, None, 5, 6, note="n")
    table = rc.markdown_table([row])
    assert "| kitti06 | m | 0.123 | — | — | 5/6 | — | n |" in table


# -- classical reference VO ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driving():
    from banet_vo.data.synthetic import render_sequence

    return render_sequence("driving", frames=10, size=(320, 240), seed=1)


def _drive_problems(driving, poses: np.ndarray) -> list[str]:
    """What is wrong with a classical-VO trajectory of the synthetic drive (empty: accurate).

    The poses start at the first ground-truth pose, so they are compared unaligned as well: an aligned
    ATE alone would forgive a trajectory driven backwards (a 180 deg rotation aligns it)."""
    gt, stamps = driving.poses, driving.timestamps
    problems = []
    sim3, scale = rc.ate(stamps, poses, stamps, gt, "sim3")
    unaligned, _ = rc.ate(stamps, poses, stamps, gt, "none")
    cosine = rc.direction_cosine(poses[:, :3, 3], gt[:, :3, 3])
    if not sim3 < 0.15:
        problems.append(f"Sim(3) ATE {sim3:.3f} m")
    if not abs(scale - 1.0) < 0.05:  # the step lengths come from ground truth
        problems.append(f"Sim(3) scale {scale:.3f}")
    if not unaligned < 0.3:
        problems.append(f"unaligned ATE {unaligned:.3f} m")
    if not cosine > 0.99:
        problems.append(f"direction cosine {cosine:.3f}")
    return problems


@pytest.mark.parametrize("method", ["orb", "orb_ratio", "sift"])
def test_classical_vo_on_synthetic_drive_is_accurate(driving, method: str) -> None:
    """~6.3 m drive: measured Sim(3) ATE 0.07 m (ORB) and 0.03 m (SIFT); standing still is ~1.8 m."""
    poses, info = rc.classical_vo((f.image for f in driving), driving.camera, driving.poses, method)
    assert poses.shape == driving.poses.shape
    assert np.allclose(poses[0], driving.poses[0])
    assert _drive_problems(driving, poses) == []
    assert info["failed_steps"] == 0


def test_classical_vo_catches_an_inverted_relative_pose(driving, monkeypatch) -> None:
    """The same checks with T_10 inverted inside the recipe fail: the accuracy test above can fail."""
    original = rc.relative_motion

    def inverted(p0, p1, K):
        T = original(p0, p1, K)
        return None if T is None else np.linalg.inv(T)

    monkeypatch.setattr(rc, "relative_motion", inverted)
    poses, _ = rc.classical_vo((f.image for f in driving), driving.camera, driving.poses, "orb")
    problems = _drive_problems(driving, poses)
    assert any("unaligned" in p for p in problems) and any("cosine" in p for p in problems)


def test_orb_ratio_keeps_only_matches_clearly_nearer_than_the_second() -> None:
    """Lowe's test on known binary descriptors: a query whose two nearest are 8 and 9 bits away is dropped
    (8 / 9 > 0.8), one at 2 against 9 bits is kept; mutual nearest neighbours keep both."""
    base = np.zeros((1, 32), np.uint8)

    def flipped(bits: int) -> np.ndarray:
        d = base.copy()
        d[0, : bits // 8] = 0xFF
        d[0, bits // 8] = (1 << (bits % 8)) - 1
        return d

    q_clear, q_close = base.copy(), np.full((1, 32), 0xF0, np.uint8)
    a = np.vstack([q_clear, q_close])
    b = np.vstack([flipped(2), flipped(9) ^ 0xF0 ^ 0xF0, q_close ^ flipped(8), q_close ^ flipped(9)])
    pts_a, pts_b = np.float64([[1, 1], [2, 2]]), np.float64([[10, 10], [20, 20], [30, 30], [40, 40]])
    ratio = rc.make_features("orb_ratio").match((pts_a, a), (pts_b, b))
    mutual = rc.make_features("orb").match((pts_a, a), (pts_b, b))
    assert ratio[0].tolist() == [[1, 1]] and ratio[1].tolist() == [[10, 10]]
    assert len(mutual[0]) == 2


def test_relative_motion_needs_eight_matches() -> None:
    K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
    assert rc.relative_motion(np.zeros((7, 2)), np.zeros((7, 2)), K) is None


def test_make_features_rejects_unknown_methods() -> None:
    with pytest.raises(ValueError, match="orb"):
        rc.make_features("surf")


# -- clips -----------------------------------------------------------------------------------------------


def test_hololens_held_out_clip_is_file_frames_150_to_199(shared_data) -> None:
    clip = rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data)
    names = [clip.sequence._images[i].name for i in (clip.indices[0], clip.indices[-1])]
    assert names == ["00150.png", "00199.png"]
    assert len(clip) == 50
    assert clip.gt.shape == (50, 4, 4)


def test_load_clip_max_frames_and_missing_folder(shared_data, tmp_path) -> None:
    clip = rc.load_clip(rc.CLIPS["kitti06"], shared_data, max_frames=5)
    assert len(clip) == 5 and clip.stamps.shape == (5,)
    with pytest.raises(FileNotFoundError):
        rc.load_clip(rc.CLIPS["kitti06"], tmp_path)


def test_load_clip_every_kth_frame(shared_data) -> None:
    """every=k keeps file frames 150, 155, ... of the held-out HoloLens clip, with their stamps and poses;
    max_frames counts the kept frames."""
    full = rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data)
    clip = rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, every=5)
    assert len(clip) == 10
    assert [clip.sequence._images[i].name for i in clip.indices[:2]] == ["00150.png", "00155.png"]
    np.testing.assert_array_equal(clip.stamps, full.stamps[::5])
    np.testing.assert_array_equal(clip.gt, full.gt[::5])
    assert len(rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, max_frames=3, every=5)) == 3
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="every"):
            rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, every=bad)


def test_load_clip_reverse_plays_the_same_frames_backwards(shared_data) -> None:
    """reverse: the selected frames in reverse order, each with its own pose and image, played with the
    forward clip's stamps (still increasing, the same spacing); with every=k the same kept frames."""
    full = rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, every=5)
    back = rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, every=5, reverse=True)
    assert back.reverse and len(back) == len(full) == 10
    np.testing.assert_array_equal(back.indices, full.indices[::-1])
    np.testing.assert_array_equal(back.gt, full.gt[::-1])
    np.testing.assert_array_equal(back.stamps, full.stamps)
    frames = list(back.frames())
    np.testing.assert_array_equal([f.timestamp for f in frames], full.stamps)
    np.testing.assert_array_equal(frames[0].image, list(full.frames())[-1].image)
    np.testing.assert_array_equal(frames[0].pose, full.gt[-1])


def test_load_clip_image_scale_is_the_same_scene_through_a_smaller_camera(shared_data) -> None:
    """image_scale 0.5: half-size images with the halved intrinsics, and a depth map that still agrees
    with the full-size one at each 3D point's projection; stamps and poses unchanged."""
    full = rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, max_frames=3)
    half = rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, max_frames=3, image_scale=0.5)
    np.testing.assert_array_equal(half.stamps, full.stamps)
    np.testing.assert_array_equal(half.gt, full.gt)
    big, small = next(full.frames()), next(half.frames())
    assert small.camera == half.camera == full.camera.scaled(0.5)
    assert small.image.shape[:2] == (half.camera.height, half.camera.width)
    assert abs(float(small.image.mean()) - float(big.image.mean())) < 1.0  # area averaging keeps brightness
    rng = np.random.default_rng(0)
    u = rng.integers(0, big.camera.width, 400)
    v = rng.integers(0, big.camera.height, 400)
    d = big.depth[v, u]
    u, v, d = u[d > 0], v[d > 0], d[d > 0]
    X = (
        np.c_[(u - big.camera.cx) / big.camera.fx, (v - big.camera.cy) / big.camera.fy, np.ones(len(d))]
        * d[:, None]
    )
    us = np.rint(small.camera.fx * X[:, 0] / X[:, 2] + small.camera.cx).astype(int)
    vs = np.rint(small.camera.fy * X[:, 1] / X[:, 2] + small.camera.cy).astype(int)
    inside = (us >= 0) & (us < small.camera.width) & (vs >= 0) & (vs < small.camera.height)
    ds = small.depth[vs[inside], us[inside]]
    assert inside.sum() > 200
    assert np.median(np.abs(ds - d[inside]) / d[inside]) < 0.02
    for bad in (0.0, -0.5, float("nan"), 5.0):
        with pytest.raises(ValueError, match="image_scale"):
            rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, image_scale=bad)
    with pytest.raises(ValueError, match="below 32 px"):
        rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, image_scale=0.05)


def test_load_clip_jpeg_quality_gives_what_a_compressed_stream_delivers(shared_data) -> None:
    """jpeg_quality: each frame is the JPEG receiver's image (compressed_image.round_trip), close to the
    original and closer at a higher quality; camera, stamps and poses unchanged."""
    raw = next(rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, max_frames=3).frames())
    errors = []
    for quality in (50, 95):
        clip = rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, max_frames=3, jpeg_quality=quality)
        frame = next(clip.frames())
        assert frame.camera == raw.camera and frame.timestamp == raw.timestamp
        assert frame.image.shape == raw.image.shape and frame.image.dtype == np.uint8
        np.testing.assert_array_equal(frame.image, compressed_image.round_trip(raw.image, "jpeg", quality))
        errors.append(np.abs(frame.image.astype(int) - raw.image.astype(int)).mean())
    assert 0 < errors[1] < errors[0] < 5.0
    for bad in (0, 101, True):
        with pytest.raises(ValueError, match="jpeg_quality"):
            rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, jpeg_quality=bad)


def test_load_clip_gray_is_what_a_mono_camera_delivers(shared_data) -> None:
    """gray: a colour clip's frames become BT.601 luma (H x W uint8), camera, stamps and poses unchanged;
    a gray clip (KITTI) is left as it is."""
    raw = list(rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, max_frames=3).frames())
    gray = list(rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, max_frames=3, gray=True).frames())
    for a, b in zip(raw, gray, strict=True):
        assert a.is_rgb and not b.is_rgb and b.image.shape == a.image.shape[:2]
        np.testing.assert_array_equal(b.image, cv2.cvtColor(a.image, cv2.COLOR_RGB2GRAY))
        assert (b.camera, b.timestamp) == (a.camera, a.timestamp) and np.array_equal(b.pose, a.pose)
    kitti = rc.CLIPS["kitti06"]
    plain = next(rc.load_clip(kitti, shared_data, max_frames=3).frames())
    mono = next(rc.load_clip(kitti, shared_data, max_frames=3, gray=True).frames())
    np.testing.assert_array_equal(mono.image, plain.image)


def test_load_clip_exposure_swings_each_frames_gain_as_auto_exposure_does(shared_data) -> None:
    """exposure: frame k's intensities times exposure ** sin(2πk/40), rounded and saturated at 255; the
    swing peaks at frame 10 (x exposure) and bottoms at frame 30 (/ exposure); camera, stamps and poses
    unchanged. Out-of-range values are refused."""
    assert rc.exposure_gain(1.5, 0) == 1.0
    assert rc.exposure_gain(1.5, 10) == pytest.approx(1.5)
    assert rc.exposure_gain(1.5, 30) == pytest.approx(1 / 1.5)
    assert rc.exposure_gain(1.5, rc.EXPOSURE_PERIOD_FRAMES) == pytest.approx(1.0)
    np.testing.assert_array_equal(
        rc.with_gain(np.array([0, 100, 200, 255], np.uint8), 1.5), np.array([0, 150, 255, 255], np.uint8)
    )
    with pytest.raises(ValueError, match="8-bit"):
        rc.with_gain(np.zeros(3, np.uint16), 1.5)
    raw = list(rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, max_frames=31).frames())
    swung = list(rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, max_frames=31, exposure=2.0).frames())
    for k in (0, 10, 30):
        a, b = raw[k], swung[k]
        np.testing.assert_array_equal(b.image, rc.with_gain(a.image, rc.exposure_gain(2.0, k)))
        assert (b.camera, b.timestamp) == (a.camera, a.timestamp) and np.array_equal(b.pose, a.pose)
    assert swung[10].image.mean() > 1.5 * raw[10].image.mean() * 0.9
    assert swung[30].image.mean() == pytest.approx(raw[30].image.mean() / 2, rel=0.02)
    for bad in (0.5, 5.0, float("nan")):
        with pytest.raises(ValueError, match="exposure"):
            rc.load_clip(rc.HOLOLENS_HELD_OUT, shared_data, exposure=bad)


def test_seed_summary_gives_medians_and_the_spread() -> None:
    rows = [
        rc.Row("c", "m", sim3, se3, scale, frames, 10, s, extra={"statuses": {}})
        for sim3, se3, scale, frames, s in [
            (0.3, 0.5, 1.1, 9, 0.2),
            (0.5, 0.6, 0.9, 10, 0.3),
            (0.4, None, 1.0, 8, 0.1),
        ]
    ]
    row = rc.seed_summary(rows, [0, 1, 2])
    # the run without an SE(3) counts as the worst: the median of 0.5, 0.6 and it is 0.6
    assert (row.ate_sim3, row.ate_se3, row.scale, row.frames_out, row.s_per_frame) == (0.4, 0.6, 1.0, 9, 0.2)
    assert "median of 3 RANSAC seeds (0, 1, 2): Sim(3) 0.300-0.500 m" in row.note
    assert "SE(3) 0.500-0.600 m" in row.note and "frames out 8-10" in row.note
    assert [r["ate_sim3_m"] for r in row.extra["per_seed"]] == [0.3, 0.5, 0.4]
    # a seed that lost tracking cannot make the row look better, and its note stays
    failing = [*rows[:2], rc.Row("c", "m", None, None, None, 2, 10, 0.1, note="too few poses")]
    row = rc.seed_summary(failing, [0, 1, 2])
    assert row.ate_sim3 == 0.5 and "1 of 3 seeds without an ATE" in row.note
    # ...but a scale is no error: the median of the scales that exist, not of 1.1, 0.9 and +inf
    assert row.scale == pytest.approx(1.0)
    assert "too few poses (seed 2)" in row.note
    none_row = [rc.Row("c", "m", 0.3, None, None, 9, 10) for _ in range(3)]
    assert rc.seed_summary(none_row, [0, 1, 2]).ate_se3 is None  # no SE(3) at all: not applicable
    with pytest.raises(ValueError, match="2 rows for 3 seeds"):
        rc.seed_summary(rows[:2], [0, 1, 2])


def test_seed_summary_scale_is_the_median_of_the_seeds_that_aligned() -> None:
    scales = (0.80, 0.90, 1.00, None, 0.85)
    rows = [
        rc.Row("c", "m", None if s is None else 0.1 * k, None, s, 50, 51, None if s is None else 0.1)
        for k, s in enumerate(scales)
    ]
    row = rc.seed_summary(rows, [0, 1, 2, 3, 4])
    assert row.scale == pytest.approx(0.875) and row.s_per_frame == pytest.approx(0.1)
    assert row.ate_sim3 == pytest.approx(0.2)  # the failed seed still counts as the worst ATE (not 0.15)
    half = [
        rc.Row("c", "m", a, None, s, 50, 51) for a, s in ((0.3, 0.5), (None, None), (None, None), (0.6, 0.6))
    ]
    row = rc.seed_summary(half, [0, 1, 2, 3])
    assert row.ate_sim3 is None and row.scale == pytest.approx(0.55)
    assert rc.seed_summary([rc.Row("c", "m", None, None, None, 2, 51)] * 2, [0, 1]).scale is None


def test_resolve_clip_names_folders_and_camera_heights(shared_data, tmp_path) -> None:
    assert rc.resolve_clip("kitti06", shared_data) is rc.CLIPS["kitti06"]
    assert rc.resolve_clip("hololens", shared_data, camera_height=1.6).camera_height == 1.6  # was unknown
    assert rc.resolve_clip("kitti07", shared_data, camera_height=2.0).camera_height == 1.65  # known stays
    # Any folder a reader understands, by path or by name under the data root.
    kitti = rc.resolve_clip(str(shared_data / "kitti_odom06_000-050"), tmp_path)
    assert (kitti.name, kitti.camera_height) == ("kitti_odom06_000-050", rc.KITTI_CAMERA_HEIGHT_M)
    assert "KITTI's camera 1.65 m above the road" in kitti.note
    tartan = rc.resolve_clip("tartanair_hospital_000-188", shared_data)
    assert tartan.camera_height is None and tartan.folder == str((shared_data / tartan.name).resolve())
    assert rc.resolve_clip("tartanair_hospital_000-188", shared_data, camera_height=1.2).camera_height == 1.2
    clip = rc.load_clip(kitti, "/nonexistent", max_frames=4)  # an absolute folder ignores the data root
    assert len(clip) == 4
    with pytest.raises(ValueError, match="unknown clip 'nope'"):
        rc.resolve_clip("nope", shared_data)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot tell the format"):
        rc.resolve_clip(str(tmp_path / "empty"), shared_data)
    with pytest.raises(ValueError, match="camera_height must be a positive number"):
        rc.resolve_clip("kitti06", shared_data, camera_height=-1.0)


def test_issue_reference_note_says_where_the_targets_come_from_and_sets_ours_beside(shared_data) -> None:
    """The targets are issue 14's, of the "orb" reference's recipe; the READMEs give three of them (KITTI
    06's none); this table's own ORB rows are named beside them (the note said the targets were the
    READMEs' figures of a recipe not reproduced here)."""
    for clip, target in (("kitti07", 0.291), ("hololens", 0.187), ("tartanair", 1.355)):
        readme = (shared_data / rc.CLIPS[clip].folder / "README.md").read_text()
        assert f"OpenCV ORB {target} m" in readme and rc.ISSUE_REFERENCE_M[clip] == target
    assert "ORB" not in (shared_data / rc.CLIPS["kitti06"].folder / "README.md").read_text()
    orb = rc.CLASSICAL_LABELS["orb"]
    rows = [
        rc.Row("kitti06", orb, 0.505, 0.53, 1.0, 51, 51),
        rc.Row("hololens", rc.CLASSICAL_LABELS["sift"], 0.37, 0.4, 1.0, 197, 197),
        rc.Row("hololens", orb, 1.26, 1.29, 0.84, 197, 197),
        rc.Row("my_clip", orb, 2.0, 2.1, 1.0, 10, 10),
    ]
    note = rc.issue_reference_note(rows)
    assert "kitti06 0.505, kitti07 0.291, hololens 0.187, tartanair 1.355" in note
    assert (
        "mutual nearest neighbours, essential matrix + recoverPose" in note
        and "KITTI 06's gives none" in note
    )
    assert note.endswith(f"This table's {orb} rows: kitti06 0.505, hololens 1.260.")
    assert "not reproduced" not in note
