"""Where XFeat's matched keypoints lie against the ground truth, by how far the translation moved them.

    .venv/bin/python -m benchmarks.keypoint_lag [--clips tartanair,hololens] [--gap 3] [--stride 3]
        [--frames 120] [--out benchmarks/results/keypoint_lag.md]

On clips with metric depth and poses, frame i is matched to frame i + gap (XFeat, mutual nearest
neighbours, as the front end does); each match's true position comes from i's depth and the poses
(evaluation.matching, occlusions checked in the second frame's depth). Per bin of translational flow: the
median error, the share within 1 px, and the median signed error along the flow (negative: the match lags
behind the motion). A second row per bin moves each match to where pyramidal Lucas-Kanade follows the
first frame's keypoint from it (kept when LK goes under 2 px away and comes back), the sub-pixel
refinement the front end was tried with (docs/frontend.md, "Keypoint refinement"). The bias statistics use
the true matches (error under 4 px). A clip token may be a folder in our sequence format (a rendered
synthetic drive, for instance). Results: benchmarks/results/keypoint_lag.md.
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np

from benchmarks.real_clips import DATA
from benchmarks.section import write_section
from benchmarks.vo_kitti import ROOT

RESULTS = ROOT / "benchmarks" / "results" / "keypoint_lag.md"
BINS_PX = (0.0, 4.0, 8.0, 16.0, 32.0, np.inf)
TRUE_MATCH_PX = 4.0
LK_MAX_SHIFT_PX = 2.0


def pair_errors(frame_a, frame_b, T_ba, extractor) -> dict[str, np.ndarray]:
    """Per true match of (frame_a, frame_b): translational flow length, error and along-flow error of the
    detected match and of its LK-refined position (NaN where LK did not confirm it)."""
    from banet_vo.evaluation.matching import along_flow_error, ground_truth_matches, translational_flow
    from banet_vo.frontend.flow import follow, gray_u8
    from banet_vo.frontend.xfeat import match_mutual

    fa, fb = extractor.extract(frame_a.image), extractor.extract(frame_b.image)
    m = match_mutual(fa, fb)
    xa, xb = fa.keypoints[m[:, 0]], fb.keypoints[m[:, 1]]
    gt, valid = ground_truth_matches(
        xa, frame_a.depth, T_ba, frame_a.camera, frame_b.camera, depth_b=frame_b.depth
    )
    flow = translational_flow(xa, gt, T_ba, frame_a.camera, frame_b.camera)
    refined, confirmed = follow(gray_u8(frame_a.image), gray_u8(frame_b.image), xa, guess=xb)
    confirmed &= np.linalg.norm(refined - xb, axis=1) <= LK_MAX_SHIFT_PX
    refined[~confirmed] = np.nan
    err = np.linalg.norm(xb - gt, axis=1)
    keep = valid & (err < TRUE_MATCH_PX)
    return {
        "flow": np.linalg.norm(flow, axis=1)[keep],
        "err": err[keep],
        "along": along_flow_error(xb, gt, flow)[keep],
        "err_lk": np.linalg.norm(refined - gt, axis=1)[keep],
        "along_lk": along_flow_error(refined, gt, flow)[keep],
    }


def clip_rows(name: str, args, extractor) -> list[str]:
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.geometry.rigid import invert

    clip = rc.load_clip(rc.resolve_clip(name, args.data), args.data, args.frames)
    frames = list(clip.frames())
    if any(f.depth is None for f in frames):
        raise SystemExit(f"{name} has no depth: the ground truth needs it")
    parts = []
    for i in range(0, len(frames) - args.gap, args.stride):
        T_ba = invert(clip.gt[i + args.gap]) @ clip.gt[i]
        parts.append(pair_errors(frames[i], frames[i + args.gap], T_ba, extractor))
        print(f"keypoint_lag: {name} pair {i}/{len(frames) - args.gap}", file=sys.stderr, flush=True)
    if not parts:
        raise SystemExit(f"{name} has {len(frames)} frames: a pair needs {args.gap + 1}")
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    rows = []
    for lo, hi in itertools.pairwise(BINS_PX):
        sel = (data["flow"] >= lo) & (data["flow"] < hi)
        if sel.sum() < 20:
            continue
        label = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">= {lo:g}"
        for kind, err, along in (
            ("XFeat", data["err"][sel], data["along"][sel]),
            ("XFeat + LK", data["err_lk"][sel], data["along_lk"][sel]),
        ):
            ok = np.isfinite(err)
            flow = data["flow"][sel][ok]
            rows.append(
                f"| {clip.spec.name} | {label} | {kind} | {int(ok.sum())} | {np.median(err[ok]):.2f} | "
                f"{np.mean(err[ok] <= 1.0):.2f} | {np.median(along[ok]):+.3f} | "
                f"{100 * np.median(along[ok] / flow):+.1f} |"
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clips", default="tartanair,hololens", help="clip names or sequence folders, comma-separated"
    )
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--gap", type=int, default=3, help="frames between the two of a pair")
    parser.add_argument("--stride", type=int, default=3, help="frames between pairs")
    parser.add_argument("--frames", type=int, default=120, help="first frames of each clip used")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.gap < 1 or args.stride < 1 or args.frames <= args.gap:
        parser.error("gap and stride must be >= 1 and frames > gap")
    import torch
    from banet_vo.frontend.xfeat import XFeatExtractor

    torch.set_num_threads(args.threads)
    extractor = XFeatExtractor()
    rows = [row for name in args.clips.split(",") for row in clip_rows(name.strip(), args, extractor)]
    write_section(
        args.out,
        "Keypoint lag: XFeat's matches against metric ground truth",
        "benchmarks.keypoint_lag",
        argv,
        f"torch threads {args.threads}; frame i matched to i + {args.gap}, i = 0, {args.stride}, "
        f"{2 * args.stride}, ... within the first {args.frames} frames",
        [
            "True matches (error under 4 px) by translational flow; the along-flow error is negative for a "
            "match behind its true position.",
            "",
            "| clip | flow [px] | keypoints | matches | median error [px] | within 1 px "
            "| median along flow [px] | median along flow [% of flow] |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
