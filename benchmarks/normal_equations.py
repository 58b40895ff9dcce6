"""BA normal equations: per-pixel assembly vs the dense Jacobian (ratio in one run), plus BA-Net pair latency
(networks vs BA) and peak memory for both presets on CPU, fp32.

    .venv/bin/python -m benchmarks.normal_equations [--repeats 3] [--threads 1] [--skip-latency]

Writes benchmarks/results/normal_equations.md. Inputs are random (timings do not depend on values); the
two assemblies are checked to agree before they are timed. Each preset's latency runs in its own
subprocess so that its peak resident memory is its own.
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from banet_vo.provenance import machine_description

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


def _rss_mb() -> float:
    """Peak resident memory of this process in MB. VmHWM belongs to the address space, so unlike ru_maxrss
    it does not inherit the parent's peak across exec (the parent held a 1.3 GB dense Jacobian)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


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


def latency_child(preset: str, repeats: int, threads: int) -> dict:
    """Runs in a subprocess: pair latency split into networks and BA, peak RSS growth, one training step."""
    import torch
    from banet_vo.model import BANet, BANetConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base = _rss_mb()
    config = BANetConfig.preset(preset)
    model = BANet(config).eval()
    w, h = config.image_width, config.image_height
    ref, tgt = torch.rand(1, 3, h, w), torch.rand(1, 3, h, w)
    intr = torch.tensor([[0.8 * w, 0.8 * w, (w - 1) / 2, (h - 1) / 2]])
    with torch.no_grad():
        parts = model.parts(ref, tgt, intr)
        t_total = _median_time(lambda: model(ref, tgt, intr), repeats)
        t_nets = _median_time(lambda: model.parts(ref, tgt, intr), repeats)
        t_ba = _median_time(
            lambda: model.ba(
                parts.features_ref, parts.features_tgt, parts.basis, parts.depth0, parts.depth_intrinsics
            ),
            repeats,
        )
    peak_infer = _rss_mb() - base
    out = {
        "preset": preset,
        "size": f"{w}x{h}",
        "parameters": sum(p.numel() for p in model.parameters()),
        "pair_s": t_total,
        "networks_s": t_nets,
        "ba_s": t_ba,
        "peak_rss_growth_mb": peak_infer,
    }
    if preset == "small":  # what a CPU training run costs per step (batch 4, forward + backward)
        model.train()
        batch = 4
        ref4, tgt4 = torch.rand(batch, 3, h, w), torch.rand(batch, 3, h, w)
        intr4 = intr.expand(batch, 4).contiguous()

        def step() -> None:
            o = model(ref4, tgt4, intr4)
            loss = o.pose.tensor().square().sum() + sum(d.mean() for d in o.depths_per_level)
            model.zero_grad(set_to_none=True)
            loss.backward()

        out["train_step_b4_s"] = _median_time(step, repeats)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: shared cores)")
    parser.add_argument("--skip-latency", action="store_true", help="only the normal-equation assembly")
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown file to write")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: latency of one preset, as JSON
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    if args.child:
        print(json.dumps(latency_child(args.child, args.repeats, args.threads)))
        return 0

    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for label, n, c, k in CASES:
        print(f"assembly: {label} ...", file=sys.stderr, flush=True)
        rows.append((label, assembly_case(n, c, k, args.repeats)))

    latency = []
    if not args.skip_latency:
        for preset in ("small", "paper"):
            print(f"latency: {preset} ...", file=sys.stderr, flush=True)
            cmd = [sys.executable, "-m", "benchmarks.normal_equations", "--child", preset]
            cmd += ["--repeats", str(args.repeats), "--threads", str(args.threads)]
            done = subprocess.run(
                cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1]
            )
            latency.append(json.loads(done.stdout.strip().splitlines()[-1]))

    command = "`.venv/bin/python -m benchmarks.normal_equations"
    command += f" --repeats {args.repeats} --threads {args.threads}"
    command += " --skip-latency`" if args.skip_latency else "`"
    lines = [
        "## BA normal equations and BA-Net latency (CPU, fp32)",
        "",
        f"Command: {command}  ",
        f"Machine: {machine_description()}; {args.threads} torch thread(s); the cores are shared "
        "with other jobs, so compare ratios measured in the same run  ",
        f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
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
    if latency:
        lines += [
            "",
            "### BA-Net pair latency and peak memory",
            "",
            "One pair (batch 1, no grad, random weights): networks = backbone + FPN on both images + basis "
            "decoder; BA = all LM iterations plus the final Hessian. Peak memory = growth of the process's "
            "peak RSS over the torch baseline. Train step: `small`, batch 4, forward + backward.",
            "",
            "| preset | input | parameters | pair s | networks s | BA s | peak memory MB | train step s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in latency:
            step = f"{r['train_step_b4_s']:.2f}" if "train_step_b4_s" in r else "–"
            lines.append(
                f"| {r['preset']} | {r['size']} | {r['parameters'] / 1e6:.2f} M | {r['pair_s']:.3f} "
                f"| {r['networks_s']:.3f} | {r['ba_s']:.3f} | {r['peak_rss_growth_mb']:.0f} | {step} |"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
