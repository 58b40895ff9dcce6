"""Long run: does the xfeat odometry stay as fast and as small after thousands of frames as after a hundred?

    .venv/bin/python -m benchmarks.long_run [--clip kitti07] [--passes 10] [--block 200] [--threads 2]

A real clip is played forward, backward, forward ... as one stream (frames 0..n-1, n-2..0, 1..n-1, ...;
stamps at the clip's median frame interval), so positions stay continuous and the motion reverses at
each end, like a car that stops and backs up. The ground truth is played the same way. Per block of
frames the table gives the median and 90th-percentile wall time of one process() call, the resident
memory of the process, what the map holds (keyframes in the window, landmarks, learned-scale
measurements kept) and the ATE of every pose so far (Sim(3), and SE(3) at the default learned scale).
Time and memory should stay flat; the ATE may grow with drift, and a reversal is a hard case.
Results: benchmarks/results/long_run.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
from banet_vo.provenance import code_version

from benchmarks.process_memory import malloc_in_use_mb, proc_status_mb
from benchmarks.real_clips import DATA
from benchmarks.section import header_lines
from benchmarks.vo_kitti import DEFAULT_MODEL, ROOT

RESULTS = ROOT / "benchmarks" / "results" / "long_run.md"


def ping_pong(n: int, passes: int) -> np.ndarray:
    """Frame indices of `passes` alternating passes over n frames, turning at each end without repeating
    the end frame: 0..n-1, n-2..0, 1..n-1, ..."""
    if n < 2 or passes < 1:
        raise ValueError(f"need n >= 2 and passes >= 1, got n={n}, passes={passes}")
    order = list(range(n))
    for p in range(1, passes):
        order += list(range(n - 2, -1, -1)) if p % 2 else list(range(1, n))
    return np.asarray(order, dtype=np.int64)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="benchmarks.long_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", default="kitti07", help="a clip name or folder (as benchmarks.real_clips)")
    parser.add_argument("--passes", type=int, default=10, help="passes over the clip (default 10)")
    parser.add_argument("--block", type=int, default=200, help="frames per table row (default 200)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="tracking_ransac_seed")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="BA-Net checkpoint")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the clips (../shared/data)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown results file")
    args = parser.parse_args(argv)
    if args.passes < 1 or args.block < 1:
        parser.error("--passes and --block must be >= 1")

    import torch
    from banet_vo.evaluation import real_clips as rc
    from banet_vo.odometry import BANetEstimator, KeyframeOdometry, OdometryConfig, make_odometry
    from banet_vo.odometry.tracking_config import TrackingConfig

    try:
        spec = rc.resolve_clip(args.clip, args.data)
        clip = rc.load_clip(spec, args.data)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    torch.set_num_threads(args.threads)
    code, started_at, started = code_version(), datetime.datetime.now(datetime.UTC), time.perf_counter()
    frames = list(clip.frames())  # decoded once: the run measures the odometry, not PNG decoding
    dt = float(np.median(np.diff(clip.stamps)))
    order = ping_pong(len(frames), args.passes)
    stamps = np.arange(len(order)) * dt
    gt = clip.gt[order]
    config = OdometryConfig(tracking=TrackingConfig(ransac_seed=args.seed))
    vo = make_odometry(BANetEstimator.from_checkpoint(args.model, device="cpu"), config)
    if not isinstance(vo, KeyframeOdometry):
        parser.error("the default front end is not xfeat: nothing here to measure")
    rows, seconds, out_stamps, out_poses = [], [], [], []
    first_trajectory, resets, statuses = None, 0, {}
    for k, i in enumerate(order):
        frame = frames[int(i)]
        t0 = time.perf_counter()
        result = vo.process(frame.image, float(stamps[k]), frame.camera)
        seconds.append(time.perf_counter() - t0)
        statuses[result.status] = statuses.get(result.status, 0) + 1
        if first_trajectory is None:
            first_trajectory = result.trajectory_id
        if result.trajectory_id != first_trajectory:
            resets = result.trajectory_id - first_trajectory
        elif result.T_odom_camera is not None:
            out_stamps.append(stamps[k])
            out_poses.append(np.asarray(result.T_odom_camera, dtype=np.float64))
        if (k + 1) % args.block == 0 or k + 1 == len(order):
            block = np.asarray(seconds[-args.block :])
            sim3 = se3 = None
            if len(out_poses) >= 3:
                sim3, _ = rc.ate(np.asarray(out_stamps), np.asarray(out_poses), stamps, gt, "sim3")
                se3, _ = rc.ate(np.asarray(out_stamps), np.asarray(out_poses), stamps, gt, "se3")
            keyframes, landmarks, measurements = vo.map_size
            rows.append(
                (
                    k + 1,
                    np.median(block),
                    np.quantile(block, 0.9),
                    proc_status_mb("VmRSS"),
                    malloc_in_use_mb(),
                    keyframes,
                    landmarks,
                    measurements,
                    len(out_poses),
                    sim3,
                    se3,
                )
            )
            print(
                f"long_run: {k + 1}/{len(order)} frames, {rows[-1][1]:.3f} s/frame, {rows[-1][3]:.0f} MB "
                "resident",
                file=sys.stderr,
                flush=True,
            )
    minutes = (time.perf_counter() - started) / 60
    fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [
        *header_lines(
            "Long run: time and memory over thousands of frames",
            "benchmarks.long_run",
            argv,
            machine_extra=f"torch threads {args.threads}",
            date=started_at,
            code=code,
            model=args.model.name,
            run=f"{minutes:.1f} min",
        ),
        f"Clip {spec.name} ({len(frames)} frames) played {args.passes} times forward and backward: "
        f"{len(order)} frames at {1 / dt:.1f} Hz stamps; default configuration (frontend xfeat, scale "
        f"learned, window BA in line), RANSAC seed {args.seed}. Statuses: "
        + ", ".join(f"{name} {count}" for name, count in sorted(statuses.items()))
        + (f"; {resets} reset(s): poses after the first are left out." if resets else "."),
        "",
        "Resident MB counts the free heap glibc keeps for later as well; allocated MB (glibc's mallinfo2: "
        "what malloc has handed out and not had back: numpy's and torch's buffers, GTSAM's and OpenCV's "
        "memory; not Python's small objects, which live in arenas of their own) does not: a leak of such "
        "memory grows both, a heap that only fragments grows the first alone.",
        "",
        "| frames | s/frame (median) | s/frame (p90) | resident MB | allocated MB | window keyframes | "
        "landmarks | scale measurements | poses so far | ATE Sim(3) so far [m] | ATE SE(3) so far [m] |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, med, p90, mb, used, kfs, lms, meas, poses, sim3, se3 in rows:
        lines.append(
            f"| {n} | {med:.3f} | {p90:.3f} | {mb:.0f} | {'—' if used is None else f'{used:.0f}'} | {kfs} | "
            f"{lms} | {meas} | {poses} | {fmt(sim3)} | {fmt(se3)} |"
        )
    body = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
