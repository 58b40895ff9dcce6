"""The one way an image becomes BA-Net input, shared by training, evaluation and inference.

Training (`data.dataset.PairDataset`), the odometry (`odometry.estimator.prepare_frame`) and
`BANet.predict` all call `model_input`, so the network sees the same pixels for the same frame
whichever path it came through. The resize rule is the one training used: area averaging when no side
grows (no aliasing when shrinking), bilinear otherwise; both use OpenCV's pixel-centre convention.
uint8 images are resized as uint8 and then scaled to [0, 1], as the training pairs were.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["model_input", "resize_image"]


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` at (width, height): area averaging when shrinking (no side grows), bilinear otherwise."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrink = width <= image.shape[1] and height <= image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


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
