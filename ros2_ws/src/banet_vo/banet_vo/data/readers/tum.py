"""TUM RGB-D layout, with rgb/depth/ground-truth association by nearest timestamp.

    <seq>/rgb.txt           "timestamp path" per line ('#' comments), paths relative to <seq>
    <seq>/depth.txt         optional, same form; uint16 PNGs, 5000 units per metre, 0 = invalid
    <seq>/groundtruth.txt   optional, "timestamp tx ty tz qx qy qz qw" (camera-to-world, metres)
    <seq>/K.txt             optional 3x3 intrinsics; otherwise the published values for freiburg1/2/3
                            chosen from the directory name, or pass camera=...
Each rgb frame is kept only if every stream present has a sample within `tolerance` seconds. Depth is
matched one-to-one (closest pairs first); ground truth is the nearest sample.
"""

from __future__ import annotations

import decimal
import logging
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from banet_vo.data.readers._files import (
    DEPTH_SCALE_TUM,
    FileSequence,
    absolute,
    read_image,
    read_K,
    read_table,
)
from banet_vo.data.sequence import check_timestamps
from banet_vo.geometry import PinholeCamera

log = logging.getLogger(__name__)

# Published intrinsics of the TUM RGB-D cameras (fx, fy, cx, cy) at 640x480 (the fr1/fr2 images are
# not undistorted; their distortion is small and ignored here).
FREIBURG_INTRINSICS = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
}
DEFAULT_TOLERANCE_S = 0.02


def looks_like_tum(path: Path) -> bool:
    return (path / "rgb.txt").is_file()


# Stamps are seconds since an epoch; beyond this (year ~5138) they do not fit int64 nanoseconds' use here.
MAX_STAMP_S = 1e11


def read_file_list(path: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """A TUM "timestamp path" list -> (timestamps (N,) in seconds, paths, the same stamps in integer
    nanoseconds read from their decimal text), timestamps strictly increasing. The nanoseconds are exact:
    float seconds near 1.3e9 s are ~240 ns apart, so 1305031102.175304 would reach a bag as ...175303936."""
    if not path.is_file():
        raise FileNotFoundError(f"file list not found: {path}")
    stamps, names, stamps_ns = [], [], []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)  # the path may hold spaces (a user's own recording)
        if len(parts) < 2:
            raise ValueError(f"file list {path} line {lineno}: expected 'timestamp path', got {line!r}")
        try:
            seconds = float(parts[0])
            if not 0.0 <= seconds < MAX_STAMP_S:  # NaN, inf and the absurd have no nanoseconds
                raise ValueError(f"not a time in seconds between 0 and {MAX_STAMP_S:g}")
            stamps.append(seconds)
            stamps_ns.append(int((decimal.Decimal(parts[0]) * 1_000_000_000).to_integral_value()))
        except (ValueError, decimal.InvalidOperation) as err:
            raise ValueError(f"file list {path} line {lineno}: bad timestamp {parts[0]!r} ({err})") from err
        names.append(parts[1])
    if not names:
        raise ValueError(f"file list {path} lists no files")
    return check_timestamps(np.array(stamps), str(path)), names, np.array(stamps_ns, dtype=np.int64)


def nearest(sorted_stamps: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the index of the nearest stamp and the absolute time difference."""
    right = np.clip(np.searchsorted(sorted_stamps, queries), 0, len(sorted_stamps) - 1)
    left = np.clip(right - 1, 0, len(sorted_stamps) - 1)
    use_left = np.abs(queries - sorted_stamps[left]) <= np.abs(sorted_stamps[right] - queries)
    index = np.where(use_left, left, right)
    return index, np.abs(sorted_stamps[index] - queries)


def match_one_to_one(a: np.ndarray, b: np.ndarray, tolerance: float) -> np.ndarray:
    """For each stamp in a, the index into b it is paired with (-1 if none); closest pairs are taken first."""
    pairs = []
    for i, t in enumerate(a):
        lo, hi = np.searchsorted(b, t - tolerance, "left"), np.searchsorted(b, t + tolerance, "right")
        pairs.extend((abs(b[j] - t), i, j) for j in range(lo, hi))
    match = np.full(len(a), -1, dtype=np.int64)
    used_b = np.zeros(len(b), dtype=bool)
    for _, i, j in sorted(pairs):
        if match[i] < 0 and not used_b[j]:
            match[i], used_b[j] = j, True
    return match


def camera_for(path: Path, width: int, height: int) -> PinholeCamera:
    if (path / "K.txt").is_file():
        return read_K(path / "K.txt", width, height)
    for key, (fx, fy, cx, cy) in FREIBURG_INTRINSICS.items():
        if key in absolute(path).name or key in path.resolve().name:  # "." or a link names it too
            return PinholeCamera(fx, fy, cx, cy, 640, 480).resized(width, height)
    raise ValueError(
        f"no intrinsics for TUM sequence {path}: add K.txt, pass camera=..., or keep 'freiburg1/2/3' in the "
        "directory name"
    )


class TumSequence(FileSequence):
    """A TUM RGB-D sequence directory (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        name: str | None = None,
        tolerance: float = DEFAULT_TOLERANCE_S,
        camera: PinholeCamera | None = None,
    ) -> None:
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"sequence directory not found: {path}")
        if not tolerance > 0:
            raise ValueError(f"tolerance must be positive seconds, got {tolerance}")
        rgb_t, rgb_names, rgb_ns = read_file_list(path / "rgb.txt")
        keep = np.ones(len(rgb_t), dtype=bool)
        depth_index = gt_index = None
        if (path / "depth.txt").is_file():
            depth_t, depth_names, _ = read_file_list(path / "depth.txt")
            depth_index = match_one_to_one(rgb_t, depth_t, tolerance)
            keep &= depth_index >= 0
        if (path / "groundtruth.txt").is_file():
            gt = read_table(path / "groundtruth.txt", 8, "groundtruth")
            if len(gt) == 0:
                raise ValueError(f"groundtruth file {path / 'groundtruth.txt'} is empty")
            gt_t = check_timestamps(gt[:, 0], str(path / "groundtruth.txt"))
            gt_index, gap = nearest(gt_t, rgb_t)
            keep &= gap <= tolerance
        if not keep.any():
            raise ValueError(
                f"no rgb frame in {path / 'rgb.txt'} has depth/ground truth within {tolerance} s"
            )
        if not keep.all():  # said, not whispered: a benchmark on a third of the frames still looks valid
            log.warning(
                "%s: %d of %d rgb frames left out: no depth / ground truth within %s s of them (ground truth "
                "sparser than the camera, or gaps; a larger tolerance= keeps more)",
                path,
                (~keep).sum(),
                len(keep),
                tolerance,
            )
        kept = np.flatnonzero(keep)
        images = [path / rgb_names[k] for k in kept]
        depths = None if depth_index is None else [path / depth_names[depth_index[k]] for k in kept]
        poses = None
        if gt_index is not None:
            rows = gt[gt_index[kept]]
            quat = rows[:, 4:8]
            norms = np.linalg.norm(quat, axis=1)
            if np.any(np.abs(norms - 1.0) > 1e-2):
                raise ValueError(f"groundtruth file {path / 'groundtruth.txt'} has non-unit quaternions")
            poses = np.tile(np.eye(4), (len(kept), 1, 1))
            poses[:, :3, :3] = Rotation.from_quat(quat).as_matrix()  # scalar-last: qx qy qz qw
            poses[:, :3, 3] = rows[:, 1:4]
        first = read_image(images[0])
        if camera is None:
            camera = camera_for(path, first.shape[1], first.shape[0])
        elif camera.size != (first.shape[1], first.shape[0]):
            raise ValueError(
                f"camera size {camera.size} does not match the images ({first.shape[1]}x{first.shape[0]})"
            )
        name = name or absolute(path).name
        super().__init__(
            name, images, camera, rgb_t[kept], poses, depths, DEPTH_SCALE_TUM, timestamps_ns=rgb_ns[kept]
        )
        self.root = path
