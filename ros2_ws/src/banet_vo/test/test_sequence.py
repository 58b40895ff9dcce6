"""Frame / InMemorySequence validation and the write -> read round trip of our own format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from banet_vo.data import Frame, InMemorySequence, open_sequence, write_sequence
from banet_vo.data.readers import BanetSequence, detect_format
from banet_vo.geometry import PinholeCamera
from scipy.spatial.transform import Rotation

CAM = PinholeCamera(50.3, 51.7, 15.25, 11.5, 32, 24)


def make_frames(
    n: int = 4, rgb: bool = True, depth: bool = True, pose: bool = True, seed: int = 0
) -> list[Frame]:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        shape = (CAM.height, CAM.width, 3) if rgb else (CAM.height, CAM.width)
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        d = None
        if depth:
            d = rng.uniform(0.3, 60.0, (CAM.height, CAM.width)).astype(np.float32)
            d[rng.random(d.shape) < 0.2] = 0.0
        T = None
        if pose:
            T = np.eye(4)
            T[:3, :3] = Rotation.from_rotvec(rng.normal(size=3)).as_matrix()
            T[:3, 3] = rng.normal(size=3) * 10
        frames.append(Frame(i, 1.7e9 + 0.1 * i + 1e-6 * rng.random(), image, CAM, d, T))
    return frames


def test_round_trip_is_exact(tmp_path: Path) -> None:
    frames = make_frames()
    out = write_sequence(frames, tmp_path / "seq")
    assert sorted(p.name for p in out.iterdir()) == ["K.txt", "depth", "images", "poses.txt", "times.txt"]
    assert (out / "images" / "000003.png").is_file()
    assert detect_format(out) == "banet"
    seq = open_sequence(out)
    assert isinstance(seq, BanetSequence)
    assert len(seq) == 4 and seq.has_depth and seq.has_poses
    assert seq.camera == CAM  # intrinsics exact
    np.testing.assert_array_equal(seq.timestamps, [f.timestamp for f in frames])
    np.testing.assert_array_equal(seq.poses[:, :3], np.stack([f.pose[:3] for f in frames]))
    for a, b in zip(frames, seq, strict=True):
        assert b.index == a.index and b.timestamp == a.timestamp
        np.testing.assert_array_equal(b.image, a.image)
        assert b.depth.dtype == np.float32
        np.testing.assert_array_equal(b.depth == 0, a.depth == 0)
        assert np.abs(b.depth - a.depth).max() <= 0.0005 + 1e-6  # rounded to the millimetre
        np.testing.assert_array_equal(b.pose, a.pose)


def test_round_trip_gray_without_depth_or_poses(tmp_path: Path) -> None:
    frames = make_frames(3, rgb=False, depth=False, pose=False)
    seq = open_sequence(write_sequence(InMemorySequence(frames), tmp_path / "g"), format="banet")
    assert not seq.has_depth and seq.poses is None
    assert seq[1].image.ndim == 2
    np.testing.assert_array_equal(seq[-1].image, frames[-1].image)


def test_overwrite_and_same_dir(tmp_path: Path) -> None:
    out = write_sequence(make_frames(3), tmp_path / "s")
    (out / "notes.md").write_text("keep me")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_sequence(make_frames(2), out)
    write_sequence(make_frames(2, depth=False), out, overwrite=True)
    seq = open_sequence(out)
    assert len(seq) == 2 and not seq.has_depth and (out / "notes.md").read_text() == "keep me"
    with pytest.raises(ValueError, match="out_dir"):
        write_sequence(seq, out, overwrite=True)


def test_write_rejects_far_depth_and_mixed_fields(tmp_path: Path) -> None:
    frames = make_frames(2)
    far = frames[1].depth.copy()
    far[0, 0] = 70.0
    bad = [frames[0], Frame(1, frames[1].timestamp, frames[1].image, CAM, far, frames[1].pose)]
    with pytest.raises(ValueError, match=r"frames\[1\].depth"):
        write_sequence(bad, tmp_path / "a")
    mixed = [frames[0], Frame(1, frames[1].timestamp, frames[1].image, CAM, frames[1].depth, None)]
    with pytest.raises(ValueError, match=r"frames\[1\].pose"):
        write_sequence(mixed, tmp_path / "b")
    with pytest.raises(ValueError, match="empty"):
        write_sequence([], tmp_path / "c")


def test_reader_validates_counts_and_times(tmp_path: Path) -> None:
    out = write_sequence(make_frames(4), tmp_path / "s")
    lines = (out / "poses.txt").read_text().splitlines()
    (out / "poses.txt").write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(ValueError, match=r"poses\.txt"):
        open_sequence(out)
    (out / "poses.txt").write_text("\n".join(lines) + "\n")
    times = (out / "times.txt").read_text().splitlines()
    (out / "times.txt").write_text("\n".join(times[:3]) + "\n")
    with pytest.raises(ValueError, match=r"times\.txt"):
        open_sequence(out)
    (out / "times.txt").write_text("\n".join([times[0], times[2], times[1], times[3]]) + "\n")
    with pytest.raises(ValueError, match="strictly increasing"):
        open_sequence(out)
    (out / "times.txt").write_text("\n".join(times) + "\n")
    (out / "depth" / "000002.png").unlink()
    with pytest.raises(ValueError, match="depth"):
        open_sequence(out)


def test_reader_rejects_gaps_and_unknown_layouts(tmp_path: Path) -> None:
    out = write_sequence(make_frames(3, depth=False), tmp_path / "s")
    (out / "images" / "000001.png").rename(out / "images" / "000007.png")
    with pytest.raises(ValueError, match=r"000001\.png"):
        open_sequence(out)
    (tmp_path / "empty").mkdir()
    listed = r"banet: images/.*kitti: calib.txt.*tum: rgb.txt.*hololens.*euroc: mav0/cam0"
    with pytest.raises(ValueError, match=listed):
        open_sequence(tmp_path / "empty")
    with pytest.raises(ValueError, match="format must be one of"):
        open_sequence(out, format="colmap")


def test_sequence_is_lazy(tmp_path: Path) -> None:
    out = write_sequence(make_frames(3, depth=False), tmp_path / "s")
    seq = open_sequence(out)
    (out / "images" / "000002.png").write_bytes(b"not a png")  # only noticed when frame 2 is read
    assert seq[0].index == 0
    with pytest.raises(ValueError, match=r"000002\.png"):
        seq[2]


def test_indexing() -> None:
    seq = InMemorySequence(make_frames(3), name="m")
    assert seq[-1].index == 2 and seq[np.int64(1)].index == 1
    assert [f.index for f in seq] == [0, 1, 2]
    assert seq.timestamps.shape == (3,) and seq.poses.shape == (3, 4, 4) and seq.has_depth
    with pytest.raises(IndexError):
        seq[3]
    with pytest.raises(TypeError):
        seq[1.0]
    assert "frames=3" in repr(seq)


def test_frame_validation() -> None:
    img = np.zeros((24, 32), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        Frame(0, 0.0, img.astype(np.float32), CAM)
    with pytest.raises(ValueError, match="camera is 32x24"):
        Frame(0, 0.0, np.zeros((24, 31), np.uint8), CAM)
    with pytest.raises(ValueError, match="depth"):
        Frame(0, 0.0, img, CAM, depth=np.full((24, 32), np.nan, np.float32))
    with pytest.raises(ValueError, match="depth"):
        Frame(0, 0.0, img, CAM, depth=np.zeros((24, 32), np.uint16))
    with pytest.raises(ValueError, match="pose"):
        Frame(0, 0.0, img, CAM, pose=2 * np.eye(4))
    with pytest.raises(ValueError, match="timestamp"):
        Frame(0, float("nan"), img, CAM)
    with pytest.raises(ValueError, match="index"):
        Frame(-1, 0.0, img, CAM)
    f = Frame(0, 1, img, CAM, depth=np.ones((24, 32)), pose=np.eye(4)[:3])
    assert f.depth.dtype == np.float32 and f.pose.shape == (4, 4) and f.pose.dtype == np.float64


def test_in_memory_sequence_validation() -> None:
    frames = make_frames(3)
    with pytest.raises(ValueError, match="index"):
        InMemorySequence(frames[1:])
    with pytest.raises(ValueError, match="empty"):
        InMemorySequence([])
    swapped = [
        frames[0],
        Frame(1, frames[0].timestamp - 1, frames[1].image, CAM, frames[1].depth, frames[1].pose),
    ]
    with pytest.raises(ValueError, match="strictly increasing"):
        InMemorySequence(swapped)
    other_cam = PinholeCamera(60, 60, 16, 12, 32, 24)
    with pytest.raises(ValueError, match="camera"):
        InMemorySequence([frames[0], Frame(1, 5e9, frames[1].image, other_cam)])


def test_cached_sequence_reads_each_frame_once_within_its_budget(tmp_path):
    """CachedSequence (training's real frames): the source's frames, timestamps and poses unchanged; a
    frame is read from the source once while the byte budget lasts, every time after it is spent."""
    from banet_vo.data import CachedSequence

    source = open_sequence(write_sequence(InMemorySequence(make_frames(4)), tmp_path / "c"), format="banet")
    reads: list[int] = []
    load = source._load
    source._load = lambda i: reads.append(i) or load(i)
    one = source[0].image.nbytes + source[0].depth.nbytes
    reads.clear()
    cached = CachedSequence(source, max_bytes=2 * one)
    assert len(cached) == 4 and cached.camera == source.camera and cached.has_depth
    np.testing.assert_array_equal(cached.timestamps, source.timestamps)
    np.testing.assert_array_equal(cached.poses, source.poses)
    for _ in range(3):
        for i in range(4):
            frame = cached[i]
            np.testing.assert_array_equal(frame.image, load(i).image)
            np.testing.assert_array_equal(frame.depth, load(i).depth)
    assert reads == [0, 1, 2, 3, 2, 3, 2, 3]  # 0 and 1 fill the budget; 2 and 3 are read each time
    assert cached.cached_bytes == 2 * one
    with pytest.raises(ValueError, match="max_bytes"):
        CachedSequence(source, max_bytes=-1)
    with pytest.raises(ValueError, match="Sequence"):
        CachedSequence([1, 2], max_bytes=10)
