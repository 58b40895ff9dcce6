"""The BA-Net training loop: single process (CPU or one GPU) or `torchrun` DDP (gloo on CPU, NCCL on CUDA).

Each step draws a batch of in-memory pairs, runs BA-Net, applies the losses of ``banet_vo.train.losses`` on
every pyramid level's pose and depth, and takes an Adam step; the learning rate is halved when the mean loss
over ``plateau_window`` steps stops improving. Rank 0 writes a CSV log, a progress line with ETA on stderr,
and checkpoints as atomic units (banet_vo.train.checkpoints): ``checkpoints/step-N/`` holds
``model.safetensors`` (the shared model format: config, weights, metadata) and ``state.pt`` (optimiser,
scheduler, step, RNG) under one manifest, so weights and optimiser state can never disagree, and a run
resumes exactly where its newest consistent unit stopped (older units it skips are named).
``last.safetensors`` is a link to the newest unit's weights, for tools that want "the model of this run".

Stopping: a file named ``STOP`` in the run directory, ``max_wall_s``, SIGINT (Ctrl-C) or SIGTERM end the
run at the next step boundary with a final checkpoint (a second signal exits at once). The STOP file
is removed once that checkpoint is written, so that ``resume`` continues the run. The final checkpoint is
skipped when no step ran since the last one (a resumed run that had already finished): rewriting a unit
for its own step is the one write that can lose the only copy. A new run refuses a directory that already
holds one unless ``overwrite`` is set; ``overwrite`` removes the old run (and a STOP file) only once the
new run's data, model, init weights and optimiser groups are built, so that a typo leaves the old run in
place. Stale temporary files of killed writers are removed at start, after a unit that a killed rewrite
set aside is moved back.

Resume compares the config with the one the run was started with (stored in each unit): data, seed,
batch size, lr multipliers, init weights / skips and the model (as BANetConfig, so that a unit written
before a config key existed resumes) must not change, nor the number of processes (the batch is per
process); a new ``lr``, ``plateau_patience``,
``plateau_factor`` or ``min_lr`` is applied to the loaded optimiser and scheduler (said on stderr), and
the other keys (steps, losses, limits, logging) are read afresh each step anyway. The saved config is
then the one in effect.

Batches: without ``source_weights``, step k takes the positions k·B·W + r·B ... of a sequence of seeded
permutations, one per epoch (``epoch_batch``); a batch crossing an epoch's end continues in the next
epoch's permutation. Either way a batch is a function of the step alone, so a resumed run is exact.

DDP: every rank agrees, before backward, on whether the step's loss is finite (a rank that skipped the
backward alone would leave the others waiting in DDP's gradient all-reduce), and the plateau scheduler is
fed the loss averaged over the ranks, so that every rank halves its learning rate at the same step.

The saved model config is the configured one: the bf16 autocast a CUDA run adds (``amp``) is how that run
computed, not part of the model, so its checkpoints resume and evaluate on a CPU as well.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pypose as pp
import torch
import torch.distributed as dist
from torch.utils.data import ConcatDataset, Dataset

from banet_vo.data import CachedSequence, PairDataset, open_sequence
from banet_vo.model.banet import BANet
from banet_vo.model.checkpoint import (
    RUNTIME_FIELDS,
    load_checkpoint,
    non_finite_tensors,
    remove_stale_temps,
    save_checkpoint,
)
from banet_vo.model.config import BANetConfig
from banet_vo.model.damping import split_shared_damping
from banet_vo.provenance import code_version, cpu_model
from banet_vo.train.augment import AugmentedPairs
from banet_vo.train.checkpoints import find_latest_unit, recover_set_aside, write_unit
from banet_vo.train.config import TrainConfig, parse_sequence_spec
from banet_vo.train.data import CachedPairs, load_or_render, make_specs
from banet_vo.train.losses import banet_loss
from banet_vo.train.photometric import unlabelled_depth_loss
from banet_vo.train.signals import StopSignals

logger = logging.getLogger(__name__)

__all__ = [
    "RunDirectoryError",
    "TrainResult",
    "TrainingDivergedError",
    "build_dataset",
    "code_version",
    "epoch_batch",
    "hardware_description",
    "source_batch",
    "stack_batch",
    "train",
]

CSV_FIELDS = ("step", "wall_s", "lr", "loss", "rotation", "translation", "depth", "skipped")
UNITS_DIR = "checkpoints"  # atomic checkpoint units, newest KEEP_UNITS kept
KEEP_UNITS = 2
MODEL_FILE = "model.safetensors"
STATE_FILE = "state.pt"
LAST_LINK = "last.safetensors"
# What a run directory holds (removed by overwrite): units, the link, the log, the pre-unit state file.
RUN_FILES = (UNITS_DIR, LAST_LINK, "last.state.pt", "log.csv")
STOP_FILE = "STOP"  # touched by the user: the running run stops at its next step (module docstring)


class RunDirectoryError(ValueError):
    """The run directory cannot be used as asked (holds another run, nothing to resume, a resume that
    would change what the run is)."""


class TrainingDivergedError(RuntimeError):
    """Training produced nothing usable: 20 non-finite steps in a row, or non-finite weights at a save
    (no checkpoint is written then: the loader refuses such weights, so the unit could never resume)."""


@dataclass
class TrainResult:
    step: int
    wall_s: float  # training wall time including earlier (resumed) segments
    last_loss: float  # mean loss of the last logging window
    checkpoint: Path | None
    skipped_steps: int  # steps whose loss or gradient was not finite (no update taken)
    stopped_by: str = ""  # "" when all steps ran; else "STOP file", "max_wall_s", "SIGINT" or "SIGTERM"


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    return f"{cpu_model()}, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores visible"


def build_dataset(config: TrainConfig, progress: bool = True) -> tuple[Dataset, dict]:
    """Training pairs (rendered synthetic + real sequences) at the model's input size, and a description
    of them for the checkpoint metadata."""
    model_cfg = config.model_config()
    size = (model_cfg.image_width, model_cfg.image_height)
    data = config.data
    parts: list[Dataset] = []
    description: dict = {"size": list(size)}
    if data.scenes and data.sequences_per_scene > 0:
        specs = make_specs(
            data.scenes,
            data.sequences_per_scene,
            data.seed_base,
            data.frames_per_sequence,
            size,
            data.fov_range or None,
        )
        cache = load_or_render(data.cache, specs, progress)
        for seq in cache["sequences"]:
            if tuple(seq["images"].shape[1:3]) != (size[1], size[0]):
                raise ValueError(f"data.cache {data.cache!r} holds images of another size than {size}")
        synthetic = CachedPairs(cache, {k: list(v) for k, v in data.strides.items()})
        parts.append(synthetic)
        description["synthetic"] = {
            "scenes": list(data.scenes),
            "seeds": [data.seed_base, data.seed_base + data.sequences_per_scene - 1],
            "frames_per_sequence": data.frames_per_sequence,
            "strides": {k: list(v) for k, v in data.strides.items()},
            "pairs": len(synthetic),
        }
        if data.fov_range:
            description["synthetic"]["fov_range_deg"] = list(data.fov_range)
    if data.real_sequences:
        real = []
        budget = data.real_cache_mb * 2**20 // len(data.real_sequences)
        for spec in data.real_sequences:
            path, frames = parse_sequence_spec(spec)
            if not Path(path).exists():
                raise ValueError(f"data.real_sequences: {path!r} does not exist")
            sequence = CachedSequence(open_sequence(path), budget)
            ds = PairDataset(
                sequence, strides=data.real_strides, model_config=model_cfg, shuffle=False, frames=frames,
                zoom_max=data.real_zoom_max,
            )  # fmt: skip
            parts.append(ds)
            real.append({"path": str(path), "frames": list(frames) if frames else "all", "pairs": len(ds)})
            real[-1]["input_size"] = list(ds.size)
        description["real"] = real
    if not parts:
        raise ValueError("train config data gives no training pairs (no synthetic scenes, no real sequences)")
    if data.zoom_max > 1.0 or data.brightness > 0 or data.gray > 0:
        parts = [AugmentedPairs(p, data.zoom_max, data.brightness, gray=data.gray) for p in parts]
        description["augment"] = {"zoom_max": data.zoom_max, "brightness": data.brightness}
        if data.gray > 0:
            description["augment"]["gray"] = data.gray
    if data.real_zoom_max > 1.0:
        description["real_zoom_max"] = data.real_zoom_max
    if data.source_weights:
        if len(data.source_weights) != len(parts):
            raise ValueError(
                f"data.source_weights has {len(data.source_weights)} entries for {len(parts)} sources "
                "(synthetic first when present, then real_sequences)"
            )
        description["source_weights"] = list(data.source_weights)
    return (parts[0] if len(parts) == 1 else ConcatDataset(parts)), description


def source_batch(
    dataset: Dataset, weights: Sequence[float], seed: int, step: int, per_rank: int, rank: int, world: int
) -> list[int]:
    """This rank's indices of step ``step``: one source drawn with probability ∝ ``weights`` (the parts of
    a ConcatDataset, or the single dataset), then pairs drawn uniformly from it. Seeded by (seed, step),
    so a resumed run draws exactly the batches it would have drawn, on every rank alike."""
    parts = dataset.datasets if isinstance(dataset, ConcatDataset) else [dataset]
    offsets = [0, *dataset.cumulative_sizes[:-1]] if isinstance(dataset, ConcatDataset) else [0]
    p = np.asarray(weights, dtype=np.float64)
    rng = np.random.default_rng([seed, step])
    source = int(rng.choice(len(parts), p=p / p.sum()))
    picks = rng.integers(0, len(parts[source]), per_rank * world)
    return [offsets[source] + int(k) for k in picks[rank * per_rank : (rank + 1) * per_rank]]


def epoch_batch(n: int, seed: int, step: int, per_rank: int, rank: int, world: int) -> list[int]:
    """This rank's indices of step ``step`` without source weights: positions (step·world + rank)·per_rank
    onwards of the concatenated per-epoch permutations of the ``n`` pairs (epoch e: seeded seed + e; the
    same on every rank). A batch that crosses an epoch's end takes its rest from the next epoch's
    permutation (wrapping into the same one repeated pairs and skipped others)."""
    start = (step * world + rank) * per_rank
    orders: dict[int, np.ndarray] = {}
    indices = []
    for position in range(start, start + per_rank):
        epoch, offset = divmod(position, n)
        if epoch not in orders:
            orders[epoch] = np.random.default_rng(seed + epoch).permutation(n)
        indices.append(int(orders[epoch][offset]))
    return indices


_BATCH_KEYS = ("image_ref", "image_tgt", "intrinsics", "pose_tgt_ref", "depth_ref")


def stack_batch(dataset: Dataset, indices: Sequence[int], device: torch.device) -> dict[str, torch.Tensor]:
    items = [dataset[int(k)] for k in indices]
    return {key: torch.stack([it[key] for it in items]).to(device) for key in _BATCH_KEYS}


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun with > 1 process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device(rank: int) -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class _Progress:
    """One line per log interval: a bar, step/total, loss, seconds per step and ETA (stderr)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled

    def update(self, step: int, loss: float, s_per_step: float, lr: float) -> None:
        if not self.enabled:
            return
        frac = step / self.total
        bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
        eta = s_per_step * (self.total - step)
        print(
            f"[{bar}] {step}/{self.total} loss {loss:.4f} lr {lr:.2e} {s_per_step:.2f} s/step "
            f"ETA {int(eta // 60)}m{int(eta % 60):02d}s",
            file=sys.stderr,
            flush=True,
        )


def _save(
    out_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
    config: TrainConfig,
    meta: dict,
    state: dict,
) -> Path:
    """Write weights + training state as one unit, then point last.safetensors at its weights. The weights
    carry the configured model config (``config.model_config()``), not the model's runtime precision.
    Non-finite weights are a TrainingDivergedError and nothing is written (the newest unit stays)."""

    weights = model.state_dict()
    bad = non_finite_tensors(weights)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise TrainingDivergedError(
            f"step {state['step']}: the weights are not finite (NaN or inf in {shown}); no checkpoint "
            f"written, the newest one in {out_dir / UNITS_DIR} is left as it was"
        )
    training_state = {
        "step": state["step"],
        "wall_s": state["wall_s"],
        "skipped": state["skipped"],
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "window": state["window"],
        # The metrics of the steps since the last log row: a resumed run logs and saves what the
        # uninterrupted one would (and a unit rewritten for its step keeps its metrics).
        "log_terms": state.get("log_terms", []),
        "rng_torch": torch.get_rng_state(),
        "train_config": config.to_dict(),
    }
    unit = write_unit(
        out_dir / UNITS_DIR,
        state["step"],
        {
            MODEL_FILE: lambda p: save_checkpoint(p, weights, "banet", config.model_config().to_dict(), meta),
            STATE_FILE: lambda p: torch.save(training_state, p),
        },
        info={"steps": state["step"], "kind": "banet-training"},
        keep=KEEP_UNITS,
    )
    return _link_last(unit.file(MODEL_FILE), out_dir / LAST_LINK)


def _link_last(source: Path, link: Path) -> Path:
    """Atomically make ``link`` a hard link to ``source`` (a copy where links are not supported)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError as exc:  # e.g. a file system without hard links: same content, more disk
        logger.debug("hard link %s -> %s failed (%s); copying", source, tmp, exc)
        shutil.copyfile(source, tmp)
    os.replace(tmp, link)
    return link


def _param_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict]:
    """One Adam group per lr multiplier (by name prefix) plus one for the rest; unknown prefixes fail."""
    groups: dict[str, list] = {prefix: [] for prefix in config.lr_multipliers}
    rest = []
    for name, param in model.named_parameters():
        prefix = next((p for p in config.lr_multipliers if name.startswith(p)), None)
        (groups[prefix] if prefix is not None else rest).append(param)
    empty = [p for p, params in groups.items() if not params]
    if empty:
        raise ValueError(f"train config lr_multipliers: no parameter names start with {empty}")
    out = [{"params": rest, "lr": config.lr}]
    out += [
        {"params": params, "lr": config.lr * float(config.lr_multipliers[p])} for p, params in groups.items()
    ]
    return out


# Config keys that only shape the depth head's output; they may differ when that head is not loaded.
_DEPTH_HEAD_KEYS = ("initial_depth", "depth_activation")


def _load_weights(model: torch.nn.Module, path: str, skip: Sequence[str] = ()) -> None:
    """Load ``path`` into ``model``, except parameters whose names start with a prefix in ``skip``."""

    state_dict, model_config, _ = load_checkpoint(path, expected_kind="banet")
    unused = [p for p in skip if not any(k.startswith(p) for k in state_dict)]
    if unused:
        raise ValueError(f"train config init_skip: no weights in {path} start with {unused}")
    mine = model.config.to_dict()
    # Keys that change the computation but not which weights exist or what they mean.
    # input_geometry and canonical_focal change what the inputs and D0 mean, not which weights exist: a
    # stretch model warm-starts a keep_aspect / focal-aware one (the fine-tune then adapts it).
    free = {*RUNTIME_FIELDS, "depth0_stop_gradient", "depth_update", "input_geometry", "canonical_focal"}
    if any("decoder.depth_head".startswith(p) for p in skip):
        free.update(_DEPTH_HEAD_KEYS)
    # Keys an old checkpoint lacks take the defaults it was written with (softplus head, additive BA).
    model_config = BANetConfig.from_dict(model_config).to_dict()
    if mine["separate_depth_damping"] and not model_config["separate_depth_damping"]:
        # A shared-λ checkpoint starts a pose/depth-damping model with both λs equal to its one λ.
        state_dict = split_shared_damping(state_dict)
        model_config["separate_depth_damping"] = True
    differ = sorted(k for k in mine if k not in free and model_config.get(k) != mine[k])
    if differ:
        raise ValueError(f"init_weights {path}: model config differs in {differ}")
    skipped = sorted(k for k in state_dict if any(k.startswith(p) for p in skip))
    kept = {k: v for k, v in state_dict.items() if k not in skipped}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    if sorted(missing) != skipped or unexpected:
        raise ValueError(
            f"init_weights {path} does not fit the model: missing {sorted(set(missing) - set(skipped))}, "
            f"unexpected {unexpected}"
        )
    if skipped:
        logger.info("init_weights: kept %d skipped tensors at their fresh initialisation", len(skipped))


# On resume (module docstring): keys whose change would make another run, refused; keys the loaded optimiser
# and scheduler hold, applied to them. model_preset / model_overrides are compared as the BANetConfig they
# give (the stored one is the checkpoint's), not as text.
_FIXED_ON_RESUME = ("data", "seed", "batch_size", "lr_multipliers", "init_weights", "init_skip")
# Data settings that say where and how much is kept, not what the run trains on: free on resume (a smaller
# machine, a cache moved to scratch).
_DATA_FREE_ON_RESUME = ("cache", "real_cache_mb")
_APPLIED_ON_RESUME = ("lr", "plateau_patience", "plateau_factor", "min_lr")
_MODEL_KEYS = ("model_preset", "model_overrides")


def _model_differences(stored: BANetConfig, mine: BANetConfig) -> list[str]:
    """'key (stored X, now Y)' for each model config key that differs, runtime fields aside (a CUDA run's
    units, bf16 autocast stored by older ones, resume on a CPU)."""
    old, new = stored.to_dict(), mine.to_dict()
    return [
        f"{k} (stored {old[k]!r}, now {new[k]!r})"
        for k in sorted(new)
        if k not in RUNTIME_FIELDS and old.get(k) != new[k]
    ]


def _config_changes(stored: dict | None, config: TrainConfig) -> dict[str, tuple]:
    """{key: (stored value, value now)} for each top-level train-config key that differs from the stored
    one (model keys aside); a key an older unit lacks counts as its default, the value that run used."""
    if not isinstance(stored, dict):
        return {}
    defaults, now = TrainConfig().to_dict(), config.to_dict()
    changes = {}
    for key, value in now.items():
        if key in _MODEL_KEYS:
            continue
        old = stored.get(key, defaults[key])
        if isinstance(value, dict) and isinstance(old, dict) and key == "data":
            old = {k: v for k, v in {**defaults[key], **old}.items() if k in value}
        if _same_run_value(key, old, value):
            continue
        changes[key] = (old, value)
    return changes


def _real_path(spec: str) -> str:
    """A sequence spec or weights path with its path resolved (a relative and an absolute spelling, or
    another working directory, name the same files)."""
    path, frames = parse_sequence_spec(spec)
    resolved = str(Path(path).resolve()) if path else path
    return resolved if frames is None else f"{resolved}@{frames[0]}-{frames[1]}"


def _same_run_value(key: str, old, value) -> bool:
    """Whether a stored top-level config value and the one now make the same run."""
    if key == "init_weights" and isinstance(old, str) and isinstance(value, str):
        return (old and _real_path(old)) == (value and _real_path(value))
    if key == "data" and isinstance(old, dict) and isinstance(value, dict):

        def run_part(data: dict) -> dict:
            part = {k: v for k, v in data.items() if k not in _DATA_FREE_ON_RESUME}
            part["real_sequences"] = [_real_path(str(s)) for s in part.get("real_sequences", ())]
            return part

        return run_part(old) == run_part(value)
    return old == value


def _apply_overrides(model, optimizer, scheduler, config: TrainConfig, changes: dict[str, tuple]) -> None:
    """Set the loaded optimiser's and scheduler's values that the config now changes (_APPLIED_ON_RESUME),
    saying so: a resumed optimiser and scheduler otherwise keep their stored values."""
    if "lr" in changes:  # every group: lr x its multiplier (the multipliers cannot change on resume)
        for group, fresh in zip(optimizer.param_groups, _param_groups(model, config), strict=True):
            group["lr"] = fresh["lr"]
    if "plateau_patience" in changes:
        scheduler.patience = config.plateau_patience
    if "plateau_factor" in changes:
        scheduler.factor = config.plateau_factor
    if "min_lr" in changes:
        scheduler.default_min_lr = config.min_lr
        scheduler.min_lrs = [config.min_lr] * len(optimizer.param_groups)
    for key in _APPLIED_ON_RESUME:
        if key in changes:
            old, new = changes[key]
            logger.warning(
                "resume: %s %r -> %r (the config's), applied to the loaded optimiser and scheduler",
                key,
                old,
                new,
            )


def _load_resume(
    out_dir: Path, model: torch.nn.Module, optimizer, scheduler, config: TrainConfig, world: int = 1
) -> tuple[dict, Path]:
    """Load the newest consistent checkpoint unit into model, optimiser and scheduler; returns its state and
    its weights file. Newer units that fail (incomplete, damaged, unreadable) are skipped and named; a
    config that changes what the run is (model, data, seed, ...) or another process count than the unit
    was written by (`world`: the batch is batch_size per process, and each step's pairs are dealt out by
    rank) is a RunDirectoryError naming them."""

    loaded: dict = {}

    def accept(unit) -> None:
        state_dict, model_config, meta = load_checkpoint(unit.file(MODEL_FILE), expected_kind="banet")
        try:  # normalised: a key an older unit lacks takes the value it was written with
            stored_model = BANetConfig.from_dict(model_config)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{unit.file(MODEL_FILE)}: invalid model config: {exc}") from exc
        try:
            state = torch.load(unit.file(STATE_FILE), weights_only=True)
        except Exception as exc:  # torch raises several types for a corrupt file; name the file either way
            raise ValueError(f"{unit.file(STATE_FILE)} is not a readable training state: {exc}") from exc
        if int(meta.get("steps", -1)) != int(state["step"]) or int(state["step"]) != unit.step:
            raise ValueError(f"{unit.path}: weights at step {meta.get('steps')}, state at {state['step']}")
        loaded.update(state_dict=state_dict, model=stored_model, state=state, meta=meta)

    unit, skipped = find_latest_unit(out_dir / UNITS_DIR, accept)
    for reason in skipped:
        logger.warning("resume: skipped %s", reason)
    if unit is None:
        why = "; ".join(skipped) if skipped else f"no {UNITS_DIR}/step-* unit"
        hint = ""
        if (out_dir / "last.state.pt").is_file():
            hint = (
                " (last.state.pt is from a version that wrote weights and state separately; start again "
                f"with --init-weights {out_dir / LAST_LINK} --overwrite)"
            )
        raise RunDirectoryError(f"resume: nothing consistent to resume from in {out_dir}: {why}{hint}")
    differ = _model_differences(loaded["model"], model.config)
    if differ:
        raise RunDirectoryError(
            f"resume: {unit.path}: its model config differs from the training config's model in "
            f"{', '.join(differ)}; a new run (--overwrite or another --out) can start from its weights "
            "with --init-weights"
        )
    processes = loaded["meta"].get("processes", 1)  # a unit without the key: one process, as all were then
    if int(processes) != world:
        raise RunDirectoryError(
            f"resume: {unit.path} was written by a run of {processes} process(es), this one has {world}: "
            "the batch (batch_size per process) and the pairs each step deals out would change. Resume with "
            f"{processes} process(es) in all (torchrun's --nproc_per_node times its nodes), or start a new "
            "run from its weights with --init-weights"
        )
    state = loaded["state"]
    if "train_config" not in state:
        logger.warning("resume: %s stores no train config; the config is taken as it is", unit.path)
    changes = _config_changes(state.get("train_config"), config)
    fixed = [
        f"{k} (stored {changes[k][0]!r}, now {changes[k][1]!r})" for k in _FIXED_ON_RESUME if k in changes
    ]
    if fixed:
        raise RunDirectoryError(
            f"resume: the config changes what the run in {out_dir} is: {'; '.join(fixed)}. Resume with the "
            "run's values, or start a new run (--overwrite or another --out)"
        )
    missing, unexpected = model.load_state_dict(loaded["state_dict"], strict=False)
    if missing or unexpected:
        raise ValueError(
            f"resume: {unit.path} does not fit the model: missing {missing}, unexpected {unexpected}"
        )
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_torch"])
    _apply_overrides(model, optimizer, scheduler, config, changes)
    for key, (old, new) in changes.items():
        if key not in _APPLIED_ON_RESUME:  # read from the config at every step: in effect as it is
            logger.info("resume: %s %r -> %r (the config's)", key, old, new)
    logger.info(
        "resume: step %d from %s%s",
        unit.step,
        unit.path,
        f" ({len(skipped)} newer skipped)" if skipped else "",
    )
    return state, unit.file(MODEL_FILE)


def _check_run_dir(out_dir: Path, resume: bool, overwrite: bool) -> list[str]:
    """Refuse a new run over an existing one unless ``overwrite``; move back units a killed rewrite set
    aside and clear stale temp files. Returns what an overwrite will remove (``_clear_run_dir``), which
    happens only once the new run's inputs are checked."""

    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirectoryError(f"the run directory {out_dir} is a file, not a folder")
    for path in recover_set_aside(out_dir / UNITS_DIR):
        logger.warning("recovered %s, set aside by a checkpoint rewrite that did not finish", path)
    for folder in (out_dir, out_dir / UNITS_DIR):
        for path in remove_stale_temps(folder):
            logger.warning("removed %s, left by a checkpoint write that did not finish", path)
    present = [name for name in RUN_FILES if (out_dir / name).exists()]
    if resume or not present:
        return []
    if not overwrite:
        raise RunDirectoryError(
            f"{out_dir} already holds a training run ({', '.join(present)}): --resume continues it, "
            "--overwrite replaces it"
        )
    return present


def _clear_run_dir(out_dir: Path, present: list[str], resume: bool, overwrite: bool) -> None:
    """Create ``out_dir``; for an overwrite remove the old run's ``present`` files and a STOP file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if overwrite and not resume and (out_dir / STOP_FILE).exists():
        logger.warning("overwrite: removing %s (it asked the replaced run to stop)", out_dir / STOP_FILE)
        (out_dir / STOP_FILE).unlink()
    if present:
        logger.warning("overwrite: removing %s from %s", ", ".join(present), out_dir)
    for name in present:
        path = out_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _truncate_log(path: Path, step: int) -> None:
    """Drop the log rows after ``step``: steps a killed run logged past its last checkpoint are run again
    after resume, and the log must not hold them twice."""
    with open(path, newline="") as f:
        # A row with missing fields is the partial last line of a killed run: dropped as well.
        rows = [r for r in csv.DictReader(f) if None not in r.values() and int(r["step"]) <= step]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def train(
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    dataset: Dataset | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train BA-Net per ``config`` into ``out_dir`` (created); ``resume`` continues from its newest consistent
    checkpoint (step count, optimiser and scheduler state; module docstring for config changes);
    ``overwrite`` lets a new run replace the one already in ``out_dir`` (without it, that is an error), once
    the new run's inputs are checked. ``dataset`` replaces the configured data (tests).
    """

    rank, world = _distributed()
    torch.set_num_threads(config.num_threads)
    device = _device(rank)
    out_dir = Path(out_dir)
    replaced: list[str] = []
    if rank == 0:
        replaced = _check_run_dir(out_dir, resume, overwrite)
    torch.manual_seed(config.seed)  # same initial weights on every rank

    description: dict = {"custom dataset": type(dataset).__name__} if dataset is not None else {}
    if dataset is None:
        dataset, description = build_dataset(config, progress=progress and rank == 0)
    model_config = config.model_config()
    use_amp = config.amp and device.type == "cuda"
    if use_amp:  # BA-Net's own bf16 autocast covers backbone, FPN and decoder; its BA stays fp32 (not saved)
        model_config = model_config.replace(backbone_dtype="bf16")
    model = BANet(model_config).to(device)
    if config.init_weights and not resume:
        _load_weights(model, config.init_weights, config.init_skip)
    optimizer = torch.optim.Adam(_param_groups(model, config), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=config.plateau_factor,
        patience=config.plateau_patience,
        min_lr=config.min_lr,
    )
    state = {"step": 0, "wall_s": 0.0, "skipped": 0, "window": []}
    saved_step, saved_weights = -1, None  # the newest unit's step and weights (none yet)
    if resume:
        state, saved_weights = _load_resume(out_dir, model, optimizer, scheduler, config, world)
        saved_step = int(state["step"])
        logger.info("resumed from step %d", state["step"])
    if rank == 0:  # everything the run needs is checked: only now may an overwrite remove the old run
        _clear_run_dir(out_dir, replaced, resume, overwrite)
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    log_path = out_dir / "log.csv"
    log_file = None
    writer = None
    if rank == 0:
        new_log = not (resume and log_path.is_file())
        if not new_log:
            _truncate_log(log_path, int(state["step"]))
        log_file = open(log_path, "w" if new_log else "a", newline="")
        writer = csv.DictWriter(log_file, fieldnames=CSV_FIELDS)
        if new_log:
            writer.writeheader()

    bar = _Progress(config.steps, progress and rank == 0)
    step, wall_before, skipped = int(state["step"]), float(state["wall_s"]), int(state["skipped"])
    window: list[float] = list(state["window"])
    log_terms: list[dict[str, float]] = list(state.get("log_terms", []))
    consecutive_bad = 0
    seg_start = time.monotonic()
    last_ckpt = seg_start
    step_at_seg_start = step
    checkpoint_path: Path | None = None
    n = len(dataset)
    per_rank = config.batch_size

    def meta() -> dict:
        last = log_terms[-1] if log_terms else {}
        return {
            "data": description,
            "steps": step,
            "wall_time_s": round(wall_before + time.monotonic() - seg_start, 1),
            "hardware": hardware_description(device),
            "processes": world,
            "batch_size_per_process": per_rank,
            "code_version": code_version(),
            "metrics": {"train_" + k: v for k, v in last.items()},
            "lr": optimizer.param_groups[0]["lr"],
        }

    def save() -> Path:
        return _save(
            out_dir,
            model,
            optimizer,
            scheduler,
            config,
            meta(),
            {
                "step": step,
                "wall_s": wall_before + time.monotonic() - seg_start,
                "skipped": skipped,
                "window": window,
                "log_terms": log_terms,
            },
        )

    stopped_by = ""
    signals = StopSignals()
    try:
        signals.__enter__()
        model.train()
        while step < config.steps:
            out_of_time = (
                bool(config.max_wall_s) and time.monotonic() - seg_start + wall_before >= config.max_wall_s
            )
            reason = signals.received or ("max_wall_s" if out_of_time else "")
            if not reason and (out_dir / STOP_FILE).exists():  # STOP file: graceful stop from outside
                reason = "STOP file"
            stop = bool(reason)
            if world > 1:  # rank 0 decides, so that every rank leaves the loop at the same step
                flag = torch.tensor([1.0 if stop else 0.0], device=device)
                dist.broadcast(flag, src=0)
                stop = bool(flag.item() > 0)
            if stop:
                stopped_by = reason or "rank 0"
                logger.warning("stopping at step %d (%s)", step, stopped_by)
                break
            if config.data.source_weights:
                weights = config.data.source_weights
                indices = source_batch(dataset, weights, config.seed, step, per_rank, rank, world)
            else:
                indices = epoch_batch(n, config.seed, step, per_rank, rank, world)
            batch = stack_batch(dataset, indices, device)

            out = net(batch["image_ref"], batch["image_tgt"], batch["intrinsics"])
            pose_gt = pp.mat2SE3(batch["pose_tgt_ref"].double(), check=False).float()
            loss, terms = banet_loss(
                out.poses_per_level,
                out.depths_per_level,
                pose_gt,
                batch["depth_ref"],
                config.loss,
                depth_init=out.depth_init,
            )
            if config.loss.photometric > 0 or config.loss.smoothness > 0:
                extra, extra_terms = unlabelled_depth_loss(
                    out.depth_init, out.depths_per_level[-1], batch["image_ref"], batch["image_tgt"],
                    pose_gt, out.depth_intrinsics, batch["depth_ref"], config.loss.photometric,
                    config.loss.smoothness,
                )  # fmt: skip
                loss = loss + extra
                terms.update(extra_terms, loss=float(loss.detach()))
            optimizer.zero_grad(set_to_none=True)
            step_loss = terms["loss"]
            good = math.isfinite(step_loss)
            if world > 1:
                # Agreed before backward (module docstring); the same reduce gives the loss averaged over
                # the ranks, the scheduler's input.
                shared = torch.tensor(
                    [step_loss if good else 0.0, 1.0 if good else 0.0], dtype=torch.float64, device=device
                )
                dist.all_reduce(shared)
                total, finite = shared.tolist()
                good = round(finite) == world
                step_loss = total / world
            if good:
                loss.backward()
                grads = [p.grad for p in model.parameters() if p.grad is not None]
                norm = torch.nn.utils.clip_grad_norm_(
                    model.parameters(), config.grad_clip if config.grad_clip > 0 else float("inf")
                )
                good = bool(torch.isfinite(norm)) and bool(grads)
            if world > 1:  # every rank must agree to step, or DDP replicas would drift apart
                flag = torch.tensor([1.0 if good else 0.0], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MIN)
                good = bool(flag.item() > 0)
            step += 1
            if good:
                optimizer.step()
                consecutive_bad = 0
                window.append(step_loss)
                log_terms.append(terms)
            else:
                skipped += 1
                consecutive_bad += 1
                logger.warning("step %d: non-finite loss or gradient, update skipped", step)
                if consecutive_bad >= 20:
                    raise TrainingDivergedError(
                        f"20 consecutive non-finite steps up to step {step}; stopping"
                    )
            if len(window) >= config.plateau_window:
                scheduler.step(float(np.mean(window)))
                window = []

            if rank == 0 and (step % config.log_every == 0 or step == config.steps):
                recent = log_terms[-config.log_every :] or [{"loss": float("nan")}]
                mean = {k: float(np.mean([t.get(k, float("nan")) for t in recent])) for k in recent[0]}
                elapsed = time.monotonic() - seg_start
                writer.writerow(
                    {
                        "step": step,
                        "wall_s": round(wall_before + elapsed, 2),
                        "lr": optimizer.param_groups[0]["lr"],
                        "loss": mean.get("loss"),
                        "rotation": mean.get("rotation"),
                        "translation": mean.get("translation"),
                        "depth": mean.get("depth"),
                        "skipped": skipped,
                    }
                )
                log_file.flush()
                bar.update(
                    step,
                    mean["loss"],
                    elapsed / max(step - step_at_seg_start, 1),
                    optimizer.param_groups[0]["lr"],
                )
                log_terms = [mean]
            if rank == 0 and time.monotonic() - last_ckpt >= config.checkpoint_every_s:
                checkpoint_path = save()
                saved_step, saved_weights = step, None
                last_ckpt = time.monotonic()
        if rank == 0:
            if step != saved_step:
                checkpoint_path = save()
            elif saved_weights is not None:  # resumed, nothing trained: the unit stays; the link points at it
                checkpoint_path = _link_last(saved_weights, out_dir / LAST_LINK)
            if stopped_by:
                logger.warning("checkpoint at step %d written to %s", step, checkpoint_path.parent)
            if stopped_by == "STOP file":  # it did its job: consumed, so that --resume continues the run
                (out_dir / STOP_FILE).unlink(missing_ok=True)
    finally:
        signals.restore()
        if log_file is not None:
            log_file.close()
        if world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
    last_loss = float(np.mean([t["loss"] for t in log_terms])) if log_terms else float("nan")
    wall = wall_before + time.monotonic() - seg_start
    return TrainResult(step, wall, last_loss, checkpoint_path, skipped, stopped_by)
