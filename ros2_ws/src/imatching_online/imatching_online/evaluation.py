"""Matching evaluation: MMA at 1/2/5 px (ground-truth depth + pose) and pose AUC at 5/10/20 deg, for
matcher checkpoints and the OpenCV SIFT / ORB reference rows (mutual nearest neighbour), as in the
iMatching paper's Tables 1 and 2.

All methods see the same frame pairs at the same working resolution (default 240 px wide, intrinsics
scaled by the project's resize rule); MMA thresholds are in pixels of that resolution. Matcher queries
are Shi-Tomasi corners of image A (matching.queries.corner_queries); every query counts, there is no
confidence filter. MMA uses banet_vo.evaluation.matching (nearest-pixel depth of A, occlusion check
against B's depth) and is pooled over all valid queries of all pairs. Pose: essential matrix with
RANSAC (1 px) + cheirality (OpenCV), error max(rotation, translation direction), AUC with
banet_vo.evaluation.pose_auc; a pair with fewer than 5 matches or no solution counts as a failure.

RANSAC trials: OpenCV's RANSAC draws its samples from a fixed-seed generator, so one run is a single
arbitrary draw; jittering KITTI matches by 0.05 px moved one-draw AUC@5 by 2.7-4.5 points (std over
jitters, docs/imatching.md), more than the differences between matchers on ~50 pairs. Each pair is
therefore solved ``ransac_trials`` times on seeded permutations of its matches (which changes OpenCV's
minimal samples, not the data) and the AUC pools all trials: the expected AUC over RANSAC's randomness.

``reference``: per method, the difference to a reference method with a 95 % paired bootstrap interval
(the same resample for both methods), so a gain can be told from noise. Pairs (i, i+g) and (j, j+h)
share a frame when their start frames are closer than the largest gap, so resampling single pairs
treats dependent pairs as independent and makes the interval too narrow (docs/imatching.md). The
default is therefore a moving-block bootstrap: runs of ``block`` consecutive start frames (default the
largest gap) are drawn with replacement and bring all their pairs; ``block=0`` resamples single pairs.

Run: ``python -m imatching_online.evaluation SEQ --matcher NAME=PATH ... --frames 30:50``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from banet_vo.data import open_sequence
from banet_vo.data.dataset import resize_depth_nearest
from banet_vo.evaluation.matching import matching_accuracy
from banet_vo.evaluation.pose import pose_auc, two_view_pose_error
from banet_vo.evaluation.report import write_json
from banet_vo.geometry import PinholeCamera

from imatching_online.matcher.io import load_matcher
from imatching_online.matcher.network import SIZE_MULTIPLE, Matcher
from imatching_online.matcher.queries import corner_queries, fit_size, prepare_image

MMA_THRESHOLDS = (1.0, 2.0, 5.0)
AUC_THRESHOLDS = (5.0, 10.0, 20.0)
RANSAC_TRIALS = 20
BOOTSTRAP_SAMPLES = 2000
Correspond = Callable[[dict, dict], tuple[np.ndarray, np.ndarray]]


def matcher_method(matcher: Matcher, max_queries: int = 300) -> Correspond:
    """Correspondences of a matcher: corners of A and their expected matches in B."""

    @torch.no_grad()
    def run(frame_a: dict, frame_b: dict) -> tuple[np.ndarray, np.ndarray]:
        q = corner_queries(frame_a["host"], max_queries)
        if len(q) == 0:
            return np.zeros((0, 2)), np.zeros((0, 2))
        out = matcher(frame_a["tensor"], frame_b["tensor"], torch.from_numpy(q)[None])
        return q.astype(np.float64), out.uv[0].numpy().astype(np.float64)

    matcher.eval()
    return run


def opencv_method(kind: str, features: int = 500) -> Correspond:
    """SIFT or ORB keypoints with mutual nearest-neighbour descriptor matching (cross check)."""

    if kind == "sift":
        detector, norm = cv2.SIFT_create(nfeatures=features), cv2.NORM_L2
    elif kind == "orb":
        detector, norm = cv2.ORB_create(nfeatures=features, edgeThreshold=15, patchSize=15), cv2.NORM_HAMMING
    else:
        raise ValueError(f"kind must be 'sift' or 'orb', got {kind!r}")
    bf = cv2.BFMatcher(norm, crossCheck=True)

    def run(frame_a: dict, frame_b: dict) -> tuple[np.ndarray, np.ndarray]:
        ka, da = detector.detectAndCompute(frame_a["gray"], None)
        kb, db = detector.detectAndCompute(frame_b["gray"], None)
        if da is None or db is None or len(ka) == 0 or len(kb) == 0:
            return np.zeros((0, 2)), np.zeros((0, 2))
        matches = bf.match(da, db)
        qa = np.array([ka[m.queryIdx].pt for m in matches], np.float64).reshape(-1, 2)
        qb = np.array([kb[m.trainIdx].pt for m in matches], np.float64).reshape(-1, 2)
        return qa, qb

    return run


def relative_pose_from_matches(
    qa: np.ndarray, qb: np.ndarray, camera: PinholeCamera, order: np.ndarray | None = None
) -> np.ndarray | None:
    """T_ba (4x4) from an essential matrix with RANSAC + cheirality; None when it cannot be solved.

    ``order``: a permutation of the matches to hand to OpenCV (another RANSAC draw on the same data).
    """

    if len(qa) < 5:
        return None
    if order is not None:
        if sorted(order.tolist()) != list(range(len(qa))):
            raise ValueError("order must be a permutation of the match indices")
        qa, qb = qa[order], qb[order]
    E, inliers = cv2.findEssentialMat(qa, qb, camera.K, method=cv2.RANSAC, prob=0.999, threshold=1.0)
    if E is None or E.shape != (3, 3):
        return None
    _, R, t, _ = cv2.recoverPose(E, qa, qb, camera.K, mask=inliers)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t.ravel()
    return T


def load_frames(seq, indices, width: int, multiple: int = SIZE_MULTIPLE) -> tuple[dict[int, dict], object]:
    """Frames at the working resolution (a multiple of ``multiple``): host RGB, gray, tensor, depth
    (nearest), pose; and the camera."""

    w, h = fit_size(seq.camera.width, seq.camera.height, width, multiple)
    frames, camera = {}, None
    for i in sorted(set(indices)):
        f = seq[i]
        host, tensor, camera = prepare_image(f.image, seq.camera, w, h)
        depth = None if f.depth is None else resize_depth_nearest(f.depth, w, h)
        frames[i] = {
            "host": host,
            "gray": cv2.cvtColor(host, cv2.COLOR_RGB2GRAY),
            "tensor": tensor,
            "depth": depth,
            "pose": f.pose,
        }
    return frames, camera


def pose_errors_over_trials(
    qa: np.ndarray, qb: np.ndarray, camera: PinholeCamera, T_gt: np.ndarray, trials: int, seed: int
) -> np.ndarray:
    """(trials,) AUC pose errors (deg, inf = failure) of RANSAC runs on seeded permutations of the
    matches; trial 0 keeps the original order (the single-draw protocol)."""
    rng = np.random.default_rng(seed)
    errors = np.empty(trials)
    for k in range(trials):
        order = None if k == 0 else rng.permutation(len(qa))
        T_est = relative_pose_from_matches(qa, qb, camera, order)
        errors[k] = np.inf if T_est is None else two_view_pose_error(T_est, T_gt).auc_error_deg
    return errors


def evaluate(
    seq,
    pairs: list[tuple[int, int]],
    methods: dict[str, Correspond],
    width: int = 240,
    ransac_trials: int = RANSAC_TRIALS,
    reference: str | None = None,
    bootstrap_block: int | None = None,
    size_multiple: int = SIZE_MULTIPLE,
) -> dict[str, dict]:
    """Per method: pooled MMA (if depth), pose AUC (if poses) over ``ransac_trials`` RANSAC draws per
    pair, mean matches per pair, seconds per pair; with ``reference``, paired-bootstrap differences in
    moving blocks of ``bootstrap_block`` start frames (None: the largest gap, at most the number of
    distinct start frames - 1; 0: single pairs). The frames' size is a multiple of ``size_multiple``
    (32 for XFeat)."""
    if not pairs:
        raise ValueError("pairs is empty")
    n_starts = len({a for a, _ in pairs})
    if bootstrap_block is None:
        # Pairs whose start frames are closer than the largest gap can share a frame. Capped so that a
        # block can still move; with one start frame only single pairs can be resampled (the table says).
        bootstrap_block = min(max(b - a for a, b in pairs), n_starts - 1)
    if reference is not None:  # checked before the work, not after it
        check_bootstrap_block(bootstrap_block, n_starts)
    if ransac_trials < 1:
        raise ValueError(f"ransac_trials must be >= 1, got {ransac_trials}")
    if reference is not None and reference not in methods:
        raise ValueError(f"reference {reference!r} is not one of the methods {sorted(methods)}")
    frames, camera = load_frames(seq, [i for p in pairs for i in p], width, size_multiple)
    results, per_pair = {}, {}
    for name, run in methods.items():
        errors, pose_errors, counts = [], [], []
        t0 = time.perf_counter()
        for p, (a, b) in enumerate(pairs):
            fa, fb = frames[a], frames[b]
            qa, qb = run(fa, fb)
            counts.append(len(qa))
            T_gt = None if fa["pose"] is None else np.linalg.inv(fb["pose"]) @ fa["pose"]
            if fa["depth"] is not None and T_gt is not None:
                if len(qa):
                    acc = matching_accuracy(qa, qb, fa["depth"], T_gt, camera, depth_b=fb["depth"])
                    errors.append(acc.errors_px[~np.isnan(acc.errors_px)])
                else:  # kept, empty: per-pair lists stay aligned with `pairs` for the paired bootstrap
                    errors.append(np.zeros(0))
            if T_gt is not None:
                # Seeded by the pair: every method gets the same permutation stream for the same pair.
                pose_errors.append(pose_errors_over_trials(qa, qb, camera, T_gt, ransac_trials, seed=p))
        row: dict = {"pairs": len(pairs), "matches_per_pair": float(np.mean(counts))}
        row["seconds_per_pair"] = (time.perf_counter() - t0) / len(pairs)
        if errors and sum(x.size for x in errors):
            e = np.concatenate(errors)
            row["mma"] = {str(t): float(np.mean(e <= t)) for t in MMA_THRESHOLDS}
            row["mma_valid_matches"] = int(e.size)
        if pose_errors:
            pooled = np.concatenate(pose_errors)
            row["pose_auc"] = {str(k): v for k, v in pose_auc(pooled, AUC_THRESHOLDS).items()}
            row["ransac_trials"] = ransac_trials
            row["median_pose_error_deg"] = float(np.median(pooled))
        results[name] = row
        per_pair[name] = {"mma": errors, "pose": pose_errors}
    if reference is not None:
        starts = np.array([a for a, _ in pairs])
        for name in methods:
            if name != reference:
                results[name]["vs_reference"] = paired_deltas(
                    per_pair[name], per_pair[reference], starts, bootstrap_block
                )
                results[name].update(reference=reference, bootstrap_block=bootstrap_block)
    return results


def _metrics(per_pair: dict, sel: np.ndarray) -> dict[str, float]:
    out = {}
    if per_pair["mma"]:
        e = np.concatenate([per_pair["mma"][i] for i in sel])
        out.update({f"MMA@{t:g}px": float(np.mean(e <= t)) if e.size else 0.0 for t in MMA_THRESHOLDS})
    if per_pair["pose"]:
        auc = pose_auc(np.concatenate([per_pair["pose"][i] for i in sel]), AUC_THRESHOLDS)
        out.update({f"AUC@{t:g}°": v for t, v in auc.items()})
    return out


def check_bootstrap_block(block: int, start_frames: int) -> None:
    """A moving block needs room to move: fewer frames than the distinct start frames (0 = single pairs)."""
    if block < 0:
        raise ValueError(f"bootstrap block must be >= 0, got {block}")
    if block and block >= start_frames:
        raise ValueError(
            f"bootstrap block {block} needs more than {block} distinct start frames, the pairs have "
            f"{start_frames}; use block 0 (single pairs) or more frames"
        )


def bootstrap_selections(starts: np.ndarray, block: int, samples: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``samples`` resamples of pair indices. block 0: pairs drawn singly with replacement. block b:
    moving blocks of b consecutive distinct start frames, drawn with replacement until as many start
    frames as the data has, each bringing all pairs that start there."""
    starts = np.asarray(starts)
    frames = np.unique(starts)
    check_bootstrap_block(block, len(frames))
    rng = np.random.default_rng(seed)
    if block == 0:
        for _ in range(samples):
            yield rng.integers(0, len(starts), len(starts))
        return
    members = [np.flatnonzero(starts == f) for f in frames]
    blocks = int(np.ceil(len(frames) / block))
    for _ in range(samples):
        first = rng.integers(0, len(frames) - block + 1, blocks)
        chosen = np.concatenate([np.arange(f, f + block) for f in first])[: len(frames)]
        yield np.concatenate([members[i] for i in chosen])


def paired_deltas(
    method: dict,
    reference: dict,
    starts: np.ndarray | None = None,
    block: int = 0,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> dict[str, list[float]]:
    """{metric: [delta, lo, hi]}: method - reference on all pairs, and the 2.5/97.5 percentiles of the
    delta over ``samples`` bootstrap resamples (the same resample for both methods). ``starts``: each
    pair's start frame, needed for ``block`` > 0 (bootstrap_selections)."""
    n = len(method["pose"]) or len(method["mma"])
    if n != (len(reference["pose"]) or len(reference["mma"])):
        raise ValueError("method and reference must cover the same pairs")
    if starts is None:
        if block:
            raise ValueError("a block bootstrap needs the pairs' start frames")
        starts = np.arange(n)
    elif len(starts) != n:
        raise ValueError(f"starts has {len(starts)} entries for {n} pairs")
    full = np.arange(n)
    m0, r0 = _metrics(method, full), _metrics(reference, full)
    boot = {k: [] for k in m0}
    for sel in bootstrap_selections(starts, block, samples, seed):
        m, r = _metrics(method, sel), _metrics(reference, sel)
        for k in boot:
            boot[k].append(m[k] - r[k])
    return {k: [m0[k] - r0[k], *(float(x) for x in np.percentile(boot[k], [2.5, 97.5]))] for k in m0}


def markdown_table(results: dict[str, dict]) -> str:
    has_mma = any("mma" in r for r in results.values())
    has_auc = any("pose_auc" in r for r in results.values())
    head = ["method"]
    if has_mma:
        head += [f"MMA@{t:g}px" for t in MMA_THRESHOLDS]
    if has_auc:
        head += [f"AUC@{t:g}°" for t in AUC_THRESHOLDS]
    head += ["matches/pair"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        cells = [name]
        if has_mma:
            cells += [f"{100 * r['mma'][str(t)]:.1f}" if "mma" in r else "–" for t in MMA_THRESHOLDS]
        if has_auc:
            cells += [
                f"{100 * r['pose_auc'][str(t)]:.1f}" if "pose_auc" in r else "–" for t in AUC_THRESHOLDS
            ]
        cells.append(f"{r['matches_per_pair']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    deltas = {name: r["vs_reference"] for name, r in results.items() if "vs_reference" in r}
    if deltas:
        first = next(r for r in results.values() if "reference" in r)
        reference, block = first["reference"], first["bootstrap_block"]
        how = "over single pairs" if block == 0 else f"in moving blocks of {block} start frames"
        keys = list(next(iter(deltas.values())))
        lines += [
            "",
            f"Difference to {reference}, points, with the 95 % paired-bootstrap interval ({how}):",
            "",
            "| method | " + " | ".join(keys) + " |",
            "|" + "---|" * (len(keys) + 1),
        ]
        for name, d in deltas.items():
            cells = [f"{100 * d[k][0]:+.1f} [{100 * d[k][1]:+.1f}, {100 * d[k][2]:+.1f}]" for k in keys]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def make_pairs(frames: range, gaps: list[int]) -> list[tuple[int, int]]:
    return [(i, i + g) for g in gaps for i in frames if i + g in frames]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sequence", type=Path, help="sequence directory (banet_vo.data.open_sequence)")
    p.add_argument(
        "--matcher", action="append", default=[], metavar="NAME=PATH", help="matcher checkpoint (repeatable)"
    )
    p.add_argument("--frames", default=None, help="START:END frames the pairs are drawn from (default: all)")
    p.add_argument("--gaps", default="1,2", help="frame gaps of the pairs, comma separated")
    p.add_argument(
        "--width",
        type=int,
        default=240,
        help="working width (rounded to a multiple of 8, of 32 with an XFeat matcher; aspect kept)",
    )
    p.add_argument("--no-opencv", action="store_true", help="leave out the SIFT and ORB reference rows")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    p.add_argument(
        "--ransac-trials",
        type=int,
        default=RANSAC_TRIALS,
        help="RANSAC runs per pair on permuted matches; pose AUC pools them (1 = a single OpenCV draw)",
    )
    p.add_argument(
        "--reference",
        default=None,
        metavar="NAME",
        help="report each method's difference to this method (a --matcher NAME, or 'SIFT (mutual NN)') "
        "with 95%% paired-bootstrap intervals",
    )
    p.add_argument(
        "--bootstrap-block",
        type=int,
        default=None,
        metavar="B",
        help="resample runs of B consecutive start frames for the --reference intervals, so pairs that "
        "share frames move together (default: the largest gap; 0 = single pairs)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def run_from_args(args) -> int:
    torch.set_num_threads(args.threads)
    seq = open_sequence(args.sequence)
    if args.frames:
        lo, hi = (int(x) for x in args.frames.split(":"))
        if not 0 <= lo < hi <= len(seq):
            raise ValueError(f"--frames {args.frames} must lie within 0:{len(seq)}")
        frames = range(lo, hi)
    else:
        frames = range(len(seq))
    gaps = [int(g) for g in args.gaps.split(",")]
    if any(g < 1 for g in gaps):
        raise ValueError(f"--gaps must be positive integers, got {args.gaps}")
    pairs = make_pairs(frames, gaps)
    methods: dict[str, Correspond] = {}
    if not args.no_opencv:
        methods["SIFT (mutual NN)"] = opencv_method("sift")
        methods["ORB (mutual NN)"] = opencv_method("orb")
    multiple = SIZE_MULTIPLE  # every method sees the same frames: the strictest matcher's multiple
    for spec in args.matcher:
        name, sep, path = spec.partition("=")
        if not sep:
            raise ValueError(f"--matcher must be NAME=PATH, got {spec!r}")
        matcher = load_matcher(path)[0]
        multiple = max(multiple, getattr(matcher, "size_multiple", SIZE_MULTIPLE))
        methods[name] = matcher_method(matcher)
    print(f"evaluating {len(methods)} methods on {len(pairs)} pairs of {seq.name}", file=sys.stderr)
    results = evaluate(
        seq, pairs, methods, args.width, args.ransac_trials, args.reference, args.bootstrap_block, multiple
    )
    print(markdown_table(results))
    if args.json:
        payload = {"sequence": str(args.sequence), "frames": [frames.start, frames.stop], "gaps": gaps}
        payload.update(width=args.width, ransac_trials=args.ransac_trials, results=results)
        write_json(args.json, payload)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """`banet-vo-eval matching` (registration: banet_vo.evaluation.commands)."""
    p = subparsers.add_parser(
        "matching", help="MMA and pose AUC of matchers vs SIFT/ORB", description=__doc__
    )
    add_arguments(p)
    p.set_defaults(func=run_from_args)
    return p


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m imatching_online.evaluation", description=__doc__.splitlines()[0]
    )
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run_from_args(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"imatching evaluation: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
