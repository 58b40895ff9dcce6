"""HoloLens / DeepVideoMVS scene layout.

    <scene>/images/*.png   RGB, undistorted; frame order = sorted file names
    <scene>/depth/*.png    optional, uint16 millimetres along z, 0 = invalid, same names as images
    <scene>/poses.txt      optional, one flattened 4x4 camera-to-world per line, metres
    <scene>/K.txt          3x3 intrinsics
No timestamps in this layout: t = 0.1 n, n the file's frame number from the first (the source records at
roughly 5-10 Hz), so a missing frame keeps its gap.
"""

from __future__ import annotations

from pathlib import Path

from banet_vo.data.readers._files import (
    DEPTH_SCALE_MM,
    FileSequence,
    absolute,
    frame_numbers,
    images_at_rate,
    list_pngs,
    numbered_times,
    read_image,
    read_K,
    read_poses,
)


def looks_like_hololens(path: Path) -> bool:
    return (path / "images").is_dir() and (path / "K.txt").is_file() and not (path / "times.txt").exists()


class HoloLensSequence(FileSequence):
    """A DeepVideoMVS-style scene directory (see the module docstring)."""

    def __init__(self, path: str | Path, name: str | None = None, rate_hz: float = 10.0) -> None:
        path = Path(path)
        images = images_at_rate(path, "images", rate_hz)
        depths = None
        if (path / "depth").is_dir():
            depths = list_pngs(path / "depth")
            if [p.name for p in depths] != [p.name for p in images]:
                raise ValueError(
                    f"depth folder {path / 'depth'} must hold one PNG per image with the same names "
                    f"({len(depths)} depth files for {len(images)} images)"
                )
        first = read_image(images[0])
        camera = read_K(path / "K.txt", first.shape[1], first.shape[0])
        n = len(images)
        numbers = frame_numbers(images)
        poses = read_poses(path / "poses.txt", n, numbers) if (path / "poses.txt").is_file() else None
        times = numbered_times(numbers, n, rate_hz, path / "images")
        super().__init__(name or absolute(path).name, images, camera, times, poses, depths, DEPTH_SCALE_MM)
        self.root = path
