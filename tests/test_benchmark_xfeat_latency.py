"""benchmarks.xfeat_latency on a real clip's first frames: it runs, writes its table, and the fast path
agrees with the wheel's code where it says it does."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_a_short_run_writes_its_table(kitti06_dir: Path, tmp_path):
    from benchmarks.xfeat_latency import main

    out = tmp_path / "xfeat.md"
    args = ["--clips", "kitti06", "--data", str(kitti06_dir.parent), "--frames", "3", "--repeats", "1"]
    assert main([*args, "--threads", "1", "--out", str(out)]) == 0
    row = next(line for line in out.read_text().splitlines() if line.startswith("| kitti06 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "1226x370" and cells[2] == "1" and cells[3] == "3"
    assert float(cells[4]) > 0 and float(cells[5]) > 0
    assert float(cells[7].rstrip(" %")) >= 98.0  # the same keypoints up to float rounding
    assert float(cells[8]) < 1e-3
    # The matching table: 3 frames give 3 pairs, and the lookup matches as the row argmax does.
    rows = [line for line in out.read_text().splitlines() if line.startswith("| kitti06 |")]
    cells = [c.strip() for c in rows[1].strip("|").split("|")]
    assert cells[1] == "1" and cells[3] == "3" and cells[7] == "3 of 3"
    assert float(cells[4]) > 0 and float(cells[5]) > 0


def test_the_row_argmax_reference_matches_as_match_mutual_does():
    """The benchmark's reference and match_mutual (itself tested against a float64 loop over the definition)
    give the same matches on random descriptors with near-duplicates, where no row ties."""
    import numpy as np
    import torch
    from banet_vo.frontend import Features, match_mutual

    from benchmarks.xfeat_latency import match_by_row_argmax

    rng = torch.Generator().manual_seed(3)
    da = torch.nn.functional.normalize(torch.randn(200, 64, generator=rng), dim=1)
    noisy = da[:100] + 0.06 * torch.randn(100, 64, generator=rng)
    db = torch.nn.functional.normalize(torch.cat([noisy, torch.randn(80, 64, generator=rng)]), dim=1)
    a, b = Features(np.zeros((200, 2)), da, np.ones(200)), Features(np.zeros((180, 2)), db, np.ones(180))
    expected = match_mutual(a, b, 0.82)
    assert len(expected) > 50
    assert np.array_equal(match_by_row_argmax(a, b, 0.82), expected)


def test_bad_arguments_are_refused(capsys):
    from benchmarks.xfeat_latency import main

    with pytest.raises(SystemExit):
        main(["--clips", "kitti99"])
    assert "unknown clips" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--threads", "two"])
    assert "comma-separated integers" in capsys.readouterr().err
