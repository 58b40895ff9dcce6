"""`banet-vo-adapt-stream`: fine-tune BA-Net on a camera's own video, with no labels (issue 15).

The labels come from the pipeline itself:
  1. poses: the odometry (XFeat tracking, GTSAM window BA, this model's learned metric scale) runs over the
     stream; its camera poses are the pose targets;
  2. depth (`depth_targets`): "photometric", the error of the target warped into the reference under those
     poses (the self-supervised term training already uses for KITTI, train/photometric.py); or
     "landmarks", the depth of the window BA's landmarks that each frame tracked, written as a sparse depth
     map whose every point lands on one cell of the model's depth grid, the grid of the input the model
     prepares from that frame (model.input_image.input_geometry: stretched, or aspect kept and cropped)
     (supervised depth terms; the photometric term is then off, as for any labelled pair).
Ground truth that the sequence may carry (poses, depth) is never read: the stream is written anew from
images, intrinsics, timestamps and the odometry's poses only.

Guard (as the matcher's adaptation): the stream's tail is held back from training. Before and after, the
model estimates each held-back pair and the photometric error of its own warp (its depth and pose) is
measured over every pixel of the depth grid, a pixel warped out of view or behind the camera scoring as if
the camera had not moved (train.photometric.warp_score: a diverged model scores no better than "no
motion", never perfect); if adaptation made it worse by more than `tolerance`, the original weights are
kept (rolled back). With depth targets from landmarks the guard is their agreement instead: depth abs rel
against the held-back frames' landmarks and rotation error against the odometry (held_back_agreement).
Synthetic pairs can be mixed in (`synthetic_weight`) so that the model does not forget
what it knew.

SIGINT / SIGTERM during training stop it with a checkpoint, as for banet-vo-train: the run is then not
finished, so no decision is taken and no model.safetensors written (the report says so, the exit status is
130 / 143, `--resume` continues). model.safetensors is written atomically (model.checkpoint).

`--resume` reuses the stream only for the sequence, frames, model and depth targets it was made from
(recorded in stream_source.json); other ones are refused, naming them (a resume with other frames once
trained on the old stream and reported the new frames).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from banet_vo.evaluation.report import write_json
from banet_vo.model.input_image import InputGeometry, input_geometry
from banet_vo.train.cli import SIGNAL_EXIT
from banet_vo.train.numbers import coerce_floats

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
    depth_targets: str = "photometric"  # or "landmarks" (docs/training.md)
    max_wall_s: float = 0.0  # stop training after this long (0 = no limit); the run checkpoints
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        coerce_floats(self, "")  # finite numbers only: lr nan, max_wall_s inf mean nothing here
        for name in ("steps", "threads", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "seed" else 1):
                raise ValueError(f"{name} must be an int >= {0 if name == 'seed' else 1}, got {value!r}")
        if not self.max_wall_s >= 0:
            raise ValueError(f"max_wall_s must be >= 0 (0: no limit), got {self.max_wall_s}")
        if self.steps < 1 or not self.lr > 0 or not 0.0 < self.held_back < 0.9:
            raise ValueError(f"steps >= 1, lr > 0 and 0 < held_back < 0.9 needed, got {self}")
        if not 0.0 <= self.synthetic_weight < 1.0 or not self.tolerance >= 0.0:
            raise ValueError("synthetic_weight must lie in [0, 1) and tolerance be >= 0")
        if not self.strides or min(self.strides) < 1:
            raise ValueError(f"strides must be positive, got {self.strides}")
        if self.depth_targets not in DEPTH_TARGETS:
            raise ValueError(f"depth_targets must be one of {DEPTH_TARGETS}, got {self.depth_targets!r}")


DEPTH_TARGETS = ("photometric", "landmarks")
STREAM_SOURCE = "stream_source.json"  # what the stream was made from (module docstring, resume)
MAX_STORED_DEPTH_M = 65.0  # uint16 millimetres (data format)


def _grid_cell(source: np.ndarray, n_source: int, n_resized: int, offset: int) -> np.ndarray:
    """Depth-grid cell of source pixel coordinates along one axis: pixel centre in the resized image, minus
    the window's offset (model input), over two input pixels per cell (the depth grid is half the input)."""
    resized = (np.asarray(source, np.float64) + 0.5) * n_resized / n_source
    return np.floor((resized - offset) / 2).astype(np.int64)


def sparse_depth_image(pixels: np.ndarray, depth: np.ndarray, geometry: InputGeometry) -> np.ndarray:
    """An (H, W) float32 depth map of a `geometry.source` = (W, H) image, 0 = none, holding each point's
    depth over every source pixel of the depth-grid cell that contains it (the nearest point per cell), the
    grid of the model input `geometry` prepares: the nearest-neighbour resizes to the input and on to the
    grid then read it. Points outside the model's window (cropped by keep_aspect) are left out."""
    (W, H), (Rw, Rh), (x0, y0) = geometry.source, geometry.resized, geometry.offset
    gw, gh = geometry.size[0] // 2, geometry.size[1] // 2
    pixels, depth = np.asarray(pixels, np.float64).reshape(-1, 2), np.asarray(depth, np.float64)
    u, v = _grid_cell(pixels[:, 0], W, Rw, x0), _grid_cell(pixels[:, 1], H, Rh, y0)
    ok = np.isfinite(depth) & (depth > 0) & (depth < MAX_STORED_DEPTH_M)
    ok &= (u >= 0) & (u < gw) & (v >= 0) & (v < gh)
    cells = np.full(gh * gw, np.inf)
    np.minimum.at(cells, v[ok] * gw + u[ok], depth[ok])
    cells[~np.isfinite(cells)] = 0.0
    cols, rows = _grid_cell(np.arange(W), W, Rw, x0), _grid_cell(np.arange(H), H, Rh, y0)
    in_cols, in_rows = (cols >= 0) & (cols < gw), (rows >= 0) & (rows < gh)
    image = np.zeros((H, W), np.float32)
    image[np.ix_(in_rows, in_cols)] = cells.reshape(gh, gw)[rows[in_rows][:, None], cols[in_cols][None, :]]
    return image


def odometry_poses(sequence, first: int, last: int, model_path: Path, threads: int = 1, landmarks=None):
    """(positions, camera-to-world poses in metres) of the frames first..last that the default odometry
    gave a metric pose (first trajectory only: a reset starts an unrelated frame). Reads images,
    intrinsics and timestamps only. A list given as `landmarks` receives, per returned frame, its tracked
    landmarks (pixels, depth in metres) or None."""
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
            if landmarks is not None:
                landmarks.append(vo.observed_landmarks())
        done = k - first + 1
        if done % 25 == 0:
            rate = (time.perf_counter() - started) / done
            logger.info("odometry: frame %d/%d (%.2f s/frame)", done, last - first + 1, rate)
    vo.close()
    return np.asarray(positions, dtype=np.int64), np.asarray(poses).reshape(-1, 4, 4)


def write_stream(
    sequence, positions: np.ndarray, poses: np.ndarray, out_dir: Path, depths=None, model_config=None
) -> Path:
    """The frames at `positions` in our format with `poses` as their poses, and no depth, or with
    `depths` (per frame: (pixels, metres) or None) as sparse depth over the depth-grid cells of the input
    `model_config` (a BANetConfig) prepares from each frame (sparse_depth_image)."""
    from banet_vo.data import write_sequence
    from banet_vo.data.sequence import Frame

    def frames():
        for i, (k, T) in enumerate(zip(positions.tolist(), poses, strict=True)):
            f = sequence[k]
            depth = None
            if depths is not None:
                size = (f.camera.width, f.camera.height)
                depth = np.zeros((size[1], size[0]), np.float32)
                if depths[i] is not None:
                    depth = sparse_depth_image(*depths[i], input_geometry(model_config, *size))
            yield Frame(i, f.timestamp, f.image, f.camera, depth=depth, pose=T)

    return write_sequence(frames(), out_dir, overwrite=True)


def _held_back_estimates(model, stream_dir: Path, frames: tuple[int, int], strides):
    """(pair, the model's estimate of it) for each held-back pair of the stream, in order."""
    from banet_vo.data import PairDataset, open_sequence

    dataset = PairDataset(
        open_sequence(stream_dir), strides=tuple(strides), model_config=model.config, shuffle=False,
        frames=frames,
    )  # fmt: skip
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            yield item, model(item["image_ref"][None], item["image_tgt"][None], item["intrinsics"][None])


def held_back_error(model, stream_dir: Path, frames: tuple[int, int], strides) -> tuple[float, int]:
    """Mean photometric error of each held-back pair warped by the model's own final depth and pose (no
    labels; train.photometric.warp_score: every pixel, one warped out of view or behind the camera scoring
    the unwarped error), and the number of pairs."""
    from banet_vo.train.photometric import warp_score

    errors = []
    for item, out in _held_back_estimates(model, stream_dir, frames, strides):
        ref, tgt = item["image_ref"][None], item["image_tgt"][None]
        depth, pose = out.depths_per_level[-1], out.poses_per_level[-1]
        errors.append(float(warp_score(depth, ref, tgt, pose, out.depth_intrinsics)[0]))
    if not errors:
        raise ValueError(f"no held-back pairs in frames {frames} of the stream")
    return float(np.mean(errors)), len(errors)


def held_back_agreement(
    model, stream_dir: Path, frames: tuple[int, int], strides
) -> tuple[float, float, int]:
    """With landmark targets: on the held-back pairs, the mean abs rel of the model's final depth against
    the stream's landmark depths (at the depth grid) and its mean rotation error [deg] against the stream's
    relative poses (the odometry's), and the number of pairs. Still no labels: both are the pipeline's own."""
    from banet_vo.evaluation.depth import depth_metrics
    from banet_vo.evaluation.pose import rotation_error_deg
    from banet_vo.train.losses import downsample_depth_nearest

    abs_rel, rotation = [], []
    for item, out in _held_back_estimates(model, stream_dir, frames, strides):
        depth = out.depths_per_level[-1][0, 0]
        target = downsample_depth_nearest(item["depth_ref"][None], tuple(depth.shape))[0, 0]
        if bool((target > 0).any()):
            abs_rel.append(depth_metrics(depth, target).abs_rel)
        R = out.poses_per_level[-1].matrix()[0, :3, :3].double().numpy()
        rotation.append(float(rotation_error_deg(R, item["pose_tgt_ref"][:3, :3].double().numpy())))
    if not rotation or not abs_rel:
        raise ValueError(f"no held-back pairs with landmark targets in frames {frames} of the stream")
    return float(np.mean(abs_rel)), float(np.mean(rotation)), len(rotation)


def _model_config(model_path: Path):
    """The BANetConfig stored in a checkpoint (its weights are not loaded)."""
    from banet_vo.model.checkpoint import load_checkpoint
    from banet_vo.model.config import BANetConfig

    _, model_dict, _ = load_checkpoint(model_path, expected_kind="banet")
    return BANetConfig.from_dict(model_dict)


def _train_config(model_path: Path, stream_spec: str, config: StreamAdaptConfig):
    from banet_vo.model.checkpoint import RUNTIME_FIELDS
    from banet_vo.train.config import TrainConfig

    overrides = _model_config(model_path).to_dict()
    preset = overrides.pop("name")  # the preset's fields, then every stored field over them
    for name in RUNTIME_FIELDS:  # a GPU run's stored bf16: this run is fp32 on a CPU (amp off below)
        overrides.pop(name)
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
    (the adapted weights, or the original ones when the guard rolled back) and out_dir/report.json; a
    training run stopped by a signal writes the report alone (module docstring)."""
    from banet_vo.data import open_sequence
    from banet_vo.model.checkpoint import load_banet, load_checkpoint, save_checkpoint
    from banet_vo.train.loop import train

    if not Path(sequence_path).exists():
        raise ValueError(f"sequence {sequence_path} does not exist")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder")
    sequence = open_sequence(sequence_path)
    first, last = frames
    if not 0 <= first < last < len(sequence):
        raise ValueError(f"frames {first}-{last} outside the sequence's 0-{len(sequence) - 1}")
    out_dir.mkdir(parents=True, exist_ok=True)
    stream_dir = out_dir / "stream"
    source = {
        "sequence": str(Path(sequence_path).resolve()),
        "frames": [int(first), int(last)],
        "model": str(Path(model_path).resolve()),
        "depth_targets": config.depth_targets,
    }
    reuse = resume and (stream_dir / "poses.txt").is_file()
    if reuse:
        _check_stream_source(out_dir, source)
    else:
        (out_dir / STREAM_SOURCE).unlink(missing_ok=True)  # the record goes with the stream it describes
        landmarks = [] if config.depth_targets == "landmarks" else None
        positions, poses = odometry_poses(sequence, first, last, model_path, config.threads, landmarks)
        if len(positions) < 10:
            raise ValueError(
                f"the odometry gave metric poses to only {len(positions)} frames: nothing to adapt on"
            )
        model_config = _model_config(model_path) if landmarks is not None else None
        write_stream(sequence, positions, poses, stream_dir, landmarks, model_config)
        (out_dir / "stream_positions.txt").write_text("\n".join(str(p) for p in positions.tolist()) + "\n")
        (out_dir / STREAM_SOURCE).write_text(json.dumps(source, indent=1) + "\n")
    n = len(open_sequence(stream_dir))
    split = n - max(round(config.held_back * n), max(config.strides) + 1)
    train_frames, guard_frames = (0, split - 1), (split, n - 1)
    spec = f"{stream_dir}@{train_frames[0]}-{train_frames[1]}"
    torch.set_num_threads(config.threads)
    landmarks_guard = config.depth_targets == "landmarks"
    guard = held_back_agreement if landmarks_guard else held_back_error
    before = guard(load_banet(model_path), stream_dir, guard_frames, config.strides)
    pairs = before[-1]
    logger.info("held-back score before: %s (%d pairs)", before[:-1], pairs)
    # An interrupted run continues from its newest checkpoint; one that never wrote one starts again.
    resume_training = resume and any((out_dir / "run" / "checkpoints").glob("step-*"))
    result = train(
        _train_config(model_path, spec, config),
        out_dir / "run",
        resume=resume_training,
        overwrite=not resume_training,
    )
    final = out_dir / "model.safetensors"
    after: list | None = None
    if result.stopped_by in SIGNAL_EXIT:
        decision = f"none: training stopped by {result.stopped_by} (--resume continues)"
        # The folder's model must be the decision of the run its report describes, never an earlier one's.
        final.unlink(missing_ok=True)
    else:
        adapted = out_dir / "run" / "last.safetensors"
        after = list(guard(load_banet(adapted), stream_dir, guard_frames, config.strides)[:-1])
        kept = all(a <= b * (1.0 + config.tolerance) for a, b in zip(after, before[:-1], strict=True))
        decision = "adapted" if kept else "rolled back (held-back score worse)"
        state_dict, model_dict, meta = load_checkpoint(adapted if kept else model_path, expected_kind="banet")
        save_checkpoint(final, state_dict, "banet", model_dict, meta)
    report = {
        "sequence": str(sequence_path),
        "frames": list(frames),
        "model": str(model_path),
        "stream_frames": n,
        "trained_on_stream_positions": list(train_frames),
        "held_back_stream_positions": list(guard_frames),
        "held_back_pairs": pairs,
        "held_back_score": (
            "depth abs rel vs landmarks, rotation error deg vs odometry"
            if landmarks_guard
            else "photometric error"
        ),
        "held_back_before": list(before[:-1]),
        "held_back_after": after,
        "decision": decision,
        "steps": result.step,
        "train_wall_s": result.wall_s,
        "stopped_by": result.stopped_by,
        "config": asdict(config),
    }
    write_json(out_dir / "report.json", report)
    return report


def _check_stream_source(out_dir: Path, source: dict) -> None:
    """ValueError unless the stream in ``out_dir`` was made from ``source`` (sequence, frames, model,
    depth targets), naming each that differs."""
    try:
        stored = json.loads((out_dir / STREAM_SOURCE).read_text())
    except (OSError, ValueError):
        stored = None
    if not isinstance(stored, dict):
        raise ValueError(
            f"--resume: {out_dir / 'stream'} has no readable {STREAM_SOURCE} saying what it was made from; "
            "run again without --resume"
        )
    differ = [
        f"{k} (the stream's {stored.get(k)!r}, asked {v!r})" for k, v in source.items() if stored.get(k) != v
    ]
    if differ:
        raise ValueError(
            f"--resume: the stream in {out_dir} was made from other inputs: {'; '.join(differ)}; resume "
            "with those, or run without --resume to start again"
        )


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
    parser.add_argument(
        "--depth-targets",
        choices=DEPTH_TARGETS,
        default=defaults.depth_targets,
        help="photometric: the photometric error under the odometry's poses; landmarks: the depth of the "
        f"window-BA landmarks each frame tracked (docs/training.md; default {defaults.depth_targets})",
    )
    meanings = {
        "steps": "optimiser steps, batch 4",
        "lr": "Adam learning rate",
        "held_back": "share of the frames, the stream's tail, never trained on: the guard's pairs",
        "synthetic_weight": "share of batches from the synthetic training set, against forgetting (0: none)",
        "tolerance": "share by which the held-back error may rise before the model is rolled back",
        "max_wall_s": "stop training after this many seconds, with a checkpoint (0: no limit)",
        "threads": "torch CPU threads",
    }
    for name, meaning in meanings.items():
        value = getattr(defaults, name)
        flag = f"--{name.replace('_', '-')}"
        parser.add_argument(flag, type=type(value), default=value, help=f"{meaning} (default {value})")
    parser.add_argument(
        "--synthetic-cache",
        default=defaults.synthetic_cache,
        help=f"the rendered synthetic training set (default {defaults.synthetic_cache})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        config = StreamAdaptConfig(
            steps=args.steps, lr=args.lr, held_back=args.held_back, synthetic_weight=args.synthetic_weight,
            synthetic_cache=args.synthetic_cache, tolerance=args.tolerance, max_wall_s=args.max_wall_s,
            threads=args.threads, depth_targets=args.depth_targets,
        )  # fmt: skip
        report = adapt_stream(args.sequence, args.frames, args.model, args.out, config, args.resume)
    except ValueError as err:
        print(f"banet-vo-adapt-stream: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return SIGNAL_EXIT.get(report["stopped_by"], 0)


if __name__ == "__main__":
    sys.exit(main())
