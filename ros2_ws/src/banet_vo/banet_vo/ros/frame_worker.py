"""A bounded latest-frame queue and the one worker thread that drains it, shared by our nodes.

Callbacks only put frames; the worker runs the slow part (inference, adaptation). A worker slower than
the camera therefore drops the oldest queued frames (counted) and never stalls the executor or grows
memory. Errors in the worker are counted and warned about through the node's EventCounters, never fatal.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from banet_vo.ros.camera_input import BAD_IMAGE, EventCounters

logger = logging.getLogger(__name__)

DROPPED = "dropped"  # frames pushed out of a full queue
ERRORS = "errors"  # frames lost to an unexpected exception in the worker


class LatestFrameQueue:
    """Bounded FIFO that drops the oldest item when full (a camera wants the newest frames)."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._items: collections.deque = collections.deque()
        self._maxsize = maxsize
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Any) -> int:
        """Add an item; returns how many old items were dropped to make room."""
        with self._cond:
            dropped = 0
            while len(self._items) >= self._maxsize:
                self._items.popleft()
                dropped += 1
            self._items.append(item)
            self._cond.notify()
            return dropped

    def get(self, timeout: float | None = None) -> Any | None:
        """The oldest item, or None on timeout or when closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                return None
            return self._items.popleft() if self._items else None

    def clear(self) -> int:
        with self._cond:
            n = len(self._items)
            self._items.clear()
            return n

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class FrameWorker:
    """A daemon thread that runs `on_start()` once, then `process(item)` on each queued item, oldest first.

    Items pushed out of the full queue are counted as "dropped". A ValueError from `process` is bad input
    (counted as "bad_image", warned `frame dropped: ...`); any other exception, numpy's LinAlgError (a
    ValueError) included, is counted as "errors" and logged with its traceback; the worker keeps serving
    either way. `alive` (e.g. the node's context.ok): once it says False, an exception is the shutdown
    reaching a frame in progress (a publish on a context that SIGINT shut down), and the worker stops
    without a word.
    """

    def __init__(
        self,
        process: Callable[[Any], None],
        events: EventCounters,
        queue_size: int,
        name: str,
        on_start: Callable[[], None] | None = None,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        self._process = process
        self._alive = alive
        self._events = events
        self._queue = LatestFrameQueue(queue_size)
        self._busy = threading.Event()
        self._started = threading.Event()
        self._on_start = on_start
        self._running = True
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def wait_started(self, timeout: float) -> bool:
        """Block until `on_start` has run on the worker's thread (True), or timeout (False)."""
        return self._started.wait(timeout)

    def put(self, item: Any) -> int:
        """Queue an item; returns (and counts) how many older ones were dropped for it."""
        dropped = self._queue.put(item)
        if dropped:
            self._events.add(DROPPED, dropped)
        return dropped

    def clear(self) -> int:
        """Discard what is queued (not the item being processed); returns how many."""
        return self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)

    def _run(self) -> None:
        try:
            if self._on_start is not None:  # on this thread: what it sets up (CUDA state) is this thread's
                self._on_start()
        except Exception:  # the frames still get served; the first one pays what on_start would have
            logger.exception("%s: start-up work failed", self._thread.name)
        finally:
            self._started.set()
        while self._running:
            item = self._queue.get(timeout=0.1)
            if item is None:
                continue
            self._busy.set()
            try:
                self._process(item)
            except np.linalg.LinAlgError as err:  # a ValueError, but a numerical failure inside
                self._unexpected(err)
            except ValueError as err:
                self._events.warn(BAD_IMAGE, f"frame dropped: {err}")
            except Exception as err:  # keep serving; logged with its traceback and counted
                if self._alive is not None and not self._alive():
                    self._running = False  # shut down under the frame: nobody left to tell
                else:
                    self._unexpected(err)
            finally:
                self._busy.clear()

    def _unexpected(self, err: Exception) -> None:
        text = f"frame dropped by an unexpected error: {type(err).__name__}: {err}"
        self._events.warn(ERRORS, text)
        logger.exception("unexpected error in %s while processing a frame", self._thread.name)

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or running (True), or timeout (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self._queue) == 0 and not self._busy.is_set():
                time.sleep(0.02)  # an item may be between get() and _busy.set()
                if len(self._queue) == 0 and not self._busy.is_set():
                    return True
            time.sleep(0.01)
        return False

    def stop(self, timeout: float) -> bool:
        """Stop taking items and wait up to `timeout` s for the item in progress to finish; False when it
        still runs (then what it uses must not be closed under it)."""
        self._running = False
        self._queue.close()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
        return not self._thread.is_alive()
