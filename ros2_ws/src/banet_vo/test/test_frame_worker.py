"""banet_vo.ros.frame_worker: items processed in order on the worker thread, a slow worker drops the
oldest queued items (counted), errors counted and the worker keeps serving, wait_idle, clear, stop."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytestmark = pytest.mark.ros

pytest.importorskip("rclpy")
from banet_vo.ros.camera_input import EventCounters  # noqa: E402
from banet_vo.ros.frame_worker import FrameWorker, LatestFrameQueue  # noqa: E402


class Recorder:
    """`process` that records items; raises for "bad"/"boom"; blocks on "wait" until released."""

    def __init__(self) -> None:
        self.items: list = []
        self.threads: set[str] = set()
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, item) -> None:
        self.threads.add(threading.current_thread().name)
        if item == "wait":
            self.started.set()
            assert self.release.wait(5.0)
        if item == "bad":
            raise ValueError("not an image")
        if item == "boom":
            raise RuntimeError("kaput")
        if item == "singular":
            np.linalg.inv(np.zeros((2, 2)))
        self.items.append(item)


@pytest.fixture
def worker_and_recorder():
    recorder = Recorder()
    logged: list[str] = []
    events = EventCounters(logged.append)
    worker = FrameWorker(recorder, events, queue_size=2, name="test_worker")
    yield worker, recorder, events, logged
    recorder.release.set()
    worker.stop(timeout=5.0)


def test_items_are_processed_in_order_on_the_worker_thread(worker_and_recorder):
    worker, recorder, events, _ = worker_and_recorder
    for i in range(2):
        assert worker.put(i) == 0
    assert worker.wait_idle(5.0)
    worker.put(2)
    assert worker.wait_idle(5.0)
    assert recorder.items == [0, 1, 2] and recorder.threads == {"test_worker"}
    assert events.get("dropped") == 0 and len(worker) == 0


def test_a_busy_worker_drops_the_oldest_queued_items_and_counts_them(worker_and_recorder):
    worker, recorder, events, _ = worker_and_recorder
    worker.put("wait")
    assert recorder.started.wait(5.0)  # the worker is busy with "wait"
    assert worker.put(1) == 0 and worker.put(2) == 0 and worker.put(3) == 1 and worker.put(4) == 1
    assert events.get("dropped") == 2 and len(worker) == 2
    assert not worker.wait_idle(0.1)  # still busy
    recorder.release.set()
    assert worker.wait_idle(5.0)
    assert recorder.items == ["wait", 3, 4]


def test_errors_are_counted_and_the_worker_keeps_serving(worker_and_recorder):
    worker, recorder, events, logged = worker_and_recorder
    worker.put("bad")
    worker.put("boom")
    assert worker.wait_idle(5.0)
    worker.put("good")
    assert worker.wait_idle(5.0)
    assert recorder.items == ["good"]
    assert events.get("bad_image") == 1 and events.get("errors") == 1
    assert logged == [
        "frame dropped: not an image [bad_image: 1 so far]",
        "frame dropped by an unexpected error: RuntimeError: kaput [errors: 1 so far]",
    ]


def test_clear_discards_queued_items_and_stop_ends_the_thread(worker_and_recorder):
    worker, recorder, _, _ = worker_and_recorder
    worker.put("wait")
    assert recorder.started.wait(5.0)
    worker.put(1)
    worker.put(2)
    assert worker.clear() == 2 and len(worker) == 0
    recorder.release.set()
    assert worker.wait_idle(5.0) and recorder.items == ["wait"]
    worker.stop(timeout=5.0)
    assert not any(t.name == "test_worker" for t in threading.enumerate())


def test_latest_frame_queue_refuses_a_zero_size():
    with pytest.raises(ValueError, match="maxsize must be >= 1"):
        LatestFrameQueue(0)


def test_a_numerical_failure_inside_is_an_error_not_bad_input(worker_and_recorder, caplog):
    """numpy's LinAlgError is a ValueError, but it comes from inside the pipeline: counted under "errors"
    with its traceback, not as a bad image."""
    worker, _, events, logged = worker_and_recorder
    with caplog.at_level("ERROR", logger="banet_vo.ros.frame_worker"):
        worker.put("singular")
        assert worker.wait_idle(5.0)
    assert events.get("errors") == 1 and events.get("bad_image") == 0
    assert logged == ["frame dropped by an unexpected error: LinAlgError: Singular matrix [errors: 1 so far]"]
    assert any(r.exc_info and r.exc_info[0] is np.linalg.LinAlgError for r in caplog.records)


def test_an_error_after_the_context_went_away_stops_the_worker_without_a_traceback(caplog):
    """SIGINT shuts rclpy's context down while a frame is in progress; its publish then raises. That
    printed 'frame dropped by an unexpected error' and a traceback on every Ctrl-C of a busy node."""
    recorder = Recorder()
    logged: list[str] = []
    alive = threading.Event()
    alive.set()
    worker = FrameWorker(recorder, EventCounters(logged.append), 4, name="test_worker", alive=alive.is_set)
    try:
        with caplog.at_level("ERROR", logger="banet_vo.ros.frame_worker"):
            worker.put("boom")  # while alive: an error as before
            assert worker.wait_idle(5.0)
            assert len(logged) == 1 and len(caplog.records) == 1
            alive.clear()  # the context is shut down
            worker.put("boom")
            assert worker.wait_idle(5.0)
        assert len(logged) == 1 and len(caplog.records) == 1  # nothing more said
    finally:
        worker.stop(timeout=5.0)


def test_stop_says_whether_the_item_in_progress_finished(worker_and_recorder):
    worker, recorder, _, _ = worker_and_recorder
    worker.put("wait")
    assert recorder.started.wait(5.0)
    assert worker.stop(timeout=0.1) is False  # still in "wait": what it uses must stay open
    recorder.release.set()
    assert worker.stop(timeout=5.0) is True


def test_on_start_runs_first_on_the_worker_thread_and_its_failure_does_not_stop_serving():
    """The node's warm-up: on_start runs once on the worker's own thread before any item; wait_started
    reports it; an exception in it is logged and the items are still served."""
    release = threading.Event()
    seen: list[tuple[str, str]] = []

    def on_start() -> None:
        seen.append(("start", threading.current_thread().name))
        assert release.wait(5.0)

    recorder = Recorder()
    worker = FrameWorker(recorder, EventCounters(lambda _: None), 2, name="warm", on_start=on_start)
    try:
        worker.put("early")  # queued while on_start runs
        assert not worker.wait_started(0.1)
        release.set()
        assert worker.wait_started(5.0)
        assert worker.wait_idle(5.0)
        assert seen == [("start", "warm")] and recorder.items == ["early"] and recorder.threads == {"warm"}
    finally:
        release.set()
        worker.stop(timeout=5.0)

    def failing() -> None:
        raise RuntimeError("no GPU after all")

    recorder = Recorder()
    worker = FrameWorker(recorder, EventCounters(lambda _: None), 2, name="warm2", on_start=failing)
    try:
        assert worker.wait_started(5.0)
        worker.put(1)
        assert worker.wait_idle(5.0) and recorder.items == [1]
    finally:
        worker.stop(timeout=5.0)
