"""The per-stage profile wraps each stage with a timer and puts every original back."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from banet_vo.frontend.xfeat import Features

from benchmarks.frame_profile import STAGES, timed_stages


def _targets():
    for module_name, attr, method in STAGES.values():
        module = importlib.import_module(module_name)
        yield (getattr(module, attr), method) if method else (module, attr)


def test_stages_are_timed_inside_and_restored_after():
    before = [getattr(owner, name) for owner, name in _targets()]
    totals = {stage: 0.0 for stage in STAGES}
    kv = importlib.import_module("banet_vo.odometry.keyframe_vo")
    rng = np.random.default_rng(0)
    descriptors = torch.nn.functional.normalize(
        torch.randn(50, 64, generator=torch.Generator().manual_seed(0))
    )
    a = Features(rng.uniform(0, 100, (50, 2)), descriptors, np.ones(50), None)
    with timed_stages(totals):
        assert [getattr(o, n) for o, n in _targets()] != before
        matches = kv.match_mutual(a, a, 0.5)  # what the front end calls, through its namespace
    assert len(matches) == 50  # the wrapped function still returns its result
    assert totals["descriptor matching"] > 0.0
    assert sum(v > 0 for v in totals.values()) == 1
    assert [getattr(owner, name) for owner, name in _targets()] == before


def test_a_stage_that_raises_is_still_timed_and_restored():
    kv = importlib.import_module("banet_vo.odometry.keyframe_vo")
    original = kv.solve_absolute_pose
    totals = {stage: 0.0 for stage in STAGES}
    with timed_stages(totals), pytest.raises(AttributeError):
        kv.solve_absolute_pose(np.zeros((10, 2)), np.zeros((10, 3)), None)  # no camera
    assert totals["PnP RANSAC"] > 0.0
    assert kv.solve_absolute_pose is original


def test_an_unknown_window_solver_is_refused(capsys):
    from benchmarks.frame_profile import main

    with pytest.raises(SystemExit):
        main(["--window-solvers", "gtsam,g2o", "--max-frames", "2"])
    assert "must be one of" in capsys.readouterr().err
