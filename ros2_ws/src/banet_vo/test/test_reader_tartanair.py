"""The TartanAir (v1) reader, and frame order for file names without zero padding.

The shared TartanAir clip was converted from TartanAir's own layout to ours by a stated rule (its README:
T_world_cam = T_world_body R, intrinsics halved about pixel centres). Writing it back out in TartanAir's
layout by the inverse of that rule and reading it with the reader must give the clip's own camera, poses
and depth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from banet_vo.data import open_sequence
from banet_vo.data.readers import detect_format
from banet_vo.data.readers._files import frame_order
from banet_vo.data.readers.tartanair import TartanAirSequence, native_camera
from scipy.spatial.transform import Rotation

FRAMES = 12


@pytest.fixture(scope="module")
def tartanair_clip(shared_data: Path) -> Path:
    return shared_data / "tartanair_hospital_000-188"


def write_native(clip: Path, root: Path, frames: int = FRAMES, with_depth: bool = True) -> Path:
    """The first `frames` frames of our-format `clip` in TartanAir's layout under root/traj."""
    ours = open_sequence(clip)
    traj = root / "traj"
    (traj / "image_left").mkdir(parents=True)
    if with_depth:
        (traj / "depth_left").mkdir()
    # Camera axes (x right, y down, z forward) in the NED body frame, as the clip's README states them.
    R = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    lines = []
    for i in range(frames):
        (traj / "image_left" / f"{i:06d}_left.png").symlink_to(ours.image_paths[i])
        if with_depth:
            np.save(traj / "depth_left" / f"{i:06d}_left_depth.npy", ours[i].depth)
        T = ours.poses[i]
        body = T[:3, :3] @ R.T
        lines.append(" ".join(f"{v:.17g}" for v in [*T[:3, 3], *Rotation.from_matrix(body).as_quat()]))
    (traj / "pose_left.txt").write_text("\n".join(lines) + "\n")
    return traj


def test_native_layout_reads_back_the_clip(tartanair_clip: Path, tmp_path: Path) -> None:
    traj = write_native(tartanair_clip, tmp_path)
    assert detect_format(traj) == "tartanair"
    seq = open_sequence(traj)
    ours = open_sequence(tartanair_clip)
    assert isinstance(seq, TartanAirSequence) and len(seq) == FRAMES
    # No K.txt: TartanAir's 640x480 camera (f 320, centre 320, 240) scaled to 320x240 about pixel centres
    # is the clip's own K.txt (fx 160, cx 159.75, cy 119.75).
    np.testing.assert_allclose(seq.camera.K, ours.camera.K, atol=1e-12)
    np.testing.assert_allclose(seq.poses, ours.poses[:FRAMES], atol=1e-9)
    np.testing.assert_allclose(seq.timestamps, 0.1 * np.arange(FRAMES), atol=1e-12)
    frame, original = seq[7], ours[7]
    np.testing.assert_array_equal(frame.image, original.image)
    np.testing.assert_array_equal(frame.depth, original.depth)


def test_identity_quaternion_faces_north(tmp_path: Path) -> None:
    # The identity quaternion is a level body facing north: the optical axis along world x (north), the
    # image's down along world z (NED's down), its right along world y (east).
    traj = tmp_path / "traj"
    (traj / "image_left").mkdir(parents=True)
    for i in range(2):
        assert cv2.imwrite(str(traj / "image_left" / f"{i:06d}_left.png"), np.full((48, 64, 3), 9, np.uint8))
    # Frame 1: yawed 90 degrees to the east (NED yaw about the down axis), 1 m north.
    yaw = Rotation.from_euler("z", 90, degrees=True).as_quat()
    (traj / "pose_left.txt").write_text("0 0 0 0 0 0 1\n" + "1 0 0 " + " ".join(map(str, yaw)) + "\n")
    seq = open_sequence(traj)
    T0, T1 = seq.poses
    np.testing.assert_allclose(T0[:3, :3].T, [[0, 1, 0], [0, 0, 1], [1, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(T1[:3, 2], [0, 1, 0], atol=1e-12)  # now looking east
    np.testing.assert_allclose(T1[:3, 1], [0, 0, 1], atol=1e-12)  # image down is still world down
    np.testing.assert_allclose(T1[:3, 3], [1, 0, 0], atol=1e-12)
    # Seen from frame 0, frame 1 lies straight ahead (1 m along the optical axis).
    np.testing.assert_allclose((np.linalg.inv(T0) @ T1)[:3, 3], [0, 0, 1], atol=1e-12)
    # 64x48 without K.txt: TartanAir's camera scaled by 0.1 about pixel centres.
    assert seq.camera == native_camera(64, 48)
    assert (seq.camera.fx, seq.camera.cx, seq.camera.cy) == pytest.approx((32.0, 31.55, 23.55))
    assert not seq.has_depth


def test_native_layout_bad_input(tartanair_clip: Path, tmp_path: Path) -> None:
    traj = write_native(tartanair_clip, tmp_path, frames=3)
    lines = (traj / "pose_left.txt").read_text().splitlines()
    lines[1] = "0 0 0 0 0 0 2"
    (traj / "pose_left.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="line 2: the quaternion qx qy qz qw must have unit norm"):
        open_sequence(traj)
    (traj / "pose_left.txt").write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(ValueError, match="has 2 lines but the sequence has 3 images"):
        open_sequence(traj)
    (traj / "pose_left.txt").unlink()
    (traj / "depth_left" / "000001_left_depth.npy").unlink()
    with pytest.raises(ValueError, match=r"one <image name>_depth\.npy per image"):
        open_sequence(traj)
    np.save(traj / "depth_left" / "000001_left_depth.npy", np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="must be a 2-D float array"):
        open_sequence(traj)[1]


def test_npy_depth_invalid_values_read_as_zero(tmp_path: Path) -> None:
    traj = tmp_path / "traj"
    (traj / "image_left").mkdir(parents=True)
    (traj / "depth_left").mkdir()
    assert cv2.imwrite(str(traj / "image_left" / "000000_left.png"), np.zeros((2, 3), np.uint8))
    depth = np.array([[1.5, np.inf, np.nan], [-1.0, 0.0, 1e4]], np.float32)
    np.save(traj / "depth_left" / "000000_left_depth.npy", depth)
    np.testing.assert_array_equal(open_sequence(traj)[0].depth, [[1.5, 0, 0], [0, 0, 1e4]])


def test_unpadded_names_are_read_in_frame_order(tmp_path: Path) -> None:
    # HoloLens layout with frames written as 1.png ... 12.png: by name, 10.png would come after 1.png.
    (tmp_path / "images").mkdir()
    for i in range(1, 13):
        assert cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), np.full((8, 8, 3), i, np.uint8))
    np.savetxt(tmp_path / "K.txt", [[10, 0, 4], [0, 10, 4], [0, 0, 1]])
    seq = open_sequence(tmp_path)
    assert [int(seq[k].image[0, 0, 0]) for k in range(len(seq))] == list(range(1, 13))


def test_frame_order_keys() -> None:
    names = ["frame_10.png", "frame_2.png", "frame_1.png", "a.png", "000012.png", "000003.png"]
    assert sorted(names, key=frame_order) == [
        "000003.png",
        "000012.png",
        "a.png",
        "frame_1.png",
        "frame_2.png",
        "frame_10.png",
    ]
    # Padded alike, the order is the order by name.
    padded = [f"{i:06d}_left.png" for i in (5, 100, 0, 42)]
    assert sorted(padded, key=frame_order) == sorted(padded)
    # Equal numbers written differently stay apart and in a fixed order.
    assert sorted(["1.png", "01.png"], key=frame_order) == ["01.png", "1.png"]
