"""KITTI odometry layout: image_0/ (or image_l/, image_2/), calib.txt, optional times.txt and poses.

<seq>/image_0/000000.png ...   left gray camera (image_l/ in some copies; image_2/ = left colour, P2)
<seq>/calib.txt                lines "P0: 12 numbers" (or bare 12-number lines in P0, P1, ... order)
<seq>/times.txt                optional, seconds; missing -> 10 Hz (t = 0.1 n, n: frame number - the first)
<seq>/poses.txt                optional 3x4 camera-to-world per frame; also found at
                               <dataset>/poses/<seq>.txt for the official sequences/NN + poses/NN.txt tree

The poses are camera 0's (KITTI's ground truth is given in the left gray camera's frame). For image_2/
they are moved to camera 2: all rectified cameras share camera 0's orientation, and P2 = K2 [I | t] puts
camera 2's centre at -t in camera 0's frame (t = K2⁻¹ P2[:, 3], about 6 cm along x).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from banet_vo.data.readers._files import (
    FileSequence,
    absolute,
    frame_numbers,
    list_pngs,
    numbered_times,
    read_image,
    read_poses,
    read_times,
    warn_off_centre,
)
from banet_vo.geometry import PinholeCamera

# image folder -> the projection matrix that belongs to it
IMAGE_FOLDERS = {"image_0": "P0", "image_l": "P0", "image_2": "P2"}
KITTI_RATE_HZ = 10.0


def looks_like_kitti(path: Path) -> bool:
    return (path / "calib.txt").is_file() and any((path / d).is_dir() for d in IMAGE_FOLDERS)


def T_cam0_camera(calib: dict[str, np.ndarray], key: str) -> np.ndarray:
    """4×4 pose of the rectified camera with projection calib[key] in rectified camera 0's frame
    (identity for P0): X_key = X_0 + t with t = K⁻¹ P[:, 3], so T_0_key = [I | -(t - t0)]."""

    def offset(P: np.ndarray) -> np.ndarray:
        return np.linalg.solve(P[:, :3], P[:, 3])

    T = np.eye(4)
    reference = offset(calib["P0"]) if "P0" in calib else np.zeros(3)
    T[:3, 3] = -(offset(calib[key]) - reference)
    return T


def read_calib(path: Path) -> dict[str, np.ndarray]:
    """calib.txt -> {"P0": 3x4, ...}. Unlabelled lines of 12 numbers are taken as P0, P1, P2, ... in order."""
    if not path.is_file():
        raise FileNotFoundError(f"calibration file not found: {path}")
    mats: dict[str, np.ndarray] = {}
    unlabelled = 0
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        label, _, rest = line.partition(":")
        if not rest:
            label, rest = f"P{unlabelled}", line
            unlabelled += 1
        try:
            values = np.array(rest.split(), dtype=np.float64)
        except ValueError as err:
            raise ValueError(f"calibration file {path} line {lineno} is not numeric: {err}") from err
        label = label.strip()
        if values.size == 12:
            mats[label] = values.reshape(3, 4)
        elif re.fullmatch(r"P\d+", label):
            # A projection matrix cut short; other entries (R0_rect's 9 numbers) are not ours to read.
            raise ValueError(
                f"calibration file {path} line {lineno}: {label} must have 12 numbers (3x4), "
                f"got {values.size}"
            )
    return mats


class KittiSequence(FileSequence):
    """A KITTI odometry sequence directory (see the module docstring)."""

    def __init__(
        self, path: str | Path, name: str | None = None, poses_path: str | Path | None = None
    ) -> None:
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"sequence directory not found: {path}")
        folder = next((d for d in IMAGE_FOLDERS if (path / d).is_dir()), None)
        if folder is None:
            raise FileNotFoundError(f"no image folder ({', '.join(IMAGE_FOLDERS)}) in {path}")
        images = list_pngs(path / folder)
        if not images:
            raise ValueError(f"no PNG images in {path / folder}")
        calib = read_calib(path / "calib.txt")
        key = IMAGE_FOLDERS[folder]
        if key not in calib:
            raise ValueError(f"calibration file {path / 'calib.txt'} has no {key} (needed for {folder}/)")
        first = read_image(images[0])
        try:
            camera = PinholeCamera.from_projection(calib[key], first.shape[1], first.shape[0])
        except ValueError as err:
            raise ValueError(f"calibration file {path / 'calib.txt'}, {key}: {err}") from err
        warn_off_centre(camera, f"{path / 'calib.txt'} {key}")
        n = len(images)
        numbers = frame_numbers(images)
        if (path / "times.txt").is_file():
            times = read_times(path / "times.txt", n, numbers, line_is_frame=True)
        else:
            times = numbered_times(numbers, n, KITTI_RATE_HZ, path / folder)
        # Absolute, links kept: the official tree's poses/<seq>.txt is found from "." or "07" as from a full
        # path, and beside a sequence folder that is a link; then beside the link's target.
        here = absolute(path)
        if poses_path is None:
            candidates = [path / "poses.txt", here.parent.parent / "poses" / f"{here.name}.txt"]
            there = path.resolve()
            candidates.append(there.parent.parent / "poses" / f"{there.name}.txt")
            poses_path = next((c for c in candidates if c.is_file()), None)
        poses = None if poses_path is None else read_poses(Path(poses_path), n, numbers, line_is_frame=True)
        if poses is not None:
            poses = poses @ T_cam0_camera(calib, key)  # T_w_cam = T_w_cam0 · T_cam0_cam
        super().__init__(name or here.name, images, camera, times, poses)
        self.root = path
