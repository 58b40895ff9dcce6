"""Self-supervised depth for unlabelled pairs and training on mixed sources of different input sizes."""

from __future__ import annotations

import numpy as np
import pypose as pp
import pytest
import torch
from banet_vo.data import Frame, InMemorySequence, PairDataset
from banet_vo.geometry import PinholeCamera
from banet_vo.train.augment import zoom_pair
from banet_vo.train.config import TrainConfig, parse_sequence_spec
from banet_vo.train.data import CachedPairs, make_specs, render_cache
from banet_vo.train.loop import source_batch, train
from banet_vo.train.photometric import (
    image_at,
    photometric_depth_loss,
    photometric_error,
    unlabelled_depth_loss,
    warp_score,
)
from torch.utils.data import ConcatDataset


@pytest.fixture(scope="module")
def rendered_pairs():
    cache = render_cache(make_specs(["indoor"], 1, 7, 3, (128, 96)), progress=False)
    pairs = CachedPairs(cache, {"indoor": [2]})
    return pairs.stacked([0])


def _depth_grid(batch):
    depth = torch.nn.functional.interpolate(batch["depth_ref"], size=(48, 64), mode="nearest")
    intrinsics = batch["intrinsics"] * torch.tensor([0.5, 0.5, 0.5, 0.5]) - torch.tensor([0, 0, 0.25, 0.25])
    pose = pp.mat2SE3(batch["pose_tgt_ref"].double(), check=False).float()
    return depth, intrinsics, pose


def test_photometric_loss_is_lowest_at_the_true_depth_and_the_true_pose(rendered_pairs):
    b = rendered_pairs
    depth, intrinsics, pose = _depth_grid(b)
    assert float(pose.translation().norm()) > 0.05  # a baseline: depth is observable

    def loss(scale, T=pose):
        return float(photometric_depth_loss(depth * scale, b["image_ref"], b["image_tgt"], T, intrinsics))

    at_truth = loss(1.0)
    for wrong in (0.33, 0.6, 1.6, 3.0):
        assert loss(wrong) > at_truth * 1.05, wrong
    assert loss(1.0, pose.Inv()) > at_truth * 1.05  # the warp direction matters


def test_warp_score_ranks_a_diverged_estimate_with_no_motion_not_as_perfect(rendered_pairs):
    """The guard's score: lowest at the true depth and pose, worse at a wrong scale; a pose that throws
    every pixel out of view (500 m behind, or turned 180°) scores the unwarped error, as a model predicting
    no motion does; the training loss, whose pixels depend on the warp, calls that one perfect (0)."""
    b = rendered_pairs
    depth, intrinsics, pose = _depth_grid(b)

    def score(T, d=depth):
        return float(warp_score(d, b["image_ref"], b["image_tgt"], T, intrinsics)[0])

    small = tuple(depth.shape[-2:])
    static = float(photometric_error(image_at(b["image_tgt"], small), image_at(b["image_ref"], small)).mean())
    assert score(pose) < 0.8 * static
    assert score(pose, depth * 2.0) > score(pose) * 1.05
    assert score(pp.identity_SE3(1)) == pytest.approx(static, rel=1e-6)
    behind = pp.SE3(torch.tensor([[0.0, 0.0, -500.0, 0.0, 0.0, 0.0, 1.0]]))
    turned = pp.SE3(torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]]))
    for diverged in (behind, turned):
        assert score(diverged) == pytest.approx(static, rel=1e-6)
        loss = photometric_depth_loss(depth, b["image_ref"], b["image_tgt"], diverged, intrinsics)
        assert float(loss) == 0.0


def test_unlabelled_loss_only_counts_pairs_without_depth_labels(rendered_pairs):
    b = rendered_pairs
    depth, intrinsics, pose = _depth_grid(b)
    d0 = (depth * 2.0).requires_grad_()
    labelled, terms = unlabelled_depth_loss(
        d0, d0, b["image_ref"], b["image_tgt"], pose, intrinsics, b["depth_ref"], 1.0, 0.001
    )
    assert float(labelled.detach()) == 0.0 and terms == {}
    unlabelled, terms = unlabelled_depth_loss(
        d0, d0, b["image_ref"], b["image_tgt"], pose, intrinsics, torch.zeros_like(b["depth_ref"]), 1.0, 0.001
    )
    assert float(unlabelled.detach()) > 0 and set(terms) == {"photometric", "smoothness"}
    unlabelled.backward()
    assert torch.isfinite(d0.grad).all() and float(d0.grad.abs().sum()) > 0


def _sequence(width: int, height: int, depth: bool) -> InMemorySequence:
    rng = np.random.default_rng(width)
    camera = PinholeCamera(0.8 * width, 0.8 * width, width / 2 - 0.5, height / 2 - 0.5, width, height)
    frames = []
    for i in range(4):
        pose = np.eye(4)
        pose[0, 3] = 0.05 * i
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        d = np.full((height, width), 3.0, np.float32) if depth else None
        frames.append(Frame(i, 0.1 * i, image, camera, d, pose))
    return InMemorySequence(frames, name=f"{width}x{height}")


def test_source_batch_draws_one_source_per_step_reproducibly():
    parts = ConcatDataset([list(range(5)), list(range(7)), list(range(3))])
    seen = {0: 0, 1: 0, 2: 0}
    for step in range(300):
        batch = source_batch(parts, (0.5, 0.5, 0.0), 0, step, 4, 0, 1)
        assert batch == source_batch(parts, (0.5, 0.5, 0.0), 0, step, 4, 0, 1)  # seeded by step: resumable
        sources = {int(np.searchsorted(parts.cumulative_sizes, k, side="right")) for k in batch}
        assert len(sources) == 1
        seen[sources.pop()] += 1
    assert seen[2] == 0 and 100 < seen[0] < 200
    # two ranks take disjoint slices of one draw from the same source
    r0, r1 = (source_batch(parts, (1, 1, 1), 3, 5, 2, rank, 2) for rank in (0, 1))
    both = r0 + r1
    assert len({int(np.searchsorted(parts.cumulative_sizes, k, side="right")) for k in both}) == 1


def test_training_mixes_sources_of_different_input_sizes(tmp_path):
    tiny = dict(
        image_width=64, image_height=48, channels=8, num_basis=4, iterations=[1, 1], stem_channels=8,
        level2_channels=8, bottleneck_planes=[8, 8, 8, 8], decoder_channels=[8, 8, 8, 8], damping_hidden=8,
        input_geometry="keep_aspect", canonical_focal=50.0,
    )  # fmt: skip
    config = TrainConfig.from_dict(
        dict(
            model_overrides=tiny, data={"scenes": [], "sequences_per_scene": 0, "source_weights": [1, 1]},
            loss={"photometric": 1.0, "smoothness": 0.001}, batch_size=2, steps=6, lr=1e-3, log_every=1,
            num_threads=1, checkpoint_every_s=1e9,
        )
    )  # fmt: skip
    model_config = config.model_config()
    wide = PairDataset(_sequence(240, 60, depth=False), model_config=model_config, shuffle=False)
    square = PairDataset(_sequence(64, 48, depth=True), model_config=model_config, shuffle=False)
    assert wide.size != square.size  # a batch can only hold one of them
    result = train(config, tmp_path, progress=False, dataset=ConcatDataset([wide, square]))
    assert result.step == 6 and result.skipped_steps == 0 and np.isfinite(result.last_loss)


def test_sequence_specs_with_frame_ranges():
    assert parse_sequence_spec("../d/kitti") == ("../d/kitti", None)
    assert parse_sequence_spec("../d/kitti@0-119") == ("../d/kitti", (0, 119))
    with pytest.raises(ValueError, match="FIRST-LAST"):
        parse_sequence_spec("../d/kitti@x")
    with pytest.raises(ValueError, match="source_weights"):
        TrainConfig.from_dict({"data": {"source_weights": [-1, 1]}})


def test_zoom_keeps_image_intrinsics_and_depth_consistent():
    W, H = 64, 48
    ramp = (torch.arange(W, dtype=torch.float32) / (W - 1)).expand(3, H, W).contiguous()
    item = {
        "image_ref": ramp, "image_tgt": ramp.clone(), "intrinsics": torch.tensor([40.0, 40.0, 31.5, 23.5]),
        "depth_ref": (ramp[:1] * 10 + 1), "depth_valid": torch.ones(1, H, W, dtype=torch.bool),
    }  # fmt: skip
    out = zoom_pair(item, 1.5, 0.3, 0.8)
    fx, _, cx, _ = item["intrinsics"].tolist()
    fx2, fy2, cx2, _ = out["intrinsics"].tolist()
    assert fx2 == pytest.approx(60.0) and fy2 == pytest.approx(60.0)
    u = torch.arange(2, W - 2, dtype=torch.float32)
    source_col = out["image_ref"][0, H // 2, 2 : W - 2] * (W - 1)
    # the zoomed camera maps the ray through source column x to output column fx2/fx·(x − cx) + cx2
    torch.testing.assert_close(fx2 / fx * (source_col - cx) + cx2, u, atol=0.02, rtol=0)
    depth_col = (out["depth_ref"][0, H // 2, 2 : W - 2] - 1) / 10 * (W - 1)
    assert (depth_col - source_col).abs().max() < 1.0  # nearest: within a source pixel
    assert out["image_ref"].shape == ramp.shape and zoom_pair(item, 1.0, 0.5, 0.5) is item


def test_average_checkpoints_is_the_mean_of_the_weights(tmp_path):
    from banet_vo.model import BANet, BANetConfig
    from banet_vo.model.checkpoint import load_checkpoint, save_checkpoint
    from banet_vo.train.average import average_checkpoints

    config = BANetConfig(channels=8, num_basis=4, iterations=(1, 1, 1), damping_hidden=8)
    paths = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        state = BANet(config).state_dict()
        paths.append(
            save_checkpoint(
                tmp_path / f"{seed}.safetensors", state, "banet", config.to_dict(), {"steps": seed}
            )
        )
    out = average_checkpoints(paths, tmp_path / "mean.safetensors")
    mean, stored, meta = load_checkpoint(out, expected_kind="banet")
    states = [load_checkpoint(p)[0] for p in paths]
    for key in mean:
        torch.testing.assert_close(mean[key], sum(s[key] for s in states) / 3)
    assert stored == config.to_dict() and meta["averaged_steps"] == [1, 2, 3]
    other = BANetConfig(channels=8, num_basis=4, iterations=(1, 1, 1), damping_hidden=16)
    torch.manual_seed(0)
    odd = save_checkpoint(
        tmp_path / "odd.safetensors", BANet(other).state_dict(), "banet", other.to_dict(), {}
    )
    with pytest.raises(ValueError, match="config differs"):
        average_checkpoints([paths[0], odd], tmp_path / "bad.safetensors")
