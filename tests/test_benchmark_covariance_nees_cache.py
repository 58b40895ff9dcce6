"""benchmarks.covariance_nees --from-cache: a cached clip run made with --max-frames (a smoke run) or with
another model is refused instead of being reported as the clip's run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import covariance_nees


def _cache(folder, name: str, **record) -> None:
    empty = np.zeros((0, 6))
    np.savez(
        folder / f"{name}.npz",
        stamps=np.zeros(0),
        D_est=empty,
        D_true=empty,
        covariance=np.zeros((0, 6, 6)),
        record=json.dumps({"clip": name, **record}),
    )


def test_a_cached_smoke_run_or_other_model_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(covariance_nees, "CACHE", tmp_path)
    _cache(tmp_path, "kitti06", max_frames=20, model=str(tmp_path / "m.safetensors"))
    with pytest.raises(ValueError, match="--max-frames 20, not None"):
        covariance_nees.load_cached("kitti06")
    assert covariance_nees.load_cached("kitti06", 20, tmp_path / "m.safetensors")["max_frames"] == 20
    with pytest.raises(ValueError, match="holds a run of"):
        covariance_nees.load_cached("kitti06", 20, tmp_path / "other.safetensors")
    _cache(tmp_path, "kitti07")  # written before the record said: a whole-clip run
    assert covariance_nees.load_cached("kitti07", None, tmp_path / "any.safetensors")["clip"] == "kitti07"
    assert covariance_nees.main(["--clips", "kitti06", "--from-cache", "--out", str(tmp_path / "o.md")]) == 2
    assert "--max-frames 20" in capsys.readouterr().err and not (tmp_path / "o.md").exists()
