"""Query points and image preparation for the matcher.

Two query sources:
- ``corner_queries``: Shi-Tomasi corners (OpenCV goodFeaturesToTrack) with a minimum spacing. Used for
  adaptation, evaluation and the node: the bundle adjustment needs well-localised points, and a match
  asked at a blank-wall pixel is ill-posed for any matcher (its MMA would measure the texture, not the
  matcher). The detector is not differentiable, which is fine: gradients flow through the matched
  coordinates in B, never through the query location.
- ``grid_queries``: a regular grid, for tests and for dense coverage when an image has few corners.
Pretraining samples random pixels with valid ground truth instead (dense supervision).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from banet_vo.geometry import PinholeCamera

from imatching_online.matcher.network import SIZE_MULTIPLE


def grid_queries(height: int, width: int, spacing: int, margin: int | None = None) -> np.ndarray:
    """(M, 2) float32 pixel centres of a regular grid with ``spacing`` px, ``margin`` px from the border."""
    if spacing <= 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    margin = spacing // 2 if margin is None else margin
    us = np.arange(margin, width - margin, spacing, dtype=np.float32)
    vs = np.arange(margin, height - margin, spacing, dtype=np.float32)
    if not len(us) or not len(vs):
        raise ValueError(
            f"no grid point fits a {width}x{height} image with spacing {spacing}, margin {margin}"
        )
    u, v = np.meshgrid(us, vs)
    return np.stack([u.ravel(), v.ravel()], 1)


def corner_queries(
    image: np.ndarray,
    max_points: int = 300,
    min_distance: float = 6.0,
    quality: float = 0.005,
    margin: int = 4,
) -> np.ndarray:
    """(M, 2) float32 Shi-Tomasi corners of a uint8 gray or RGB image, strongest first, off the border."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError("image must be a uint8 H×W or H×W×3 array")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    h, w = gray.shape
    mask = np.zeros_like(gray)
    mask[margin : h - margin, margin : w - margin] = 255
    pts = cv2.goodFeaturesToTrack(gray, max_points, quality, min_distance, mask=mask)
    if pts is None:
        return np.zeros((0, 2), np.float32)
    return pts.reshape(-1, 2).astype(np.float32)


def fit_size(width: int, height: int, target_width: int, multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """(W', H') with W' = target_width rounded to a multiple of ``multiple`` (8; a matcher's own
    ``size_multiple``, 32 for XFeat) and the aspect ratio kept (H' a multiple too)."""
    if target_width < multiple:
        raise ValueError(f"target_width must be >= {multiple}, got {target_width}")
    w = round(target_width / multiple) * multiple
    h = max(multiple, round(height * w / width / multiple) * multiple)
    return w, h


def prepare_image(
    image: np.ndarray, camera: PinholeCamera, width: int, height: int
) -> tuple[np.ndarray, torch.Tensor, PinholeCamera]:
    """Resize a host image to (width, height).

    Returns (uint8 RGB H'×W'×3, tensor (1, 3, H', W') in [0, 1], the resized camera)."""
    if width % SIZE_MULTIPLE or height % SIZE_MULTIPLE:
        raise ValueError(f"width and height must be multiples of {SIZE_MULTIPLE}, got {width}x{height}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
    return image, tensor, camera.resized(width, height)
