"""PairDataset: shapes, resized intrinsics, relative poses, nearest depth resize, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from banet_vo.data import Frame, InMemorySequence, PairDataset, open_sequence
from banet_vo.data.dataset import resize_depth_nearest
from banet_vo.geometry import PinholeCamera
from scipy.spatial.transform import Rotation

CAM = PinholeCamera(40.0, 42.0, 15.5, 11.5, 32, 24)


def synthetic_sequence(n: int = 6, depth: bool = True, poses: bool = True) -> InMemorySequence:
    rng = np.random.default_rng(7)
    frames = []
    for i in range(n):
        T = np.eye(4)
        T[:3, :3] = Rotation.from_rotvec(rng.normal(scale=0.3, size=3)).as_matrix()
        T[:3, 3] = rng.normal(size=3)
        d = None
        if depth:
            v, u = np.mgrid[0:24, 0:32]
            d = (1.0 + u + 100.0 * v + 10000.0 * i).astype(np.float32)  # every pixel's depth names its pixel
            d[(u + v) % 3 == 0] = 0.0  # holes
        image = rng.integers(0, 256, (24, 32), dtype=np.uint8)
        frames.append(Frame(i, 0.5 * i, image, CAM, d, T if poses else None))
    return InMemorySequence(frames, name="synthetic")


def test_items_native_size() -> None:
    seq = synthetic_sequence()
    ds = PairDataset(seq, strides=(1, 2), shuffle=False)
    assert ds.pairs == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (0, 2), (1, 3), (2, 4), (3, 5)]
    item = ds[6]
    assert item["image_ref"].shape == (3, 24, 32) and item["image_ref"].dtype == torch.float32
    # gray replicated to three channels, exact values / 255
    expected = torch.from_numpy(seq[1].image).float() / 255
    for c in range(3):
        torch.testing.assert_close(item["image_ref"][c], expected, rtol=0, atol=0)
    torch.testing.assert_close(item["depth_ref"][0], torch.from_numpy(seq[1].depth), rtol=0, atol=0)
    assert torch.equal(item["depth_valid"], item["depth_ref"] > 0) and item["depth_valid"].dtype == torch.bool
    assert (item["index_ref"].item(), item["index_tgt"].item(), item["stride"].item()) == (1, 3, 2)
    assert item["timestamp_ref"].item() == 0.5 and item["timestamp_tgt"].item() == 1.5
    torch.testing.assert_close(item["intrinsics"], torch.tensor([40.0, 42.0, 15.5, 11.5]))


def test_relative_pose_matches_direct_computation() -> None:
    seq = synthetic_sequence()
    ds = PairDataset(seq, strides=(1, 3), seed=5)
    for k in range(len(ds)):
        i, j = ds.pairs[k]
        direct = np.linalg.inv(seq[j].pose) @ seq[i].pose
        item = ds[k]
        assert item["pose_tgt_ref"].dtype == torch.float32
        np.testing.assert_allclose(item["pose_tgt_ref"].numpy(), direct, atol=1e-6)
        # maps a reference-camera point to where the target camera sees it
        p_ref = np.array([0.3, -0.2, 2.0, 1.0])
        np.testing.assert_allclose(
            np.linalg.inv(seq[j].pose) @ (seq[i].pose @ p_ref),
            item["pose_tgt_ref"].double().numpy() @ p_ref,
            atol=1e-5,
        )


def test_resize_updates_intrinsics_and_keeps_depth_values() -> None:
    seq = synthetic_sequence()
    ds = PairDataset(seq, size=(16, 12), shuffle=False)
    item = ds[0]
    assert item["image_ref"].shape == (3, 12, 16) and item["depth_ref"].shape == (1, 12, 16)
    # s = 1/2: fx' = fx/2, cx' = (cx + 0.5)/2 - 0.5
    torch.testing.assert_close(item["intrinsics"], torch.tensor([20.0, 21.0, 7.5, 5.5]))
    # nearest at the output pixel centre: output (u', v') reads source (2u'+1, 2v'+1); holes are kept
    src = seq[0].depth
    np.testing.assert_array_equal(item["depth_ref"][0].numpy(), src[1::2, 1::2])
    assert not item["depth_valid"].all() and item["depth_valid"].any()
    # the image is the 2x2 box average
    img = seq[0].image.astype(np.float64)
    box = (img[0::2, 0::2] + img[1::2, 0::2] + img[0::2, 1::2] + img[1::2, 1::2]) / 4
    np.testing.assert_allclose(item["image_ref"][0].numpy() * 255, box, atol=0.51)


def test_depth_resize_never_blends() -> None:
    depth = np.zeros((37, 53), np.float32)
    depth[:, 20:] = 2.0
    depth[10:25, 30:40] = 9.0
    depth[5, :] = 0.0
    for size in ((20, 14), (53, 37), (101, 80)):
        out = resize_depth_nearest(depth, *size)
        assert out.shape == size[::-1]
        assert set(np.unique(out)) <= {0.0, 2.0, 9.0}
    np.testing.assert_array_equal(resize_depth_nearest(depth, 106, 74)[::2, ::2], depth)  # upsample x2


def test_determinism_and_max_pairs() -> None:
    seq = synthetic_sequence(n=12)
    a = PairDataset(seq, strides=(1, 2, 4), seed=3)
    b = PairDataset(seq, strides=(1, 2, 4), seed=3)
    c = PairDataset(seq, strides=(1, 2, 4), seed=4)
    assert a.pairs == b.pairs and a.pairs != c.pairs
    assert sorted(a.pairs) == sorted(PairDataset(seq, strides=(1, 2, 4), shuffle=False).pairs)
    assert len(a) == 11 + 10 + 8
    assert PairDataset(seq, strides=(1, 2, 4), seed=3, max_pairs=5).pairs == a.pairs[:5]
    for key, value in a[2].items():
        assert torch.equal(value, b[2][key]), key


def test_validation() -> None:
    with pytest.raises(ValueError, match="poses"):
        PairDataset(synthetic_sequence(poses=False))
    seq = synthetic_sequence(n=3)
    with pytest.raises(ValueError, match="strides"):
        PairDataset(seq, strides=(0,))
    with pytest.raises(ValueError, match="no pairs"):
        PairDataset(seq, strides=(3,))
    with pytest.raises(ValueError, match="size"):
        PairDataset(seq, size=(16,))
    with pytest.raises(ValueError, match="max_pairs"):
        PairDataset(seq, max_pairs=0)


def test_without_depth_and_collate() -> None:
    ds = PairDataset(synthetic_sequence(depth=False), size=(16, 12))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["image_tgt"].shape == (3, 3, 12, 16) and batch["pose_tgt_ref"].shape == (3, 4, 4)
    assert not batch["depth_valid"].any() and batch["depth_ref"].abs().sum() == 0


def test_hololens_pairs(hololens_dir: Path) -> None:
    seq = open_sequence(hololens_dir)
    ds = PairDataset(seq, strides=(1, 3), size=(180, 120), seed=0, max_pairs=4)
    cam = seq.camera
    s = 1 / 3
    expected = [cam.fx * s, cam.fy * s, s * (cam.cx + 0.5) - 0.5, s * (cam.cy + 0.5) - 0.5]
    for k in range(len(ds)):
        item = ds[k]
        i, j = ds.pairs[k]
        assert (
            item["image_ref"].shape == (3, 120, 180)
            and 0 <= item["image_ref"].min() <= item["image_ref"].max() <= 1
        )
        torch.testing.assert_close(item["intrinsics"], torch.tensor(expected, dtype=torch.float32))
        np.testing.assert_allclose(
            item["pose_tgt_ref"].numpy(), np.linalg.inv(seq.poses[j]) @ seq.poses[i], atol=1e-5
        )
        valid = item["depth_valid"].float().mean().item()
        assert 0.4 < valid < 0.95
        assert 0.2 < item["depth_ref"][item["depth_valid"]].median().item() < 10.0


def test_kitti_pairs_gray(kitti06_dir: Path) -> None:
    ds = PairDataset(open_sequence(kitti06_dir), strides=(1,), size=(306, 92), max_pairs=2)
    item = ds[0]
    assert item["image_ref"].shape == (3, 92, 306)
    assert torch.equal(item["image_ref"][0], item["image_ref"][2])
    assert not item["depth_valid"].any()
    # ~1.2 m forward per frame: the reference camera sits ~1.2 m behind the target, along -z
    t = item["pose_tgt_ref"][:3, 3]
    assert t[2].item() == pytest.approx(-1.2, abs=0.15) and t[:2].abs().max().item() < 0.1
