"""`banet-vo-eval traj` on input it cannot evaluate: a one-line `error:` and exit status 2, never a
traceback, and nothing written after a refusal (an RPE delta of 0 or longer than the path, a standing or
collinear estimate, an unsorted TUM file, an output folder that cannot be made, a bad --plane)."""

from __future__ import annotations

import numpy as np
import pytest
from banet_vo.evaluation.cli import main
from banet_vo.evaluation.trajectory import (
    AlignmentError,
    align_trajectory,
    evaluate_trajectory,
    read_tum,
    trajectory_from_poses,
    write_tum,
)
from evo.core.geometry import GeometryException

N = 30


def _curve() -> np.ndarray:
    """30 poses 0.1 m apart on a curve (2.9 m of path, not on one line)."""
    T = np.tile(np.eye(4), (N, 1, 1))
    T[:, 2, 3] = 0.1 * np.arange(N)
    T[:, 0, 3] = 0.3 * np.sin(np.arange(N) / 5.0)
    return T


def _write(tmp_path, name: str, poses: np.ndarray) -> str:
    return str(write_tum(tmp_path / name, trajectory_from_poses(0.1 * np.arange(len(poses)), poses)))


@pytest.fixture
def files(tmp_path):
    gt = _curve()
    still = np.tile(np.eye(4), (N, 1, 1))
    line = np.tile(np.eye(4), (N, 1, 1))
    line[:, 2, 3] = 0.05 * np.arange(N)
    return {
        "gt": _write(tmp_path, "gt.tum", gt),
        "est": _write(tmp_path, "est.tum", gt),
        "still": _write(tmp_path, "still.tum", still),
        "line": _write(tmp_path, "line.tum", line),
    }


@pytest.mark.parametrize(
    ("est", "extra", "message"),
    [
        ("est", ["--rpe-delta", "0"], "RPE delta must be > 0, got 0 frames"),
        ("est", ["--rpe-delta", "100"], "ground truth spans 29 frames); give a smaller RPE delta"),
        ("est", ["--rpe-delta", "50", "--rpe-unit", "m"], "no pair of matched poses is that far apart"),
        ("still", [], "se3 alignment is not possible"),
        ("still", ["--align", "sim3"], "sim3 alignment is not possible"),
        ("line", ["--align", "sim3"], "lie on one line; evaluate with align 'none'"),
        ("est", ["--plot", "/proc/no_such_dir/top.png"], "No such file or directory"),
        ("est", ["--json", "/proc/no_such_dir/r.json"], "No such file or directory"),
    ],
)
def test_traj_refuses_with_one_line(files, capsys, est, extra, message):
    assert main(["traj", files[est], files["gt"], *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if "error:" in x]
    assert line.startswith("banet-vo-eval traj: error: ") and message in line


def test_a_standing_estimate_is_still_none_aligned(files, capsys):
    assert main(["traj", files["still"], files["gt"], "--align", "none"]) == 0


def test_alignment_error_is_a_value_error_and_evos_own():
    """Callers that caught evo's GeometryException (benchmarks.vo_kitti) still catch it."""
    gt = trajectory_from_poses(np.arange(float(N)), _curve())
    still = trajectory_from_poses(np.arange(float(N)), np.tile(np.eye(4), (N, 1, 1)))
    for kind in (ValueError, GeometryException, AlignmentError):
        with pytest.raises(kind):
            align_trajectory(still, gt, "se3")


def test_rpe_delta_must_be_positive_in_the_library(files):
    est, gt = read_tum(files["est"]), read_tum(files["gt"])
    for delta in (0, -1, 0.0):
        with pytest.raises(ValueError, match="must be > 0"):
            evaluate_trajectory(est, gt, rpe_delta=delta)
    evaluate_trajectory(est, gt, rpe_delta=1, rpe_unit="m")  # a path of 3 m has pairs 1 m apart
    with pytest.raises(ValueError, match="give a smaller RPE delta"):
        evaluate_trajectory(est, gt, rpe_delta=5, rpe_unit="m")


@pytest.mark.parametrize(
    ("rows", "line"),
    [
        (["0.0", "0.1", "0.1", "0.2"], "line 4 (stamp 0.1) does not come after line 3 (stamp 0.1)"),
        (["0.0", "0.2", "0.1", "0.3"], "line 4 (stamp 0.1) does not come after line 3 (stamp 0.2)"),
    ],
)
def test_read_tum_refuses_stamps_out_of_order(tmp_path, capsys, files, rows, line):
    """A repeated or earlier stamp is named by its line (comments counted); the CLI exits 2 with it."""
    body = "# t x y z qx qy qz qw\n" + "".join(f"{t} 0 0 {k} 0 0 0 1\n" for k, t in enumerate(rows))
    (tmp_path / "bad.tum").write_text(body)
    with pytest.raises(ValueError, match="timestamps must be strictly increasing"):
        read_tum(tmp_path / "bad.tum")
    assert main(["traj", str(tmp_path / "bad.tum"), files["gt"]]) == 2
    assert line in capsys.readouterr().err


def test_read_tum_refuses_a_zero_quaternion(tmp_path, capsys, files):
    """evo reads qx = qy = qz = qw = 0 as the identity rotation: an estimate with its rotations missing
    scored as if they were right."""
    (tmp_path / "zq.tum").write_text("0.0 0 0 0 0 0 0 1\n0.1 0 0 1 0 0 0 0\n0.2 0 0 2 0 0 0 1\n")
    with pytest.raises(ValueError, match=r"pose 2 \(stamp 0.1\) has a zero or non-finite quaternion"):
        read_tum(tmp_path / "zq.tum")
    assert main(["traj", str(tmp_path / "zq.tum"), files["gt"]]) == 2
    assert "zero or non-finite quaternion" in capsys.readouterr().err


def test_bad_plane_is_refused_before_anything_is_printed_or_written(files, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["traj", files["est"], files["gt"], "--plane", "qq", "--plot", str(tmp_path / "top.png")]
    assert main([*args, "--json", str(out)]) == 2
    captured = capsys.readouterr()
    assert "plane must be 'auto' or two distinct axes" in captured.err
    assert "ATE" not in captured.out and not out.exists() and not (tmp_path / "top.png").exists()
