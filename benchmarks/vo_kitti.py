"""KITTI 06 (frames 0-50) through banet_vo: ATE (SE(3) and Sim(3) aligned), RPE and frames/s, next to a
constant-velocity baseline and a classical OpenCV feature VO given the ground-truth step length.

    .venv/bin/python -m benchmarks.vo_kitti [--model M] [--rate R] [--device cpu]

The clip is bagged with our converter (banet-vo-bag's write_bag) into a temporary directory and played
through `banet-vo-run` (node + player + recorder, one rclpy graph). Results: benchmarks/results/vo_kitti.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.section import header_lines, variant_out

ROOT = Path(__file__).resolve().parents[1]
KITTI = ROOT.parent / "shared" / "data" / "kitti_odom06_000-050"
RESULTS = ROOT / "benchmarks" / "results" / "vo_kitti.md"
DEFAULT_MODEL = ROOT / "models" / "banet_small_synthetic.safetensors"


def constant_velocity(gt: np.ndarray) -> np.ndarray:
    """Every step equal to the first ground-truth step (the trivial 'keep going' baseline)."""
    step = np.linalg.inv(gt[0]) @ gt[1]
    poses = [gt[0]]
    for _ in range(len(gt) - 1):
        poses.append(poses[-1] @ step)
    return np.stack(poses)


def opencv_vo(sequence, gt: np.ndarray) -> tuple[np.ndarray, float]:
    """ORB + essential matrix (RANSAC) + recoverPose per consecutive pair; translation scaled to the GT
    step length (monocular VO has no scale). Returns camera-to-world poses and frames/s."""
    orb = cv2.ORB_create(3000)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    K = sequence.camera.K
    poses = [gt[0]]
    started = time.perf_counter()
    previous = orb.detectAndCompute(_gray(sequence[0].image), None)
    for i in range(1, len(sequence)):
        current = orb.detectAndCompute(_gray(sequence[i].image), None)
        matches = matcher.match(previous[1], current[1])
        p0 = np.float64([previous[0][m.queryIdx].pt for m in matches])
        p1 = np.float64([current[0][m.trainIdx].pt for m in matches])
        E, inliers = cv2.findEssentialMat(p0, p1, K, method=cv2.RANSAC, prob=0.999, threshold=1.0)
        _, R, t, _ = cv2.recoverPose(E, p0, p1, K, mask=inliers)
        T_10 = np.eye(4)  # maps camera i-1 points into camera i
        T_10[:3, :3] = R
        gt_step = np.linalg.norm((np.linalg.inv(gt[i]) @ gt[i - 1])[:3, 3])
        T_10[:3, 3] = t.ravel() / np.linalg.norm(t) * gt_step
        poses.append(poses[-1] @ np.linalg.inv(T_10))
        previous = current
    fps = (len(sequence) - 1) / (time.perf_counter() - started)
    return np.stack(poses), fps


def _gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def evaluate(stamps: np.ndarray, est: np.ndarray, gt_stamps: np.ndarray, gt: np.ndarray) -> dict:
    from banet_vo.evaluation import evaluate_trajectory, trajectory_from_poses
    from evo.core.geometry import GeometryException

    out = {}
    for align in ("se3", "sim3"):
        try:
            report = evaluate_trajectory(
                trajectory_from_poses(stamps, est),
                trajectory_from_poses(gt_stamps, gt),
                align=align,
                max_diff=1e-3,
            )
        except GeometryException as err:
            out[align] = {"error": str(err)}
            continue
        out[align] = {
            "ate_rmse_m": report.ate["rmse"],
            "rpe_trans_rmse_m": report.rpe_translation["rmse"],
            "rpe_rot_rmse_deg": report.rpe_rotation_deg["rmse"],
            "scale": report.scale,
            "n": report.n_matched,
        }
    return out


def _row(name: str, metrics: dict, fps: float | str) -> str:
    def cell(align: str, key: str, fmt: str) -> str:
        m = metrics.get(align, {})
        return format(m[key], fmt) if key in m else "n/a"

    fps_text = fps if isinstance(fps, str) else f"{fps:.2f}"
    return (
        f"| {name} | {cell('se3', 'ate_rmse_m', '.3f')} | {cell('sim3', 'ate_rmse_m', '.3f')} | "
        f"{cell('sim3', 'scale', '.3f')} | {cell('se3', 'rpe_trans_rmse_m', '.3f')} | "
        f"{cell('se3', 'rpe_rot_rmse_deg', '.3f')} | {fps_text} |"
    )


def variant(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """How this run differs from the committed one (the defaults)."""
    differs = ["baselines_only"] if args.baselines_only else []
    if Path(args.model).resolve() != Path(parser.get_default("model")).resolve():
        differs.append(f"model-{Path(args.model).stem}")
    if args.device != parser.get_default("device"):
        differs.append(f"device-{args.device}")
    if args.rate != parser.get_default("rate"):
        differs.append(f"rate{args.rate:g}")
    return differs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.vo_kitti", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="BA-Net checkpoint")
    parser.add_argument("--device", default="cpu", choices=("auto", "cuda", "cpu"))
    parser.add_argument(
        "--rate", type=float, default=0.25, help="bag playback rate (the node queues every frame)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="markdown file to write (default: benchmarks/results/vo_kitti.md for the committed run, the "
        "defaults; else runs/vo_kitti_<what differs>.md, e.g. runs/vo_kitti_baselines_only.md)",
    )
    parser.add_argument(
        "--baselines-only", action="store_true", help="only the constant-velocity and OpenCV rows (no model)"
    )
    args = parser.parse_args(argv)
    args.results = variant_out(args.results, RESULTS, variant(args, parser))
    if not KITTI.is_dir():
        print(f"vo_kitti: KITTI clip not found at {KITTI}", file=sys.stderr)
        return 2
    if not args.baselines_only and not args.model.is_file():
        print(f"vo_kitti: model {args.model} not found (--model)", file=sys.stderr)
        return 2
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))

    from banet_vo.data.readers import open_sequence

    sequence = open_sequence(KITTI, format="kitti")
    gt = np.asarray(sequence.poses)
    gt_stamps = np.asarray(sequence.timestamps, dtype=np.float64)
    banet, summary = run_banet(args, sequence, gt, gt_stamps) if not args.baselines_only else ({}, None)
    cv_poses, cv_fps = opencv_vo(sequence, gt)
    cv_metrics = evaluate(gt_stamps, cv_poses, gt_stamps, gt)
    const = evaluate(gt_stamps, constant_velocity(gt), gt_stamps, gt)
    write_results(args, banet, summary, const, cv_metrics, cv_fps)
    return 0


def run_banet(args: argparse.Namespace, sequence, gt: np.ndarray, gt_stamps: np.ndarray) -> tuple[dict, dict]:
    """Bag the clip, run banet-vo-run on it, evaluate the camera trajectory it wrote."""
    from banet_vo.data.bags import write_bag
    from banet_vo.ros import run
    from scipy.spatial.transform import Rotation

    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "kitti06_bag"
        write_bag(sequence, bag)
        out = Path(tmp) / "run"
        command = [
            str(bag),
            "--out",
            str(out),
            "--model",
            str(args.model),
            "--device",
            args.device,
            "--rate",
            str(args.rate),
            "--no-plots",
            "--depth-every",
            "1000",
        ]
        rc = run.main(command)
        if rc != 0:
            raise RuntimeError(f"banet-vo-run failed with exit status {rc}")
        summary = json.loads((out / "metrics.json").read_text())
        est_tum = np.loadtxt(out / "trajectory_camera.tum", ndmin=2)
    est = np.tile(np.eye(4), (len(est_tum), 1, 1))
    est[:, :3, :3] = Rotation.from_quat(est_tum[:, 4:8]).as_matrix()
    est[:, :3, 3] = est_tum[:, 1:4]
    return evaluate(est_tum[:, 0], est, gt_stamps, gt), summary


def write_results(
    args, banet: dict, summary: dict | None, const: dict, cv_metrics: dict, cv_fps: float
) -> None:

    model_name = (
        args.model.resolve().relative_to(ROOT) if args.model.resolve().is_relative_to(ROOT) else args.model
    )
    header = (
        "| method | ATE SE(3) [m] | ATE Sim(3) [m] | Sim(3) scale | RPE trans [m] | RPE rot [deg] | fps |"
    )
    lines = [
        *header_lines(
            "KITTI 06 frames 0-50: banet_vo vs baselines",
            "benchmarks.vo_kitti",
            ["--model", str(model_name), "--device", args.device, "--rate", str(args.rate)]
            + (["--baselines-only"] if args.baselines_only else []),
        ),
        "",
        "Clip: 51 grayscale frames 1226x370 at 10 Hz, bagged with our converter and played through "
        "`banet-vo-run` (node + player + recorder on one rclpy graph). ATE = RMSE of camera positions after "
        "alignment; RPE over 1 frame (SE(3)-aligned). banet_vo frames/s = published poses / wall time from "
        f"the first message to the node going idle (bag played at rate {args.rate}, so the figure is bounded "
        "by the model, not the bag, when it is below the played rate of "
        f"{10 * args.rate:.1f} frames/s).",
        "",
        header,
        "|---|---|---|---|---|---|---|",
        *(
            [_row(f"banet_vo ({args.model.name}, {args.device})", banet, summary["frames_per_s"])]
            if summary is not None
            else ["| banet_vo | not run (--baselines-only) | | | | | |"]
        ),
        _row("constant velocity (first GT step repeated)", const, "n/a"),
        _row("OpenCV ORB + essential matrix, GT step length", cv_metrics, cv_fps),
        "",
        _counters(summary),
        "",
    ]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text("\n".join(lines))
    print("\n".join(lines))


def _counters(summary: dict | None) -> str:
    if summary is None:
        return "banet_vo was not run."
    node = summary["node"]
    return (
        f"banet_vo node counters: processed {int(node['processed'])}, "
        f"published {summary['frames_published']}, "
        f"failed {int(node['failed'])}, dropped {int(node['dropped'])}, keyframes {int(node['keyframes'])}; "
        f"last pair {node.get('last_inference_ms', float('nan')):.0f} ms."
    )


if __name__ == "__main__":
    sys.exit(main())
