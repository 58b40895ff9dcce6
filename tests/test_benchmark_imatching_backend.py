"""benchmarks/imatching_backend.py writes its section (command, machine, date, table) to --out, by default
benchmarks/results/imatching_backend.md: its docstring gave --out, which the CLI refused, and it wrote no
results file."""

from __future__ import annotations

from pathlib import Path

from benchmarks import imatching_backend

PAYLOAD = {
    "width": 288,
    "starts": [0, 12],
    "results": {
        "own": {
            solver: {
                "solved": 2,
                "windows": 2,
                "ba_median_s": 0.5,
                "refine_median_s": 0.25,
                "step_median_s": 1.0,
                "steps_timed": 2,
            }
            for solver in imatching_backend.SOLVERS
        }
    },
}


def test_out_gets_the_section(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(imatching_backend, "run", lambda args: PAYLOAD)
    out = tmp_path / "backend.md"
    assert imatching_backend.main(["--every", "12", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("## iMatching lower level")
    assert f"Command: `.venv/bin/python -m benchmarks.imatching_backend --every 12 --out {out}`" in text
    assert "| own | gtsam | 2/2 | 0.500 | 0.250 | 1.000 (n=2) |" in text


def test_default_out_is_the_committed_results_file(tmp_path: Path, monkeypatch) -> None:
    assert (
        imatching_backend.RESULTS
        == Path(imatching_backend.__file__).parent / "results" / "imatching_backend.md"
    )
    monkeypatch.setattr(imatching_backend, "RESULTS", tmp_path / "results.md")
    monkeypatch.setattr(imatching_backend, "run", lambda args: PAYLOAD)
    assert imatching_backend.main([]) == 0
    assert "| own | pypose | 2/2 |" in (tmp_path / "results.md").read_text()
