"""Trajectory metrics: evo API wrappers against evo's own CLI, TUM round trips, KITTI segments by hand."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from banet_vo.evaluation.trajectory import (
    align_trajectory,
    evaluate_trajectory,
    kitti_segment_errors,
    read_tum,
    trajectory_from_poses,
    write_tum,
)
from scipy.spatial.transform import Rotation

EVO_APE = Path(sys.executable).with_name("evo_ape")
EVO_RPE = Path(sys.executable).with_name("evo_rpe")


def helix_poses(n: int = 60, seed: int = 0) -> np.ndarray:
    """Camera-to-world poses along a 3-D helix with wobbling orientation."""
    s = np.linspace(0, 2 * math.pi, n)
    xyz = np.stack([4 * np.cos(s), 4 * np.sin(s), 0.5 * s], axis=1)
    rotvec = np.stack([0.2 * np.sin(3 * s), s, 0.1 * np.cos(2 * s)], axis=1)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:, :3, 3] = xyz
    return T


def perturb(T: np.ndarray, seed: int, sigma_t: float = 0.05, sigma_r: float = 0.02) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = T.copy()
    out[:, :3, 3] += rng.normal(0, sigma_t, (T.shape[0], 3))
    out[:, :3, :3] = Rotation.from_rotvec(rng.normal(0, sigma_r, (T.shape[0], 3))).as_matrix() @ T[:, :3, :3]
    return out


def sim3(s: float, rotvec, t) -> np.ndarray:
    S = np.eye(4)
    S[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    S[:3, 3] = t
    return S, s


def apply_sim3(T: np.ndarray, S: np.ndarray, s: float) -> np.ndarray:
    """World change x' = s R x + t applied to camera-to-world poses."""
    out = T.copy()
    out[:, :3, :3] = S[:3, :3] @ T[:, :3, :3]
    out[:, :3, 3] = s * T[:, :3, 3] @ S[:3, :3].T + S[:3, 3]
    return out


def evo_cli_rmse(tool: Path, gt: Path, est: Path, flags: list[str], tmp_path: Path) -> float:
    out = tmp_path / f"{tool.name}_{'_'.join(f.strip('-') for f in flags)}.zip"
    subprocess.run(
        [str(tool), "tum", str(gt), str(est), *flags, "--save_results", str(out), "--no_warnings"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with zipfile.ZipFile(out) as z:
        return float(json.loads(z.read("stats.json"))["rmse"])


def test_tum_round_trip_through_evo(tmp_path):
    T = helix_poses(20)
    stamps = 100.0 + 0.1 * np.arange(20)
    path = write_tum(tmp_path / "sub" / "traj.tum", trajectory_from_poses(stamps, T))
    back = read_tum(path)
    np.testing.assert_allclose(back.timestamps, stamps, atol=1e-12)
    np.testing.assert_allclose(np.asarray(back.poses_se3), T, atol=1e-12)
    first = path.read_text().splitlines()[0].split()
    assert len(first) == 8  # t tx ty tz qx qy qz qw
    assert float(first[1]) == pytest.approx(T[0, 0, 3])


def test_sim3_alignment_recovers_known_similarity():
    gt = helix_poses()
    S, s = sim3(0.5, [0.3, -0.2, 1.0], [10.0, -3.0, 2.0])
    est = apply_sim3(gt, S, s)
    stamps = np.arange(gt.shape[0]) * 0.1
    report = evaluate_trajectory(
        trajectory_from_poses(stamps, est), trajectory_from_poses(stamps, gt), align="sim3"
    )
    assert report.scale == pytest.approx(2.0, rel=1e-9)
    assert report.ate["rmse"] == pytest.approx(0.0, abs=1e-9)
    assert report.rpe_rotation_deg["max"] == pytest.approx(0.0, abs=1e-6)
    se3 = evaluate_trajectory(
        trajectory_from_poses(stamps, est), trajectory_from_poses(stamps, gt), align="se3"
    )
    assert se3.scale == 1.0 and se3.ate["rmse"] > 1.0  # a scale error SE(3) cannot absorb


def test_rpe_and_ate_by_hand_on_a_straight_line():
    n = 11
    gt = np.tile(np.eye(4), (n, 1, 1))
    gt[:, 2, 3] = np.arange(n)  # 1 m steps along z
    est = gt.copy()
    est[:, 2, 3] *= 1.1  # 1.1 m steps
    stamps = np.arange(n, dtype=float)
    est_traj, gt_traj = trajectory_from_poses(stamps, est), trajectory_from_poses(stamps, gt)
    r = evaluate_trajectory(est_traj, gt_traj, align="none")
    np.testing.assert_allclose(r.ate_errors, 0.1 * np.arange(n), atol=1e-12)
    assert r.rpe_translation["mean"] == pytest.approx(0.1, abs=1e-12)
    assert r.rpe_translation["std"] == pytest.approx(0.0, abs=1e-12)
    r2 = evaluate_trajectory(est_traj, gt_traj, align="none", rpe_delta=2)
    assert r2.rpe_translation["mean"] == pytest.approx(0.2, abs=1e-12)


@pytest.mark.parametrize(("align", "flags"), [("se3", ["-a"]), ("sim3", ["-as"]), ("none", [])])
def test_ate_matches_evo_cli(tmp_path, align, flags):
    gt_T = helix_poses(80)
    S, s = sim3(1.3, [0.1, 0.4, -0.2], [1.0, 2.0, 3.0])
    est_T = perturb(apply_sim3(gt_T, S, s), seed=3)
    stamps = 1000.0 + 0.05 * np.arange(80)
    gt_path = write_tum(tmp_path / "gt.tum", trajectory_from_poses(stamps, gt_T))
    est_path = write_tum(tmp_path / "est.tum", trajectory_from_poses(stamps[:70] + 0.003, est_T[:70]))
    ours = evaluate_trajectory(read_tum(est_path), read_tum(gt_path), align=align)
    assert ours.n_matched == 70
    assert ours.ate["rmse"] == pytest.approx(
        evo_cli_rmse(EVO_APE, gt_path, est_path, flags, tmp_path), abs=1e-9
    )
    if align == "sim3":
        rpe_cli = evo_cli_rmse(EVO_RPE, gt_path, est_path, [*flags, "--delta", "1", "-u", "f"], tmp_path)
        assert ours.rpe_translation["rmse"] == pytest.approx(rpe_cli, abs=1e-9)


def test_association_and_bad_input(tmp_path):
    T = helix_poses(10)
    gt = trajectory_from_poses(np.arange(10.0), T)
    with pytest.raises(ValueError, match="do not associate"):
        evaluate_trajectory(trajectory_from_poses(np.arange(10.0) + 0.5, T), gt)
    with pytest.raises(ValueError, match="at least 3"):
        evaluate_trajectory(trajectory_from_poses(np.arange(2.0), T[:2]), gt)
    with pytest.raises(ValueError, match=r"RPE with delta=1\.5"):
        evaluate_trajectory(gt, gt, rpe_delta=1.5)
    with pytest.raises(ValueError, match="unit"):
        evaluate_trajectory(gt, gt, rpe_unit="s")
    with pytest.raises(ValueError, match="align"):
        align_trajectory(gt, gt, "affine")
    with pytest.raises(ValueError, match="strictly increasing"):
        trajectory_from_poses(np.zeros(10), T)
    with pytest.raises(ValueError, match="poses_T_wc"):
        trajectory_from_poses(np.arange(9.0), T)
    with pytest.raises(ValueError, match="does not exist"):
        read_tum(tmp_path / "none.tum")
    (tmp_path / "bad.tum").write_text("0 1 2 3\n")
    with pytest.raises(ValueError, match=r"bad\.tum"):
        read_tum(tmp_path / "bad.tum")


def straight_drive(n: int, step: float) -> np.ndarray:
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, 2, 3] = step * np.arange(n)
    return T


def test_kitti_segments_translation_by_hand():
    # GT: 1 m/frame for 250 m. Estimate: 1.01 m/frame. A segment of length L ends at the first frame
    # beyond L, i.e. L + 1 frames on: error 0.01 (L + 1) m. Starts every 10 frames: 15 for L=100, 5 for L=200.
    gt, est = straight_drive(251, 1.0), straight_drive(251, 1.01)
    k = kitti_segment_errors(gt, est)
    assert k.n_segments == 20 and k.path_length_m == pytest.approx(250.0)
    assert k.per_length[100.0]["translation_pct"] == pytest.approx(1.01, abs=1e-9)
    assert k.per_length[200.0]["translation_pct"] == pytest.approx(1.005, abs=1e-9)
    assert k.translation_pct == pytest.approx((15 * 1.01 + 5 * 1.005) / 20, abs=1e-9)
    assert k.rotation_deg_per_100m == pytest.approx(0.0, abs=1e-9)


def test_kitti_segments_rotation_by_hand_and_world_invariance():
    # Same positions; the estimate's heading turns 0.01 deg per frame about the optical y axis.
    gt = straight_drive(251, 1.0)
    est = gt.copy()
    est[:, :3, :3] = Rotation.from_euler("y", 0.01 * np.arange(251)[:, None], degrees=True).as_matrix()
    k = kitti_segment_errors(gt, est)
    assert k.per_length[100.0]["rotation_deg_per_100m"] == pytest.approx(1.01, abs=1e-7)
    assert k.rotation_deg_per_100m == pytest.approx((15 * 1.01 + 5 * 1.005) / 20, abs=1e-7)
    # relative errors do not depend on where the estimate's world frame is
    S, _ = sim3(1.0, [0.5, -1.0, 0.2], [7.0, 1.0, -4.0])
    moved = kitti_segment_errors(gt, apply_sim3(est, S, 1.0))
    assert moved.translation_pct == pytest.approx(k.translation_pct, abs=1e-9)
    assert moved.rotation_deg_per_100m == pytest.approx(k.rotation_deg_per_100m, abs=1e-9)


def test_kitti_segments_short_trajectory_gives_reason():
    k = kitti_segment_errors(straight_drive(51, 1.0), straight_drive(51, 1.0))
    assert k.n_segments == 0 and k.translation_pct is None and k.rotation_deg_per_100m is None
    assert "50.0 m" in k.reason and "100 m" in k.reason
    with pytest.raises(ValueError, match="poses_gt"):
        kitti_segment_errors(straight_drive(5, 1.0), straight_drive(6, 1.0))


def test_real_kitti06_poses(kitti06_dir):
    raw = np.loadtxt(kitti06_dir / "poses.txt").reshape(-1, 3, 4)
    stamps = 0.1 * np.arange(raw.shape[0])
    gt = trajectory_from_poses(stamps, raw)
    # a monocular-like estimate: the true drive at 0.4 scale with noise, seen from another world frame
    S, s = sim3(0.4, [0.0, 0.3, 0.0], [5.0, 0.0, -2.0])
    est_T = perturb(apply_sim3(np.asarray(gt.poses_se3), S, s), seed=7, sigma_t=0.02, sigma_r=0.002)
    report = evaluate_trajectory(trajectory_from_poses(stamps, est_T), gt, align="sim3")
    assert report.n_matched == 51
    assert report.scale == pytest.approx(2.5, rel=0.01)
    assert 0.01 < report.ate["rmse"] < 0.1  # 2.5 x 2 cm noise per axis
    assert report.kitti.n_segments == 0  # 59.9 m drive
    assert "59.9 m" in report.kitti.reason
    short = kitti_segment_errors(np.asarray(gt.poses_se3), np.asarray(gt.poses_se3), lengths_m=(20.0, 40.0))
    assert short.n_segments > 0 and short.translation_pct == pytest.approx(0.0, abs=1e-9)


def test_nearest_stamps_picks_the_nearest_within_the_tolerance() -> None:
    from banet_vo.evaluation.trajectory import nearest_stamps

    reference = np.array([0.0, 0.1, 0.2, 0.3])
    np.testing.assert_array_equal(nearest_stamps([0.0, 0.1004, 0.1996, 0.3], reference, 1e-3), [0, 1, 2, 3])
    np.testing.assert_array_equal(nearest_stamps([-0.0005, 0.3005], reference, 1e-3), [0, 3])  # the ends
    with pytest.raises(ValueError, match="within the matching tolerance"):
        nearest_stamps([0.15], reference, 1e-3)
