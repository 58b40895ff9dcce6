"""Synthetic world: rendering speed at 320x240 on CPU, and the quality checks behind it.

Speed: frames/s of ray casting + shading + sensor for the street and the room, with 1 torch thread and
with torch's default thread count, interleaved in one run (the machine is shared, so compare ratios);
the cost of motion blur and 2x2 supersampling relative to the plain render; scene build time.
Quality: the test of truth at 320x240 (warp error with GT depth and pose / no-motion error, occlusions
masked) and texture aliasing on a real street frame (error against an 6x6-supersampled reference).

    .venv/bin/python -m benchmarks.synthetic [--frames 12] [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from banet_vo.data.synthetic import make_scene, make_trajectory, render_sequence
from banet_vo.data.synthetic.consistency import photometric_errors
from banet_vo.data.synthetic.generate import DEFAULT_FOV_DEG, torch_threads
from banet_vo.data.synthetic.render import camera_from_fov, cast_rays, render_radiance, shade
from banet_vo.data.synthetic.sensor import Sensor, SensorModel

from benchmarks.section import header_lines

RESULTS = Path(__file__).resolve().parent / "results" / "synthetic.md"
SIZE = (320, 240)


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def speed(kind: str, frames: int, threads_options: list[int]) -> dict:
    """Per-frame wall and CPU seconds of render + sensor for each thread count (interleaved per frame)."""
    camera = camera_from_fov(*SIZE, DEFAULT_FOV_DEG[kind])
    trajectory = make_trajectory(kind, frames, 0)
    with torch_threads(1):
        scene, build_wall, build_cpu = _timed(lambda: make_scene(kind, 0, length=1.5 * frames + 10))
    stats = {n: {"wall": [], "cpu": []} for n in threads_options}
    variants = {"blur (5 poses)": [], "supersample 2x2": []}
    for n in threads_options:  # warm-up
        with torch_threads(n):
            render_radiance(scene, trajectory.poses[0], camera)
    sensors = {n: Sensor(SensorModel(), 0, frames) for n in threads_options}
    for i, pose in enumerate(trajectory.poses):
        for n in threads_options:
            with torch_threads(n):
                _, wall, cpu = _timed(
                    lambda pose=pose, n=n: sensors[n].expose(render_radiance(scene, pose, camera)[0])
                )
            stats[n]["wall"].append(wall)
            stats[n]["cpu"].append(cpu)
        if i < 3:  # variants with one thread, a few frames each
            with torch_threads(1):
                t = float(trajectory.timestamps[i])
                _, wall, _ = _timed(
                    lambda t=t: [
                        render_radiance(scene, trajectory.pose_at(t + dt), camera)
                        for dt in np.linspace(-4e-3, 4e-3, 5)
                    ]
                )
                variants["blur (5 poses)"].append(wall)
                _, wall, _ = _timed(lambda pose=pose: render_radiance(scene, pose, camera, supersample=2))
                variants["supersample 2x2"].append(wall)
    return {
        "kind": kind,
        "quads": scene.num_quads,
        "build_wall": build_wall,
        "build_cpu": build_cpu,
        "per_thread": {n: {k: float(np.median(v)) for k, v in s.items()} for n, s in stats.items()},
        "variants": {k: float(np.median(v)) for k, v in variants.items()},
    }


def truth(kind: str, seeds: int, frames: int = 5) -> dict:
    """Warp / no-motion photometric error ratio over consecutive pairs (both directions), 320x240."""
    ratios, visible = [], []
    for seed in range(100, 100 + seeds):
        seq = render_sequence(kind, frames, SIZE, seed=seed)
        for i in range(frames - 1):
            for a, b in ((i, i + 1), (i + 1, i)):
                warp_err, still_err, vis = photometric_errors(seq, a, b)
                ratios.append(warp_err / still_err)
                visible.append(vis)
    return {
        "kind": kind,
        "pairs": len(ratios),
        "mean": float(np.mean(ratios)),
        "max": float(np.max(ratios)),
        "visible": float(np.mean(visible)),
    }


def aliasing(k: int = 6) -> dict:
    """Mean |error| (linear radiance) of one street frame against a k x k supersampled reference."""
    scene = make_scene("driving", 0, length=40.0)
    pose = make_trajectory("driving", 2, 0).poses[1]
    camera = camera_from_fov(*SIZE, DEFAULT_FOV_DEG["driving"])

    def render(n: int, footprint: float = 1.0, max_aniso: int = 4) -> torch.Tensor:
        total = torch.zeros(SIZE[1], SIZE[0], 3)
        for j in range(n):
            for i in range(n):
                hits = cast_rays(scene, pose, camera, ((i + 0.5) / n - 0.5, (j + 0.5) / n - 0.5))
                total += shade(scene, pose, camera, *hits, footprint=footprint / n, max_aniso=max_aniso)
        return total / n**2

    reference = render(k)
    quad = cast_rays(scene, pose, camera)[1]
    # Compare away from geometry edges: texture filtering is what is measured here.
    interior = torch.ones_like(quad, dtype=torch.bool)
    interior[1:-1, 1:-1] = (quad[1:-1, 1:-1] == quad[:-2, 1:-1]) & (quad[1:-1, 1:-1] == quad[2:, 1:-1])
    interior[1:-1, 1:-1] &= (quad[1:-1, 1:-1] == quad[1:-1, :-2]) & (quad[1:-1, 1:-1] == quad[1:-1, 2:])
    out = {}
    for name, image in (
        ("mip-mapped, anisotropic (default)", render(1)),
        ("mip-mapped, isotropic", render(1, max_aniso=1)),
        ("point sampled (level 0, no filter)", render(1, footprint=1e-4)),
    ):
        out[name] = float((image - reference).abs().mean(-1)[interior].mean())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12, help="frames timed per scene kind (default 12)")
    parser.add_argument(
        "--seeds", type=int, default=3, help="scenes per kind for the test of truth (default 3)"
    )
    args = parser.parse_args(argv)
    if args.frames < 3 or args.seeds < 1:
        parser.error("--frames must be >= 3 and --seeds >= 1")
    threads_options = sorted({1, torch.get_num_threads()})
    speeds = []
    for kind in ("driving", "indoor"):
        print(f"timing {kind} ...", file=sys.stderr, flush=True)
        speeds.append(speed(kind, args.frames, threads_options))
    with torch_threads(1):
        print("test of truth ...", file=sys.stderr, flush=True)
        truths = [truth(kind, args.seeds) for kind in ("driving", "indoor")]
        print("aliasing ...", file=sys.stderr, flush=True)
        alias = aliasing()

    lines = [
        *header_lines(
            "Synthetic world: rendering speed and ground-truth checks",
            "benchmarks.synthetic",
            ["--frames", str(args.frames), "--seeds", str(args.seeds)],
        ),
        "",
        f"Speed at {SIZE[0]}x{SIZE[1]}, CPU, fp32: ray casting + shading + sensor per frame (median over "
        f"{args.frames} frames; thread counts interleaved frame by frame). CPU s is process time.",
        "",
        "| scene | quads | torch threads | wall s/frame | frames/s (wall) | CPU s/frame |",
        "|---|---|---|---|---|---|",
    ]
    for s in speeds:
        for n, v in s["per_thread"].items():
            row = [s["kind"], s["quads"], n, f"{v['wall']:.3f}", f"{1 / v['wall']:.1f}", f"{v['cpu']:.3f}"]
            lines.append("| " + " | ".join(str(c) for c in row) + " |")
    lines += [
        "",
        "Variants (1 thread, wall time relative to the plain 1-thread render of the same scene):",
        "",
        "| scene | variant | wall s/frame | x plain |",
        "|---|---|---|---|",
    ]
    for s in speeds:
        base = s["per_thread"][1]["wall"]
        for name, v in s["variants"].items():
            lines.append(f"| {s['kind']} | {name} | {v:.3f} | {v / base:.1f} |")
    lines += [
        "",
        "Scene build (textures + geometry, 1 thread): "
        + ", ".join(f"{s['kind']} {s['build_wall']:.2f} s wall / {s['build_cpu']:.2f} s CPU" for s in speeds),
        "",
    ]
    lines += [
        "Test of truth at 320x240 (default sensor: auto-exposure, jitter, noise): warp error with GT depth "
        "and pose divided by the no-motion error, consecutive pairs both ways, occlusions masked.",
        "",
        "| scene | seeds | pairs | mean ratio | max ratio | visible fraction |",
        "|---|---|---|---|---|---|",
    ]
    for t in truths:
        row = [
            t["kind"],
            args.seeds,
            t["pairs"],
            f"{t['mean']:.3f}",
            f"{t['max']:.3f}",
            f"{t['visible']:.2f}",
        ]
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    lines += [
        "",
        "Texture aliasing on a street frame (seed 0, frame 1): mean |error| in linear radiance against a "
        "6x6-supersampled render, pixels away from geometry edges:",
        "",
        "| texture lookup | mean abs error |",
        "|---|---|",
    ]
    for name, err in alias.items():
        lines.append(f"| {name} | {err:.4f} |")
    lines.append("")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
