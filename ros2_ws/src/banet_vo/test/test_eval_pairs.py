"""`banet-vo-eval pairs`: held-out test spec, per-method evaluation, λ sweep and the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from banet_vo.evaluation.cli import main as eval_main
from banet_vo.evaluation.pairs import (
    METHODS,
    TEST_SEEDS,
    TEST_STRIDES,
    VAL_SEEDS,
    Estimate,
    PairEstimator,
    depth0_scale,
    evaluate_pairs,
    format_results,
    held_out_test_specs,
    sweep_lambda,
)
from banet_vo.evaluation.pose import two_view_pose_error
from banet_vo.train.config import DataConfig
from banet_vo.train.data import CachedPairs, make_specs, render_cache


@pytest.fixture(scope="module")
def tiny_model(tiny_banet_config):
    from banet_vo.model.banet import BANet

    torch.manual_seed(0)
    return BANet(tiny_banet_config()).eval()


@pytest.fixture(scope="module")
def tiny_pairs():
    return CachedPairs(
        render_cache(make_specs(["indoor"], 1, 0, 3, (64, 48)), progress=False), {"indoor": [1]}
    )


def test_held_out_test_set_is_large_and_disjoint_from_training_and_validation():
    specs = held_out_test_specs((128, 96))
    pairs = sum(len(TEST_STRIDES[s.scene]) * s.frames - sum(TEST_STRIDES[s.scene]) for s in specs)
    assert pairs >= 200
    assert {s.scene for s in specs} == {"driving", "indoor"}
    train = DataConfig()  # the shipped model's training seeds are seed_base + [0, count)
    train_seeds = set(range(train.seed_base, train.seed_base + 1000))
    assert not train_seeds & set(TEST_SEEDS) and not set(VAL_SEEDS) & set(TEST_SEEDS)
    assert not train_seeds & set(VAL_SEEDS)


@pytest.mark.slow
def test_evaluate_pairs_matches_direct_metrics(tiny_model, tiny_pairs):
    estimator = PairEstimator(tiny_model)
    results = evaluate_pairs(tiny_pairs, estimator, ["banet", "geometric"], batch_size=2)
    assert set(results) == {"banet", "geometric"}
    # banet's numbers equal a direct forward pass scored with the pose metrics.
    batch = tiny_pairs.stacked(range(len(tiny_pairs)))
    with torch.no_grad():
        out = tiny_model(batch["image_ref"], batch["image_tgt"], batch["intrinsics"])
    err = two_view_pose_error(out.pose.matrix().double().numpy(), batch["pose_tgt_ref"].double().numpy())
    assert results["banet"]["pose"]["rotation_deg"]["mean"] == pytest.approx(
        err.rotation_deg.mean(), rel=1e-5
    )
    assert results["banet"]["pairs"] == 2 and "depth" in results["banet"]
    assert results["banet"]["depth"]["coverage"] == pytest.approx(1.0)
    text = format_results("tiny", results)
    assert "| banet |" in text and "| geometric |" in text
    with pytest.raises(ValueError, match="unknown method"):
        evaluate_pairs(tiny_pairs, estimator, ["magic"])


def test_depth0_scale_is_the_median_ratio_over_triangulated_pixels():
    sparse = np.zeros((4, 5), np.float32)
    sparse[0, :3] = [1.0, 2.0, 4.0]  # unit-scale depths of three triangulated pixels
    depth0 = np.full((4, 5), 3.0)
    depth0[0, :3] = [2.0, 6.0, 40.0]  # ratios 2, 3 and an outlier 10: the median ignores it
    assert depth0_scale(depth0, sparse) == pytest.approx(3.0)
    assert depth0_scale(depth0, np.zeros_like(sparse)) == 0.0  # nothing triangulated: no translation


@pytest.mark.slow
def test_geometric_learned_scale_is_geometric_rescaled_by_d0(tiny_model, tiny_pairs):
    estimator = PairEstimator(tiny_model)
    batch = tiny_pairs.stacked([0, 1])
    oracle = estimator.estimate("geometric", batch)
    learned = estimator.estimate("geometric_learned_scale", batch)
    with torch.no_grad():
        d0 = tiny_model.parts(batch["image_ref"], batch["image_tgt"], batch["intrinsics"]).depth0[:, 0]
    for b in range(2):
        np.testing.assert_allclose(learned.poses[b, :3, :3], oracle.poses[b, :3, :3], atol=1e-12)
        gt_norm = float(np.linalg.norm(batch["pose_tgt_ref"][b, :3, 3].double().numpy()))
        unit_depth = oracle.depths[b] / gt_norm  # the oracle's depth is the unit reconstruction x GT norm
        scale = depth0_scale(d0[b].double().numpy(), unit_depth)
        assert scale > 0
        np.testing.assert_allclose(
            learned.poses[b, :3, 3], oracle.poses[b, :3, 3] / gt_norm * scale, rtol=1e-5
        )
        np.testing.assert_allclose(learned.depths[b], unit_depth * scale, rtol=1e-4)


@pytest.mark.slow
def test_ablations_and_photometric_run_and_sweep_picks_a_candidate(tiny_model, tiny_pairs):
    estimator = PairEstimator(tiny_model)
    batch = tiny_pairs.stacked([0])
    for method in METHODS:
        est = estimator.estimate(method, batch)
        assert est.poses.shape == (1, 4, 4) and np.all(np.isfinite(est.poses))
        assert est.depths.shape == (1, 24, 32)
    # Untrained features differ from the model's, so the ablation is not the full model in disguise.
    a = estimator.estimate("banet_fixed_lambda", batch).poses
    b = estimator.estimate("banet_fixed_features", batch).poses
    assert not np.allclose(a, b)
    best, scores = sweep_lambda(tiny_pairs, estimator, "photometric", candidates=(0.01, 1.0))
    assert best in scores and set(scores) == {0.01, 1.0}
    with pytest.raises(ValueError, match="no constant"):
        sweep_lambda(tiny_pairs, estimator, "banet")


@pytest.mark.slow
def test_cli_on_a_written_sequence(tiny_model, tmp_path):
    from banet_vo.data import write_sequence
    from banet_vo.data.synthetic import render_sequence
    from banet_vo.model.checkpoint import save_checkpoint

    seq = render_sequence("indoor", frames=3, size=(64, 48), seed=3)
    write_sequence([seq[i] for i in range(len(seq))], tmp_path / "seq")
    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, tiny_model.state_dict(), "banet", tiny_model.config.to_dict(), {"steps": 0})
    out = tmp_path / "r.json"
    rc = eval_main(
        ["pairs", "--model", str(ckpt), "--sequence", str(tmp_path / "seq"), "--methods", "banet,photometric",
         "--photometric-lambda", "0.1", "--threads", "1", "--json", str(out)]
    )  # fmt: skip
    assert rc == 0
    report = json.loads(out.read_text())
    ((name, per_method),) = report["sets"].items()
    assert name.endswith("seq")
    assert set(per_method) == {"banet", "photometric"} and per_method["banet"]["pairs"] == 2
    assert report["lambda"]["photometric"] == 0.1
    assert eval_main(["pairs", "--model", str(ckpt), "--methods", "nope"]) == 2


class _HalfFailing:
    """Two pairs: the first estimated 1 deg and 10 deg (direction) off with one exact depth pixel, the
    second failed as the geometric baseline fails (identity pose, no depth)."""

    def estimate(self, method, batch):
        from scipy.spatial.transform import Rotation

        good = np.eye(4)
        good[:3, :3] = Rotation.from_rotvec([0, np.radians(1), 0]).as_matrix()
        good[:3, 3] = Rotation.from_rotvec([np.radians(10), 0, 0]).apply([0, 0, 1.0])
        depth = np.zeros((2, 4, 4))
        depth[0, 1, 1] = 2.0
        return Estimate(np.stack([good, np.eye(4)]), depth)


def _pair():
    pose = torch.eye(4)
    pose[2, 3] = 1.0
    return {
        "image_ref": torch.zeros(3, 8, 8),
        "image_tgt": torch.zeros(3, 8, 8),
        "intrinsics": torch.tensor([8.0, 8.0, 4.0, 4.0]),
        "pose_tgt_ref": pose,
        "depth_ref": torch.full((1, 8, 8), 2.0),
    }


def test_a_failed_pair_counts_as_the_worst_direction_and_no_depth():
    """A pair the method fails on stays in the direction column (180 deg) and the coverage (0); the depth
    errors, over the pair that has depth, say over how many pairs they are."""
    results = evaluate_pairs([_pair(), _pair()], _HalfFailing(), ["geometric"], batch_size=2)
    r = results["geometric"]
    direction = r["pose"]["translation_direction_deg"]
    assert direction["count"] == 2 and direction["mean"] == pytest.approx((10.0 + 180.0) / 2)
    assert r["depth_pairs"] == 1 and r["depth_gt_pairs"] == 2
    assert r["depth_coverage"] == pytest.approx((1 / 16 + 0.0) / 2)
    assert r["depth"]["coverage"] == r["depth_coverage"] and r["depth"]["abs_rel"] == pytest.approx(0.0)
    row = next(line for line in format_results("demo", results).splitlines() if line.startswith("| geo"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "95.00 / 95.00"  # over both pairs: no count
    assert cells[4:10] == ["0.000 (n=1)"] * 5 + ["1.000 (n=1)"] and cells[10] == "0.031"


def test_pose_error_of_a_missing_translation_is_nan_or_the_worst():
    T_gt = np.eye(4)
    T_gt[0, 3] = 1.0
    assert np.isnan(two_view_pose_error(np.eye(4), T_gt).translation_direction_deg)
    worst = two_view_pose_error(np.eye(4), T_gt, missing_direction_is_worst=True)
    assert worst.translation_direction_deg == 180.0
    # No true translation: the direction is undefined for the truth too, not a failure of the method.
    assert np.isnan(
        two_view_pose_error(T_gt, np.eye(4), missing_direction_is_worst=True).translation_direction_deg
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--methods", ","], "--methods names no method"),
        (["--methods", ""], "--methods names no method"),
        (["--threads", "0"], "--threads must be >= 1, got 0"),
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    ],
)
def test_cli_refuses_no_method_and_no_thread(flags, message, capsys):
    assert eval_main(["pairs", "--model", "not_loaded.safetensors", *flags]) == 2
    err = capsys.readouterr().err
    assert f"banet-vo-eval pairs: error: {message}" in err and "Traceback" not in err
