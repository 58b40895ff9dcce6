"""banet_vo.data: the Sequence API, readers for our format / KITTI / HoloLens / TUM, and PairDataset."""

from banet_vo.data.dataset import PairDataset
from banet_vo.data.readers import (
    BanetSequence,
    HoloLensSequence,
    KittiSequence,
    TumSequence,
    detect_format,
    open_sequence,
    write_sequence,
)
from banet_vo.data.sequence import CachedSequence, Frame, InMemorySequence, Sequence

__all__ = [
    "BanetSequence",
    "CachedSequence",
    "Frame",
    "HoloLensSequence",
    "InMemorySequence",
    "KittiSequence",
    "PairDataset",
    "Sequence",
    "TumSequence",
    "detect_format",
    "open_sequence",
    "write_sequence",
]
