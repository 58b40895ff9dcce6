"""`banet-vo-eval` CLI: subcommand registry, help, traj and depth end to end on files."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from banet_vo.evaluation.cli import build_parser, main
from banet_vo.evaluation.commands import COMMAND_MODULES, available_commands
from banet_vo.evaluation.trajectory import evaluate_trajectory, read_tum, trajectory_from_poses, write_tum
from scipy.spatial.transform import Rotation


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_registry_and_every_option_documented():
    parser = build_parser()
    subs = _subparsers(parser)
    assert list(subs) == list(available_commands())
    assert set(COMMAND_MODULES) <= set(subs)
    for name, sub in subs.items():
        for action in sub._actions:
            assert action.help, f"{name}: {action.dest} has no help text"
        text = sub.format_help()
        for action in sub._actions:
            for option in action.option_strings:
                assert option in text, f"{name}: {option} missing from --help"


def test_console_script_help():
    script = Path(sys.executable).with_name("banet-vo-eval")
    if not script.exists():
        pytest.skip(f"console script not installed at {script}")
    out = subprocess.run(
        [str(script), "traj", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "--align" in out.stdout and "sim3" in out.stdout


def drive(n: int, step: float) -> np.ndarray:
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, 2, 3] = step * np.arange(n)
    T[:, 0, 3] = 3.0 * np.sin(np.arange(n) / 20.0)
    return T


def test_traj_end_to_end(tmp_path, capsys):
    gt_T = drive(60, 1.0)
    rng = np.random.default_rng(0)
    est_T = gt_T.copy()
    est_T[:, :3, 3] = 0.5 * gt_T[:, :3, 3] + rng.normal(0, 0.01, (60, 3))
    est_T[:, :3, :3] = Rotation.from_rotvec(rng.normal(0, 0.01, (60, 3))).as_matrix()
    stamps = 0.1 * np.arange(60)
    gt = write_tum(tmp_path / "gt.tum", trajectory_from_poses(stamps, gt_T))
    est = write_tum(tmp_path / "est.tum", trajectory_from_poses(stamps, est_T))
    args = ["traj", str(est), str(gt), "--align", "sim3", "--json", str(tmp_path / "r.json")]
    args += ["--plot", str(tmp_path / "top.png"), "--error-plot", str(tmp_path / "err.png")]
    assert main(args) == 0
    out = capsys.readouterr().out
    expected = evaluate_trajectory(read_tum(est), read_tum(gt), align="sim3")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["ate_m"]["rmse"] == pytest.approx(expected.ate["rmse"], abs=1e-12)
    assert data["scale"] == pytest.approx(2.0, rel=0.01)
    assert data["kitti"]["translation_pct"] is None and "100 m" in data["kitti"]["reason"]
    assert len(data["ate_errors_m"]) == 60
    assert "ATE rmse [m]" in out and f"{expected.ate['rmse']:.4f}" in out
    assert "KITTI segments" in out and "note: no KITTI segment errors: ground-truth path is" in out
    assert cv2.imread(str(tmp_path / "top.png")) is not None
    assert cv2.imread(str(tmp_path / "err.png")) is not None


def test_traj_reports_kitti_segments_when_long_enough(tmp_path, capsys):
    n = 251
    gt_T, est_T = np.tile(np.eye(4), (n, 1, 1)), np.tile(np.eye(4), (n, 1, 1))
    gt_T[:, 2, 3], est_T[:, 2, 3] = np.arange(n), 1.01 * np.arange(n)
    stamps = 0.1 * np.arange(n)
    gt = write_tum(tmp_path / "gt.tum", trajectory_from_poses(stamps, gt_T))
    est = write_tum(tmp_path / "est.tum", trajectory_from_poses(stamps, est_T))
    assert main(["traj", str(est), str(gt), "--align", "none", "--json", str(tmp_path / "r.json")]) == 0
    assert "KITTI trans [%]" in capsys.readouterr().out
    kitti = json.loads((tmp_path / "r.json").read_text())["kitti"]
    assert kitti["translation_pct"] == pytest.approx((15 * 1.01 + 5 * 1.005) / 20, abs=1e-6)


def test_traj_bad_file_is_a_clean_error(tmp_path, capsys):
    (tmp_path / "bad.tum").write_text("not a trajectory\n")
    assert main(["traj", str(tmp_path / "bad.tum"), str(tmp_path / "bad.tum")]) == 2
    assert "error" in capsys.readouterr().err


def test_depth_end_to_end(tmp_path, capsys):
    gt = np.array([[1000, 2000], [4000, 0]], dtype=np.uint16)  # millimetres, 0 = invalid
    cv2.imwrite(str(tmp_path / "gt.png"), gt)
    np.save(tmp_path / "pred.npy", np.array([[2.0, 2.0], [2.0, 5.0]], dtype=np.float32))
    np.save(tmp_path / "same.npy", gt.astype(np.float32) / 1000)
    files = [
        str(tmp_path / "pred.npy"),
        str(tmp_path / "gt.png"),
        str(tmp_path / "same.npy"),
        str(tmp_path / "gt.png"),
    ]
    args = ["depth", *files, "--json", str(tmp_path / "d.json"), "--plot-dir", str(tmp_path / "maps")]
    assert main(args) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "d.json").read_text())
    first = data["pairs"][0]
    assert first["abs_rel"] == pytest.approx(0.5, abs=1e-7)
    assert first["rmse"] == pytest.approx(math.sqrt(5 / 3), abs=1e-6)
    assert data["pairs"][1]["abs_rel"] == pytest.approx(0.0, abs=1e-7)
    assert data["mean"]["abs_rel"] == pytest.approx(0.25, abs=1e-7)
    assert "mean over 2 pair(s)" in out and "abs_rel" in out
    assert cv2.imread(str(tmp_path / "maps" / "1_pred_pred.png")) is not None


def test_depth_plots_of_predictions_with_one_name_are_kept_apart(tmp_path):
    """Two runs' predictions are both depth.npy: each pair's maps carry its number (the second pair's
    plots overwrote the first's)."""
    gt = np.full((4, 6), 2.0, dtype=np.float32)
    np.save(tmp_path / "gt.npy", gt)
    for run, value in (("a", 1.0), ("b", 3.0)):
        (tmp_path / run).mkdir()
        np.save(tmp_path / run / "depth.npy", np.full((4, 6), value, dtype=np.float32))
    files = [str(tmp_path / "a" / "depth.npy"), str(tmp_path / "gt.npy")]
    files += [str(tmp_path / "b" / "depth.npy"), str(tmp_path / "gt.npy")]
    assert main(["depth", *files, "--plot-dir", str(tmp_path / "maps")]) == 0
    names = sorted(p.name for p in (tmp_path / "maps").iterdir())
    assert names == ["1_depth_gt.png", "1_depth_pred.png", "2_depth_gt.png", "2_depth_pred.png"]
    first = cv2.imread(str(tmp_path / "maps" / "1_depth_pred.png"))
    second = cv2.imread(str(tmp_path / "maps" / "2_depth_pred.png"))
    assert first.shape == second.shape and not np.array_equal(first, second)


def test_depth_resize_and_errors(tmp_path, capsys):
    gt = np.full((4, 6), 2.0, dtype=np.float32)
    np.save(tmp_path / "gt.npy", gt)
    np.save(tmp_path / "half.npy", np.full((2, 3), 2.2, dtype=np.float32))
    assert main(["depth", str(tmp_path / "half.npy"), str(tmp_path / "gt.npy")]) == 2
    assert "--resize" in capsys.readouterr().err
    args = ["depth", str(tmp_path / "half.npy"), str(tmp_path / "gt.npy"), "--resize", "nearest"]
    assert main([*args, "--json", str(tmp_path / "d.json")]) == 0
    assert json.loads((tmp_path / "d.json").read_text())["mean"]["abs_rel"] == pytest.approx(0.1, abs=1e-6)
    assert main(["depth", str(tmp_path / "gt.npy")]) == 2
    assert "pairs" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--plot-dir", "--json"])
def test_depth_output_that_cannot_be_written_is_an_error_line(tmp_path, capsys, flag):
    np.save(tmp_path / "d.npy", np.full((4, 6), 2.0, dtype=np.float32))
    target = "/proc/no_such_dir/out" + (".json" if flag == "--json" else "")
    assert main(["depth", str(tmp_path / "d.npy"), str(tmp_path / "d.npy"), flag, target]) == 2
    err = capsys.readouterr().err
    assert "banet-vo-eval depth: error: " in err and "No such file or directory" in err
    assert "Traceback" not in err
