"""Shared file handling for the readers: image/depth PNG decoding, text tables, a file-backed Sequence."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import cv2
import numpy as np

from banet_vo.data.sequence import Frame, Sequence, check_pose, check_timestamps
from banet_vo.geometry import PinholeCamera

log = logging.getLogger(__name__)

# uint16 depth PNGs: 1000 units per metre (millimetres; our format, HoloLens), 5000 per metre for TUM.
DEPTH_SCALE_MM = 1000.0
DEPTH_SCALE_TUM = 5000.0


def read_image(path: Path) -> np.ndarray:
    """An 8-bit image file as H×W (gray) or H×W×3 (RGB order) uint8; alpha is dropped."""
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"image file {path} could not be decoded")
    if image.dtype != np.uint8:
        raise ValueError(f"image file {path} must be 8-bit, got {image.dtype}")
    if image.ndim == 3:
        if image.shape[2] == 1:
            return image[:, :, 0]
        code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        return cv2.cvtColor(image, code)
    return image


def write_image(path: Path, image: np.ndarray) -> None:
    """Write an H×W or H×W×3 (RGB) uint8 image; PNG is lossless."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write image file {path}")


def read_depth(path: Path, units_per_metre: float) -> np.ndarray:
    """A uint16 depth PNG (0 = invalid) as float32 metres; a .npy file holds float metres already
    (TartanAir), where anything not finite and positive reads as invalid (0)."""
    if not path.is_file():
        raise FileNotFoundError(f"depth file not found: {path}")
    if path.suffix.lower() == ".npy":
        try:
            depth = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"depth file {path} could not be read as a numpy array: {err}") from err
        if depth.ndim != 2 or depth.dtype.kind != "f":
            raise ValueError(f"depth file {path} must be a 2-D float array, got {depth.dtype} {depth.shape}")
        depth = depth.astype(np.float32)
        depth[~(np.isfinite(depth) & (depth > 0))] = 0.0
        return depth
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f"depth file {path} could not be decoded")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"depth file {path} must be single-channel uint16, got {raw.dtype} {raw.shape}")
    return (raw.astype(np.float32) / np.float32(units_per_metre)).astype(np.float32)


def read_table(path: Path, columns: int | tuple[int, ...], what: str) -> np.ndarray:
    """A whitespace-separated numeric text file ('#' comments) as a float64 (rows, columns) array."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        table = np.loadtxt(path, dtype=np.float64, comments="#", ndmin=2)
    except ValueError as err:
        raise ValueError(f"{what} file {path} is not a numeric table: {err}") from err
    allowed = (columns,) if isinstance(columns, int) else columns
    if table.size and table.shape[1] not in allowed:
        raise ValueError(
            f"{what} file {path} must have {' or '.join(map(str, allowed))} columns per line, "
            f"got {table.shape[1]}"
        )
    return table


def read_K(path: Path, width: int, height: int) -> PinholeCamera:
    """A 3x3 intrinsic matrix file (K.txt)."""
    values = read_table(path, (3, 9), "intrinsics").reshape(-1)
    if values.size != 9:
        raise ValueError(f"intrinsics file {path} must hold a 3x3 matrix (9 numbers), got {values.size}")
    try:
        camera = PinholeCamera.from_K(values, width, height)
    except ValueError as err:
        raise ValueError(f"intrinsics file {path}: {err}") from err
    warn_off_centre(camera, str(path))
    return camera


def warn_off_centre(camera: PinholeCamera, source: str) -> None:
    """Log a warning when the principal point lies outside the middle half of the image: a K that is for
    another resolution of the camera (a real lens puts it within a few per cent of the centre)."""
    dx = abs(camera.cx - (camera.width - 1) / 2) / camera.width
    dy = abs(camera.cy - (camera.height - 1) / 2) / camera.height
    if dx > 0.25 or dy > 0.25:
        log.warning(
            "%s: the principal point (%.1f, %.1f) lies far from the centre of the %dx%d images: is this K "
            "for another resolution?",
            source,
            camera.cx,
            camera.cy,
            camera.width,
            camera.height,
        )


def file_lines(path: Path, table: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The 1-based line numbers in `path` (blank and '#' lines counted, as an editor shows them) of the
    rows of read_table's `table` at 1-based `positions` (frame_rows' second value)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = np.array([n for n, line in enumerate(f, 1) if line.split("#", 1)[0].strip()], dtype=np.int64)
    return lines[positions - 1] if len(lines) == len(table) else positions


def frame_rows(
    table: np.ndarray,
    path: Path,
    what: str,
    count: int,
    numbers: np.ndarray | None,
    line_is_frame: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, their 1-based positions among the table's rows) of a one-line-per-frame table that
    belong to the sequence's `count` frames. When images are missing from a numbered folder
    (`frame_numbers`) and the table has a line for every number from the first to the last, the lines of
    the frames that are there (each row keeps its own frame). `line_is_frame`: the table may be a whole
    recording's file whose line k is frame k (KITTI's poses/NN.txt and times.txt beside a cut of its
    images): the lines of the images' numbers."""
    if len(table) == count:
        return table, np.arange(1, count + 1)
    if numbers is not None and len(numbers) == count:
        span = int(numbers[-1] - numbers[0]) + 1
        if line_is_frame and len(table) > numbers[-1] and len(table) != span:
            log.info(
                "%s file %s: %d lines, one per frame of the whole recording; the lines of frames %d-%d are "
                "the images'",
                what,
                path,
                len(table),
                numbers[0],
                numbers[-1],
            )
            return table[numbers], numbers + 1
        if len(table) == span:
            log.warning(
                "%s file %s: %d frames between %d and %d have no image; their lines are left out",
                what,
                path,
                span - count,
                numbers[0],
                numbers[-1],
            )
            return table[numbers - numbers[0]], numbers - numbers[0] + 1
        if span != count:
            gaps = np.flatnonzero(np.diff(numbers) > 1)
            missing = ", ".join(
                f"{numbers[g] + 1}" + ("" if numbers[g + 1] == numbers[g] + 2 else f"-{numbers[g + 1] - 1}")
                for g in gaps[:5]
            )
            raise ValueError(
                f"{what} file {path} has {len(table)} lines but the sequence has {count} images "
                f"(frames {missing} are missing from the numbered images)"
            )
    raise ValueError(f"{what} file {path} has {len(table)} lines but the sequence has {count} images")


def read_poses(
    path: Path, count: int, numbers: np.ndarray | None = None, line_is_frame: bool = False
) -> np.ndarray:
    """Camera-to-world poses, one per line as 12 (3x4) or 16 (4x4) row-major numbers -> (N, 4, 4);
    `numbers`, `line_is_frame`: the images' frame numbers and how lines map to them (`frame_rows`)."""
    table = read_table(path, (12, 16), "poses")
    rows, positions = frame_rows(table, path, "poses", count, numbers, line_is_frame)
    rows = zip(file_lines(path, table, positions), rows, strict=True)
    return np.stack([check_pose(row.reshape(-1, 4), f"{path} line {n}") for n, row in rows])


def read_times(
    path: Path, count: int, numbers: np.ndarray | None = None, line_is_frame: bool = False
) -> np.ndarray:
    """One timestamp (seconds) per line -> (N,), strictly increasing; `numbers`, `line_is_frame` as for
    read_poses."""
    table, _ = frame_rows(read_table(path, 1, "times"), path, "times", count, numbers, line_is_frame)
    return check_timestamps(table[:, 0], str(path))


# Frame numbers have at most this many digits; longer leading runs are stamps (Unix seconds have 10,
# milli- to nanoseconds 13-19) and name no frame.
MAX_FRAME_NUMBER_DIGITS = 8


def frame_numbers(paths: list[Path]) -> np.ndarray | None:
    """The number each file name starts with (000015.png, 000015_left.png: 15) when every name has one of
    at most MAX_FRAME_NUMBER_DIGITS digits and they increase; else None."""
    numbers = []
    for p in paths:
        found = re.match(r"\d+", p.stem)
        if found is None or len(found.group().lstrip("0")) > MAX_FRAME_NUMBER_DIGITS:
            return None
        numbers.append(int(found.group()))
    out = np.asarray(numbers, dtype=np.int64)
    return out if np.all(np.diff(out) > 0) else None


def numbered_times(numbers: np.ndarray | None, count: int, rate_hz: float, folder: Path) -> np.ndarray:
    """Stamps for a layout without timestamps, from the `count` images' `frame_numbers`: t = (frame
    number - the first's) / rate, so that a frame missing from a numbered folder leaves its gap (counting
    positions would stamp every later frame early); t = i / rate for names without numbers (None)."""
    if numbers is None:
        return default_times(count, rate_hz)
    missing = int(numbers[-1] - numbers[0]) + 1 - len(numbers)
    if missing:
        log.warning(
            "%s: %d frame numbers missing between %d and %d", folder, missing, numbers[0], numbers[-1]
        )
    return (numbers - numbers[0]).astype(np.float64) / rate_hz


def default_times(count: int, rate_hz: float = 10.0) -> np.ndarray:
    """t = i / rate for sequences shipped without timestamps."""
    return np.arange(count, dtype=np.float64) / rate_hz


def absolute(path: Path) -> Path:
    """The path made absolute with "." and ".." taken out, links kept (Path.resolve would follow a
    linked folder to its target, whose name and neighbours are not the ones the user gave)."""
    return Path(os.path.abspath(path))


def frame_order(name: str) -> tuple:
    """Sort key putting numbered file names in numeric order: 2.png before 10.png (frames written
    without zero padding), and the same order as by name when the numbers are padded alike."""
    # re.split with a capturing group alternates text and digit runs, so the keys of any two names
    # compare text with text and digit runs with digit runs; the name itself breaks ties such as 01 / 1.
    # A run right after "<digits>." is a fraction (1305031102.2 before 1305031102.175304): compared as
    # text. Not one after "frame." or "img.": frame.2.png comes before frame.10.png.
    parts = re.split(r"(\d+)", name)
    key = tuple(
        part if k % 2 == 0 else ((1, part) if k >= 3 and parts[k - 1] == "." else (0, int(part)))
        for k, part in enumerate(parts)
    )
    return key, name


def list_frames(folder: Path, suffix: str = ".png") -> list[Path]:
    """The files with this suffix in a folder, in frame order (`frame_order`)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = [p for p in folder.iterdir() if p.suffix.lower() == suffix and p.is_file()]
    return sorted(files, key=lambda p: frame_order(p.name))


def images_at_rate(path: Path, folder: str, rate_hz: float) -> list[Path]:
    """The PNG images of a layout without timestamps (`folder` under the sequence directory `path`), in
    frame order, after checking the directory and the rate its stamps will be made at."""
    if not path.is_dir():
        raise FileNotFoundError(f"sequence directory not found: {path}")
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be positive, got {rate_hz}")
    images = list_pngs(path / folder)
    if not images:
        raise ValueError(f"no PNG images in {path / folder}")
    return images


def list_pngs(folder: Path) -> list[Path]:
    """The *.png files in a folder, in frame order (`frame_order`)."""
    return list_frames(folder, ".png")


class FileSequence(Sequence):
    """A sequence of image files (plus optional depth files) with timestamps/poses held in memory."""

    def __init__(
        self,
        name: str,
        image_paths: list[Path],
        camera: PinholeCamera,
        timestamps: np.ndarray,
        poses: np.ndarray | None = None,
        depth_paths: list[Path] | None = None,
        depth_units_per_metre: float = DEPTH_SCALE_MM,
        timestamps_ns: np.ndarray | None = None,
    ) -> None:
        n = len(image_paths)
        if n == 0:
            raise ValueError(f"sequence {name!r} has no images")
        if len(timestamps) != n:
            raise ValueError(f"sequence {name!r}: {len(timestamps)} timestamps for {n} images")
        if poses is not None and poses.shape != (n, 4, 4):
            raise ValueError(f"sequence {name!r}: poses must have shape {(n, 4, 4)}, got {poses.shape}")
        if depth_paths is not None and len(depth_paths) != n:
            raise ValueError(f"sequence {name!r}: {len(depth_paths)} depth files for {n} images")
        if timestamps_ns is not None and len(timestamps_ns) != n:
            raise ValueError(f"sequence {name!r}: {len(timestamps_ns)} nanosecond stamps for {n} images")
        self.name = name
        self._images = list(image_paths)
        self._depths = None if depth_paths is None else list(depth_paths)
        self._camera = camera
        self._timestamps = check_timestamps(timestamps, f"sequence {name!r}")
        self._poses = None if poses is None else np.asarray(poses, dtype=np.float64)
        self._depth_scale = depth_units_per_metre
        self._timestamps_ns = None if timestamps_ns is None else np.asarray(timestamps_ns, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._images)

    def _load(self, i: int) -> Frame:
        image = read_image(self._images[i])
        cam = self._camera
        if image.shape[:2] != (cam.height, cam.width):
            raise ValueError(
                f"image file {self._images[i]} is {image.shape[1]}x{image.shape[0]}, "
                f"expected {cam.width}x{cam.height} like the rest of the sequence"
            )
        depth = None
        if self._depths is not None:
            depth = read_depth(self._depths[i], self._depth_scale)
            if depth.shape != image.shape[:2]:
                raise ValueError(
                    f"depth file {self._depths[i]} is {depth.shape[1]}x{depth.shape[0]}, "
                    f"but its image is {image.shape[1]}x{image.shape[0]}"
                )
        pose = None if self._poses is None else self._poses[i].copy()
        return Frame(i, float(self._timestamps[i]), image, cam, depth, pose)

    @property
    def camera(self) -> PinholeCamera:
        return self._camera

    @property
    def timestamps_ns(self) -> np.ndarray | None:
        """The frames' times as the source stores them, integer nanoseconds (EuRoC, TUM), or None when it
        stores seconds: float seconds near 1.4e9 s (a Unix time) are ~240 ns apart, too coarse for them."""
        return None if self._timestamps_ns is None else self._timestamps_ns.copy()

    @property
    def has_depth(self) -> bool:
        return self._depths is not None

    @property
    def image_paths(self) -> list[Path]:
        return list(self._images)
