"""Window BAs in the worker process (banet_vo.backend.background): the same solution as in line, stale
results dropped, a dead worker reported to the caller."""

from __future__ import annotations

import os

import numpy as np
import pytest
from banet_vo.backend import Observation, WindowBAConfig, WindowBundleAdjuster
from banet_vo.backend.background import BackgroundBundleAdjuster, HeldBundleAdjuster, WindowSolveFailed
from banet_vo.frontend.solvers import project
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.rigid import pose_matrix
from scipy.spatial.transform import Rotation

CAMERA = PinholeCamera(450.0, 500.0, 320.0, 240.0, 640, 480)


def _noisy(seed: int):
    """A 5-keyframe window seen exactly, then perturbed (the two oldest keyframes exact)."""
    rng = np.random.default_rng(seed)
    poses = {
        k: pose_matrix([0.4 * k, 0.0, 0.1 * k], Rotation.from_rotvec([0, 0.02 * k, 0]).as_quat())
        for k in range(5)
    }
    points = {j: np.array([rng.uniform(-4, 6), rng.uniform(-2, 2), rng.uniform(6, 14)]) for j in range(150)}
    obs = []
    for k, T in poses.items():
        uv, z = project(np.linalg.inv(T), np.stack(list(points.values())), CAMERA)
        obs += [
            Observation(k, j, (float(p[0]), float(p[1])))
            for j, (p, d) in enumerate(zip(uv, z, strict=True))
            if d > 0
        ]
    noisy = {
        k: T
        if k < 2
        else T @ pose_matrix(rng.normal(0, 0.05, 3), Rotation.from_rotvec(rng.normal(0, 0.01, 3)).as_quat())
        for k, T in poses.items()
    }
    return noisy, {j: P + rng.normal(0, 0.1, 3) for j, P in points.items()}, obs


@pytest.fixture
def background():
    adjuster = BackgroundBundleAdjuster()
    yield adjuster
    adjuster.close()


def test_worker_gives_the_inline_solution(background):
    """Bit-identical, pruned observations included (landmarks travel as arrays, pruned rows as indices)."""
    poses, points, obs = _noisy(0)
    obs = [
        Observation(o.keyframe, o.landmark, (o.pixel[0] + 40.0, o.pixel[1])) if i % 47 == 7 else o
        for i, o in enumerate(obs)
    ]  # gross outliers, one view of a landmark each: pruned between the passes
    config = WindowBAConfig()
    inline = WindowBundleAdjuster(CAMERA, config).solve(poses, points, obs, {0, 1})
    assert not background.busy
    background.submit(CAMERA, config, poses, points, obs, {0, 1})
    assert background.busy
    with pytest.raises(RuntimeError, match="already running"):
        background.submit(CAMERA, config, poses, points, obs, {0, 1})
    result = background.poll(wait=True)
    assert not background.busy and background.poll() is None
    for k in poses:
        np.testing.assert_array_equal(result.poses[k], inline.poses[k])
    for j in points:
        np.testing.assert_array_equal(result.points[j], inline.points[j])
    assert list(result.points) == list(inline.points)
    corrupted = [i for i in range(len(obs)) if i % 47 == 7]
    assert inline.outlier_rows.tolist() == corrupted  # exactly the gross outliers are pruned
    assert result.outliers == inline.outliers
    np.testing.assert_array_equal(result.outlier_rows, inline.outlier_rows)
    assert (result.initial_error, result.final_error, result.iterations) == (
        inline.initial_error,
        inline.final_error,
        inline.iterations,
    )


def test_a_discarded_job_is_never_handed_back(background):
    first, second = _noisy(1), _noisy(2)
    config = WindowBAConfig()
    background.submit(CAMERA, config, *first, {0, 1})
    background.discard()
    background.submit(CAMERA, config, *second, {0, 1})
    result = background.poll(wait=True)
    expected = WindowBundleAdjuster(CAMERA, config).solve(*second, {0, 1})
    for k in expected.poses:
        np.testing.assert_array_equal(result.poses[k], expected.poses[k])


def test_a_failing_solve_is_raised_in_the_caller(background):
    poses, points, obs = _noisy(3)
    background.submit(CAMERA, WindowBAConfig(), poses, points, obs, set())  # no gauge: solve() refuses
    with pytest.raises(WindowSolveFailed, match="at least one keyframe must be fixed"):
        background.poll(wait=True)
    background.submit(CAMERA, WindowBAConfig(), poses, points, obs, {0, 1})  # the worker goes on
    assert background.poll(wait=True).poses.keys() == poses.keys()


def test_a_dead_worker_is_reported_not_waited_for(background):
    poses, points, obs = _noisy(4)
    background.submit(CAMERA, WindowBAConfig(), poses, points, obs, {0, 1})
    background.poll(wait=True)
    background._process.kill()
    background._process.wait()
    background.submit(CAMERA, WindowBAConfig(), poses, points, obs, {0, 1})  # a new worker starts
    assert background.poll(wait=True) is not None
    process = background._process
    background.submit(CAMERA, WindowBAConfig(), poses, points, obs, {0, 1})
    process.kill()
    with pytest.raises(RuntimeError, match="worker stopped") as stopped:
        background.poll(wait=True)
    assert not isinstance(stopped.value, WindowSolveFailed)  # the caller must not keep sending it jobs


def test_the_held_stand_in_hands_back_the_inline_solution_after_its_frames():
    """HeldBundleAdjuster: the same solution as in line, handed back only once hold_frames frames have begun
    since the submit, or at once to a caller that waits (counted); one job at a time; discard forgets it."""
    poses, points, obs = _noisy(1)
    config = WindowBAConfig()
    inline = WindowBundleAdjuster(CAMERA, config).solve(poses, points, obs, {0, 1})
    held = HeldBundleAdjuster(2)
    held.submit(CAMERA, config, poses, points, obs, {0, 1})
    assert held.busy and held.submitted == 1
    with pytest.raises(RuntimeError, match="already running"):
        held.submit(CAMERA, config, poses, points, obs, {0, 1})
    assert held.poll() is None
    held.next_frame()
    assert held.poll() is None  # one frame of two
    held.next_frame()
    result = held.poll()
    assert not held.busy and held.waits == 0 and held.poll() is None
    for k in poses:
        np.testing.assert_array_equal(result.poses[k], inline.poses[k])
    for j in points:
        np.testing.assert_array_equal(result.points[j], inline.points[j])
    held.submit(CAMERA, config, poses, points, obs, {0, 1})
    assert held.poll(wait=True) is not None and held.waits == 1  # waited for before its frames passed
    held.submit(CAMERA, config, poses, points, obs, {0, 1})
    held.discard()
    assert not held.busy and held.poll(wait=True) is None
    immediate = HeldBundleAdjuster(0)  # hold 0: back at the next poll, as a worker that is never late
    immediate.submit(CAMERA, config, poses, points, obs, {0, 1})
    assert immediate.poll() is not None
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="hold_frames"):
            HeldBundleAdjuster(bad)


def test_a_worker_that_cannot_take_a_job_is_a_runtime_error_and_nothing_waits(background, monkeypatch):
    """A pipe broken while the job is written (the worker died after the liveness check) is raised as the
    RuntimeError the odometry falls back in line on, and no job is left pending: the next submit starts a
    worker again and is solved."""
    import banet_vo.backend.background as module

    poses, points, obs = _noisy(5)

    def broken(*args):
        raise BrokenPipeError(32, "Broken pipe")

    with monkeypatch.context() as patch:
        patch.setattr(module, "_write", broken)
        with pytest.raises(RuntimeError, match=r"does not take jobs: .*Broken pipe"):
            background.submit(CAMERA, WindowBAConfig(), poses, points, obs, {0, 1})
    assert not background.busy and background.poll(wait=True) is None
    background.submit(CAMERA, WindowBAConfig(), poses, points, obs, {0, 1})
    assert background.poll(wait=True).poses.keys() == poses.keys()


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="the OS has no SCHED_IDLE (Linux only)")
def test_an_idle_worker_runs_every_thread_under_sched_idle_and_solves_the_same():
    """priority idle (background_ba_priority): the worker puts each of its threads under SCHED_IDLE, so it
    only takes a core tracking leaves free, and its solution is still the one in line."""
    poses, points, obs = _noisy(5)
    expected = WindowBundleAdjuster(CAMERA).solve(poses, points, obs, {0, 1})
    normal, idle = BackgroundBundleAdjuster(), BackgroundBundleAdjuster(priority="idle")
    try:
        for adjuster in (normal, idle):
            adjuster.submit(CAMERA, WindowBAConfig(), poses, points, obs, {0, 1})
            result = adjuster.poll(wait=True)
            for k in expected.poses:
                np.testing.assert_array_equal(result.poses[k], expected.poses[k])
        policies = {
            name: {os.sched_getscheduler(int(t)) for t in os.listdir(f"/proc/{a._process.pid}/task")}
            for name, a in (("normal", normal), ("idle", idle))
        }
    finally:
        normal.close()
        idle.close()
    assert policies == {"normal": {os.SCHED_OTHER}, "idle": {os.SCHED_IDLE}}


def test_a_worker_priority_outside_the_choices_is_refused():
    with pytest.raises(ValueError, match="priority must be one of"):
        BackgroundBundleAdjuster(priority="high")
    from banet_vo.odometry import OdometryConfig

    assert OdometryConfig().background_ba_priority == "normal"
    with pytest.raises(ValueError, match="background_ba_priority"):
        OdometryConfig(background_ba_priority="low")


def test_the_worker_refuses_arguments_it_does_not_know():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "banet_vo.backend.background", "--priority", "high"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "usage" in done.stderr


def test_closing_after_a_write_to_a_dead_worker_does_not_raise(background):
    """A worker that dies while a job is written leaves bytes in the pipe's buffer; close() must still
    reap it (the odometry closes the adjuster before it solves that window in line)."""
    poses, points, obs = _noisy(6)
    background.submit(CAMERA, WindowBAConfig(), poses, points, obs, {0, 1})
    background.poll(wait=True)
    process = background._process
    process.kill()
    process.wait()
    process.stdin.write(b"\0" * 64)  # buffered: flushing it would raise BrokenPipeError
    background.close()
    assert background._process is None and process.returncode is not None


def test_a_sigint_to_the_terminal_or_the_worker_leaves_it_serving(background):
    """A terminal's Ctrl-C reaches the foreground process group: the worker is in a session of its own, and
    a SIGINT sent to it directly is ignored; the node ends it (end of input) when it closes."""
    import signal
    import time

    poses, points, obs = _noisy(3)
    config = WindowBAConfig()
    background.submit(CAMERA, config, poses, points, obs, {0, 1})
    assert background.poll(wait=True) is not None
    process = background._process
    assert os.getpgid(process.pid) != os.getpgrp()
    os.kill(process.pid, signal.SIGINT)
    time.sleep(0.5)
    assert process.poll() is None
    background.submit(CAMERA, config, poses, points, obs, {0, 1})
    assert background.poll(wait=True) is not None and background._process is process
    background.close()
    assert process.returncode is not None


def test_a_worker_whose_node_is_gone_ends_quietly_after_its_solve():
    """The node killed (SIGKILL) while the worker solves: its answer meets a closed pipe, and it returns
    without a traceback (the BrokenPipeError went to the terminal)."""
    import io

    from banet_vo.backend import background as bg

    poses, points, obs = _noisy(4)
    jobs = io.BytesIO()
    intrinsics = (CAMERA.fx, CAMERA.fy, CAMERA.cx, CAMERA.cy, CAMERA.width, CAMERA.height)
    bg._write(
        jobs,
        (
            1,
            intrinsics,
            WindowBAConfig(),
            poses,
            bg._pack_points(points),
            bg.Observations.from_list(obs),
            {0, 1},
            None,
        ),
    )
    jobs.seek(0)

    class ClosedPipe(io.BytesIO):
        def write(self, data):
            raise BrokenPipeError(32, "Broken pipe")

    bg._serve(jobs, ClosedPipe())  # returns, raises nothing
