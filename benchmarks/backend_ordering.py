"""Window BA time by elimination ordering (banet_vo.backend, GTSAM), METIS vs COLAMD, in one run.

    .venv/bin/python -m benchmarks.backend_ordering [--repeats 5]

A synthetic window shaped like the odometry's on KITTI 07 (measured there: ~2,800 landmarks and ~6,700
observations per window): 7 keyframes 0.8 m apart, each landmark seen by 2-4 consecutive keyframes,
0.5 px noise, the two oldest keyframes held, poses and points perturbed. The orderings alternate within
each repeat, so the ratio is what counts on a shared machine. Results: benchmarks/results/backend_ordering.md.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import numpy as np
from banet_vo.backend import Observation, WindowBAConfig, WindowBundleAdjuster
from banet_vo.frontend.solvers import project
from banet_vo.geometry import PinholeCamera
from banet_vo.provenance import code_version, machine_description
from scipy.spatial.transform import Rotation

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "backend_ordering.md"
CAMERA = PinholeCamera(718.9, 718.9, 607.2, 185.2, 1226, 370)  # KITTI 07's left camera


def kitti_like_window(seed: int, keyframes: int = 7, landmarks: int = 2800):
    rng = np.random.default_rng(seed)
    poses = {k: np.eye(4) for k in range(keyframes)}
    for k in poses:
        poses[k][:3, 3] = [0.0, 0.0, 0.8 * k]
    points, observations = {}, []
    for j in range(landmarks):
        first = int(rng.integers(0, keyframes - 1))
        seen = range(first, min(keyframes, first + int(rng.choice([2, 2, 2, 3, 4]))))
        T_cw = np.linalg.inv(poses[first])
        while True:  # a point in front of its first keyframe, inside its image
            P = np.array([rng.uniform(-15, 15), rng.uniform(-2, 2), rng.uniform(5, 40)])
            Pw = poses[first][:3, :3] @ P + poses[first][:3, 3]
            uv, z = project(T_cw, Pw[None], CAMERA)
            if z[0] > 0 and 0 <= uv[0, 0] < CAMERA.width and 0 <= uv[0, 1] < CAMERA.height:
                break
        points[j] = Pw
        for k in seen:
            uv, z = project(np.linalg.inv(poses[k]), Pw[None], CAMERA)
            if z[0] > 0:
                pixel = uv[0] + rng.normal(0, 0.5, 2)
                observations.append(Observation(k, j, (float(pixel[0]), float(pixel[1]))))
    noisy_poses = {}
    for k, T in poses.items():
        D = np.eye(4)
        if k >= 2:
            D[:3, :3] = Rotation.from_rotvec(rng.normal(0, 0.002, 3)).as_matrix()
            D[:3, 3] = rng.normal(0, 0.02, 3)
        noisy_poses[k] = T @ D
    noisy_points = {j: P + rng.normal(0, 0.05, 3) for j, P in points.items()}
    return noisy_poses, noisy_points, observations


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--repeats", type=int, default=5, help="windows (seeds); the orderings alternate within each"
    )
    args = p.parse_args(argv)
    times: dict[str, list[float]] = {"METIS": [], "COLAMD": []}
    size = None
    for seed in range(args.repeats):
        poses, points, observations = kitti_like_window(seed)
        size = (len(points), len(observations))
        for ordering in ("METIS", "COLAMD") if seed % 2 == 0 else ("COLAMD", "METIS"):
            ba = WindowBundleAdjuster(CAMERA, WindowBAConfig(ordering=ordering))
            started = time.perf_counter()
            ba.solve(poses, points, observations, fixed={0, 1})
            times[ordering].append(time.perf_counter() - started)
    metis, colamd = np.median(times["METIS"]), np.median(times["COLAMD"])
    lines = [
        "# Window BA time by elimination ordering",
        "",
        f"`.venv/bin/python -m benchmarks.backend_ordering --repeats {args.repeats}` — "
        f"{datetime.date.today()}, code {code_version()}, {machine_description()}",
        "",
        f"Synthetic KITTI-shaped window: 7 keyframes, {size[0]} landmarks, {size[1]} observations, 2 held.",
        "",
        "| ordering | median s per window | ratio to COLAMD |",
        "|---|---|---|",
        f"| METIS (default) | {metis:.3f} | {metis / colamd:.2f} |",
        f"| COLAMD | {colamd:.3f} | 1.00 |",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
