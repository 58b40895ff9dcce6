"""Keypoints followed from one frame to the next by pyramidal Lucas-Kanade optical flow (OpenCV), kept only
where the flow back from the new frame returns to the start. A few milliseconds per frame where XFeat
takes ~100 (KITTI size, 2 cores): the front end uses it between keyframes (tracking.between_keyframes)."""

from __future__ import annotations

import cv2
import numpy as np

# A 21 px window at 4 scales (maxLevel 3) follows motions of up to ~80 px between frames.
WINDOW_PX = 21
PYRAMID_LEVELS = 3
# A point whose backward flow misses its start by more than this is on an occlusion boundary, in a
# repetitive texture or off the image.
MAX_ROUND_TRIP_PX = 1.0
_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)


def gray_u8(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 gray of an (H, W) gray or (H, W, 3) RGB uint8 image, always an array of its own: the
    odometry keeps it as the next frame's previous one, and a caller may decode every frame into one
    buffer (a view of it would turn the previous image into the current one: no motion, ever)."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image must be an (H, W) or (H, W, 3) uint8 array, got {image.dtype} {image.shape}")
    return image.copy() if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def follow(
    previous: np.ndarray,
    current: np.ndarray,
    points: np.ndarray,
    guess: np.ndarray | None = None,
    max_round_trip_px: float = MAX_ROUND_TRIP_PX,
) -> tuple[np.ndarray, np.ndarray]:
    """Where the (N, 2) pixel `points` of gray image `previous` are in gray image `current` (same size):
    (N, 2) float64 positions and an (N,) bool mask of the ones followed both ways to within
    `max_round_trip_px` and still inside the image. `guess`: (N, 2) predicted positions in `current` to
    start from (a motion prior: the search then covers the prediction's error, not the whole motion)."""
    if previous.shape != current.shape:
        raise ValueError(f"images differ in size: {previous.shape} and {current.shape}")
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if guess is not None and np.shape(guess) != points.shape:
        raise ValueError(f"guess must have the points' shape {points.shape}, got {np.shape(guess)}")
    if len(points) == 0:
        return np.zeros((0, 2)), np.zeros(0, dtype=bool)
    start = points.astype(np.float32).reshape(-1, 1, 2)
    size = (WINDOW_PX, WINDOW_PX)
    ahead = start.copy() if guess is None else np.asarray(guess, np.float32).reshape(-1, 1, 2).copy()
    ahead, ok_ahead, _ = cv2.calcOpticalFlowPyrLK(
        previous,
        current,
        start,
        ahead,
        winSize=size,
        maxLevel=PYRAMID_LEVELS,
        criteria=_CRITERIA,
        flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
    )
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(
        current,
        previous,
        ahead,
        start.copy(),
        winSize=size,
        maxLevel=PYRAMID_LEVELS,
        criteria=_CRITERIA,
        flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
    )
    ahead = ahead.reshape(-1, 2).astype(np.float64)
    round_trip = np.linalg.norm(back.reshape(-1, 2) - start.reshape(-1, 2), axis=1)
    height, width = current.shape[:2]
    inside = (
        (ahead[:, 0] >= 0) & (ahead[:, 1] >= 0) & (ahead[:, 0] <= width - 1) & (ahead[:, 1] <= height - 1)
    )
    ok = (ok_ahead.ravel() == 1) & (ok_back.ravel() == 1) & (round_trip <= max_round_trip_px) & inside
    return ahead, ok
