"""Smoke, subset and variant runs of covariance_nees (--fit on some clips, --max-frames), vo_kitti
(--baselines-only) and banet_pairs (--max-pairs) go to runs/<name>_<what differs>.md unless --out is
given: they overwrote the committed results. The committed run still writes its results file."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import banet_pairs, covariance_nees, section, vo_kitti

ROOT = Path(section.__file__).resolve().parents[1]
RUNS = ROOT / "runs"


class Stop(Exception):
    pass


def _destination(module, argv: list[str], monkeypatch) -> Path:
    seen = []
    real = module.variant_out

    def spy(out, committed, differs):
        seen.append(real(out, committed, differs))
        raise Stop

    monkeypatch.setattr(module, "variant_out", spy)
    monkeypatch.chdir(ROOT)
    with pytest.raises(Stop):
        module.main(argv)
    return seen[0]


@pytest.mark.parametrize(
    ("module", "argv", "expected"),
    [
        (covariance_nees, [], covariance_nees.RESULTS),
        (covariance_nees, ["--clips", "kitti07,tartanair,kitti06,hololens"], covariance_nees.RESULTS),
        (covariance_nees, ["--clips", "kitti06", "--fit"], RUNS / "covariance_nees_clips-kitti06_fit.md"),
        (covariance_nees, ["--max-frames", "5"], RUNS / "covariance_nees_first5.md"),
        (covariance_nees, ["--max-frames", "5", "--out", "/tmp/x.md"], Path("/tmp/x.md")),
        (vo_kitti, [], vo_kitti.RESULTS),
        (
            vo_kitti,
            ["--model", "models/banet_small_synthetic.safetensors", "--device", "cpu", "--rate", "0.25"],
            vo_kitti.RESULTS,
        ),
        (vo_kitti, ["--baselines-only"], RUNS / "vo_kitti_baselines_only.md"),
        (vo_kitti, ["--baselines-only", "--results", "/tmp/y.md"], Path("/tmp/y.md")),
        (banet_pairs, [], banet_pairs.RESULTS),
        (banet_pairs, ["--max-pairs", "5"], RUNS / "banet_pairs_max_pairs5.md"),
        (banet_pairs, ["--max-pairs", "5", "--out", "/tmp/z.md"], Path("/tmp/z.md")),
    ],
)
def test_a_variant_run_does_not_overwrite_the_committed_results(module, argv, expected, monkeypatch) -> None:
    assert _destination(module, argv, monkeypatch) == expected
