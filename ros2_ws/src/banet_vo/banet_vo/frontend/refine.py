"""Sub-pixel positions for matched keypoints, by Lucas-Kanade from the image they were matched to.

XFeat's keypoints lie on whole pixels of its working image, and a matched keypoint lags behind the motion:
against ground truth (a known zoom of real frames, and TartanAir's depth and poses) the median error along
the flow is -0.1 to -1 px, 1-2 % of the flow, and the median error ~1-1.5 px. Following each match from
the reference keypoint by pyramidal Lucas-Kanade, started at the matched keypoint, puts the point where
the reference's patch went (median error 0.1-0.5 px, no lag); a match that LK does not confirm keeps its
detected position. docs/frontend.md ("Keypoint refinement") has the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from banet_vo.frontend.flow import follow
from banet_vo.frontend.xfeat import Features

# LK may move a keypoint this far (working-image pixels) from where XFeat put it; further means it
# followed another structure, and the detected position is kept.
MAX_SHIFT_PX = 2.0


def gray_u8(features: Features) -> np.ndarray:
    """The kept working image of `features` as uint8 (what OpenCV's LK takes)."""
    if features.gray is None:
        raise ValueError("features were extracted without keep_image: no image to refine on")
    return np.clip(features.gray * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)


def _to_working(points: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    return (points + 0.5) / np.asarray(scale, np.float64) - 0.5


def _to_camera(points: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    return (points + 0.5) * np.asarray(scale, np.float64) - 0.5


def refine_matched(
    references: Sequence[Features],
    features: Features,
    matches: Sequence[np.ndarray],
    max_shift_px: float = MAX_SHIFT_PX,
) -> tuple[Features, int]:
    """`features` with each matched keypoint moved to where LK follows its reference keypoint, and how
    many moved. `matches[i]` (M, 2) pairs keypoints of `references[i]` with keypoints of `features`
    (match_mutual's order); a keypoint matched in several references is refined from the first that LK
    confirms (put the nearest in time first). All must have kept their images (keep_image) at one size."""
    if len(references) != len(matches):
        raise ValueError(f"{len(references)} references but {len(matches)} match lists")
    keypoints = features.keypoints.copy()
    done = np.zeros(len(keypoints), dtype=bool)
    current = gray_u8(features)
    for ref, pairs in zip(references, matches, strict=True):
        pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
        pairs = pairs[~done[pairs[:, 1]]]
        if len(pairs) == 0:
            continue
        previous = gray_u8(ref)
        if previous.shape != current.shape:
            raise ValueError(f"images differ in size: {previous.shape} and {current.shape}")
        start = _to_working(ref.keypoints[pairs[:, 0]], ref.scale)
        detected = _to_working(keypoints[pairs[:, 1]], features.scale)
        followed, ok = follow(previous, current, start, guess=detected)
        ok &= np.linalg.norm(followed - detected, axis=1) <= max_shift_px
        moved = pairs[ok, 1]
        keypoints[moved] = _to_camera(followed[ok], features.scale)
        done[moved] = True
    return replace(features, keypoints=keypoints), int(done.sum())
