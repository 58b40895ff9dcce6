"""Frames and sequences: the one API every reader, the synthetic world and the bag tools share.

A `Sequence` is random access and lazy: readers keep file paths and the small text files (times, poses,
intrinsics) in memory and decode an image only when a frame is asked for. Conventions: docs/CONVENTIONS.md
(camera-to-world poses, z-depth in metres with 0 = invalid, float seconds).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator
from collections.abc import Sequence as AbcSequence
from dataclasses import dataclass

import numpy as np

from banet_vo.geometry import PinholeCamera

# Tolerance on R^T R = I for poses read from text files (KITTI/HoloLens store ~6-7 significant digits).
_ROTATION_TOL = 1e-3


@dataclass(frozen=True, eq=False)
class Frame:
    """One camera frame: image, intrinsics, optional z-depth and optional camera-to-world pose."""

    index: int
    timestamp: float  # seconds
    image: np.ndarray  # H×W uint8 (gray) or H×W×3 uint8 (RGB)
    camera: PinholeCamera  # matches the image size
    depth: np.ndarray | None = None  # H×W float32 metres along z, 0 = invalid
    pose: np.ndarray | None = None  # 4×4 float64 camera-to-world

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int | np.integer) or self.index < 0:
            raise ValueError(f"frame index must be a non-negative int, got {self.index!r}")
        object.__setattr__(self, "index", int(self.index))
        timestamp = float(self.timestamp)
        if not math.isfinite(timestamp):
            raise ValueError(f"frame {self.index}: timestamp must be finite, got {self.timestamp}")
        object.__setattr__(self, "timestamp", timestamp)
        if not isinstance(self.camera, PinholeCamera):
            raise ValueError(f"frame {self.index}: camera must be a PinholeCamera, got {type(self.camera)}")
        check_image(self.image, self.camera, f"frame {self.index} image")
        if self.depth is not None:
            object.__setattr__(
                self, "depth", check_depth(self.depth, self.camera, f"frame {self.index} depth")
            )
        if self.pose is not None:
            object.__setattr__(self, "pose", check_pose(self.pose, f"frame {self.index} pose"))

    @property
    def is_rgb(self) -> bool:
        return self.image.ndim == 3


def check_image(image: np.ndarray, camera: PinholeCamera, what: str) -> None:
    """Raise ValueError unless `image` is H×W or H×W×3 uint8 of the camera's size."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(image)}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8, got {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"{what} must be H×W (gray) or H×W×3 (RGB), got shape {image.shape}")
    if image.shape[:2] != (camera.height, camera.width):
        raise ValueError(
            f"{what} is {image.shape[1]}x{image.shape[0]} but the camera is {camera.width}x{camera.height}"
        )


def check_depth(depth: np.ndarray, camera: PinholeCamera, what: str) -> np.ndarray:
    """Validate a z-depth map (finite, >= 0, camera size) and return it as float32."""
    if not isinstance(depth, np.ndarray) or not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(f"{what} must be a float numpy array, got {getattr(depth, 'dtype', type(depth))}")
    if depth.shape != (camera.height, camera.width):
        raise ValueError(f"{what} must have shape {(camera.height, camera.width)}, got {depth.shape}")
    depth = depth.astype(np.float32, copy=False)
    if not np.all(np.isfinite(depth)):
        raise ValueError(f"{what} has non-finite values (use 0 for invalid pixels, not NaN/inf)")
    if np.any(depth < 0):
        raise ValueError(f"{what} has negative values (use 0 for invalid pixels)")
    return depth


def check_pose(pose: np.ndarray, what: str) -> np.ndarray:
    """Validate a 4×4 rigid transform (3×4 accepted) and return it as 4×4 float64."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape == (3, 4):
        pose = np.vstack([pose, [0.0, 0.0, 0.0, 1.0]])
    if pose.shape != (4, 4):
        raise ValueError(f"{what} must be 4x4 (or 3x4), got shape {pose.shape}")
    if not np.all(np.isfinite(pose)):
        raise ValueError(f"{what} has non-finite values")
    if not np.allclose(pose[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise ValueError(f"{what} last row must be [0 0 0 1], got {pose[3]}")
    rotation = pose[:3, :3]
    error = np.abs(rotation.T @ rotation - np.eye(3)).max()
    if error > _ROTATION_TOL or np.linalg.det(rotation) <= 0:
        raise ValueError(f"{what} rotation is not orthonormal with det +1 (|RᵀR - I| = {error:.2e})")
    return pose


def check_timestamps(timestamps: np.ndarray, what: str) -> np.ndarray:
    """Validate N timestamps (finite, strictly increasing) and return them as float64 (N,)."""
    timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(timestamps)):
        raise ValueError(f"{what}: timestamps must be finite")
    steps = np.diff(timestamps)
    if np.any(steps <= 0):
        bad = int(np.argmax(steps <= 0))
        raise ValueError(
            f"{what}: timestamps must be strictly increasing, but t[{bad + 1}] = {timestamps[bad + 1]} "
            f"<= t[{bad}] = {timestamps[bad]}"
        )
    return timestamps


class Sequence(abc.ABC):
    """Random-access, lazily loaded frames from one camera.

    Subclasses implement `__len__`, `_load(i)` (i already in range), `camera` and `has_depth`, and set
    `_timestamps` (from check_timestamps) and `_poses` ((N, 4, 4) float64 or None) in their constructor;
    `timestamps`, `poses`, indexing, negative indices and iteration are handled here.
    """

    name: str
    _timestamps: np.ndarray
    _poses: np.ndarray | None

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def _load(self, i: int) -> Frame:
        """Frame i, with 0 <= i < len(self)."""

    @property
    @abc.abstractmethod
    def camera(self) -> PinholeCamera:
        """The intrinsics shared by every frame."""

    @property
    def timestamps(self) -> np.ndarray:
        """(N,) float64 seconds, strictly increasing (a copy: callers cannot change the sequence)."""
        return self._timestamps.copy()

    @property
    def poses(self) -> np.ndarray | None:
        """(N, 4, 4) float64 camera-to-world, or None when the sequence has no ground truth (a copy)."""
        return None if self._poses is None else self._poses.copy()

    @property
    @abc.abstractmethod
    def has_depth(self) -> bool:
        """Whether every frame carries a depth map."""

    @property
    def has_poses(self) -> bool:
        return self.poses is not None

    def __getitem__(self, i: int) -> Frame:
        if isinstance(i, bool) or not isinstance(i, int | np.integer):
            raise TypeError(f"sequence index must be an int, got {type(i).__name__}")
        n = len(self)
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"frame index {i} out of range for sequence {self.name!r} of {n} frames")
        return self._load(j)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self._load(i)

    def __repr__(self) -> str:
        cam = self.camera
        return (
            f"{type(self).__name__}(name={self.name!r}, frames={len(self)}, size={cam.width}x{cam.height}, "
            f"poses={self.has_poses}, depth={self.has_depth})"
        )


class InMemorySequence(Sequence):
    """A sequence held in memory as a list of Frames (used by the synthetic world and in tests).

    Frames must be numbered 0..N-1 in order, share one camera, have strictly increasing timestamps, and
    either all or none carry poses (likewise depth).
    """

    def __init__(self, frames: AbcSequence[Frame], name: str = "memory") -> None:
        frames = list(frames)
        if not frames:
            raise ValueError("frames must not be empty")
        for k, frame in enumerate(frames):
            if not isinstance(frame, Frame):
                raise ValueError(f"frames[{k}] must be a Frame, got {type(frame).__name__}")
            if frame.index != k:
                raise ValueError(
                    f"frames[{k}].index is {frame.index}; frames must be numbered 0..N-1 in order"
                )
            if frame.camera != frames[0].camera:
                raise ValueError(f"frames[{k}].camera {frame.camera} differs from frames[0].camera")
        for field in ("pose", "depth"):
            present = [getattr(f, field) is not None for f in frames]
            if any(present) and not all(present):
                raise ValueError(
                    f"frames: {field} must be given for all frames or none ({sum(present)} have it)"
                )
        self._frames = frames
        self._timestamps = check_timestamps([f.timestamp for f in frames], f"sequence {name!r}")
        self._poses = np.stack([f.pose for f in frames]) if frames[0].pose is not None else None
        self.name = name

    def __len__(self) -> int:
        return len(self._frames)

    def _load(self, i: int) -> Frame:
        return self._frames[i]

    @property
    def camera(self) -> PinholeCamera:
        return self._frames[0].camera

    @property
    def has_depth(self) -> bool:
        return self._frames[0].depth is not None


class CachedSequence(Sequence):
    """Another sequence whose frames are kept in memory once read, up to `max_bytes` of image and depth
    (frames read after that are loaded from the source each time; nothing is evicted). Training reads
    each real frame thousands of times, and decoding it costs more than everything else done to it."""

    def __init__(self, source: Sequence, max_bytes: int) -> None:
        if not isinstance(source, Sequence):
            raise ValueError(f"source must be a Sequence, got {type(source).__name__}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int | np.integer) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an int >= 0, got {max_bytes!r}")
        self.source = source
        self.name = source.name
        self.max_bytes = int(max_bytes)
        self.cached_bytes = 0
        self._frames: dict[int, Frame] = {}
        self._timestamps = source.timestamps
        self._poses = source.poses

    def __len__(self) -> int:
        return len(self.source)

    def _load(self, i: int) -> Frame:
        frame = self._frames.get(i)
        if frame is None:
            frame = self.source[i]
            size = frame.image.nbytes + (frame.depth.nbytes if frame.depth is not None else 0)
            if self.cached_bytes + size <= self.max_bytes:
                self._frames[i] = frame
                self.cached_bytes += size
        return frame

    @property
    def camera(self) -> PinholeCamera:
        return self.source.camera

    @property
    def has_depth(self) -> bool:
        return self.source.has_depth
