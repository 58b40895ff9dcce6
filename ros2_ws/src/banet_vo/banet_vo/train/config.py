"""Training configuration: one YAML file → TrainConfig (model preset + overrides, data, optimiser, losses,
logging). Unknown keys are errors so a typo cannot silently change a run; every number must be finite (a YAML
``1e-3``, which PyYAML reads as a string, is taken as the number it spells); the labels of the clips DESIGN.md
keeps for validation are refused (``check_reserved``, by ``banet_vo.data.validation_clips``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from banet_vo.config_fields import check_keys
from banet_vo.data.validation_clips import HELD_OUT_FROM, RESERVED_CLIPS
from banet_vo.model.config import BANetConfig
from banet_vo.train.data import check_fov_range
from banet_vo.train.losses import LossWeights
from banet_vo.train.numbers import coerce_floats, finite_number

__all__ = [
    "HELD_OUT_FROM",
    "RESERVED_CLIPS",
    "DataConfig",
    "TrainConfig",
    "check_reserved",
    "load_train_config",
    "parse_sequence_spec",
]


def parse_sequence_spec(spec: str) -> tuple[str, tuple[int, int] | None]:
    """ "path" → (path, None); "path@first-last" → (path, (first, last)), positions inclusive."""
    path, sep, frames = str(spec).rpartition("@")
    if not sep:
        return str(spec), None
    try:
        first, last = (int(v) for v in frames.split("-"))
    except ValueError:
        raise ValueError(f"data.real_sequences: {spec!r} must be PATH or PATH@FIRST-LAST") from None
    if not 0 <= first <= last:
        raise ValueError(f"data.real_sequences: {spec!r} needs 0 <= FIRST <= LAST")
    return path, (first, last)


def check_reserved(spec: str) -> None:
    """ValueError when the sequence spec trains on labels DESIGN.md keeps for validation (the folder's own
    name or, for a link, the name it points to)."""
    path, frames = parse_sequence_spec(spec)
    names = {Path(path).name, Path(path).resolve().name}
    reserved = sorted(names & RESERVED_CLIPS.keys())
    if reserved:
        name = reserved[0]
        raise ValueError(
            f"data.real_sequences: {spec!r} is {name}, reserved for validation ({RESERVED_CLIPS[name]}; "
            "DESIGN.md, Data)"
        )
    for name in sorted(names & HELD_OUT_FROM.keys()):
        first_held_out = HELD_OUT_FROM[name]
        if frames is None or frames[1] >= first_held_out:
            raise ValueError(
                f"data.real_sequences: {spec!r}: frames {first_held_out} and later of {name} are held out "
                f"for validation (DESIGN.md, Data); train on {path}@0-{first_held_out - 1} or a part of it"
            )


@dataclass(frozen=True)
class DataConfig:
    """Synthetic scenes rendered once into ``cache`` (sizes = the model input), plus optional real
    sequences (any directory ``banet_vo.data.open_sequence`` reads, with GT poses and ideally depth)."""

    scenes: tuple[str, ...] = ("driving", "indoor")
    sequences_per_scene: int = 32
    frames_per_sequence: int = 8
    seed_base: int = 0
    cache: str = "runs/cache/train.pt"
    strides: dict[str, tuple[int, ...]] = field(default_factory=lambda: {"driving": (1, 2), "indoor": (2, 4)})
    # "path" or "path@first-last" (positions in the sequence, inclusive: hold out a clip's tail).
    real_sequences: tuple[str, ...] = ()
    real_strides: tuple[int, ...] = (1,)
    # Probability of drawing each step's batch from each source (synthetic first when present, then
    # real_sequences in order); every batch then comes from one source, so sources may have different input
    # sizes (keep_aspect models: KITTI is 200x64, the rest 128x96). () = one shuffled pool (runs 1-4; all
    # sources at one size).
    source_weights: tuple[float, ...] = ()
    # Training-only augmentation (train/augment.py): half the pairs zoomed by U(1, zoom_max) (a crop resized
    # back, focal x zoom: teaches focal-aware depth apparent size), brightness gain U(1 ± brightness).
    # 1 / 0 = off (runs 1-4).
    zoom_max: float = 1.0
    brightness: float = 0.0
    # Probability that a pair is shown in gray (both images, BT.601 luma in the three channels), as a mono
    # camera records it (train/augment.py, why). 0 = off (every run so far).
    gray: float = 0.0
    # Zoom of the real sequences cut from their full-resolution images (PairDataset zoom_max: sharp, unlike
    # zoom_max's upsampled crop, which a network can tell by its blur). 1 = off.
    real_zoom_max: float = 1.0
    # Horizontal field of view of each synthetic sequence, drawn per seed from [lo, hi] degrees (the
    # renderer's focal: sharp at any focal, unlike zoom_max; with focal-aware depth it separates apparent size
    # from metric depth). () = each scene kind's default (80 driving, 65 indoor; runs 1-4).
    fov_range: tuple[float, ...] = ()
    # Decoded real frames kept in memory (MB, all real sequences together): a frame is read thousands of
    # times and its PNG decode is most of a pair's cost (5 ms). 0 = read from disk each time.
    real_cache_mb: int = 2048

    def __post_init__(self) -> None:
        coerce_floats(self, "data.")
        if (
            isinstance(self.real_cache_mb, bool)
            or not isinstance(self.real_cache_mb, int)
            or self.real_cache_mb < 0
        ):
            raise ValueError(f"data.real_cache_mb must be an int >= 0, got {self.real_cache_mb!r}")
        if not 0.0 <= self.gray <= 1.0:
            raise ValueError(f"data.gray must be a probability in [0, 1], got {self.gray}")
        if not self.zoom_max >= 1.0 or not self.real_zoom_max >= 1.0 or not 0.0 <= self.brightness < 1.0:
            raise ValueError(
                "data.zoom_max and real_zoom_max must be >= 1 and data.brightness in [0, 1), "
                f"got {self.zoom_max}, {self.brightness}"
            )
        weights = tuple(finite_number(w, "data.source_weights") for w in self.source_weights)
        object.__setattr__(self, "source_weights", weights)
        if any(not w >= 0 for w in self.source_weights) or (
            self.source_weights and not sum(self.source_weights) > 0
        ):
            raise ValueError(
                f"data.source_weights must be >= 0 with a positive sum, got {self.source_weights}"
            )
        if self.fov_range:
            object.__setattr__(self, "fov_range", check_fov_range(self.fov_range, "data.fov_range"))
        for spec in self.real_sequences:
            check_reserved(spec)
        object.__setattr__(self, "scenes", tuple(self.scenes))
        object.__setattr__(self, "real_sequences", tuple(self.real_sequences))
        object.__setattr__(self, "real_strides", tuple(int(s) for s in self.real_strides))
        object.__setattr__(
            self, "strides", {k: tuple(int(s) for s in v) for k, v in dict(self.strides).items()}
        )
        for scene in self.scenes:
            if scene not in ("driving", "indoor"):
                raise ValueError(f"data.scenes: unknown scene {scene!r} (driving or indoor)")
            if scene not in self.strides or not self.strides[scene] or min(self.strides[scene]) < 1:
                raise ValueError(f"data.strides must give positive strides for scene {scene!r}")
        if self.sequences_per_scene < 0 or self.frames_per_sequence < 2:
            raise ValueError("data.sequences_per_scene must be >= 0 and data.frames_per_sequence >= 2")
        if not self.real_strides or min(self.real_strides) < 1:
            raise ValueError(f"data.real_strides must be positive ints, got {self.real_strides}")


@dataclass(frozen=True)
class TrainConfig:
    model_preset: str = "small"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    batch_size: int = 4  # per process
    steps: int = 1000
    max_wall_s: float = 0.0  # stop (and checkpoint) after this much training time; 0 = no limit
    lr: float = 1e-3
    # Learning-rate factors by parameter-name prefix, e.g. {"decoder.depth_head": 50}: D0 = softplus(a·B + b)
    # lives in metres, so Adam's ~lr-sized steps move it by only ~lr metres per step without a boost.
    lr_multipliers: dict[str, float] = field(default_factory=dict)
    init_weights: str = ""  # start from these BA-Net weights (a checkpoint); "" = random initialisation
    # Parameter-name prefixes NOT taken from init_weights (kept at their fresh initialisation), e.g.
    # ["decoder.depth_head"] to warm-start everything but a depth head of another depth_activation.
    init_skip: tuple[str, ...] = ()
    plateau_window: int = 100  # steps averaged into one value for the plateau scheduler
    plateau_patience: int = 3  # windows without improvement before the learning rate is halved
    plateau_factor: float = 0.5
    min_lr: float = 1e-5
    grad_clip: float = 10.0  # max gradient norm (0 = off)
    amp: bool = True  # bf16 autocast for the networks on CUDA (the BA stays fp32); ignored on CPU
    num_threads: int = 2  # torch CPU threads per process
    seed: int = 0
    log_every: int = 10
    checkpoint_every_s: float = 300.0

    def __post_init__(self) -> None:
        coerce_floats(self, "train config ")
        if not isinstance(self.lr_multipliers, dict) or any(
            not isinstance(p, str) or not p for p in self.lr_multipliers
        ):  # an empty prefix would take every parameter
            raise ValueError(
                f"train config lr_multipliers must map non-empty name prefixes to factors, got "
                f"{self.lr_multipliers!r}"
            )
        factors = {
            p: finite_number(v, f"train config lr_multipliers[{p!r}]") for p, v in self.lr_multipliers.items()
        }
        object.__setattr__(self, "lr_multipliers", factors)
        check_keys(self.model_overrides, BANetConfig, "train config model_overrides")
        object.__setattr__(self, "init_skip", tuple(self.init_skip))
        if any(not isinstance(p, str) or not p for p in self.init_skip):
            raise ValueError(f"train config init_skip must be non-empty name prefixes, got {self.init_skip}")
        if self.init_skip and not self.init_weights:
            raise ValueError("train config init_skip needs init_weights")
        for name in ("batch_size", "steps", "plateau_window", "log_every", "num_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"train config {name} must be a positive int, got {value!r}")
        for name in ("lr", "plateau_factor", "min_lr", "checkpoint_every_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"train config {name} must be > 0, got {getattr(self, name)!r}")
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"train config plateau_factor must be in (0, 1), got {self.plateau_factor}")
        if any(not v > 0 for v in self.lr_multipliers.values()):
            raise ValueError(f"train config lr_multipliers must be > 0, got {self.lr_multipliers}")
        if self.max_wall_s < 0 or self.grad_clip < 0:
            raise ValueError("train config max_wall_s and grad_clip must be >= 0")
        model = self.model_config()  # validates preset and overrides now, not an hour into a run
        if model.depth0_stop_gradient and not self.loss.initial_depth > 0:
            raise ValueError(
                "train config: the model's depth0_stop_gradient keeps the BA's gradients out of D0, so "
                "loss.initial_depth must be > 0 (D0 would never learn)"
            )

    def model_config(self) -> BANetConfig:
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in self.model_overrides.items()}
        return BANetConfig.preset(self.model_preset, **overrides)

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if dataclasses.is_dataclass(value):
                return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            return value

        return plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        check_keys(data, cls, "train config")
        values = dict(data)
        try:  # a value of the wrong kind (a number where a list belongs, ...) is bad input as well
            if "data" in values:
                check_keys(values["data"], DataConfig, "train config data")
                values["data"] = DataConfig(**values["data"])
            if "loss" in values:
                check_keys(values["loss"], LossWeights, "train config loss")
                values["loss"] = LossWeights(**values["loss"])
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"train config: a value of the wrong kind: {exc}") from exc


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML training config; ``overrides`` (top-level keys) replace values from the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"train config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"train config file {str(path)!r} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"train config file {str(path)!r} must hold a mapping, not a {type(data).__name__}")
    data.update(overrides or {})
    return TrainConfig.from_dict(data)
