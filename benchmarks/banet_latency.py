"""BA-Net pair latency and peak memory on CPU (fp32): both presets and the shipped checkpoints.

Each model runs in its own subprocess so that its peak resident memory (ru_maxrss) is its own; the
reported peak is the growth over the process's resident memory just before the model is built, after
torch and the model's libraries (banet_vo.model, pypose...) are imported: the model's own memory, not the
libraries'. Presets get random-initialised weights (latency does not depend on the values);
a checkpoint path measures that network (e.g. the XFeat encoder of banet_small_xfeat) at its config size.

    .venv/bin/python -m benchmarks.banet_latency [--repeats 5] [--threads 2] [--models small,paper,PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.section import header_lines

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "banet_latency.md"
# Presets with random weights, then the shipped checkpoints (the default and the XFeat-encoder alternative).
DEFAULT_MODELS = "small,paper,models/banet_small_synthetic.safetensors,models/banet_small_xfeat.safetensors"


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _import_model_libraries() -> None:
    """Import what _build needs (banet_vo.model, pypose, ...), so the memory baseline counts them."""
    import banet_vo.model.banet
    import banet_vo.model.checkpoint
    import banet_vo.model.config  # noqa: F401


def _build(name: str):
    """A preset with random weights, or the network stored in a checkpoint file."""
    from banet_vo.model.banet import BANet
    from banet_vo.model.checkpoint import load_banet
    from banet_vo.model.config import BANetConfig

    if name.endswith(".safetensors"):
        return load_banet(name, "cpu"), Path(name).stem
    return BANet(BANetConfig.preset(name)).eval(), name


def measure(name: str, repeats: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    _import_model_libraries()
    base = _rss_mb()
    model, label = _build(name)
    config = model.config
    w, h = config.image_width, config.image_height
    ref, tgt = torch.rand(1, 3, h, w), torch.rand(1, 3, h, w)
    intr = torch.tensor([[0.8 * w, 0.8 * w, (w - 1) / 2, (h - 1) / 2]])
    times = []
    with torch.no_grad():
        model(ref, tgt, intr)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model(ref, tgt, intr)
            times.append(time.perf_counter() - start)
    times.sort()
    return {
        "preset": label,
        "size": f"{w}x{h}",
        "parameters": sum(p.numel() for p in model.parameters()),
        "median_s": statistics.median(times),
        "min_s": times[0],
        "peak_rss_growth_mb": _rss_mb() - base,
        "repeats": repeats,
        "threads": threads,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="BA-Net pair latency and peak memory on CPU.")
    parser.add_argument("--repeats", type=int, default=5, help="timed forward passes per model")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--models",
        "--presets",
        dest="models",
        default=DEFAULT_MODELS,
        help="comma separated presets (random weights) and checkpoint paths",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: measure one model, print JSON
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.repeats, args.threads)))
        return 0
    names = []
    for name in args.models.split(","):
        # a checkpoint path from the caller's directory or the repository, made absolute for the child
        if name.endswith(".safetensors"):
            path = Path(name) if Path(name).is_file() else ROOT / name
            if not path.is_file():
                parser.error(f"--models: checkpoint {name} not found")
            name = str(path.resolve())
        names.append(name)
    rows = []
    for preset in names:
        print(f"measuring {Path(preset).name} ...", file=sys.stderr, flush=True)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.banet_latency",
                "--child",
                preset,
                "--repeats",
                str(args.repeats),
                "--threads",
                str(args.threads),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    lines = [
        *header_lines(
            "BA-Net pair latency and peak memory (CPU, fp32)",
            "benchmarks.banet_latency",
            ["--repeats", str(args.repeats), "--threads", str(args.threads), "--models", args.models],
            machine_extra="shared with other jobs (timings are noisy)",
        ),
        "",
        "One forward pass (features of both images, basis depth, full coarse-to-fine BA), batch 1, no grad.",
        "Peak memory = growth of the process's peak resident set over its baseline after torch and the "
        "model libraries (banet_vo.model, pypose) are imported.",
        "",
        "| model | input | parameters | median s/pair | min s/pair | peak memory MB "
        f"| latency / {rows[0]['preset']} |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['size']} | {r['parameters']:,} | {r['median_s']:.3f} | {r['min_s']:.3f} "
            f"| {r['peak_rss_growth_mb']:.0f} | {r['median_s'] / rows[0]['median_s']:.2f}x |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
