"""PairDataset: (reference, target) frame pairs of a Sequence as torch tensors, for training and evaluation.

The reference frame i carries the depth; the target is j = i + stride. The pose is T_tgt_ref =
inv(T_w_tgt) @ T_w_ref (maps reference-camera points into the target camera, docs/CONVENTIONS.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from banet_vo.data.sequence import Sequence
from banet_vo.geometry import PinholeCamera, relative_pose
from banet_vo.model.input_image import InputGeometry, input_geometry, resize_depth_nearest

__all__ = ["PairDataset", "resize_depth_nearest"]  # resize_depth_nearest: its home is model.input_image


class PairDataset(Dataset):
    """Frame pairs (i, i + stride) of a sequence with ground-truth relative pose and reference depth.

    Args:
        sequence: any Sequence with ground-truth poses (ValueError otherwise).
        strides: positive frame offsets; every pair (i, i + s) that fits is used for each s.
        size: (width, height) to resize to, intrinsics updated to match; None keeps the native size.
        model_config: a BANetConfig instead of ``size``: frames are prepared by its input geometry
            (``banet_vo.model.input_image.input_geometry``: stretched to its size, or aspect kept), exactly as
            the model's inference does.
        frames: (first, last) positions in the sequence, inclusive: only pairs with both frames inside
            (held-out tails, validation / test splits); None = all.
        zoom_max: training augmentation: > 1 cuts half the items from the source resized by z ~ U(1,
            zoom_max) at a random window (``InputGeometry.zoomed``: sharp, focal x z), drawn from torch's
            generator (saved by training checkpoints). 1 = off (evaluation).
        seed: seeds the pair order (shuffle) and the max_pairs subset; same seed -> same order.
        max_pairs: keep only the first max_pairs pairs of that order.
        shuffle: False keeps the natural order (by stride, then by reference index).

    Items are dicts of tensors: image_ref / image_tgt (3×H×W float32 in [0, 1]), intrinsics (4,) [fx, fy,
    cx, cy] of the resized image, pose_tgt_ref (4×4 float32), depth_ref (1×H×W float32 metres, 0 = invalid;
    all zero for sequences without depth), depth_valid (1×H×W bool), index_ref / index_tgt / stride (int64),
    timestamp_ref / timestamp_tgt (float64 seconds).
    """

    def __init__(
        self,
        sequence: Sequence,
        strides: Iterable[int] = (1,),
        size: tuple[int, int] | None = None,
        seed: int = 0,
        max_pairs: int | None = None,
        shuffle: bool = True,
        model_config: Any = None,
        frames: tuple[int, int] | None = None,
        zoom_max: float = 1.0,
    ) -> None:
        if not isinstance(sequence, Sequence):
            raise ValueError(f"sequence must be a banet_vo.data.Sequence, got {type(sequence).__name__}")
        poses = sequence.poses
        if poses is None:
            raise ValueError(f"sequence {sequence.name!r} has no ground-truth poses; PairDataset needs them")
        strides = tuple(strides)
        if not strides or any(
            isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 1 for s in strides
        ):
            raise ValueError(f"strides must be a non-empty list of positive ints, got {strides}")
        if size is not None:
            if len(size) != 2 or any(
                isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1 for v in size
            ):
                raise ValueError(f"size must be (width, height) positive ints or None, got {size}")
            size = (int(size[0]), int(size[1]))
        if max_pairs is not None and (not isinstance(max_pairs, int | np.integer) or max_pairs < 1):
            raise ValueError(f"max_pairs must be a positive int or None, got {max_pairs}")
        if size is not None and model_config is not None:
            raise ValueError("give size or model_config, not both")
        n = len(sequence)
        first, last = 0, n - 1
        if frames is not None:
            first, last = (int(v) for v in frames)
            if not 0 <= first <= last < n:
                raise ValueError(f"frames {frames} must satisfy 0 <= first <= last < {n} ({sequence.name!r})")
        pairs = [(i, i + int(s)) for s in dict.fromkeys(strides) for i in range(first, last + 1 - int(s))]
        if not pairs:
            raise ValueError(f"strides {strides} leave no pairs in sequence {sequence.name!r} of {n} frames")
        if shuffle:
            order = np.random.default_rng(seed).permutation(len(pairs))
            pairs = [pairs[k] for k in order]
        if max_pairs is not None:
            pairs = pairs[:max_pairs]
        self.sequence = sequence
        self.pairs: list[tuple[int, int]] = pairs
        if model_config is not None:
            self.geometry = input_geometry(model_config, *sequence.camera.size)
        else:
            target = size or sequence.camera.size
            self.geometry = InputGeometry(sequence.camera.size, target, (0, 0), target)
        if not zoom_max >= 1.0:
            raise ValueError(f"zoom_max must be >= 1, got {zoom_max}")
        self.zoom_max = float(zoom_max)
        self.size = self.geometry.size
        self.camera: PinholeCamera = self.geometry.camera(sequence.camera)
        self._poses = poses
        self._timestamps = sequence.timestamps

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        i, j = self.pairs[k]
        ref, tgt = self.sequence[i], self.sequence[j]
        width, height = self.size
        geometry, camera = self.geometry, self.camera
        if self.zoom_max > 1.0:
            draw = torch.rand(4)
            if float(draw[0]) < 0.5:
                zoom = 1.0 + float(draw[1]) * (self.zoom_max - 1.0)
                geometry = geometry.zoomed(zoom, float(draw[2]), float(draw[3]))
                camera = geometry.camera(self.sequence.camera)
        if ref.depth is not None:
            depth = geometry.depth(ref.depth)
        else:
            depth = np.zeros((height, width), np.float32)
        depth_ref = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None]
        pose = relative_pose(self._poses[i], self._poses[j])
        return {
            # numpy, not torch: small single-threaded ops avoid torch's thread pool in DataLoader workers
            "image_ref": torch.from_numpy(geometry.image(ref.image, "reference image")),
            "image_tgt": torch.from_numpy(geometry.image(tgt.image, "target image")),
            "intrinsics": camera.as_tensor(torch.float32),
            "pose_tgt_ref": torch.from_numpy(pose.astype(np.float32)),
            "depth_ref": depth_ref,
            "depth_valid": depth_ref > 0,
            "index_ref": torch.tensor(i, dtype=torch.int64),
            "index_tgt": torch.tensor(j, dtype=torch.int64),
            "stride": torch.tensor(j - i, dtype=torch.int64),
            "timestamp_ref": torch.tensor(self._timestamps[i], dtype=torch.float64),
            "timestamp_tgt": torch.tensor(self._timestamps[j], dtype=torch.float64),
        }
