"""DESIGN.md, "Data and labels": which of the shipped clips' labels may be learned from. One home for the
rule: training (train.config.check_reserved) and depth-curve fits (evaluation.depth_curve) refuse by it.
Matched by folder name (a user's own recording may be called anything). No override: a figure measured on
a clip the model learned from says nothing about another camera."""

from __future__ import annotations

# Folders whose labels are for validation only.
RESERVED_CLIPS = {
    "hololens_000_003-052": "HoloLens labels are never used for training",
    "hololens_000_003-199": "HoloLens labels are never used for training",
    "kitti_odom06_000-050": "KITTI 06 is a validation clip only",
}
# Folders whose tail is held out: positions below this one only (KITTI 07: 0-119).
HELD_OUT_FROM = {"kitti_odom07_000-159": 120}
