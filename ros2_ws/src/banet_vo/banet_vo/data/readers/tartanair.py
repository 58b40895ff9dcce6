"""TartanAir (v1) trajectory layout, as the dataset ships it:

    <traj>/image_left/000000_left.png ...        RGB, 640x480, pinhole without distortion
    <traj>/depth_left/000000_left_depth.npy ...  optional, float32 metres along the optical axis
    <traj>/pose_left.txt                         optional, "tx ty tz qx qy qz qw" per frame: the left
                                                 camera's body (x forward, y right, z down) in the NED world
    <traj>/K.txt                                 optional 3x3 intrinsics; without it TartanAir's own
                                                 (fx = fy = 320, cx = 320, cy = 240 at 640x480), scaled to
                                                 the images' size with pixel centres at integer coordinates
No timestamps in this layout: t = 0.1 n, n the frame number from the first (TartanAir has none; its frames
are rendered at a fixed step).
The poses are turned into our optical frame (x right, y down, z forward): T_world_cam = T_world_body R,
R's columns the camera's axes in the body frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from banet_vo.data.readers._files import (
    FileSequence,
    absolute,
    file_lines,
    frame_numbers,
    frame_rows,
    images_at_rate,
    list_frames,
    numbered_times,
    read_image,
    read_K,
    read_table,
)
from banet_vo.data.sequence import check_pose
from banet_vo.geometry import PinholeCamera

IMAGE_FOLDER = "image_left"
DEPTH_FOLDER = "depth_left"
POSES_FILE = "pose_left.txt"
# TartanAir's camera at its native 640x480.
NATIVE_CAMERA = PinholeCamera(320.0, 320.0, 320.0, 240.0, 640, 480)
# Columns: the optical frame's x (right), y (down), z (forward) in the NED body frame.
R_BODY_CAMERA = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def looks_like_tartanair(path: Path) -> bool:
    return (path / IMAGE_FOLDER).is_dir()


def native_camera(width: int, height: int) -> PinholeCamera:
    """TartanAir's intrinsics for images resized to width x height (pixel centres at integers)."""
    return NATIVE_CAMERA.resized(width, height)


def read_ned_poses(path: Path, count: int, numbers: np.ndarray | None = None) -> np.ndarray:
    """pose_left.txt -> (N, 4, 4) camera-to-world poses in the optical frame; `numbers`: the images'
    frame numbers (a line per number when some images are missing)."""
    whole = read_table(path, 7, "poses")
    table, positions = frame_rows(whole, path, "poses", count, numbers)
    lines = file_lines(path, whole, positions)
    norms = np.linalg.norm(table[:, 3:], axis=1)
    bad = np.flatnonzero(~(np.abs(norms - 1.0) < 1e-3))
    if bad.size:
        raise ValueError(
            f"poses file {path} line {lines[bad[0]]}: the quaternion qx qy qz qw must have unit norm, "
            f"got {norms[bad[0]]:.6g}"
        )
    poses = np.tile(np.eye(4), (count, 1, 1))
    poses[:, :3, :3] = Rotation.from_quat(table[:, 3:]).as_matrix() @ R_BODY_CAMERA
    poses[:, :3, 3] = table[:, :3]
    return np.stack([check_pose(T, f"{path} line {n}") for n, T in zip(lines, poses, strict=True)])


class TartanAirSequence(FileSequence):
    """A TartanAir trajectory folder (see the module docstring)."""

    def __init__(self, path: str | Path, name: str | None = None, rate_hz: float = 10.0) -> None:
        path = Path(path)
        images = images_at_rate(path, IMAGE_FOLDER, rate_hz)
        depths = None
        if (path / DEPTH_FOLDER).is_dir():
            depths = list_frames(path / DEPTH_FOLDER, ".npy")
            expected = [p.stem + "_depth.npy" for p in images]
            if [p.name for p in depths] != expected:
                raise ValueError(
                    f"depth folder {path / DEPTH_FOLDER} must hold one <image name>_depth.npy per image "
                    f"({len(depths)} .npy files for {len(images)} images)"
                )
        first = read_image(images[0])
        height, width = first.shape[:2]
        if (path / "K.txt").is_file():
            camera = read_K(path / "K.txt", width, height)
        else:
            camera = native_camera(width, height)
        n = len(images)
        numbers = frame_numbers(images)
        poses = read_ned_poses(path / POSES_FILE, n, numbers) if (path / POSES_FILE).is_file() else None
        times = numbered_times(numbers, n, rate_hz, path / IMAGE_FOLDER)
        super().__init__(name or absolute(path).name, images, camera, times, poses, depths)
        self.root = path
