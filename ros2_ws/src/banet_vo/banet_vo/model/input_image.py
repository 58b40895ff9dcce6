"""The one way an image becomes BA-Net input, shared by training, evaluation and inference.

Training (`data.dataset.PairDataset`, `train.data.CachedPairs`), the pair evaluation, the odometry
(`odometry.estimator.prepare_frame`) and `BANet.predict` all go through this module, so the network sees
the same pixels, intrinsics and depth grid for the same frame whichever path it came through.

- `model_input(image, width, height)`: the pixels at one size. The resize rule is the one training used:
  area averaging when no side grows (no aliasing when shrinking), bilinear otherwise; both use OpenCV's
  pixel-centre convention. uint8 images are resized as uint8 and then scaled to [0, 1].
- `input_geometry(config, width, height)`: where an image of that size goes for a model config. For
  ``input_geometry: stretch`` (checkpoints of runs 1-4) that is the config size whatever the aspect, as
  before. For ``keep_aspect`` the image is scaled isotropically to about image_width x image_height pixels
  (the pixel budget), the size rounded to multiples of INPUT_STRIDE, and the few rows or columns the
  rounding leaves over are centre-cropped: nothing is squeezed, a 1226x370 KITTI frame becomes 200x64.
  `InputGeometry` then maps the image, its camera and a depth map consistently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from banet_vo.geometry.camera import PinholeCamera
from banet_vo.model.config import INPUT_STRIDE, BANetConfig

__all__ = ["InputGeometry", "input_geometry", "model_input", "resize_depth_nearest", "resize_image"]


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` at (width, height): area averaging when shrinking (no side grows), bilinear otherwise."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrink = width <= image.shape[1] and height <= image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def resize_depth_nearest(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize: each output pixel takes the source pixel under its centre.

    Never averages, so holes (0) stay holes and no depth is invented between a foreground and a background
    surface. Output centre u' sits at source coordinate (u' + 0.5)·W/W' − 0.5, whose nearest source pixel
    is floor((u' + 0.5)·W/W').
    """
    h, w = depth.shape
    if (w, h) == (width, height):
        return depth
    cols = np.minimum(((np.arange(width) + 0.5) * (w / width)).astype(np.int64), w - 1)
    rows = np.minimum(((np.arange(height) + 0.5) * (h / height)).astype(np.int64), h - 1)
    return depth[rows[:, None], cols[None, :]]


def model_input(image: np.ndarray, width: int, height: int, name: str = "image") -> np.ndarray:
    """(3, height, width) float32 in [0, 1] from an H×W, H×W×1 or H×W×3 (RGB) image, uint8 or float in
    [0, 1]; gray is replicated to three channels. ValueError naming `name` for anything else."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) or min(image.shape[:2]) < 1:
        raise ValueError(f"{name} must be HxW or HxWx3 (RGB), got shape {image.shape}")
    if image.dtype == np.uint8:
        pixels = resize_image(image, width, height).astype(np.float32) / np.float32(255.0)
    elif np.issubdtype(image.dtype, np.floating):
        pixels = resize_image(image.astype(np.float32), width, height)
    else:
        raise ValueError(f"{name} must be uint8 or float in [0, 1], got {image.dtype}")
    if pixels.ndim == 2:
        return np.repeat(pixels[None], 3, axis=0)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


@dataclass(frozen=True)
class InputGeometry:
    """An image of size `source` is resized to `resized` (both (width, height)), then the window of `size`
    at `offset` (x0, y0) is the model input."""

    source: tuple[int, int]
    resized: tuple[int, int]
    offset: tuple[int, int]
    size: tuple[int, int]

    def _check(self, shape: tuple[int, ...], what: str) -> None:
        if (shape[1], shape[0]) != self.source:
            raise ValueError(f"{what} is {shape[1]}x{shape[0]}, this input geometry is for {self.source}")

    def _window(self, array: np.ndarray) -> np.ndarray:
        (x0, y0), (w, h) = self.offset, self.size
        return array[..., y0 : y0 + h, x0 : x0 + w]

    def image(self, image: np.ndarray, name: str = "image") -> np.ndarray:
        """(3, h, w) float32 model input (`model_input` at the resized size, then the window)."""
        image = np.asarray(image)
        self._check(image.shape, name)
        return np.ascontiguousarray(self._window(model_input(image, *self.resized, name)))

    def camera(self, camera: PinholeCamera) -> PinholeCamera:
        """The intrinsics of the model input."""
        if camera.size != self.source:
            raise ValueError(
                f"camera is {camera.width}x{camera.height}, this input geometry is for {self.source}"
            )
        return camera.resized(*self.resized).cropped(*self.offset, *self.size)

    def zoomed(self, zoom: float, x: float = 0.5, y: float = 0.5) -> InputGeometry:
        """The same input size cut from the source resized `zoom` times larger (focal x zoom), the window
        at fractions (x, y) of the free margin: a zoom that keeps the source's sharpness as long as the
        zoomed size stays below the source size (training augmentation of real sequences)."""
        if zoom < 1.0:
            raise ValueError(f"zoom must be >= 1, got {zoom}")
        resized = (
            max(self.size[0], round(self.resized[0] * zoom)),
            max(self.size[1], round(self.resized[1] * zoom)),
        )
        free = (resized[0] - self.size[0], resized[1] - self.size[1])
        offset = (min(free[0], int(x * (free[0] + 1))), min(free[1], int(y * (free[1] + 1))))
        return InputGeometry(self.source, resized, offset, self.size)

    def depth(self, depth: np.ndarray) -> np.ndarray:
        """A depth map of the source image on the model-input grid (nearest: holes stay holes)."""
        self._check(depth.shape, "depth")
        return np.ascontiguousarray(self._window(resize_depth_nearest(depth, *self.resized)))


def _multiple(value: float) -> int:
    return max(INPUT_STRIDE, INPUT_STRIDE * round(value / INPUT_STRIDE))


def input_geometry(config: BANetConfig, width: int, height: int) -> InputGeometry:
    """Where a width x height image goes for `config` (see the module docstring)."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    source = (int(width), int(height))
    if config.input_geometry == "stretch":
        size = (config.image_width, config.image_height)
        return InputGeometry(source, size, (0, 0), size)
    budget = config.image_width * config.image_height
    s = math.sqrt(budget / (width * height))
    out_w, out_h = _multiple(width * s), _multiple(height * s)
    scale = max(out_w / width, out_h / height)  # cover the window: crop, never pad
    resized = (max(out_w, round(width * scale)), max(out_h, round(height * scale)))
    offset = ((resized[0] - out_w) // 2, (resized[1] - out_h) // 2)
    return InputGeometry(source, resized, offset, (out_w, out_h))
