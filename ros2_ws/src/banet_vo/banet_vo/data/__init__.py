"""banet_vo.data: the Sequence API, readers for our format / KITTI / HoloLens / TUM / EuRoC, PairDataset.
Names are imported on first use (banet_vo.lazy_exports): the bag tools load without torch."""

from banet_vo.lazy_exports import lazy_exports

_EXPORTS = {
    "dataset": ("PairDataset",),
    "readers": (
        "BanetSequence",
        "EurocSequence",
        "HoloLensSequence",
        "KittiSequence",
        "TumSequence",
        "detect_format",
        "open_sequence",
        "write_sequence",
    ),
    "sequence": ("CachedSequence", "Frame", "InMemorySequence", "Sequence"),
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = [name for names in _EXPORTS.values() for name in names]
