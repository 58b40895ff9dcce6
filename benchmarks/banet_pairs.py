"""Table 1 on our data: BA-Net (shipped small model) vs its ablations and photometric / geometric BA.

Sets: the held-out synthetic test set (scene seeds never trained on), and the real clips in ../shared/data
(HoloLens pairs with depth; KITTI 06 pairs for pose, no GT depth) when present. The constant λ of the
ablations and of photometric BA is swept once on the validation scenes and reused everywhere.

    .venv/bin/python -m benchmarks.banet_pairs [--model models/banet_small_synthetic.safetensors]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from banet_vo.evaluation.pairs import (
    LAMBDA_CANDIDATES,
    METHODS,
    PairEstimator,
    build_sets,
    choose_lambdas,
    evaluate_sets,
    format_results,
    load_model,
)
from banet_vo.evaluation.report import write_json

from benchmarks.section import header_lines, variant_out

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "banet_pairs.md"
HISTORY_MARKER = "<!-- history: sections below survive a rerun of benchmarks.banet_pairs -->"
DATA = ROOT.parent / "shared" / "data"
REAL = {
    "HoloLens 000 frames 3-52 (stride 1)": "hololens_000_003-052",
    "KITTI 06 frames 0-50 (stride 1)": "kitti_odom06_000-050",
}


def variant(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """How this run differs from the committed one (every pair, the shipped model)."""
    differs = [f"max_pairs{args.max_pairs}"] if args.max_pairs else []
    if Path(args.model).resolve() != Path(parser.get_default("model")).resolve():
        differs.append(f"model-{Path(args.model).stem}")
    return differs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="BA-Net vs ablations vs photometric/geometric BA on pairs.")
    parser.add_argument("--model", default=str(ROOT / "models" / "banet_small_synthetic.safetensors"))
    parser.add_argument("--cache-dir", default=str(ROOT / "runs" / "cache"), help="rendered test/val sets")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--max-pairs", type=int, help="limit pairs per set (quick runs)")
    parser.add_argument("--json", default=str(ROOT / "runs" / "banet_pairs.json"), help="raw results")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="markdown file (default: benchmarks/results/banet_pairs.md for the committed run, all pairs of "
        "the shipped model; else runs/banet_pairs_<what differs>.md, e.g. runs/banet_pairs_max_pairs5.md)",
    )
    args = parser.parse_args(argv)
    out = variant_out(args.out, RESULTS, variant(args, parser))
    torch.set_num_threads(args.threads)

    estimator = PairEstimator(load_model(args.model))
    config = estimator.config
    size = (config.image_width, config.image_height)
    lambdas, sweep = choose_lambdas(estimator, METHODS, args.cache_dir)
    sets = build_sets([], [1], config, args.cache_dir)
    for title, name in REAL.items():
        if (DATA / name).is_dir():
            sets += [(title, ds) for _, ds in build_sets([str(DATA / name)], [1], config, args.cache_dir)]
    results = evaluate_sets(estimator, sets, METHODS, lambdas, max_pairs=args.max_pairs)
    write_json(args.json, {"lambda": lambdas, "sweep": sweep, "sets": results})

    title, blank, command, machine, date = header_lines(
        "BA-Net two-view evaluation (Table 1 protocol)",
        "benchmarks.banet_pairs",
        argv,  # the whole command (None: sys.argv[1:])
        machine_extra="shared with other jobs (s/pair is noisy)",
        torch_info=False,
    )
    lines = [
        title,
        blank,
        command,
        f"Model: `{Path(args.model).name}` ({config.name} preset, {size[0]}x{size[1]} input, "
        f"{config.input_geometry})  ",
        machine,
        date,
        "",
        "All methods see the same pairs at the model input size; depth is scored at the depth resolution "
        "(half the input) against GT resized by nearest sampling, GT capped at 80 m. Geometric BA gets its "
        "metric scale from the GT translation norm (`geometric`, an oracle) or from the model's initial "
        "depth D0 (`geometric_learned_scale`: median D0 / triangulated depth) and has sparse depth "
        "(coverage column). Constant λ "
        f"(swept over {list(LAMBDA_CANDIDATES)} on validation scenes, seeds 50000-50003): "
        + ", ".join(f"{k} {v:g}" for k, v in lambdas.items())
        + ".",
        "",
    ]
    for name, per_method in results.items():
        lines += [format_results(name, per_method), ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    if out.exists() and HISTORY_MARKER in (old := out.read_text()):
        text += "\n" + old[old.index(HISTORY_MARKER) :]  # earlier models' sections survive a rerun
    out.write_text(text)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
