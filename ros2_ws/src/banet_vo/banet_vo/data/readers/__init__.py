"""Readers for the sequence layouts we support, behind `open_sequence`."""

from __future__ import annotations

from pathlib import Path

from banet_vo.data.readers.banet import BanetSequence, looks_like_banet, write_sequence
from banet_vo.data.readers.euroc import EurocSequence, looks_like_euroc
from banet_vo.data.readers.hololens import HoloLensSequence, looks_like_hololens
from banet_vo.data.readers.kitti import KittiSequence, looks_like_kitti
from banet_vo.data.readers.tartanair import TartanAirSequence, looks_like_tartanair
from banet_vo.data.readers.tum import TumSequence, looks_like_tum
from banet_vo.data.sequence import Sequence

# Autodetection order matters: ours (images/ + K.txt + times.txt) before HoloLens (images/ + K.txt, no times).
READERS = {
    "banet": (BanetSequence, looks_like_banet, "images/ + K.txt + times.txt"),
    "kitti": (KittiSequence, looks_like_kitti, "calib.txt + image_0/ (or image_l/, image_2/)"),
    "tum": (TumSequence, looks_like_tum, "rgb.txt (+ depth.txt, groundtruth.txt)"),
    "hololens": (HoloLensSequence, looks_like_hololens, "images/ + K.txt without times.txt"),
    "euroc": (EurocSequence, looks_like_euroc, "mav0/cam0/data.csv + sensor.yaml (EuRoC)"),
    "tartanair": (TartanAirSequence, looks_like_tartanair, "image_left/ (TartanAir)"),
}


def detect_format(path: str | Path) -> str:
    """The format name of a sequence directory; ValueError listing what was looked for when none fits."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"sequence directory not found: {path}")
    for name, (_, looks_like, _) in READERS.items():
        if looks_like(path):
            return name
    wanted = "; ".join(f"{name}: {what}" for name, (_, _, what) in READERS.items())
    raise ValueError(f"cannot tell the format of {path}; looked for {wanted}")


def open_sequence(path: str | Path, format: str | None = None, **options) -> Sequence:
    """Open a sequence directory as a lazily loaded Sequence.

    format: "banet" (ours), "kitti", "hololens", "tum", "euroc" or "tartanair"; None autodetects. Extra
    keyword options go to the reader (e.g. tolerance= for TUM, poses_path= for KITTI, camera_folder= /
    ground_truth= for EuRoC).
    """
    if format is None:
        format = detect_format(path)
    if format not in READERS:
        raise ValueError(f"format must be one of {sorted(READERS)}, got {format!r}")
    return READERS[format][0](path, **options)


__all__ = [
    "READERS",
    "BanetSequence",
    "EurocSequence",
    "HoloLensSequence",
    "KittiSequence",
    "TartanAirSequence",
    "TumSequence",
    "detect_format",
    "open_sequence",
    "write_sequence",
]
