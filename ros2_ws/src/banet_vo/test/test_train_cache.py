"""banet_vo.train.data render cache: written through a temporary of its own (two runs rendering one cache
at once), and reused only when it holds the asked image size."""

from __future__ import annotations

import torch
from banet_vo.train import data
from banet_vo.train.data import CACHE_FORMAT, load_cache, load_or_render, make_specs, save_cache


def _cache(value: float) -> dict:
    return {"format": CACHE_FORMAT, "sequences": [{"x": torch.full((1000,), value)}]}


def test_two_writers_of_one_cache_at_once_leave_one_whole_cache(tmp_path, monkeypatch):
    """Writer 2 saves the same path after writer 1 has written its temporary and before writer 1 renames
    it: with one fixed '<cache>.tmp' name writer 2 overwrote and took writer 1's temporary, and writer 1's
    rename failed (FileNotFoundError)."""
    path = tmp_path / "cache.pt"
    real_save = torch.save
    nested = []

    def another_run_saves_meanwhile(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        if not nested:
            nested.append(True)
            save_cache(_cache(2.0), path)  # the other run, finishing first

    monkeypatch.setattr(data.torch, "save", another_run_saves_meanwhile)
    save_cache(_cache(1.0), path)
    x = load_cache(path)["sequences"][0]["x"]
    assert bool((x == 1.0).all())  # the last rename wins, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.pt"]  # no temporary left


def test_a_cache_of_another_image_size_is_rendered_again(tmp_path, monkeypatch):
    specs = make_specs(["indoor"], 1, 0, 2, (64, 48))
    fov = specs[0].fov
    small = {
        "format": CACHE_FORMAT,
        "sequences": [
            {
                "scene": "indoor",
                "seed": 0,
                "fov_deg": fov,
                "images": torch.zeros(2, 48, 64, 3, dtype=torch.uint8),
            }
        ],
    }
    path = save_cache(small, tmp_path / "cache.pt")
    rendered = []

    def render(specs, progress=True):
        rendered.append(specs)
        return {"format": CACHE_FORMAT, "sequences": [{"size": list(specs[0].size)}]}

    monkeypatch.setattr(data, "render_cache", render)
    assert load_or_render(path, specs, progress=False) is not None and not rendered  # same size: reused
    bigger = make_specs(["indoor"], 1, 0, 2, (128, 96))
    cache = load_or_render(path, bigger, progress=False)
    assert len(rendered) == 1 and cache["sequences"][0]["size"] == [128, 96]


def test_a_killed_writers_temporary_is_removed_and_a_live_ones_is_kept(tmp_path, caplog):
    """A kill during save_cache leaves `.<cache>.<random>.tmp` (gigabytes for a real cache). The next save
    of that cache removes such a file once nothing has written to it for an hour, naming it; one written
    to just now may be another run's save of the same cache, streaming, and stays. Temporaries of other
    files are not this cache's to remove."""
    import logging
    import os
    import time

    path = tmp_path / "render.pt"
    dead = tmp_path / ".render.pt.dead1234.tmp"
    live = tmp_path / ".render.pt.live5678.tmp"
    other = tmp_path / ".other.pt.old0000.tmp"
    for temp in (dead, live, other):
        temp.write_bytes(b"partial")
    two_hours_ago = time.time() - 2 * 3600
    for temp in (dead, other):
        os.utime(temp, (two_hours_ago, two_hours_ago))
    with caplog.at_level(logging.WARNING):
        save_cache({"format": CACHE_FORMAT, "sequences": []}, path)
    assert not dead.exists() and live.exists() and other.exists()
    assert str(dead) in caplog.text and str(live) not in caplog.text
    assert load_cache(path)["sequences"] == []


def test_a_temporary_that_vanishes_while_stale_ones_are_cleared_is_skipped(tmp_path, monkeypatch):
    """Another run's save may rename its temporary away (or clear the same dead one) between the listing
    and the removal: that file is simply not ours to remove, and the save goes on."""
    from pathlib import Path

    from banet_vo.model import checkpoint

    path = tmp_path / "render.pt"
    gone = tmp_path / ".render.pt.gone.tmp"
    gone.write_bytes(b"x")
    real_glob = Path.glob

    def glob_then_vanish(self, pattern):
        found = list(real_glob(self, pattern))
        gone.unlink(missing_ok=True)  # the other writer's rename, after our listing
        return iter(found)

    monkeypatch.setattr(Path, "glob", glob_then_vanish)
    assert checkpoint.remove_stale_temps(tmp_path, path.name, unmodified_s=0.0) == []
    monkeypatch.undo()
    save_cache({"format": CACHE_FORMAT, "sequences": []}, path)
    assert load_cache(path)["sequences"] == []
