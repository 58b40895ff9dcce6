"""Matching evaluation: relative pose from correspondences on known geometry, SIFT/ORB rows on a known
image translation, the full evaluate() on real HoloLens pairs, table formatting."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from banet_vo.evaluation.pose import two_view_pose_error
from imatching_online.evaluation import (
    evaluate,
    make_pairs,
    markdown_table,
    matcher_method,
    opencv_method,
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
    K = np.array([[200.0, 0, 119.5], [0, 200.0, 79.5], [0, 0, 1]])
    T = np.eye(4)
    T[:3, :3] = _rot([0.2, 1, 0.1], 4.0)
    T[:3, 3] = [0.3, 0.02, 0.05]
    X = np.column_stack([rng.uniform(-2, 2, 200), rng.uniform(-1.5, 1.5, 200), rng.uniform(3, 8, 200)])
    xa = X @ K.T
    Xb = X @ T[:3, :3].T + T[:3, 3]
    xb = Xb @ K.T
    qa, qb = xa[:, :2] / xa[:, 2:], xb[:, :2] / xb[:, 2:]
    est = relative_pose_from_matches(qa, qb, K)
    err = two_view_pose_error(est, T)
    assert err.rotation_deg < 0.05 and err.translation_direction_deg < 0.5
    assert relative_pose_from_matches(qa[:4], qb[:4], K) is None


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
