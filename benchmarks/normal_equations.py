"""BA normal equations: per-pixel assembly vs the dense Jacobian, as ratios measured in one run (CPU, fp32).

    .venv/bin/python -m benchmarks.normal_equations [--repeats 3] [--threads 1]

Writes benchmarks/results/normal_equations.md. Inputs are random (timings do not depend on values); the
assemblies are checked to agree before they are timed. Pair latency and peak memory of the whole model
are benchmarks.banet_latency's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.section import header_lines

RESULTS = Path(__file__).resolve().parent / "results" / "normal_equations.md"

# (label, pixels N, channels C, depth bases K): the levels the presets' BA actually solves.
CASES = [
    ("small, finest level 64x48", 64 * 48, 32, 16),
    ("paper, middle level 80x60", 80 * 60, 128, 128),
    ("paper, finest level 160x120", 160 * 120, 128, 128),
]


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def assembly_case(n: int, c: int, k: int, repeats: int) -> dict:
    import torch
    from banet_vo.model.ba_layer import normal_equations, normal_equations_dense, normal_equations_structured

    g = torch.Generator().manual_seed(0)
    p = 6 + k
    pose_jacobian = torch.randn(1, n, 2, 6, generator=g)
    depth_jacobian = torch.randn(1, n, 2, generator=g)
    basis = torch.randn(1, n, k, generator=g)
    jacobian = torch.cat([pose_jacobian, depth_jacobian[..., None] * basis[:, :, None, :]], -1)
    gradient = torch.randn(1, n, c, 2, generator=g)
    residual = torch.randn(1, n, c, generator=g)

    def structured():
        return normal_equations_structured(pose_jacobian, depth_jacobian, basis, gradient, residual)

    H_dense, b_dense = normal_equations_dense(jacobian, gradient, residual)
    rel = 0.0
    for H, b in (normal_equations(jacobian, gradient, residual), structured()):
        rel = max(
            rel, float((H - H_dense).norm() / H_dense.norm()), float((b - b_dense).norm() / b_dense.norm())
        )
    t_pixel = _median_time(lambda: normal_equations(jacobian, gradient, residual), repeats)
    t_struct = _median_time(structured, repeats)
    t_dense = _median_time(lambda: normal_equations_dense(jacobian, gradient, residual), repeats)
    return {
        "n": n,
        "c": c,
        "p": p,
        "per_pixel_ms": 1e3 * t_pixel,
        "structured_ms": 1e3 * t_struct,
        "dense_ms": 1e3 * t_dense,
        "ratio": t_dense / t_pixel,
        "ratio_structured": t_dense / t_struct,
        "dense_jacobian_mb": n * c * p * 4 / 2**20,
        "fp32_rel_diff": rel,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: shared cores)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown file to write")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")

    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for label, n, c, k in CASES:
        print(f"assembly: {label} ...", file=sys.stderr, flush=True)
        rows.append((label, assembly_case(n, c, k, args.repeats)))

    lines = [
        *header_lines(
            "BA normal equations: per pixel vs dense Jacobian (CPU, fp32)",
            "benchmarks.normal_equations",
            ["--repeats", str(args.repeats), "--threads", str(args.threads)],
            machine_extra=f"{args.threads} torch thread(s); the cores are shared with other jobs, so compare "
            "ratios measured in the same run",
        ),
        "",
        "### Normal-equation assembly: per pixel vs dense Jacobian",
        "",
        "Per pixel: AᵀA = Σ Jᵀ(GᵀG)J, Aᵀb = Σ Jᵀ(Gᵀe) from the materialised per-pixel J (2×P) "
        "(`ba_layer.normal_equations`); structured: the same sums with J = [J_pose, j_d ⊗ b_p] kept "
        "factored, H_ww = Bᵀdiag(s)B (`normal_equations_structured`, what the BA runs); dense: form the "
        f"(N·C)×P Jacobian G·J, then AᵀA (`normal_equations_dense`). Batch 1, median of {args.repeats}. "
        "All three "
        "agree (largest fp32 relative difference to dense shown). Speed-up = dense time / per-pixel time.",
        "",
        "| level | N pixels | C | P = 6+K | dense ms | per pixel ms | structured ms | speed-up per pixel "
        "| speed-up structured | dense Jacobian MB | rel. diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        lines.append(
            f"| {label} | {r['n']} | {r['c']} | {r['p']} | {r['dense_ms']:.1f} | {r['per_pixel_ms']:.2f} "
            f"| {r['structured_ms']:.2f} | **{r['ratio']:.0f}x** | **{r['ratio_structured']:.0f}x** "
            f"| {r['dense_jacobian_mb']:.0f} | {r['fp32_rel_diff']:.1e} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
