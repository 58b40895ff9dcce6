"""The per-stage timers wrap each stage, record by thread, and put every original back."""

from __future__ import annotations

import importlib
import threading

import numpy as np
import pytest
import torch
from banet_vo.evaluation.stage_times import (
    FRAME,
    FRAME_TARGETS,
    STAGES,
    StageTimes,
    format_summary,
    timed_stages,
)
from banet_vo.frontend.xfeat import Features


def _targets(stages):
    for modules, attr, method in stages:
        for module_name in (modules,) if isinstance(modules, str) else modules:
            module = importlib.import_module(module_name)
            yield (getattr(module, attr), method) if method else (module, attr)


def _features(n=50):
    rng = np.random.default_rng(0)
    descriptors = torch.nn.functional.normalize(
        torch.randn(n, 64, generator=torch.Generator().manual_seed(0))
    )
    return Features(rng.uniform(0, 100, (n, 2)), descriptors, np.ones(n), None)


def test_stages_are_timed_inside_by_thread_and_restored_after():
    stages = [*STAGES.values(), *FRAME_TARGETS]
    before = [getattr(owner, name) for owner, name in _targets(stages)]
    kv = importlib.import_module("banet_vo.odometry.keyframe_vo")
    kf = importlib.import_module("banet_vo.odometry.keyframe_flow")
    a = _features()
    times = StageTimes()
    with timed_stages(times, frame=True):
        assert all(getattr(o, n) is not b for (o, n), b in zip(_targets(stages), before, strict=True))
        matches = kv.match_mutual(a, a, 0.5)  # what the front end calls, through its namespace
        # the mapping thread matches through keyframe_flow's
        worker = threading.Thread(target=kf.match_mutual, args=(a, a, 0.5), name="mapping-like")
        worker.start()
        worker.join()
    assert len(matches) == 50  # the wrapped function still returns its result
    assert [getattr(owner, name) for owner, name in _targets(stages)] == before
    rows = times.summary()
    assert {(r["stage"], r["thread"], r["calls"]) for r in rows} == {
        ("descriptor matching", threading.current_thread().name, 1),
        ("descriptor matching", "mapping-like", 1),
    }
    assert all(r["total_s"] > 0 and r["p90_ms"] >= r["median_ms"] > 0 for r in rows)
    assert times.totals() == pytest.approx({"descriptor matching": sum(r["total_s"] for r in rows)})
    lines = format_summary(rows, frames=2)
    assert len(lines) == 2 and "mapping-like" in "".join(lines) and "ms per frame" in lines[0]


def test_a_stage_that_raises_is_still_timed_and_restored():
    kv = importlib.import_module("banet_vo.odometry.keyframe_tracking")
    original = kv.solve_absolute_pose
    times = StageTimes()
    with timed_stages(times), pytest.raises(AttributeError):
        kv.solve_absolute_pose(np.zeros((10, 2)), np.zeros((10, 3)), None)  # no camera
    assert times.totals()["PnP RANSAC"] > 0.0
    assert kv.solve_absolute_pose is original


def test_summary_orders_the_whole_frame_first_then_the_stages():
    times = StageTimes()
    times.record("BA-Net on keyframe pairs", 0.2, thread="b")
    times.record("XFeat extraction", 0.1, thread="a")
    times.record(FRAME, 0.5, thread="a")
    times.record("XFeat extraction", 0.3, thread="b")
    rows = times.summary()
    assert [(r["stage"], r["thread"]) for r in rows] == [
        (FRAME, "a"),
        ("XFeat extraction", "b"),
        ("XFeat extraction", "a"),
        ("BA-Net on keyframe pairs", "b"),
    ]


def test_every_keyframe_odometry_module_that_calls_a_timed_function_is_wrapped():
    """The keyframe odometry calls the front end's functions through its own modules' namespaces: a module
    that imports one and is not among the stage's modules would go untimed (a split of the odometry must
    name its new module in STAGES)."""
    import pkgutil

    import banet_vo.odometry as odometry

    wrapped = {(modules, attr) for modules, attr, method in STAGES.values() if method is None}
    wrapped = {
        (module_name, attr)
        for modules, attr in wrapped
        for module_name in ((modules,) if isinstance(modules, str) else modules)
    }
    functions = {attr: getattr(importlib.import_module(m), attr) for m, attr in wrapped}
    for info in pkgutil.iter_modules(odometry.__path__):
        if not info.name.startswith("keyframe"):
            continue
        name = f"banet_vo.odometry.{info.name}"
        module = importlib.import_module(name)
        for attr, function in functions.items():
            if getattr(module, attr, None) is function:
                assert (name, attr) in wrapped, f"{name} calls {attr} but STAGES does not wrap it there"
