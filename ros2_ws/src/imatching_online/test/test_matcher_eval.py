"""Matching evaluation: relative pose from correspondences on known geometry, SIFT/ORB rows on a known
image translation, the full evaluate() on real HoloLens pairs, table formatting."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from banet_vo.evaluation.pose import two_view_pose_error
from banet_vo.geometry import PinholeCamera
from imatching_online.evaluation import (
    bootstrap_selections,
    evaluate,
    make_pairs,
    markdown_table,
    matcher_method,
    opencv_method,
    paired_deltas,
    pose_errors_over_trials,
    relative_pose_from_matches,
)
from imatching_online.matcher.network import Matcher, MatcherConfig


def _rot(axis, deg):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.radians(deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def test_relative_pose_from_exact_matches():
    rng = np.random.default_rng(0)
    camera = PinholeCamera(200.0, 200.0, 119.5, 79.5, 240, 160)
    K = camera.K
    T = np.eye(4)
    T[:3, :3] = _rot([0.2, 1, 0.1], 4.0)
    T[:3, 3] = [0.3, 0.02, 0.05]
    X = np.column_stack([rng.uniform(-2, 2, 200), rng.uniform(-1.5, 1.5, 200), rng.uniform(3, 8, 200)])
    xa = X @ K.T
    Xb = X @ T[:3, :3].T + T[:3, 3]
    xb = Xb @ K.T
    qa, qb = xa[:, :2] / xa[:, 2:], xb[:, :2] / xb[:, 2:]
    est = relative_pose_from_matches(qa, qb, camera)
    err = two_view_pose_error(est, T)
    assert err.rotation_deg < 0.05 and err.translation_direction_deg < 0.5
    assert relative_pose_from_matches(qa[:4], qb[:4], camera) is None


@pytest.mark.parametrize(("kind", "tol_px", "fraction"), [("sift", 1.0, 0.9), ("orb", 2.0, 0.8)])
def test_opencv_rows_find_a_known_translation(kind, tol_px, fraction):
    rng = np.random.default_rng(1)
    base = (rng.random((60, 80)) * 255).astype(np.uint8)
    base = cv2.resize(base, (320, 240), interpolation=cv2.INTER_CUBIC)
    a, b = base[20:180, 20:260], base[20:180, 12:252]  # b(u + 8) = a(u)
    run = opencv_method(kind)
    qa, qb = run({"gray": a}, {"gray": b})
    assert len(qa) > 20
    shift = qb - qa
    # ORB keypoints sit on a 1.2x pyramid: coarser positions than SIFT's sub-pixel ones.
    assert np.mean(np.linalg.norm(shift - [8.0, 0.0], axis=1) < tol_px) > fraction
    with pytest.raises(ValueError, match="kind"):
        opencv_method("surf")


def _two_view_scene(n=200, outliers=0, seed=0):
    rng = np.random.default_rng(seed)
    camera = PinholeCamera(200.0, 200.0, 119.5, 79.5, 240, 160)
    K = camera.K
    T = np.eye(4)
    T[:3, :3] = _rot([0.2, 1, 0.1], 4.0)
    T[:3, 3] = [0.3, 0.02, 0.05]
    X = np.column_stack([rng.uniform(-2, 2, n), rng.uniform(-1.5, 1.5, n), rng.uniform(3, 8, n)])
    xa, xb = X @ K.T, (X @ T[:3, :3].T + T[:3, 3]) @ K.T
    qa, qb = xa[:, :2] / xa[:, 2:], xb[:, :2] / xb[:, 2:]
    qb[:outliers] = rng.uniform([0, 0], [240, 160], (outliers, 2))
    return qa, qb, camera, T


def test_relative_pose_order_is_a_permutation_of_the_same_data():
    qa, qb, camera, T = _two_view_scene()
    order = np.random.default_rng(3).permutation(len(qa))
    err = two_view_pose_error(relative_pose_from_matches(qa, qb, camera, order), T)
    assert err.rotation_deg < 0.05 and err.translation_direction_deg < 0.5
    with pytest.raises(ValueError, match="permutation"):
        relative_pose_from_matches(qa, qb, camera, np.zeros(len(qa), int))


def test_pose_errors_over_trials_first_trial_is_the_single_draw_and_seeds_repeat():
    qa, qb, camera, T = _two_view_scene(outliers=80, seed=1)
    e = pose_errors_over_trials(qa, qb, camera, T, trials=6, seed=5)
    single = two_view_pose_error(relative_pose_from_matches(qa, qb, camera), T).auc_error_deg
    assert e.shape == (6,) and e[0] == single
    np.testing.assert_array_equal(e, pose_errors_over_trials(qa, qb, camera, T, trials=6, seed=5))
    # Exact inliers, 40 % outliers: most draws find the pose, and the draws are really different runs
    # (here one of six lands on a wrong essential matrix: the noise the trials average out).
    assert np.median(e) < 1e-3 and np.ptp(e) > 1e-6
    assert np.all(np.isinf(pose_errors_over_trials(qa[:4], qb[:4], camera, T, trials=3, seed=0)))


def test_paired_deltas_against_hand_computed_values():
    # Two pairs. MMA errors: reference all 3 px; method 0.5 px on pair 0, 3 px on pair 1.
    ref = {"mma": [np.full(4, 3.0), np.full(4, 3.0)], "pose": [np.array([8.0, 8.0]), np.array([8.0, 8.0])]}
    method = {"mma": [np.full(4, 0.5), np.full(4, 3.0)], "pose": [np.array([1.0, 1.0]), np.array([8.0, 8.0])]}
    d = paired_deltas(method, ref, samples=500)
    delta, lo, hi = d["MMA@1px"]
    assert delta == pytest.approx(0.5) and lo == pytest.approx(0.0) and hi == pytest.approx(1.0)
    assert d["MMA@5px"] == [0.0, 0.0, 0.0]  # both all within 5 px on every resample
    # AUC@5: pooled draws (1, 1, 8, 8) against (8, 8, 8, 8), each through pose_auc.
    from banet_vo.evaluation.pose import pose_auc

    expected = pose_auc([1.0, 1.0, 8.0, 8.0], (5.0,))[5.0] - pose_auc([8.0] * 4, (5.0,))[5.0]
    assert d["AUC@5°"][0] == pytest.approx(expected) and d["AUC@5°"][0] > 0
    same = paired_deltas(ref, ref, samples=50)
    assert all(v == [0.0, 0.0, 0.0] for v in same.values())
    with pytest.raises(ValueError, match="same pairs"):
        paired_deltas(method, {"mma": ref["mma"][:1], "pose": ref["pose"][:1]})


def test_block_bootstrap_keeps_runs_of_start_frames_together():
    pairs = make_pairs(range(0, 12), [1, 2, 3])
    starts = np.array([a for a, _ in pairs])
    per_frame = {f: int(np.sum(starts == f)) for f in np.unique(starts)}
    for sel in bootstrap_selections(starts, block=3, samples=200, seed=1):
        chosen, drawn, p = starts[sel], [], 0
        while p < len(chosen):  # each drawn start frame brings all its pairs, contiguously
            f = chosen[p]
            assert np.all(chosen[p : p + per_frame[f]] == f)
            drawn.append(f)
            p += per_frame[f]
        # As many start frames as the data has (11), in runs of 3 consecutive frames (the last cut to 2).
        assert len(drawn) == 11
        for k in range(0, 11, 3):
            run = drawn[k : k + 3]
            assert list(np.diff(run)) == [1] * (len(run) - 1)
    single = list(bootstrap_selections(starts, block=0, samples=5, seed=1))
    assert all(len(s) == len(pairs) and s.max() < len(pairs) for s in single)
    with pytest.raises(ValueError, match="distinct start frames"):
        next(bootstrap_selections(starts, block=11, samples=1))


def test_block_bootstrap_widens_the_interval_when_neighbouring_pairs_agree():
    # 40 start frames x 3 gaps; the method beats the reference on runs of 5 start frames, then loses on
    # the next 5: neighbouring pairs are strongly dependent, as pairs sharing frames are.
    starts = np.repeat(np.arange(40), 3)
    good = (starts // 5) % 2 == 0
    ref = {"mma": [np.full(4, 3.0) for _ in starts], "pose": []}
    method = {"mma": [np.full(4, 0.5 if g else 3.0) for g in good], "pose": []}
    pair = paired_deltas(method, ref, starts, block=0, samples=2000)["MMA@1px"]
    blocks = paired_deltas(method, ref, starts, block=5, samples=2000)["MMA@1px"]
    assert pair[0] == blocks[0] == pytest.approx(0.5)
    assert (blocks[2] - blocks[1]) > 1.3 * (pair[2] - pair[1])
    with pytest.raises(ValueError, match="start frames"):
        paired_deltas(method, ref, block=5)
    with pytest.raises(ValueError, match="entries"):
        paired_deltas(method, ref, starts[:-1], block=5)


def test_evaluate_checks_the_bootstrap_block_before_any_work(hololens_dir):
    from banet_vo.data import open_sequence

    seq, calls = open_sequence(hololens_dir), []

    def counting(fa, fb):
        calls.append(1)
        return np.zeros((0, 2)), np.zeros((0, 2))

    methods = {"a": counting, "b": counting}
    with pytest.raises(ValueError, match="distinct start frames"):
        evaluate(seq, [(30, 31), (31, 32)], methods, 120, ransac_trials=1, reference="a", bootstrap_block=2)
    with pytest.raises(ValueError, match=">= 0"):
        evaluate(seq, [(30, 31), (31, 32)], methods, 120, ransac_trials=1, reference="a", bootstrap_block=-1)
    assert calls == []
    # Default: the largest gap (3), capped at distinct start frames - 1; one start frame -> single pairs.
    three = evaluate(seq, [(30, 33), (31, 34), (32, 35)], methods, 120, ransac_trials=1, reference="a")
    one = evaluate(seq, [(30, 33)], methods, 120, ransac_trials=1, reference="a")
    assert three["b"]["bootstrap_block"] == 2 and one["b"]["bootstrap_block"] == 0


def test_a_pair_without_matches_keeps_the_bootstrap_aligned(hololens_dir):
    from banet_vo.data import open_sequence

    seq = open_sequence(hololens_dir)
    sift, calls = opencv_method("sift"), []

    def blind_on_first_pair(fa, fb):
        calls.append(1)
        return (np.zeros((0, 2)), np.zeros((0, 2))) if len(calls) == 1 else sift(fa, fb)

    methods = {"sift": sift, "blind": blind_on_first_pair}
    results = evaluate(seq, [(30, 31), (40, 41)], methods, 120, ransac_trials=2, reference="sift")
    delta = results["blind"]["vs_reference"]["MMA@5px"][0]
    assert delta == pytest.approx(results["blind"]["mma"]["5.0"] - results["sift"]["mma"]["5.0"])


def test_markdown_table_lists_differences_to_the_reference():
    row = {"pairs": 2, "matches_per_pair": 10.0, "pose_auc": {"5.0": 0.5, "10.0": 0.6, "20.0": 0.7}}
    adapted = dict(row, reference="base", bootstrap_block=3, vs_reference={"AUC@5°": [0.012, -0.003, 0.031]})
    table = markdown_table({"base": row, "adapted": adapted})
    assert "Difference to base" in table and "| adapted | +1.2 [-0.3, +3.1] |" in table
    assert "moving blocks of 3 start frames" in table
    single = markdown_table({"base": row, "adapted": dict(adapted, bootstrap_block=0)})
    assert "over single pairs" in single


def test_make_pairs_stays_inside_the_frames():
    pairs = make_pairs(range(30, 35), [1, 3])
    assert pairs == [(30, 31), (31, 32), (32, 33), (33, 34), (30, 33), (31, 34)]


@pytest.mark.slow
def test_evaluate_on_real_hololens_pairs(hololens_dir):
    from banet_vo.data import open_sequence

    seq = open_sequence(hololens_dir)
    torch.manual_seed(0)
    untrained = matcher_method(Matcher(MatcherConfig(base_channels=8, coarse_channels=16, fine_channels=8)))
    results = evaluate(seq, [(30, 31), (40, 41)], {"sift": opencv_method("sift"), "random": untrained}, 240)
    sift, rand = results["sift"], results["random"]
    # SIFT on consecutive HoloLens frames is mostly right; an untrained matcher mostly is not.
    assert sift["mma"]["5.0"] > 0.6 and rand["mma"]["5.0"] < sift["mma"]["5.0"]
    assert set(sift["pose_auc"]) == {"5.0", "10.0", "20.0"}
    table = markdown_table(results)
    assert table.count("\n") == 3 and "MMA@1px" in table and "AUC@20°" in table
    with pytest.raises(ValueError, match="reference"):
        evaluate(seq, [(30, 31)], {"sift": opencv_method("sift")}, 240, reference="nope")
    with pytest.raises(ValueError, match="ransac_trials"):
        evaluate(seq, [(30, 31)], {"sift": opencv_method("sift")}, 240, ransac_trials=0)


def test_banet_vo_eval_matching_subcommand_writes_json(tmp_path, hololens_dir):
    import json

    from banet_vo.evaluation.cli import main
    from imatching_online.matcher.io import save_matcher

    ckpt = tmp_path / "m.safetensors"
    save_matcher(ckpt, Matcher(MatcherConfig(base_channels=8, coarse_channels=16, fine_channels=8)), {})
    out = tmp_path / "r.json"
    argv = ["matching", str(hololens_dir), "--frames", "30:33", "--gaps", "1", "--width", "120"]
    assert main([*argv, "--matcher", f"tiny={ckpt}", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["frames"] == [30, 33] and result["results"]["tiny"]["pairs"] == 2
    assert {"SIFT (mutual NN)", "ORB (mutual NN)", "tiny"} == set(result["results"])
    assert main([*argv[:2], "--frames", "30:99"]) == 2
    assert result["ransac_trials"] == 20 and result["results"]["tiny"]["ransac_trials"] == 20
    assert main([*argv, "--matcher", f"tiny={ckpt}", "--reference", "tiny", "--ransac-trials", "2",
                 "--json", str(out)]) == 0  # fmt: skip
    sift = json.loads(out.read_text())["results"]["SIFT (mutual NN)"]
    assert sift["reference"] == "tiny" and set(sift["vs_reference"]) >= {"MMA@1px", "AUC@5°"}
    assert main([*argv, "--reference", "missing"]) == 2


def test_matching_is_a_declared_banet_vo_eval_subcommand():
    import imatching_online.evaluation
    from banet_vo.evaluation.commands import available_commands

    assert available_commands()["matching"] is imatching_online.evaluation.add_parser


def test_the_evaluation_command_runs_an_xfeat_matcher_at_its_default_width(hololens_dir, tmp_path):
    """--width 240 on 540x360 frames: the frames every method sees are sized for the strictest matcher
    (XFeat: multiples of 32, 256x160), not refused by it after loading."""
    import json

    from imatching_online.evaluation import main

    out = tmp_path / "eval.json"
    argv = [str(hololens_dir), "--matcher", "xfeat=xfeat:pretrained", "--frames", "30:32", "--gaps", "1"]
    assert main([*argv, "--no-opencv", "--ransac-trials", "1", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["results"]["xfeat"]["pairs"] == 1
