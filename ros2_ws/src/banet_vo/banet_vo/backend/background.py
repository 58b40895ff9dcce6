"""Window BAs off the tracking thread: one worker process solves while the caller goes on tracking.

GTSAM holds the GIL while it optimises, so a thread would stall tracking; a process does not. The worker
is `python -m banet_vo.backend.background` on pipes (not multiprocessing, which would re-run the caller's
main script in the child); it gets plain data (poses, points, observations), never the map, and the
caller merges each result when it is ready. One job at a time. Landmarks travel as one id array and one
(N, 3) array each way (a dict of small arrays took ~25 ms to pickle for a KITTI window), and the pruned
observations as their rows, which the caller expands from the observations it sent.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from dataclasses import replace
from types import SimpleNamespace

import numpy as np

from banet_vo.backend.choices import WORKER_PRIORITIES
from banet_vo.backend.window_ba import (
    Observation,
    Observations,
    RelativePoseFactor,
    WindowBAConfig,
    WindowBAResult,
    WindowBundleAdjuster,
)

_HEADER = struct.Struct("<Q")


class WindowSolveFailed(RuntimeError):
    """The worker could not solve a window (the solve raised there); the worker itself goes on and takes
    the next job. Any other RuntimeError from the adjuster means the worker is gone or takes no jobs."""


def _pack_points(points: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter(points, np.int64, len(points))
    xyz = (
        np.stack([np.asarray(p, np.float64).reshape(3) for p in points.values()])
        if points
        else np.zeros((0, 3))
    )
    return ids, xyz


def _unpack_points(packed: tuple[np.ndarray, np.ndarray]) -> dict[int, np.ndarray]:
    ids, xyz = packed
    return dict(zip(ids.tolist(), xyz, strict=True))


def _write(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read(stream):
    """The next object on the stream, or EOFError when it closed."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    size = _HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class BackgroundBundleAdjuster:
    """Submits window BAs to one worker process (started on first use) and hands back each result once it
    is ready. Not thread-safe: one caller thread. `priority` idle runs the worker under SCHED_IDLE
    (lower_priority): it then solves only on a core that nothing else (the caller's tracking) wants."""

    def __init__(self, priority: str = "normal") -> None:
        if priority not in WORKER_PRIORITIES:
            raise ValueError(f"priority must be one of {WORKER_PRIORITIES}, got {priority!r}")
        self.priority = priority
        self._process: subprocess.Popen | None = None
        self._results: queue.Queue = queue.Queue()
        self._sequence = 0  # of the last submitted job
        self._pending: int | None = None  # sequence of the job whose result is wanted
        self._observations: Observations | None = None  # of the wanted job

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def _start(self) -> None:
        # Its own session: a terminal's Ctrl-C goes to the whole foreground process group, and the worker,
        # killed by it with a traceback, left the node's last window BAs without a solver (banet-vo-run's
        # first Ctrl-C still processes the frames sent). The node ends it: end of input, then kill.
        self._process = subprocess.Popen(
            [sys.executable, "-m", "banet_vo.backend.background", "--priority", self.priority],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        self._results = queue.Queue()  # one per worker: a dead worker's last word is not the next one's
        threading.Thread(target=self._read_results, args=(self._process, self._results), daemon=True).start()

    @staticmethod
    def _read_results(process: subprocess.Popen, results: queue.Queue) -> None:
        try:
            while True:
                results.put(_read(process.stdout))
        except (EOFError, OSError, pickle.UnpicklingError) as err:
            code = process.wait()
            results.put((None, RuntimeError(f"window BA worker stopped (exit code {code}): {err!r}")))

    def submit(
        self,
        camera,
        config: WindowBAConfig,
        poses: dict[int, np.ndarray],
        points: dict[int, np.ndarray],
        observations: Observations | list[Observation],
        fixed: set[int],
        relative: list[RelativePoseFactor] | None = None,
    ) -> None:
        if self._pending is not None:
            raise RuntimeError("a window BA is already running")
        if self._process is None or self._process.poll() is not None:
            self._start()
        self._sequence += 1
        # Plain numbers: the worker never imports banet_vo.geometry (and with it torch).
        intrinsics = (camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height)
        if not isinstance(observations, Observations):
            observations = Observations.from_list(observations)
        self._observations = observations  # the pruned rows come back; this expands them
        try:
            _write(
                self._process.stdin,
                (
                    self._sequence,
                    intrinsics,
                    config,
                    poses,
                    _pack_points(points),
                    observations,
                    fixed,
                    relative,
                ),
            )
        except OSError as err:
            raise RuntimeError(f"window BA worker does not take jobs: {err}") from err
        self._pending = self._sequence

    def poll(self, wait: bool = False) -> WindowBAResult | None:
        """The wanted job's result (then the adjuster is free again), or None while it runs. A failed solve
        is raised here as WindowSolveFailed; a worker that stopped as a plain RuntimeError."""
        while self._pending is not None:
            try:
                sequence, outcome = self._results.get(block=wait)
            except queue.Empty:
                return None
            if sequence is not None and sequence != self._pending:
                continue  # a discarded job's result
            self._pending = None
            if isinstance(outcome, BaseException):
                if sequence is None:  # the reader's word that the worker stopped
                    raise outcome
                raise WindowSolveFailed(f"window BA failed in the worker: {outcome}") from outcome
            outliers = [self._observations.row(int(i)) for i in outcome.outlier_rows]
            return replace(outcome, points=_unpack_points(outcome.points), outliers=outliers)
        return None

    def discard(self) -> None:
        """Forget the running job (its result is stale: the map it was built from is gone)."""
        self._pending = None

    def close(self) -> None:
        self._pending = None
        if self._process is not None:
            if self._process.stdin:
                try:
                    self._process.stdin.close()  # the worker exits at end of input
                except OSError:  # a dead worker: what a failed write left buffered cannot be flushed
                    pass
            # The job it may be solving has no reader any more: a short grace, then stop it, so that the
            # node's shutdown stays within a supervisor's SIGINT -> SIGTERM escalation (launch: 5 s).
            try:
                self._process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                self._process.terminate()
                try:
                    self._process.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None


class HeldBundleAdjuster:
    """A repeatable stand-in for BackgroundBundleAdjuster, for offline studies of what the background solve's
    lag costs: each window is solved in line when submitted, and its result is handed back only once
    `hold_frames` frames have begun since (`next_frame()`, called by whoever feeds the frames), or at once
    to a caller that waits. Live, a solve takes 2-4 frames of a 10 Hz camera on 2 cores."""

    def __init__(self, hold_frames: int) -> None:
        if isinstance(hold_frames, bool) or not isinstance(hold_frames, int) or hold_frames < 0:
            raise ValueError(f"hold_frames must be an int >= 0, got {hold_frames!r}")
        self.hold_frames = hold_frames
        self.waits = 0  # results a caller waited for before their frames had passed
        self.submitted = 0
        self._result: WindowBAResult | None = None
        self._frames_left = 0

    @property
    def busy(self) -> bool:
        return self._result is not None

    def next_frame(self) -> None:
        """A new frame begins: the held result is one frame closer."""
        self._frames_left -= 1

    def submit(self, camera, config: WindowBAConfig, *window) -> None:
        """BackgroundBundleAdjuster.submit's arguments; `window` is what WindowBundleAdjuster.solve takes."""
        if self._result is not None:
            raise RuntimeError("a window BA is already running")
        self._result = WindowBundleAdjuster(camera, config).solve(*window)
        self._frames_left = self.hold_frames
        self.submitted += 1

    def poll(self, wait: bool = False) -> WindowBAResult | None:
        if self._result is None or not (wait or self._frames_left <= 0):
            return None
        self.waits += self._frames_left > 0
        result, self._result = self._result, None
        return result

    def discard(self) -> None:
        self._result = None

    def close(self) -> None:
        self._result = None


def lower_priority() -> None:
    """Put every thread of this process (and so the threads it starts later) under SCHED_IDLE: it then
    runs only on a core nothing else wants. Where the OS has no SCHED_IDLE, nice 19 instead."""
    try:
        idle = os.SCHED_IDLE
        for tid in os.listdir("/proc/self/task"):
            os.sched_setscheduler(int(tid), idle, os.sched_param(0))
    except (AttributeError, OSError) as err:
        os.nice(19 - os.nice(0))
        print(f"window BA worker: no SCHED_IDLE here ({err}); running at nice 19 instead", file=sys.stderr)


def _serve(stdin, stdout) -> None:
    adjusters: dict[tuple, WindowBundleAdjuster] = {}
    while True:
        try:
            sequence, intrinsics, config, poses, points, observations, fixed, relative = _read(stdin)
        except EOFError:
            return
        try:
            key = (intrinsics, config)
            if key not in adjusters:
                adjusters.clear()
                fx, fy, cx, cy, width, height = intrinsics
                camera = SimpleNamespace(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height)
                adjusters[key] = WindowBundleAdjuster(camera, config)
            solved = adjusters[key].solve(poses, _unpack_points(points), observations, fixed, relative)
            outcome = replace(solved, points=_pack_points(solved.points), outliers=[])
        except Exception as err:  # handed to the caller, which raises it
            outcome = RuntimeError(f"{type(err).__name__}: {err}")
        try:
            _write(stdout, (sequence, outcome))
        except (BrokenPipeError, OSError):  # the node is gone (killed): nobody to tell, nothing to print
            return


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a SIGINT sent to it alone: its parent decides when it ends
    if sys.argv[1:] == ["--priority", "idle"]:
        lower_priority()
    elif sys.argv[1:] not in ([], ["--priority", "normal"]):
        sys.exit(
            f"usage: python -m banet_vo.backend.background [--priority {{{','.join(WORKER_PRIORITIES)}}}]"
        )
    # The protocol keeps the real stdout; anything printed (by GTSAM or Python) goes to stderr instead.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.stdin.buffer, protocol_out)
