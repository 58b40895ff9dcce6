"""Does the map's scale drift from pixel noise alone? Our front end's geometry on a known street.

    .venv/bin/python -m benchmarks.window_drift_sim [--keyframes 100] [--seeds 0,1,2] [--workers 2]
        [--configs "sigma=0.5;focal=380;triangulation_px=100,outlier_px=100"]

No images: a straight street (two facades 6-12 m to the sides, the road 1.6 m below the camera) of random
points, a camera driving along it at 1.24 m per keyframe with a gentle weave, and each keyframe's
keypoints the 1500 visible points a fixed per-point score ranks first (a detector that finds the same
points again), each seen at its true pixel plus i.i.d. Gaussian noise of `sigma` px. Association is
perfect. Per keyframe, as the xfeat front end does: the pose by our PnP RANSAC on the landmarks it sees
(3 px), new landmarks triangulated with the previous keyframe (our DLT, 2 px, the parallax limit), then
our window BA (GTSAM, 7 keyframes, the 2 oldest fixed, Huber, pruning at 3 px, `iterations` LM
iterations). The first two poses are true, so the map starts metric; what is printed is the oldest fixed
pair's step over the true step (1 = no drift), the median per block of 20 keyframes, and the drift per
keyframe from the start to the last block (log slope) with its range over the seeds. (Blocks relative to
the first one would hide what happens in the first 20 keyframes, where most of it does at 1 px.)
Defaults: sigma 1 px, focal 190 px at 320x240 (the synthetic long drive's camera), limit 0.5 deg, 15
iterations, and the front end's gates: triangulation 2 px, PnP 3 px, the window BA's pruning 3 px
(`triangulation_px`, `pnp_px`, `outlier_px`; 100 px is none). `observe_px` > 0 lets a keyframe also
observe PnP's outliers that reproject within it (tried in the pipeline, not kept: the results file says
why). `retry` 1 triangulates a point that is not yet a landmark from the oldest window keyframe that saw it
(a longer baseline than the previous keyframe's) and observes it in each that did, as "longer tracks" did in
the pipeline (docs/frontend.md, step 6). `pnp_angle` > 0 solves PnP on the landmarks seen under at least
that ray angle [deg] and observes the others where they reproject (a simple depth filter; tried in the
pipeline, not kept: benchmarks/results/window_drift_sim_ray_angle.md). Results:
benchmarks/results/window_drift_sim.md.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from benchmarks.section import write_section
from benchmarks.vo_kitti import ROOT

RESULTS = ROOT / "benchmarks" / "results" / "window_drift_sim.md"
BLOCK = 20
DEFAULT_CONFIGS = (
    "sigma=1;sigma=0.5;focal=380;iterations=100;limit=0;"
    "triangulation_px=100;outlier_px=100;triangulation_px=100,pnp_px=100,outlier_px=100;"
    "observe_px=20;observe_px=20,focal=380;retry=1;retry=1,focal=380"
)
SETTINGS = (
    "sigma",
    "focal",
    "limit",
    "iterations",
    "triangulation_px",
    "pnp_px",
    "outlier_px",
    "observe_px",
    "retry",
    "pnp_angle",
)


@dataclass(frozen=True)
class SimConfig:
    sigma: float = 1.0  # pixel noise [px]
    focal: float = 190.0  # [px] at 320x240; the image grows with it (same field of view)
    limit: float = 0.5  # triangulation parallax limit [deg]
    iterations: int = 15  # LM iterations per window BA pass
    triangulation_px: float = 2.0  # the front end's gates (tracking_triangulation_max_px, pnp_max_px,
    pnp_px: float = 3.0  # the window BA's outlier_px)
    outlier_px: float = 3.0
    observe_px: float = 0.0  # PnP's outliers within it are observed too (0: its inliers only)
    # 1: a point not yet a landmark is triangulated from the oldest window keyframe that saw it, and observed
    # in every window keyframe that did (longer baselines; "longer tracks" in docs/frontend.md, step 6)
    retry: int = 0
    # > 0: PnP solves on the landmarks whose rays from the window's keyframes that observe them span at
    # least this angle [deg] (when 50 or more do), and the others are observed where they reproject within
    # pnp_px of that pose: a depth-uncertainty gate (a simple depth filter)
    pnp_angle: float = 0.0
    keyframes: int = 100
    step: float = 1.24  # metres per keyframe
    seed: int = 0

    @property
    def label(self) -> str:
        gates = f"gates {self.triangulation_px:g} / {self.pnp_px:g} / {self.outlier_px:g} px"
        observe = f", PnP outliers within {self.observe_px:g} px observed" if self.observe_px else ""
        retry = ", untriangulated points retried from their oldest view" if self.retry else ""
        retry += f", PnP on landmarks seen under >= {self.pnp_angle:g} deg" if self.pnp_angle else ""
        return (
            f"sigma {self.sigma:g} px, focal {self.focal:g} px, limit {self.limit:g} deg, "
            f"{self.iterations} iterations, {gates}{observe}{retry}"
        )


def _street(cfg: SimConfig, rng: np.random.Generator) -> np.ndarray:
    length = cfg.step * (cfg.keyframes + 40) + 60.0
    n = 30000
    facades = np.c_[
        rng.choice([-1.0, 1.0], n) * rng.uniform(6, 12, n),
        rng.uniform(-6, 1.6, n),
        rng.uniform(-5, length, n),
    ]
    road = np.c_[rng.uniform(-6, 6, n), np.full(n, 1.6), rng.uniform(-5, length, n)]
    return np.r_[facades, road]


def _true_pose(k: int, step: float) -> np.ndarray:
    T = np.eye(4)
    yaw = 0.02 * np.sin(k / 15.0)
    c, s = np.cos(yaw), np.sin(yaw)
    T[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    T[:3, 3] = [2.0 * np.sin(k / 40.0), 0.0, k * step]
    return T


def run(cfg: SimConfig) -> list[float]:
    """The oldest fixed pair's step over the true step after each window BA (one per keyframe from the
    third on); shorter when tracking was lost."""
    from banet_vo.backend.window_ba import Observations, WindowBAConfig, WindowBundleAdjuster
    from banet_vo.frontend.solvers import project, solve_absolute_pose, triangulate
    from banet_vo.geometry.camera import PinholeCamera
    from banet_vo.geometry.rigid import invert

    rng = np.random.default_rng(cfg.seed)
    zoom = cfg.focal / 190.0
    width, height = round(320 * zoom), round(240 * zoom)
    camera = PinholeCamera(cfg.focal, cfg.focal, (width - 1) / 2, (height - 1) / 2, width, height)
    points_true = _street(cfg, rng)
    score = rng.uniform(0, 1, len(points_true))

    def detect(T_wc):
        pix, z = project(invert(T_wc), points_true, camera)
        inside = (z > 0.5) & (z < 80) & np.all((pix >= 0) & (pix <= [width - 1, height - 1]), axis=1)
        idx = np.flatnonzero(inside)
        idx = idx[np.argsort(-score[idx])[:1500]]
        return dict(zip(idx.tolist(), pix[idx] + rng.normal(0, cfg.sigma, (len(idx), 2)), strict=True))

    ba = WindowBundleAdjuster(
        camera, WindowBAConfig(max_iterations=cfg.iterations, outlier_px=cfg.outlier_px)
    )
    keyframes = []  # dicts: id, T (estimate), det (all keypoints), obs (landmark observations)
    landmarks: dict[int, np.ndarray] = {}

    def add_landmarks(window, kf):
        """Points kf sees that are not landmarks, triangulated with the newest of `window` (retry: with the
        oldest keyframe of it that saw them, observed in each that did)."""
        done: set[int] = set()
        for q in window if cfg.retry else window[-1:]:
            fresh = [i for i in kf["det"] if i in q["det"] and i not in landmarks and i not in done]
            if not fresh:
                continue
            X, ok = triangulate(
                q["T"],
                kf["T"],
                np.array([q["det"][i] for i in fresh]),
                np.array([kf["det"][i] for i in fresh]),
                camera,
                cfg.triangulation_px,
                cfg.limit,
            )
            for i, x in zip(np.array(fresh)[ok].tolist(), X[ok], strict=True):
                landmarks[i] = x
                done.add(i)
                kf["obs"][i] = kf["det"][i]
                for w in window:
                    if i in w["det"] and (w is q or cfg.retry):
                        w["obs"][i] = w["det"][i]

    for k in (0, 1):
        T = _true_pose(k, cfg.step)
        keyframes.append({"id": k, "T": T, "det": detect(T), "obs": {}})
    add_landmarks(keyframes[:1], keyframes[1])
    ratios = []
    for k in range(2, cfg.keyframes):
        det = detect(_true_pose(k, cfg.step))
        known = [i for i in det if i in landmarks]
        solving = _wide(known, landmarks, keyframes, cfg.pnp_angle)
        pose = solve_absolute_pose(
            np.array([det[i] for i in np.array(known)[solving]]).reshape(-1, 2),
            np.array([landmarks[i] for i in np.array(known)[solving]]).reshape(-1, 3),
            camera,
            cfg.pnp_px,
            None,
            cfg.seed,
        )
        if pose is None:
            break
        kf = {"id": k, "T": invert(pose.T_cam_world), "det": det}
        # Observed: PnP's inliers, and with observe_px its outliers that reproject within it (the map
        # otherwise never sees the landmarks that disagree with a biased pose).
        pix, z = project(pose.T_cam_world, np.array([landmarks[i] for i in known]), camera)
        err = np.linalg.norm(pix - np.array([det[i] for i in known]), axis=1)
        inliers = np.zeros(len(known), bool)
        inliers[np.flatnonzero(solving)[pose.inliers]] = True
        left_out = ~solving & (z > 0) & (err <= cfg.pnp_px)
        observed = inliers | left_out | ((z > 0) & (err <= cfg.observe_px))
        kf["obs"] = {i: det[i] for i in np.array(known)[observed].tolist()}
        add_landmarks(keyframes, kf)
        keyframes.append(kf)
        if len(keyframes) > 7:
            keyframes.pop(0)
        counts: dict[int, int] = {}
        for q in keyframes:
            for i in q["obs"]:
                counts[i] = counts.get(i, 0) + 1
        used = {i for i, c in counts.items() if c >= 2 and i in landmarks}
        rows = [(q["id"], i, p) for q in keyframes for i, p in q["obs"].items() if i in used]
        observations = Observations(
            np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
        )
        fixed = {q["id"] for q in keyframes[: len(keyframes) - min(5, len(keyframes) - 2)]}
        solved = ba.solve(
            {q["id"]: q["T"] for q in keyframes}, {i: landmarks[i] for i in used}, observations, fixed
        )
        for q in keyframes:
            q["T"] = solved.poses[q["id"]]
        landmarks.update(solved.points)
        seen = {i for q in keyframes for i in q["det"]}
        for i in [i for i in landmarks if i not in seen]:
            del landmarks[i]
        a, b = keyframes[0], keyframes[1]
        true_step = np.linalg.norm(
            _true_pose(a["id"], cfg.step)[:3, 3] - _true_pose(b["id"], cfg.step)[:3, 3]
        )
        ratios.append(float(np.linalg.norm(a["T"][:3, 3] - b["T"][:3, 3]) / true_step))
    return ratios


def _wide(known: list[int], landmarks: dict, keyframes: list[dict], limit: float) -> np.ndarray:
    """(len(known),) mask of the landmarks PnP solves on: with limit > 0, those whose rays from the
    keyframes that observe them span at least `limit` degrees, when 50 or more do; else all."""
    if limit <= 0:
        return np.ones(len(known), bool)
    angles = np.zeros(len(known))
    for n, i in enumerate(known):
        centres = [q["T"][:3, 3] for q in keyframes if i in q["obs"]]
        if len(centres) < 2:
            continue
        rays = landmarks[i] - np.array(centres)
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        angles[n] = np.degrees(np.arccos(np.clip((rays @ rays.T).min(), -1.0, 1.0)))
    wide = angles >= limit
    return wide if wide.sum() >= 50 else np.ones(len(known), bool)


def blocks(ratios: list[float]) -> np.ndarray:
    r = np.asarray(ratios)
    n = len(r) // BLOCK
    return np.array([np.median(r[i * BLOCK : (i + 1) * BLOCK]) for i in range(n)])


def parse_config(text: str, base: SimConfig) -> SimConfig:
    fields = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, _, value = item.partition("=")
        if key not in SETTINGS:
            raise ValueError(f"unknown setting {key!r} in {text!r} ({', '.join(SETTINGS)})")
        fields[key] = int(value) if key in ("iterations", "retry") else float(value)
    return replace(base, **fields)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keyframes", type=int, default=100)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--configs", default=DEFAULT_CONFIGS, help="settings per row: ';' between rows, ',' within"
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.keyframes < 2 * BLOCK + 2:
        parser.error(f"keyframes must be at least {2 * BLOCK + 2} (two blocks of {BLOCK})")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
        base = SimConfig(keyframes=args.keyframes)
        configs = [parse_config(c, base) for c in args.configs.split(";")]
    except ValueError as err:
        parser.error(str(err))
    jobs = [replace(c, seed=s) for c in configs for s in seeds]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(run, jobs))
    lines = []
    for c in configs:
        runs = [
            blocks(r) for j, r in zip(jobs, results, strict=True) if replace(j, seed=0) == replace(c, seed=0)
        ]
        full = [
            b for b in runs if len(b) == args.keyframes // BLOCK - (1 if args.keyframes % BLOCK < 2 else 0)
        ]
        # From the true start (ratio 1) to the middle of the last block.
        per_kf = [100 * np.log(b[-1]) / (BLOCK * (len(b) - 0.5)) for b in runs if len(b) >= 1]
        median_blocks = np.median(np.stack(full), axis=0) if full else np.array([])
        lost = len(runs) - len(full)
        drift = f"{np.median(per_kf):+.2f} [{min(per_kf):+.2f}, {max(per_kf):+.2f}]" if per_kf else "—"
        lines.append(f"| {c.label} | {', '.join(f'{x:.2f}' for x in median_blocks)} | {drift} | {lost} |")
    write_section(
        args.out,
        "Window drift from pixel noise alone (simulated street, our PnP, triangulation and window BA)",
        "benchmarks.window_drift_sim",
        argv,
        f"{args.keyframes} keyframes at 1.24 m, seeds {args.seeds}",
        [
            "Map step over true step (the map starts metric: 1 is no drift), median per block of 20 "
            "keyframes (then the median over the seeds that kept tracking), and the drift per keyframe from "
            "the start to the last block in % (median [range] over seeds).",
            "",
            "| setting | blocks | drift per keyframe [%] | runs that lost tracking |",
            "|---|---|---|---|",
            *lines,
        ],
        torch_info=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
