"""ROS-free streaming wrapper of the iMatching adaptation: frames in, windows out, one step per window.

`StreamAdapter` is what the imatching node runs in its worker thread (and what anything else with a
live stream can run): it picks frames with enough motion, keeps a sliding window of N of them, and on
each full window runs `adapt.OnlineAdapter.step` (match -> robust BA -> stationary-point gradient step),
or, with ``AdaptConfig.enabled`` false, the same match and BA with no gradient and no weight update
(monitoring).

Frame selection: at most every ``min_frame_gap``-th incoming frame, and only when the median
Lucas-Kanade flow from the last kept frame reaches ``min_flow_px`` (at working size), so a window has
parallax for the BA instead of a parked camera. A camera change or a stamp that goes backwards (bag loop,
reordering) empties the window: a window never mixes intrinsics or jumps in time. So does a frame that
comes more than ``max_frame_interval`` seconds, and more than RESTART_PACE times the stream's median frame
interval, after the frame before it (`window_restarts`; frames skipped by the selection above count as
arrived, so they never cause one): a node slower than its camera drops the frames that arrive while a step
runs, and a window that slid on over such gaps held frames a second and more apart, which the BA could not
track (1 of 14 windows solved on HoloLens at 10 Hz on 2 CPU cores, 12 of 14 with the restart); the window
starts again from that frame and fills with the frames that follow it. A camera slower than
1 / max_frame_interval sets the pace itself.

Thread safety: `add_frame` runs one frame at a time. `save` and `reset` from another thread wait only
for the window's bookkeeping and the weights' update (milliseconds), not for a running step: a save
copies weights that no step is changing, and a reset while a step runs drops the window that step had
(the step finishes). `rollback` waits for a running step, since the step's backward pass reads the weights
it would replace.
"""

from __future__ import annotations

import collections
import copy
import datetime
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from banet_vo.config_fields import setting
from banet_vo.geometry import PinholeCamera

from imatching_online.adapt import (
    NON_FINITE,
    AdaptConfig,
    OnlineAdapter,
    StepReport,
)
from imatching_online.adapt_checkpoints import resume_state, resume_state_path, save_resume_state
from imatching_online.ba import WindowConfig
from imatching_online.matcher.io import save_matcher
from imatching_online.matcher.network import SIZE_MULTIPLE, Matcher
from imatching_online.matcher.queries import prepare_image
from imatching_online.matcher.xfeat_matcher import XFeatMatcher

# What add_frame did with a frame.
KEPT = "kept"  # added to the window, window not full yet
STEPPED = "window"  # completed a window: the report says whether the BA succeeded
SKIPPED_GAP = "skipped_gap"  # fewer than min_frame_gap frames since the last kept one
SKIPPED_STATIC = "skipped_static"  # median flow below min_flow_px
WINDOW_RESTARTS = "window_restarts"  # windows emptied by a frame long after the frame before it
# A frame this many times the stream's median frame interval after the one before it (and over
# max_frame_interval) starts the window again; the median is over the last RESTART_INTERVALS intervals.
RESTART_PACE = 3.0
RESTART_INTERVALS = 15


class ResumeStateNotWritten(OSError):
    """The matcher was saved, its optimiser state beside it was not: `meta` is the matcher's."""

    def __init__(self, meta: dict[str, Any], reason: str) -> None:
        super().__init__(f"optimiser state not written: {reason}")
        self.meta = meta


@dataclass(frozen=True)
class StreamConfig:
    window_size: int = WindowConfig.window_size  # the BA's: the stream fills the windows it solves
    window_stride: int = setting(
        1, "kept frames the window slides by after each step (window_size: disjoint windows)", range=(1, 30)
    )
    min_frame_gap: int = setting(1, "take at most every n-th incoming frame into the window", range=(1, 1000))
    min_flow_px: float = setting(
        2.0,
        "median optical flow [px at working size] a frame needs against the last kept one (0: off)",
        range=(0.0, 1000.0),
    )
    max_frame_interval: float = setting(
        0.5,
        "seconds after the frame before beyond which a frame empties the window and starts it again, if "
        f"also over {RESTART_PACE:g} times the stream's median frame interval (a window spans a continuous "
        "stretch of the stream; 0: off)",
        range=(0.0, 3600.0),
    )
    max_image_size: int = setting(
        320,
        "long side of the working images [px]; larger images are downscaled (multiples of 8)",
        range=(16, 4096),
    )

    def __post_init__(self) -> None:
        for name in ("window_size", "window_stride", "min_frame_gap", "max_image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"StreamConfig.{name} must be an int, got {value!r}")
        if self.window_size < 2:
            raise ValueError(f"StreamConfig.window_size must be >= 2, got {self.window_size}")
        if not 1 <= self.window_stride <= self.window_size:
            raise ValueError(
                f"StreamConfig.window_stride must be in [1, window_size={self.window_size}], "
                f"got {self.window_stride}"
            )
        if self.min_frame_gap < 1:
            raise ValueError(f"StreamConfig.min_frame_gap must be >= 1, got {self.min_frame_gap}")
        if not (np.isfinite(self.max_frame_interval) and self.max_frame_interval >= 0):
            raise ValueError(
                f"StreamConfig.max_frame_interval must be a finite number >= 0, got {self.max_frame_interval}"
            )
        if not (np.isfinite(self.min_flow_px) and self.min_flow_px >= 0):
            raise ValueError(f"StreamConfig.min_flow_px must be a finite number >= 0, got {self.min_flow_px}")
        if self.max_image_size < 2 * SIZE_MULTIPLE:
            raise ValueError(
                f"StreamConfig.max_image_size must be >= {2 * SIZE_MULTIPLE}, got {self.max_image_size}"
            )


@dataclass
class FrameOutcome:
    status: str  # KEPT, STEPPED, SKIPPED_GAP or SKIPPED_STATIC
    report: StepReport | None = None  # set when status == STEPPED
    flow_px: float | None = None  # median flow to the last kept frame (None: not measured)


@dataclass
class _Kept:
    stamp: float
    host: np.ndarray  # H'×W'×3 uint8 RGB at working size
    tensor: torch.Tensor  # (1, 3, H', W') in [0, 1]
    gray: np.ndarray


def working_size(width: int, height: int, max_size: int, multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """(W', H'): the long side at most ``max_size`` (never upscaled), both multiples of ``multiple`` (8; the
    matcher's own ``size_multiple``, 32 for XFeat), aspect kept."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    scale = min(1.0, max_size / max(width, height))

    def snap(x: float) -> int:
        return max(multiple, int(x * scale / multiple + 1e-9) * multiple)  # no float-floor off-by-one

    return snap(width), snap(height)


def median_flow(prev_gray: np.ndarray, gray: np.ndarray, max_points: int = 100) -> float | None:
    """Median Lucas-Kanade displacement (px) of corners of ``prev_gray``; None when it cannot be measured
    (blank image, nothing tracked)."""
    pts = cv2.goodFeaturesToTrack(prev_gray, max_points, 0.01, 5)
    if pts is None or len(pts) < 8:
        return None
    nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, pts, None, winSize=(21, 21), maxLevel=3)
    ok = status.ravel() == 1
    if ok.sum() < 8:
        return None
    return float(np.median(np.linalg.norm((nxt - pts).reshape(-1, 2)[ok], axis=1)))


class StreamAdapter:
    """Sliding-window adaptation of one matcher on one stream (see the module docstring)."""

    def __init__(
        self,
        matcher: Matcher | XFeatMatcher,
        stream: StreamConfig | None = None,
        config: AdaptConfig | None = None,
        ba_config: WindowConfig | None = None,
        device: str | torch.device = "cpu",
        source_meta: dict | None = None,
    ) -> None:
        self.stream = StreamConfig() if stream is None else stream
        self.config = AdaptConfig() if config is None else config
        ba = WindowConfig() if ba_config is None else ba_config
        if ba.window_size != self.stream.window_size:
            ba = WindowConfig(**{**asdict(ba), "window_size": self.stream.window_size})
        self.device = torch.device(device)
        self.matcher = matcher.to(self.device)
        # The camera is set from the first frame's (and whenever the camera changes).
        self.adapter = OnlineAdapter(self.matcher, None, self.config, ba)
        self.source_meta = dict(source_meta or {})
        self.counters: collections.Counter[str] = collections.Counter()
        self.last_report: StepReport | None = None
        self.step_times: collections.deque[float] = collections.deque(maxlen=50)
        self.manual_rollbacks = 0
        self.saved_at_step: int | None = None
        self.saved_version: int | None = None
        # Weight changes of the sessions before this one (imatching_online.lineage): versions keep increasing.
        self.earlier_weight_changes = int(self.source_meta.get("earlier_weight_changes", 0))
        self._step_lock = threading.Lock()  # one frame (and its step) at a time; rollback waits for it
        self._lock = threading.Lock()  # the window, counters and reports; never held during a step
        self._save_lock = threading.Lock()  # saves one after another, so that a file never goes back
        self._window: collections.deque[_Kept] = collections.deque()
        self._window_epoch = 0  # counts clears: a step's window slides only if it was not cleared meanwhile
        self._last_kept: _Kept | None = None  # since the last clear; the gap and flow are measured from it
        self._camera: PinholeCamera | None = None  # native camera of the current window
        self._work_camera: PinholeCamera | None = None
        self._since_kept = 0
        self._last_stamp: float | None = None
        self._intervals: collections.deque[float] = collections.deque(maxlen=RESTART_INTERVALS)

    # -- state ---------------------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        return self.adapter.steps_taken

    @property
    def weights_version(self) -> int:
        """Changes of the weights so far, this lineage's sessions together: the version a save announces."""
        return self.earlier_weight_changes + self.adapter.weight_changes

    @property
    def window_length(self) -> int:
        return len(self._window)

    @property
    def working_camera(self) -> PinholeCamera | None:
        return self._work_camera

    def reset(self) -> int:
        """Empty the window (weights, optimiser and counts stay). Returns how many frames were dropped."""
        with self._lock:
            return self._clear_window()

    def _restart_interval(self) -> float:
        """Seconds between two incoming frames beyond which the second starts the window again: the larger
        of max_frame_interval and RESTART_PACE times the stream's median interval (a camera slower than
        1 / max_frame_interval is a slow camera, not a gap); infinite when max_frame_interval is 0 or before
        three intervals were seen."""
        limit = self.stream.max_frame_interval
        if limit <= 0 or len(self._intervals) < 3:  # the stream's pace is not known yet
            return float("inf")
        return max(limit, RESTART_PACE * float(np.median(self._intervals)))

    def _clear_window(self) -> int:
        n = len(self._window)
        self._window.clear()
        self._window_epoch += 1
        self._last_kept = None
        self._since_kept = 0
        return n

    # -- frames --------------------------------------------------------------------------------------
    def add_frame(self, image: np.ndarray, stamp: float, camera: PinholeCamera) -> FrameOutcome:
        """One frame of the stream (H×W uint8 gray or H×W×3 uint8 RGB, stamp in seconds, its camera)."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError("image must be a uint8 H×W or H×W×3 numpy array")
        if image.ndim == 3 and image.shape[2] != 3:
            raise ValueError(f"image must have 1 or 3 channels, got shape {image.shape}")
        if image.shape[0] < SIZE_MULTIPLE or image.shape[1] < SIZE_MULTIPLE:
            raise ValueError(f"image must be at least {SIZE_MULTIPLE}x{SIZE_MULTIPLE}, got {image.shape}")
        if (image.shape[1], image.shape[0]) != camera.size:
            raise ValueError(
                f"image {image.shape[1]}x{image.shape[0]} does not match the camera "
                f"{camera.width}x{camera.height}"
            )
        if not np.isfinite(stamp):
            raise ValueError(f"stamp must be finite, got {stamp}")
        with self._step_lock:
            with self._lock:
                outcome = self._select(image, float(stamp), camera)
                frames, epoch = list(self._window), self._window_epoch
            if outcome.status != STEPPED:
                return outcome
            try:
                outcome.report = self._step(frames)
            except ValueError as err:  # the input was checked above: this is a failure, not a bad frame
                raise RuntimeError(f"adaptation step failed: {type(err).__name__}: {err}") from err
            finally:
                with self._lock:  # a failed step slides too: a window must not grow past its size
                    if self._window_epoch == epoch:  # else a reset emptied it meanwhile
                        for _ in range(self.stream.window_stride):
                            self._window.popleft()
            return outcome

    def _select(self, image: np.ndarray, stamp: float, camera: PinholeCamera) -> FrameOutcome:
        """Frame selection and the window's bookkeeping; STEPPED when the frame fills the window."""
        self.counters["frames"] += 1
        if camera != self._camera:
            if self._camera is not None:
                self.counters["camera_changes"] += 1
            self._clear_window()
            self._camera = camera
            multiple = getattr(self.matcher, "size_multiple", SIZE_MULTIPLE)
            w, h = working_size(camera.width, camera.height, self.stream.max_image_size, multiple)
            self._work_camera = camera.resized(w, h)
            self.adapter.set_camera(self._work_camera)
        if self._last_stamp is not None and stamp <= self._last_stamp:
            self.counters["time_jumps"] += 1  # loop / reordering: a window must not span it
            self._clear_window()
        previous, self._last_stamp = self._last_stamp, stamp
        if previous is not None and stamp > previous:
            if self._last_kept is not None and stamp - previous > self._restart_interval():
                self.counters[WINDOW_RESTARTS] += 1
                self._clear_window()
            self._intervals.append(stamp - previous)
        # Measured from the last kept frame, which a slide of the window does not forget (a clear does).
        self._since_kept += 1
        if self._last_kept is not None and self._since_kept < self.stream.min_frame_gap:
            self.counters[SKIPPED_GAP] += 1
            return FrameOutcome(SKIPPED_GAP)
        wc = self._work_camera
        host, tensor, _ = prepare_image(image, self._camera, wc.width, wc.height)
        gray = cv2.cvtColor(host, cv2.COLOR_RGB2GRAY)
        flow = None
        if self._last_kept is not None and self.stream.min_flow_px > 0:
            flow = median_flow(self._last_kept.gray, gray)
            # None: flow cannot be measured (blank frame, lost track); keep it and let the BA judge
            if flow is not None and flow < self.stream.min_flow_px:
                self.counters[SKIPPED_STATIC] += 1
                return FrameOutcome(SKIPPED_STATIC, flow_px=flow)
        self._last_kept = _Kept(stamp, host, tensor, gray)
        self._window.append(self._last_kept)
        self._since_kept = 0
        self.counters["kept"] += 1
        if len(self._window) < self.stream.window_size:
            return FrameOutcome(KEPT, flow_px=flow)
        return FrameOutcome(STEPPED, flow_px=flow)

    def _step(self, frames: list[_Kept]) -> StepReport:
        images = torch.cat([f.tensor for f in frames]).to(self.device)
        hosts = [f.host for f in frames]
        t0 = time.perf_counter()
        report = (
            self.adapter.step(images, hosts) if self.config.enabled else self.adapter.evaluate(images, hosts)
        )
        with self._lock:
            self.step_times.append(time.perf_counter() - t0)
            self.last_report = report
            if report.guard == "rollback":
                self.counters["rollbacks"] += 1
            if report.reason == NON_FINITE:  # the BA solved it, the step was not taken
                self.counters[NON_FINITE] += 1
        return report

    # -- weights -------------------------------------------------------------------------------------
    def rollback(self) -> bool:
        """Restore the rollback guard's last good weights and optimiser state; False when there are none
        yet (the guard has not closed its first block). Waits for a running step."""
        with self._step_lock:
            if not self.adapter.rollback():
                return False
            with self._lock:
                self.manual_rollbacks += 1
            return True

    def metadata(self) -> dict[str, Any]:
        """What a saved checkpoint records about this adaptation run."""
        stats = self.adapter.stats
        wc = self._work_camera
        return {
            "adapted_by": "imatching_node (online, label-free, BA reprojection, stationary-point gradient)",
            **self.source_meta,
            "adapt": self.config.enabled,
            "saved_at_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "optimiser_steps": self.adapter.steps_taken,
            "weight_changes": self.adapter.weight_changes,
            "weights_version": self.weights_version,
            "windows": stats.windows,
            "failures": stats.as_dict(),
            "rollbacks": self.adapter.guard.rollbacks,
            "manual_rollbacks": self.manual_rollbacks,
            "frames": dict(self.counters),
            "image_size": None if wc is None else [wc.width, wc.height],
            "stream": asdict(self.stream),
            "config": asdict(self.config),
            "ba_config": asdict(self.adapter.ba_config),
        }

    def save(self, path: str | Path) -> dict[str, Any]:
        """Write the current matcher (atomically, via the project's checkpoint format) and, beside it, the
        optimiser state a continued session restores (adapt_checkpoints.resume_state_path); returns the
        meta. Saves run one after another, so a slower earlier save never lands over a later one.
        ResumeStateNotWritten when only the matcher was written."""
        with self._save_lock:
            with self._lock, self.adapter.weights_lock:
                snapshot = copy.deepcopy(self.matcher).cpu()
                meta = self.metadata()
                state = resume_state(self.adapter)
            save_matcher(path, snapshot, meta)
            with self._lock:
                self.saved_at_step = meta["optimiser_steps"]
                self.saved_version = meta["weights_version"]
            tag = {"lineage": meta.get("lineage"), "weights_version": meta["weights_version"]}
            try:
                save_resume_state(resume_state_path(path), state, tag)
            except (OSError, RuntimeError) as err:
                raise ResumeStateNotWritten(meta, f"{resume_state_path(path)}: {err}") from err
        return meta
