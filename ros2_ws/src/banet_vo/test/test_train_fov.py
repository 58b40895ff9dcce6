"""Synthetic training data at many focal lengths (data.fov_range): each sequence's field of view comes from
its seed, the renderer's intrinsics follow it, and a cache is reused only for the cameras it holds."""

from __future__ import annotations

import math

import pytest
import torch
from banet_vo.data.synthetic import DEFAULT_FOV_DEG
from banet_vo.train.config import DataConfig, TrainConfig
from banet_vo.train.data import load_or_render, make_specs, render_cache, save_cache


def test_each_seed_draws_its_own_field_of_view_within_the_range():
    specs = make_specs(["driving", "indoor"], 6, 10, 3, (64, 48), (40.0, 100.0))
    fovs = [s.fov_deg for s in specs]
    assert all(40.0 <= f <= 100.0 for f in fovs) and len({round(f, 6) for f in fovs}) == len(fovs)
    # The draw depends on the sequence alone: the same seed gives the same camera in a longer list.
    longer = make_specs(["driving", "indoor"], 9, 10, 3, (64, 48), (40.0, 100.0))
    by_key = {(s.scene, s.seed): s.fov_deg for s in longer}
    assert all(by_key[(s.scene, s.seed)] == s.fov_deg for s in specs)
    # Without a range every sequence keeps its scene's default (the runs-1-4 caches).
    plain = make_specs(["driving", "indoor"], 2, 0, 3, (64, 48))
    assert [s.fov for s in plain] == [DEFAULT_FOV_DEG["driving"]] * 2 + [DEFAULT_FOV_DEG["indoor"]] * 2
    for bad in [(100.0, 40.0), (0.5, 60.0), (60.0, 171.0)]:
        with pytest.raises(ValueError, match="fov_range"):
            make_specs(["indoor"], 1, 0, 3, (64, 48), bad)


def test_rendered_intrinsics_follow_the_drawn_field_of_view(tmp_path):
    specs = make_specs(["indoor"], 2, 0, 2, (32, 24), (45.0, 95.0))
    cache = render_cache(specs, progress=False)
    for spec, seq in zip(specs, cache["sequences"], strict=True):
        fx = float(seq["intrinsics"][0])
        assert fx == pytest.approx(16.0 / math.tan(math.radians(spec.fov_deg) / 2), rel=1e-9)
        assert seq["fov_deg"] == pytest.approx(spec.fov_deg)


def test_a_cache_is_reused_only_for_the_cameras_it_holds(tmp_path):
    path = tmp_path / "c.pt"
    default = make_specs(["indoor"], 1, 0, 2, (32, 24))
    save_cache(render_cache(default, progress=False), path)
    stamp = path.stat().st_mtime_ns
    assert load_or_render(path, default, progress=False)["sequences"][0]["fov_deg"] == 65.0
    assert path.stat().st_mtime_ns == stamp  # reused, not rendered again
    # A cache written before fov widening has no fov_deg: its intrinsics say which camera it holds.
    old = torch.load(path, weights_only=True)
    del old["sequences"][0]["fov_deg"]
    save_cache(old, path)
    stamp = path.stat().st_mtime_ns
    load_or_render(path, default, progress=False)
    assert path.stat().st_mtime_ns == stamp
    wide = make_specs(["indoor"], 1, 0, 2, (32, 24), (90.0, 90.0))
    cache = load_or_render(path, wide, progress=False)
    assert cache["sequences"][0]["fov_deg"] == pytest.approx(90.0)
    assert path.stat().st_mtime_ns != stamp  # another camera: rendered again


def test_data_config_checks_the_range():
    assert DataConfig().fov_range == ()
    assert TrainConfig.from_dict({"data": {"fov_range": [40, 100]}}).data.fov_range == (40.0, 100.0)
    for bad in ([40], [100, 40], [0, 60]):
        with pytest.raises(ValueError, match="fov_range"):
            DataConfig(fov_range=bad)
