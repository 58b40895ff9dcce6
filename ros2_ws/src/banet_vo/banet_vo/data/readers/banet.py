"""Our own sequence format (docs/data-format.md): read and write.

images/NNNNNN.png   8-bit gray or RGB, numbered 000000.. without gaps
depth/NNNNNN.png    optional, uint16 millimetres along z, 0 = invalid
K.txt               3x3 intrinsics
times.txt           one timestamp (seconds) per frame, strictly increasing
poses.txt           optional, one camera-to-world pose per frame, 3x4 row-major, metres (KITTI style)
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from banet_vo.data.readers._files import (
    DEPTH_SCALE_MM,
    FileSequence,
    absolute,
    list_pngs,
    read_image,
    read_K,
    read_poses,
    read_times,
    write_image,
)
from banet_vo.data.sequence import Frame

log = logging.getLogger(__name__)

NAME_DIGITS = 6
# uint16 millimetres cannot hold more than this.
MAX_DEPTH_M = 65.535


def frame_file_name(i: int) -> str:
    return f"{i:0{NAME_DIGITS}d}.png"


def looks_like_banet(path: Path) -> bool:
    return (path / "images").is_dir() and (path / "K.txt").is_file() and (path / "times.txt").is_file()


class BanetSequence(FileSequence):
    """A sequence stored in our format (see the module docstring)."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"sequence directory not found: {path}")
        images = list_pngs(path / "images")
        if not images:
            raise ValueError(f"no PNG images in {path / 'images'}")
        expected = [frame_file_name(i) for i in range(len(images))]
        names = [p.name for p in images]
        if names != expected:
            bad = next(k for k, (a, b) in enumerate(zip(names, expected, strict=True)) if a != b)
            raise ValueError(
                f"images in {path / 'images'} must be named {expected[0]}, {frame_file_name(1)}, ... without "
                f"gaps; found {names[bad]} where {expected[bad]} was expected"
            )
        depths = None
        if (path / "depth").is_dir():
            depth_files = list_pngs(path / "depth")
            if [p.name for p in depth_files] != names:
                raise ValueError(
                    f"depth folder {path / 'depth'} must hold one PNG per image with the same names "
                    f"({len(depth_files)} depth files for {len(names)} images)"
                )
            depths = depth_files
        first = read_image(images[0])
        camera = read_K(path / "K.txt", first.shape[1], first.shape[0])
        times = read_times(path / "times.txt", len(images))
        poses = read_poses(path / "poses.txt", len(images)) if (path / "poses.txt").is_file() else None
        super().__init__(name or absolute(path).name, images, camera, times, poses, depths, DEPTH_SCALE_MM)
        self.root = path


def _format_row(values: np.ndarray) -> str:
    # repr of a Python float is the shortest string that reads back to the same float64: exact round trip.
    return " ".join(repr(float(v)) for v in np.asarray(values).reshape(-1))


def _depth_to_mm(depth: np.ndarray, what: str) -> np.ndarray:
    too_far = depth > MAX_DEPTH_M + 0.0005
    if np.any(too_far):
        raise ValueError(
            f"{what} has {int(too_far.sum())} pixels beyond {MAX_DEPTH_M} m, which uint16 millimetres cannot "
            f"store; set them to 0 (invalid) or rescale the scene before writing"
        )
    return np.rint(depth.astype(np.float64) * DEPTH_SCALE_MM).astype(np.uint16)


# What a sequence in our format consists of: only these are replaced, anything else in the folder stays.
SEQUENCE_ENTRIES = ("images", "depth", "K.txt", "times.txt", "poses.txt")


def _existing_sequence(out_dir: Path, overwrite: bool) -> list[str]:
    """Our entries already in out_dir; FileExistsError when there are some and overwrite is off."""
    existing = [name for name in SEQUENCE_ENTRIES if (out_dir / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds a sequence ({', '.join(existing)}); pass overwrite=True"
        )
    return existing


def _swap_in(staged: Path, out_dir: Path, existing: list[str]) -> None:
    """Put the complete sequence in `staged` in place of the one in out_dir (renames on one file system):
    the old entries are set aside first and deleted only once every new one is in; if a rename fails, the
    old sequence is put back."""
    out_dir.mkdir(parents=True, exist_ok=True)
    aside = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    new = [p.name for p in staged.iterdir()]
    try:
        for name in existing:
            (out_dir / name).rename(aside / name)
        for name in new:
            (staged / name).rename(out_dir / name)
    except OSError:
        for name in new:
            if (out_dir / name).exists() and not (staged / name).exists():
                (out_dir / name).rename(staged / name)
        for name in existing:
            if (aside / name).exists():
                (aside / name).rename(out_dir / name)
        aside.rmdir()  # empty once all is back; should a rename back fail, the old files stay in it
        raise
    shutil.rmtree(aside)


def _write_frames(frames: Iterable[Frame], folder: Path) -> int:
    """Write the sequence files of `frames` into the empty `folder`; returns the number of frames."""
    (folder / "images").mkdir()
    camera = None
    times: list[float] = []
    poses: list[np.ndarray] = []
    has_pose = has_depth = None
    for k, frame in enumerate(frames):
        if not isinstance(frame, Frame):
            raise ValueError(f"frames[{k}] must be a Frame, got {type(frame).__name__}")
        if camera is None:
            camera, has_pose, has_depth = frame.camera, frame.pose is not None, frame.depth is not None
            if has_depth:
                (folder / "depth").mkdir()
        elif frame.camera != camera:
            raise ValueError(f"frames[{k}].camera {frame.camera} differs from frames[0].camera {camera}")
        if (frame.pose is not None) != has_pose:
            raise ValueError(f"frames[{k}].pose: poses must be given for all frames or none")
        if (frame.depth is not None) != has_depth:
            raise ValueError(f"frames[{k}].depth: depth must be given for all frames or none")
        if times and frame.timestamp <= times[-1]:
            raise ValueError(
                f"frames[{k}].timestamp {frame.timestamp} is not after the previous one {times[-1]}"
            )
        write_image(folder / "images" / frame_file_name(k), frame.image)
        if has_depth:
            write_image(
                folder / "depth" / frame_file_name(k), _depth_to_mm(frame.depth, f"frames[{k}].depth")
            )
        times.append(frame.timestamp)
        if has_pose:
            poses.append(frame.pose)
    if camera is None:
        raise ValueError("frames must not be empty")
    (folder / "K.txt").write_text("\n".join(_format_row(row) for row in camera.K) + "\n")
    (folder / "times.txt").write_text("\n".join(repr(float(t)) for t in times) + "\n")
    if has_pose:
        (folder / "poses.txt").write_text("\n".join(_format_row(p[:3]) for p in poses) + "\n")
    return len(times)


def write_sequence(frames: Iterable[Frame], out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write frames (any iterable, e.g. a Sequence) in our format; returns the directory.

    Frames are numbered by their position in the iterable. All frames must share one camera; poses and
    depth must be present for all frames or for none. Images are streamed to disk one at a time.
    """
    out_dir = Path(out_dir)
    source_root = getattr(frames, "root", None)
    if source_root is not None and Path(source_root).resolve() == out_dir.resolve():
        raise ValueError(f"out_dir {out_dir} is the directory the frames are read from; write elsewhere")
    existing = _existing_sequence(out_dir, overwrite)
    # Written beside out_dir and swapped in when complete: a frame refused half-way (or a crash) leaves
    # the old sequence readable instead of half deleted.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.writing-", dir=out_dir.parent))
    try:
        count = _write_frames(frames, staged)
        _swap_in(staged, out_dir, existing)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    log.info("wrote %d frames to %s", count, out_dir)
    return out_dir
