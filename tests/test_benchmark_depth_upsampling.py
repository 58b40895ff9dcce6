"""benchmarks.depth_upsampling writes one row per camera size with a time for each method."""

from __future__ import annotations

import re

import pytest

from benchmarks import depth_upsampling


def test_writes_a_row_per_camera_with_both_methods(tmp_path):
    out = tmp_path / "depth_upsampling.md"
    assert depth_upsampling.main(["--repeats", "1", "--out", str(out)]) == 0
    text = out.read_text()
    for name, width, height in depth_upsampling.TARGETS:
        row = re.search(rf"\| {name} \| {width}x{height} \| ([0-9.]+) \| ([0-9.]+) \|", text)
        assert row is not None, name  # both times printed (in 0.1 ms steps: a fast one may read 0.0)


def test_repeats_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        depth_upsampling.main(["--repeats", "0"])
    assert "--repeats must be >= 1" in capsys.readouterr().err
