"""`banet-vo-adapt-stream`: fine-tune BA-Net on a camera's own video, with no labels (issue 15).

The labels come from the pipeline itself:
  1. poses: the odometry (XFeat tracking, GTSAM window BA, this model's learned metric scale) runs over the
     stream; its camera poses are the pose targets;
  2. depth: the photometric error of the target warped into the reference under those poses (the
     self-supervised term training already uses for KITTI, train/photometric.py).
Ground truth that the sequence may carry (poses, depth) is never read: the stream is written anew from
images, intrinsics, timestamps and the odometry's poses only.

Guard (as the matcher's adaptation): the stream's tail is held back from training. Before and after, the
model estimates each held-back pair and the photometric error of its own warp (its depth and pose) is
measured; if adaptation made it worse by more than `tolerance`, the original weights are kept (rolled
back). Synthetic pairs can be mixed in (`synthetic_weight`) so that the model does not forget what it knew.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamAdaptConfig:
    steps: int = 600  # optimiser steps (batch 4)
    lr: float = 1e-4  # Adam; half the real-data fine-tune's 2e-4: the pose targets are the odometry's
    held_back: float = 0.15  # share of the stream's frames (its tail) kept out of training for the guard
    strides: tuple[int, ...] = (1, 2)
    synthetic_weight: float = 0.5  # share of batches from the synthetic training set (0 = stream only)
    synthetic_cache: str = "runs/cache/train_small_128x8.pt"
    tolerance: float = 0.0  # guard: held-back photometric error may rise by at most this share
    max_wall_s: float = 0.0  # stop training after this long (0 = no limit); the run checkpoints
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or not self.lr > 0 or not 0.0 < self.held_back < 0.9:
            raise ValueError(f"steps >= 1, lr > 0 and 0 < held_back < 0.9 needed, got {self}")
        if not 0.0 <= self.synthetic_weight < 1.0 or not self.tolerance >= 0.0:
            raise ValueError("synthetic_weight must lie in [0, 1) and tolerance be >= 0")
        if not self.strides or min(self.strides) < 1:
            raise ValueError(f"strides must be positive, got {self.strides}")


def odometry_poses(sequence, first: int, last: int, model_path: Path, threads: int = 1):
    """(positions, camera-to-world poses in metres) of the frames first..last that the default odometry
    gave a metric pose (first trajectory only: a reset starts an unrelated frame). Reads images,
    intrinsics and timestamps only."""
    from banet_vo.odometry import BANetEstimator, OdometryConfig, make_odometry

    torch.set_num_threads(threads)
    vo = make_odometry(BANetEstimator.from_checkpoint(model_path, device="cpu"), OdometryConfig())
    positions, poses, trajectory = [], [], None
    started = time.perf_counter()
    for k in range(first, last + 1):
        frame = sequence[k]
        result = vo.process(frame.image, frame.timestamp, frame.camera)
        trajectory = result.trajectory_id if trajectory is None else trajectory
        if result.trajectory_id != trajectory:
            logger.warning("odometry reset at position %d: the stream's pseudo-labels end there", k)
            break
        if result.T_odom_camera is not None and result.scale_source == "learned":
            positions.append(k)
            poses.append(np.asarray(result.T_odom_camera, dtype=np.float64))
        done = k - first + 1
        if done % 25 == 0:
            rate = (time.perf_counter() - started) / done
            logger.info("odometry: frame %d/%d (%.2f s/frame)", done, last - first + 1, rate)
    vo.close()
    return np.asarray(positions, dtype=np.int64), np.asarray(poses).reshape(-1, 4, 4)


def write_stream(sequence, positions: np.ndarray, poses: np.ndarray, out_dir: Path) -> Path:
    """The frames at `positions` in our format with `poses` as their poses and no depth."""
    from banet_vo.data import write_sequence
    from banet_vo.data.sequence import Frame

    def frames():
        for i, (k, T) in enumerate(zip(positions.tolist(), poses, strict=True)):
            f = sequence[k]
            yield Frame(i, f.timestamp, f.image, f.camera, depth=None, pose=T)

    return write_sequence(frames(), out_dir, overwrite=True)


@torch.no_grad()
def held_back_error(model, stream_dir: Path, frames: tuple[int, int], strides) -> tuple[float, int]:
    """Mean photometric error of each held-back pair warped by the model's own final depth and pose (no
    labels), and the number of pairs."""
    from banet_vo.data import PairDataset, open_sequence
    from banet_vo.train.photometric import photometric_depth_loss

    dataset = PairDataset(
        open_sequence(stream_dir), strides=tuple(strides), model_config=model.config, shuffle=False,
        frames=frames,
    )  # fmt: skip
    errors = []
    for i in range(len(dataset)):
        item = dataset[i]
        ref, tgt, K = item["image_ref"][None], item["image_tgt"][None], item["intrinsics"][None]
        out = model(ref, tgt, K)
        errors.append(
            float(
                photometric_depth_loss(
                    out.depths_per_level[-1], ref, tgt, out.poses_per_level[-1], out.depth_intrinsics
                )
            )
        )
    if not errors:
        raise ValueError(f"no held-back pairs in frames {frames} of the stream")
    return float(np.mean(errors)), len(errors)


def _train_config(model_path: Path, stream_spec: str, config: StreamAdaptConfig):
    from banet_vo.model.checkpoint import load_checkpoint
    from banet_vo.model.config import BANetConfig
    from banet_vo.train.config import TrainConfig

    _, model_dict, _ = load_checkpoint(model_path, expected_kind="banet")
    overrides = BANetConfig.from_dict(model_dict).to_dict()
    preset = overrides.pop("name")  # the preset's fields, then every stored field over them
    synthetic = config.synthetic_weight > 0
    data = {
        "scenes": ["driving", "indoor"] if synthetic else [],
        "sequences_per_scene": 128 if synthetic else 0,
        "frames_per_sequence": 8,
        "cache": config.synthetic_cache,
        "strides": {"driving": [1, 2], "indoor": [1, 2]},
        "real_sequences": [stream_spec],
        "real_strides": list(config.strides),
        "source_weights": [config.synthetic_weight, 1.0 - config.synthetic_weight] if synthetic else [],
    }
    # Run 4's stage-3 weights; the stream's pairs have no depth, so their depth comes from the
    # photometric term alone (the synthetic pairs keep their depth labels).
    loss = {
        "rotation": 20.0, "translation": 1.0, "depth": 4.0, "depth_space": "log", "coarse_levels": 0.5,
        "max_depth": 50.0, "initial_depth": 1.0, "photometric": 1.0, "smoothness": 0.001,
    }  # fmt: skip
    return TrainConfig.from_dict(
        {
            "model_preset": preset,
            "model_overrides": overrides,
            "data": data,
            "loss": loss,
            "batch_size": 4,
            "steps": config.steps,
            "max_wall_s": config.max_wall_s,
            "lr": config.lr,
            "plateau_window": 10 * config.steps,  # no decay within a short adaptation
            "init_weights": str(model_path),
            "amp": False,
            "num_threads": config.threads,
            "seed": config.seed,
            "log_every": 20,
        }
    )


def adapt_stream(
    sequence_path: Path,
    frames: tuple[int, int],
    model_path: Path,
    out_dir: Path,
    config: StreamAdaptConfig,
    resume: bool = False,
) -> dict:
    """Adapt `model_path` on positions frames[0]..frames[1] of the sequence; writes out_dir/model.safetensors
    (the adapted weights, or the original ones when the guard rolled back) and out_dir/report.json."""
    from banet_vo.data import open_sequence
    from banet_vo.model.checkpoint import load_banet
    from banet_vo.train.loop import train

    out_dir.mkdir(parents=True, exist_ok=True)
    sequence = open_sequence(sequence_path)
    first, last = frames
    if not 0 <= first < last < len(sequence):
        raise ValueError(f"frames {first}-{last} outside the sequence's 0-{len(sequence) - 1}")
    stream_dir = out_dir / "stream"
    if not (resume and (stream_dir / "poses.txt").is_file()):
        positions, poses = odometry_poses(sequence, first, last, model_path, config.threads)
        if len(positions) < 10:
            raise ValueError(
                f"the odometry gave metric poses to only {len(positions)} frames: nothing to adapt on"
            )
        write_stream(sequence, positions, poses, stream_dir)
        (out_dir / "stream_positions.txt").write_text("\n".join(str(p) for p in positions.tolist()) + "\n")
    n = len(open_sequence(stream_dir))
    split = n - max(round(config.held_back * n), max(config.strides) + 1)
    train_frames, guard_frames = (0, split - 1), (split, n - 1)
    spec = f"{stream_dir}@{train_frames[0]}-{train_frames[1]}"
    torch.set_num_threads(config.threads)
    before, pairs = held_back_error(load_banet(model_path), stream_dir, guard_frames, config.strides)
    logger.info("held-back photometric error before: %.4f (%d pairs)", before, pairs)
    # An interrupted run continues from its newest checkpoint; one that never wrote one starts again.
    resume_training = resume and any((out_dir / "run" / "checkpoints").glob("step-*"))
    result = train(
        _train_config(model_path, spec, config),
        out_dir / "run",
        resume=resume_training,
        overwrite=not resume_training,
    )
    adapted = out_dir / "run" / "last.safetensors"
    after, _ = held_back_error(load_banet(adapted), stream_dir, guard_frames, config.strides)
    kept = after <= before * (1.0 + config.tolerance)
    shutil.copyfile(adapted if kept else model_path, out_dir / "model.safetensors")
    report = {
        "sequence": str(sequence_path),
        "frames": list(frames),
        "model": str(model_path),
        "stream_frames": n,
        "trained_on_stream_positions": list(train_frames),
        "held_back_stream_positions": list(guard_frames),
        "held_back_pairs": pairs,
        "held_back_error_before": before,
        "held_back_error_after": after,
        "decision": "adapted" if kept else "rolled back (held-back error rose)",
        "steps": result.step,
        "train_wall_s": result.wall_s,
        "stopped_by": result.stopped_by,
        "config": asdict(config),
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _frames(text: str) -> tuple[int, int]:
    try:
        a, b = text.split("-")
        return int(a), int(b)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"frames must be FIRST-LAST, got {text!r}") from err


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="banet-vo-adapt-stream",
        description="Fine-tune BA-Net on a camera's own video without labels: the odometry's poses and the "
        "photometric error stand in for them; a held-back tail guards the result (rollback when worse).",
    )
    parser.add_argument("sequence", type=Path, help="sequence folder (any format banet_vo.data reads)")
    parser.add_argument("--frames", type=_frames, required=True, help="positions FIRST-LAST to adapt on")
    parser.add_argument("--model", type=Path, required=True, help="BA-Net checkpoint to adapt")
    parser.add_argument("--out", type=Path, required=True, help="output folder (model.safetensors, report)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    defaults = StreamAdaptConfig()
    for name in ("steps", "lr", "held_back", "synthetic_weight", "tolerance", "max_wall_s", "threads"):
        value = getattr(defaults, name)
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=type(value), default=value, help=f"default {value}"
        )
    parser.add_argument("--synthetic-cache", default=defaults.synthetic_cache, help="rendered synthetic set")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        config = StreamAdaptConfig(
            steps=args.steps, lr=args.lr, held_back=args.held_back, synthetic_weight=args.synthetic_weight,
            synthetic_cache=args.synthetic_cache, tolerance=args.tolerance, max_wall_s=args.max_wall_s,
            threads=args.threads,
        )  # fmt: skip
        report = adapt_stream(args.sequence, args.frames, args.model, args.out, config, args.resume)
    except ValueError as err:
        print(f"banet-vo-adapt-stream: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
