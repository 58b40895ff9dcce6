"""Pre-rendered synthetic training/test data: render sequences once, cache their frames as tensors on disk,
and serve (reference, target) pairs from memory (training must not re-render every step).

A cache file (torch.save of a dict, loaded with weights_only=True) holds, per sequence, uint8 images
(F, H, W, 3), float32 z-depth (F, H, W; 0 = sky/invalid), float64 camera-to-world poses (F, 4, 4) and the
intrinsics [fx, fy, cx, cy], plus the render spec (scene kind, seed, frames, size, horizontal field of view)
so that a test set records exactly which scenes and seeds it holds.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from banet_vo.geometry import relative_pose
from banet_vo.model.checkpoint import remove_stale_temps, write_atomically
from banet_vo.model.input_image import model_input

logger = logging.getLogger(__name__)

CACHE_FORMAT = "banet-vo-render-cache/1"
# Seed ranges that never overlap: training scenes, validation scenes (λ sweep), held-out test scenes.
TRAIN_SEED_BASE = 0
VAL_SEED_BASE = 50_000
TEST_SEED_BASE = 100_000


@dataclass(frozen=True)
class RenderSpec:
    """One synthetic sequence to render: scene kind, seed, number of frames, (width, height), horizontal
    field of view in degrees (None: the scene kind's DEFAULT_FOV_DEG)."""

    scene: str
    seed: int
    frames: int
    size: tuple[int, int]
    fov_deg: float | None = None

    @property
    def fov(self) -> float:
        """The field of view it renders with."""
        from banet_vo.data.synthetic.generate import DEFAULT_FOV_DEG

        return DEFAULT_FOV_DEG[self.scene] if self.fov_deg is None else float(self.fov_deg)


def check_fov_range(values, name: str = "fov_range") -> tuple[float, float]:
    """(lo, hi) in degrees of a two-number range within the renderer's 1-170 degrees, else ValueError."""
    try:
        lo, hi = (float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be [lo, hi] in degrees, got {values!r}") from None
    if not 1.0 <= lo <= hi <= 170.0:
        raise ValueError(f"{name} must be [lo, hi] with 1 <= lo <= hi <= 170 degrees, got {values!r}")
    return lo, hi


def make_specs(
    scenes: Iterable[str],
    count: int,
    seed_base: int,
    frames: int,
    size: tuple[int, int],
    fov_range: tuple[float, float] | None = None,
) -> list[RenderSpec]:
    """``count`` sequences of each scene kind with seeds seed_base, seed_base + 1, ...; with ``fov_range``
    (degrees, lo <= hi) each sequence's horizontal field of view is drawn uniformly from it, from the
    sequence's seed alone (the same seed always renders the same camera)."""
    if count < 1 or frames < 2:
        raise ValueError(f"count must be >= 1 and frames >= 2, got count={count}, frames={frames}")
    if fov_range is not None:
        lo, hi = check_fov_range(fov_range)

    def fov(scene: str, seed: int) -> float | None:
        if fov_range is None:
            return None
        u = np.random.default_rng([seed, 0xF0, len(scene), ord(scene[0])]).uniform()
        return lo + (hi - lo) * u

    return [
        RenderSpec(scene, seed_base + k, frames, (int(size[0]), int(size[1])), fov(scene, seed_base + k))
        for scene in scenes
        for k in range(count)
    ]


def _render_one(spec: RenderSpec) -> dict:
    """One spec rendered and packed as tensors (a process pool's unit of work)."""
    from banet_vo.data.synthetic import render_sequence  # heavy import, only when rendering

    seq = render_sequence(
        spec.scene, frames=spec.frames, size=spec.size, seed=spec.seed, fov_deg=spec.fov_deg
    )
    frames = [seq[i] for i in range(len(seq))]
    cam = frames[0].camera
    images = np.stack([f.image if f.image.ndim == 3 else np.repeat(f.image[..., None], 3, 2) for f in frames])
    return {
        "scene": spec.scene,
        "seed": spec.seed,
        "fov_deg": spec.fov,
        "images": torch.from_numpy(images),
        "depths": torch.from_numpy(np.stack([f.depth for f in frames]).astype(np.float32)),
        "poses": torch.from_numpy(np.stack([f.pose for f in frames]).astype(np.float64)),
        "intrinsics": torch.tensor([cam.fx, cam.fy, cam.cx, cam.cy], dtype=torch.float64),
    }


def render_cache(specs: Sequence[RenderSpec], progress: bool = True, workers: int | None = None) -> dict:
    """Render every spec with ``render_sequence`` and pack the frames as tensors, in spec order. ``workers``
    processes render in parallel (None: one per CPU; 1: in this process). Each sequence depends on its
    seed alone, so the cache is the same for any number of workers."""
    workers = max(1, min(len(specs), os.cpu_count() or 1) if workers is None else workers)
    sequences = []
    start = time.monotonic()

    def report(n: int, spec: RenderSpec) -> None:
        if progress:
            elapsed = time.monotonic() - start
            eta = elapsed / (n + 1) * (len(specs) - n - 1)
            print(
                f"rendered {n + 1}/{len(specs)} ({spec.scene} seed {spec.seed}) "
                f"{elapsed:.0f}s, ETA {eta:.0f}s",
                file=sys.stderr,
                flush=True,
            )

    if workers == 1:
        for n, spec in enumerate(specs):
            sequences.append(_render_one(spec))
            report(n, spec)
    else:
        # spawn, not fork: the parent has torch (and its thread pools) loaded already.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            for n, (spec, sequence) in enumerate(zip(specs, pool.map(_render_one, specs), strict=True)):
                sequences.append(sequence)
                report(n, spec)
    return {"format": CACHE_FORMAT, "sequences": sequences}


# A temporary of the cache not written to for this long is a killed writer's (a live one streams into it).
STALE_CACHE_TEMP_S = 3600.0


def save_cache(cache: dict, path: str | Path) -> Path:
    """Write ``cache`` to ``path`` atomically (model.checkpoint.write_atomically: a temporary of its own,
    so two runs rendering the same cache at once no longer share one fixed ``<cache>.tmp``; 0666 less the
    umask). Temporaries of the same cache that a killed write left (untouched for STALE_CACHE_TEMP_S) are
    removed first, each named: a cache runs to gigabytes."""
    path = Path(path)
    try:  # housekeeping: a failure here must not cost the cache just rendered
        for stale in remove_stale_temps(path.parent, path.name, unmodified_s=STALE_CACHE_TEMP_S):
            logger.warning("render cache: removed %s, left by a killed write", stale)
    except OSError as err:
        logger.warning("render cache: stale temporaries beside %s not removed: %s", path, err)
    return write_atomically(path, lambda f: torch.save(cache, f))


def load_cache(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"render cache {str(path)!r} does not exist")
    try:
        cache = torch.load(path, weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt file; name the file either way
        raise ValueError(f"render cache {str(path)!r} is not a readable torch file: {exc}") from exc
    if not isinstance(cache, dict) or cache.get("format") != CACHE_FORMAT:
        raise ValueError(f"render cache {str(path)!r}: format tag is not {CACHE_FORMAT!r}")
    return cache


def load_or_render(path: str | Path, specs: Sequence[RenderSpec], progress: bool = True) -> dict:
    """Load the cache at ``path`` if it holds exactly ``specs`` (scene, seed, field of view, frames and
    image size); otherwise render and write it."""
    path = Path(path)
    wanted = [(s.scene, s.seed, round(s.fov, 6), tuple(s.size)) for s in specs]
    if path.is_file():
        cache = load_cache(path)
        have = [
            (s["scene"], int(s["seed"]), round(_cached_fov(s), 6), _cached_size(s))
            for s in cache["sequences"]
        ]
        if have == wanted and all(
            len(s["images"]) == sp.frames for s, sp in zip(cache["sequences"], specs, strict=True)
        ):
            return cache
        logger.warning("render cache %s holds other sequences; re-rendering", path)
    cache = render_cache(specs, progress)
    save_cache(cache, path)
    return cache


def _cached_size(sequence: dict) -> tuple[int, int]:
    """(width, height) of a cached sequence's images (F, H, W, 3)."""
    shape = sequence["images"].shape
    return int(shape[2]), int(shape[1])


def _cached_fov(sequence: dict) -> float:
    """A cached sequence's horizontal field of view: stored since fov widening, else from its intrinsics
    (older caches were rendered at their scene's default)."""
    if "fov_deg" in sequence:
        return float(sequence["fov_deg"])
    fx = float(sequence["intrinsics"][0])
    return float(np.degrees(2 * np.arctan(sequence["images"].shape[2] / 2 / fx)))


def _cached_image(image: torch.Tensor) -> torch.Tensor:
    """A cached H×W×3 uint8 frame as model input; the cache is rendered at the model size, so no resize."""
    height, width = image.shape[:2]
    return torch.from_numpy(model_input(image.numpy(), width, height))


class CachedPairs(Dataset):
    """(reference, target) pairs of cached sequences, as the dict items of ``banet_vo.data.PairDataset``
    (image_ref, image_tgt, intrinsics, pose_tgt_ref, depth_ref, depth_valid) plus ``scene`` (0 = driving,
    1 = indoor) and ``seed``.

    ``strides`` maps a scene kind to the frame offsets used for it (hand-held motion per frame is small, so
    indoor uses larger offsets). Pairs are in a fixed order: sequence, stride, reference index.
    """

    SCENE_IDS: ClassVar[dict[str, int]] = {"driving": 0, "indoor": 1}

    def __init__(self, cache: dict, strides: dict[str, Sequence[int]]) -> None:
        self.sequences = cache["sequences"]
        self.pairs: list[tuple[int, int, int]] = []
        for n, seq in enumerate(self.sequences):
            if seq["scene"] not in strides:
                raise ValueError(f"strides has no entry for scene {seq['scene']!r}")
            count = len(seq["images"])
            for s in strides[seq["scene"]]:
                if s < 1:
                    raise ValueError(f"strides[{seq['scene']!r}] must be positive, got {s}")
                self.pairs.extend((n, i, i + s) for i in range(count - s))
        if not self.pairs:
            raise ValueError("the cache and strides give no pairs")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        n, i, j = self.pairs[k]
        seq = self.sequences[n]
        pose = relative_pose(seq["poses"][i].numpy(), seq["poses"][j].numpy())
        depth = seq["depths"][i][None]
        return {
            "image_ref": _cached_image(seq["images"][i]),
            "image_tgt": _cached_image(seq["images"][j]),
            "intrinsics": seq["intrinsics"].float(),
            "pose_tgt_ref": torch.from_numpy(pose.astype(np.float32)),
            "depth_ref": depth,
            "depth_valid": depth > 0,
            "scene": torch.tensor(self.SCENE_IDS.get(seq["scene"], -1)),
            "seed": torch.tensor(int(seq["seed"])),
        }

    def stacked(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """A batch of the given pair indices (no DataLoader needed: everything is in memory)."""
        items = [self[k] for k in indices]
        return {key: torch.stack([it[key] for it in items]) for key in items[0]}
