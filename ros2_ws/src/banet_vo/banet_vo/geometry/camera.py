"""Pinhole camera model on the host (numpy), with resize/crop that keep the intrinsics consistent.

Pixel centres sit at integer coordinates (OpenCV convention), so resizing by s maps c -> s(c + 0.5) - 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics fx, fy, cx, cy (pixels) of an undistorted image of size width x height."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"camera {name} must be finite, got {value}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"camera focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def from_K(cls, K, width: int, height: int) -> PinholeCamera:
        """From a 3x3 intrinsic matrix (or its 9 row-major values): [[fx, 0, cx], [0, fy, cy], [0, 0, 1]].
        Skew must be zero; a bottom row other than 0 0 1 (a K written column by column, or not normalised)
        is refused rather than read as a camera with its principal point at 0."""
        K = np.asarray(K, dtype=np.float64).reshape(-1)
        if K.size != 9:
            raise ValueError(f"K must have 9 values (3x3), got {K.size}")
        K = K.reshape(3, 3)
        if not np.any(K):
            raise ValueError("K is all zeros (uncalibrated camera)")
        if abs(K[0, 1]) > 1e-9 * max(1.0, abs(K[0, 0])):
            raise ValueError(f"K has non-zero skew {K[0, 1]}; only zero-skew pinholes are supported")
        scale = max(1.0, abs(K[0, 0]), abs(K[1, 1]))
        if np.abs(K[2] - [0.0, 0.0, 1.0]).max() > 1e-9 or abs(K[1, 0]) > 1e-9 * scale:
            raise ValueError(
                f"K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] row by row; got rows {K.tolist()} "
                "(written column by column, or not normalised?)"
            )
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), width, height)

    @classmethod
    def from_projection(cls, P, width: int, height: int) -> PinholeCamera:
        """From a 3x4 projection matrix P (rectified cameras, e.g. CameraInfo.p or KITTI calib P0).

        The extrinsic column (P[:, 3], the stereo baseline term) is ignored: it does not change where a
        point in this camera's own optical frame projects once the baseline is removed.
        """
        P = np.asarray(P, dtype=np.float64).reshape(-1)
        if P.size != 12:
            raise ValueError(f"P must have 12 values (3x4), got {P.size}")
        P = P.reshape(3, 4)
        if not np.any(P[:, :3]):
            raise ValueError("P is all zeros (uncalibrated camera)")
        return cls.from_K(P[:, :3], width, height)

    @classmethod
    def from_camera_info(cls, info) -> PinholeCamera:
        """From a sensor_msgs/CameraInfo-like object (attributes ``width``, ``height``, ``p`` and ``k``).

        Duck-typed so the core never imports ROS. Uses the rectified projection ``p`` when it is set
        (images on ``image_rect``), else ``k``; raises ValueError when both are zero (uncalibrated).
        """
        for field in ("width", "height", "p", "k"):
            if not hasattr(info, field):
                raise ValueError(f"camera info has no field {field!r}")
        width, height = int(info.width), int(info.height)
        P = np.asarray(info.p, dtype=np.float64).reshape(-1)
        if P.size == 12 and np.any(P.reshape(3, 4)[:, :3]):
            return cls.from_projection(P, width, height)
        K = np.asarray(info.k, dtype=np.float64).reshape(-1)
        if K.size != 9 or not np.any(K):
            raise ValueError("camera info p and k are both zero (uncalibrated camera)")
        return cls.from_K(K, width, height)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.width, self.height

    def resized(self, width: int, height: int) -> PinholeCamera:
        """The camera of this image resized (whole image, possibly anisotropic) to width x height."""
        sx, sy = width / self.width, height / self.height
        return PinholeCamera(
            self.fx * sx, self.fy * sy, sx * (self.cx + 0.5) - 0.5, sy * (self.cy + 0.5) - 0.5, width, height
        )

    def scaled(self, factor: float) -> PinholeCamera:
        """Resize by a factor (size rounded to whole pixels; the scale used is the exact ratio)."""
        return self.resized(round(self.width * factor), round(self.height * factor))

    def cropped(self, x0: int, y0: int, width: int, height: int) -> PinholeCamera:
        """The camera of the window [x0, x0+width) x [y0, y0+height) of this image."""
        if x0 < 0 or y0 < 0 or x0 + width > self.width or y0 + height > self.height:
            raise ValueError(
                f"crop ({x0}, {y0}, {width}x{height}) does not fit in the {self.width}x{self.height} image"
            )
        return PinholeCamera(self.fx, self.fy, self.cx - x0, self.cy - y0, width, height)

    def as_tensor(self, dtype=None, device=None):
        """[fx, fy, cx, cy] as a torch tensor (the layout every torch function in banet_vo takes)."""
        import torch

        return torch.tensor([self.fx, self.fy, self.cx, self.cy], dtype=dtype or torch.float32, device=device)

    def to_projection(self) -> np.ndarray:
        """3x4 P = [K | 0]."""
        return np.hstack([self.K, np.zeros((3, 1))])
