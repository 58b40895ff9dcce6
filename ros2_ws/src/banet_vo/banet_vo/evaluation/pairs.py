"""Two-view evaluation of BA-Net, its ablations and the Table 1 baselines on image pairs
(its CLI, `banet-vo-eval pairs`, is evaluation/commands/pairs.py).

Methods (all see the same pairs at the model's input size; depth is scored at the depth resolution, half
the input, against ground truth resized by nearest sampling):

- ``banet``: the trained model as shipped (learned features, predicted λ).
- ``banet_fixed_lambda``: the same trained networks, the damping MLP replaced by a constant λ.
- ``banet_fixed_features``: the trained basis-depth generator, but the BA runs on the features of a
  randomly initialised, never trained backbone + FPN (seeded), with a constant λ ("w/o feature learning":
  we have no ImageNet-pretrained DRN, so untrained features stand in for pretrained-not-fine-tuned ones).
- ``photometric``: the same LM on blurred gray-level pyramids, constant λ, the trained basis-depth
  generator as depth parameterisation (so it differs from BA-Net only in features and λ).
- ``geometric``: SIFT + 5-point RANSAC + two-view BA (``banet_vo.baselines.geometric``); metric scale from
  the ground-truth translation norm (an oracle no deployed system has); sparse depth (abs rel over the
  pixels it has; coverage reported).
- ``geometric_learned_scale``: the same geometry, metric scale from the model's initial depth D0 instead
  (median of D0 / triangulated depth over the triangulated pixels): deployable, and it isolates what
  BA-Net's geometry adds over SIFT with the same monocular scale source.

The held-out synthetic test set (``held_out_test_specs``) uses scene seeds 100000-100011 of each kind, never
used for training (seeds 0-127 in the shipped recipe) or the λ sweep (validation seeds 50000-50003).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from banet_vo.baselines.geometric import geometric_ba
from banet_vo.baselines.photometric import photometric_ba
from banet_vo.data import PairDataset, open_sequence
from banet_vo.evaluation.depth import DepthMetrics, depth_metrics, mean_depth_metrics
from banet_vo.evaluation.pose import TwoViewPoseError, summarize_pose_errors, two_view_pose_error
from banet_vo.model.ba_layer import bundle_adjust
from banet_vo.model.banet import BANet
from banet_vo.model.checkpoint import load_banet
from banet_vo.train.data import CachedPairs, RenderSpec, load_or_render
from banet_vo.train.losses import downsample_depth_nearest

__all__ = [
    "METHODS",
    "TEST_SEEDS",
    "VAL_SEEDS",
    "PairEstimator",
    "depth0_scale",
    "evaluate_pairs",
    "held_out_test_specs",
    "sweep_lambda",
    "validation_specs",
]

METHODS = (
    "banet",
    "banet_fixed_lambda",
    "banet_fixed_features",
    "photometric",
    "geometric",
    "geometric_learned_scale",
)
TEST_SEEDS = tuple(range(100_000, 100_012))  # per scene kind: 24 sequences, 8 frames, strides 1 and 2
VAL_SEEDS = tuple(range(50_000, 50_004))
TEST_FRAMES = 8
TEST_STRIDES = {"driving": (1, 2), "indoor": (1, 2)}
VAL_STRIDES = {"driving": (1,), "indoor": (2,)}  # 52 validation pairs: the sweep stays cheap
MAX_EVAL_DEPTH = 80.0  # metres, ground truth beyond is not scored (Eigen's KITTI cap)
LAMBDA_CANDIDATES = (0.001, 0.01, 0.1, 1.0)


def held_out_test_specs(size: tuple[int, int]):
    """The held-out synthetic test set: 12 driving + 12 indoor scenes, seeds TEST_SEEDS, 8 frames each
    (312 pairs with strides 1 and 2)."""

    return [
        RenderSpec(scene, seed, TEST_FRAMES, size) for scene in ("driving", "indoor") for seed in TEST_SEEDS
    ]


def validation_specs(size: tuple[int, int]):
    """Validation scenes for the λ sweep (4 + 4 sequences, seeds VAL_SEEDS)."""

    return [
        RenderSpec(scene, seed, TEST_FRAMES, size) for scene in ("driving", "indoor") for seed in VAL_SEEDS
    ]


@dataclass
class Estimate:
    poses: np.ndarray  # (B, 4, 4) T_tgt_ref
    depths: np.ndarray  # (B, h, w) z-depth, 0 = no estimate


class PairEstimator:
    """Runs one of METHODS on a batch of pairs (dict with image_ref, image_tgt, intrinsics, pose_tgt_ref)."""

    def __init__(
        self, model, fixed_lambda: float = 0.01, photometric_lambda: float = 0.01, random_seed: int = 12345
    ) -> None:
        self.model = model.eval()
        self.config = model.config
        self.fixed_lambda = float(fixed_lambda)
        self.photometric_lambda = float(photometric_lambda)
        generator_state = torch.get_rng_state()
        torch.manual_seed(random_seed)
        self.random_model = BANet(model.config).eval()  # untrained features for the ablation
        torch.set_rng_state(generator_state)

    def estimate(self, method: str, batch: dict) -> Estimate:
        """Poses and depths of ``method`` for a batch of pairs, without gradients."""

        with torch.no_grad():
            return self._estimate(method, batch)

    def _estimate(self, method: str, batch: dict) -> Estimate:
        image_ref, image_tgt, intrinsics = batch["image_ref"], batch["image_tgt"], batch["intrinsics"]
        if method == "geometric":
            return self._geometric(batch)
        if method == "geometric_learned_scale":
            depth0 = self.model.parts(image_ref, image_tgt, intrinsics).depth0[:, 0].double().numpy()
            return self._geometric(batch, depth0)
        if method == "banet":
            out = self.model(image_ref, image_tgt, intrinsics)
            return _to_numpy(out.pose, out.depth)
        parts = self.model.parts(image_ref, image_tgt, intrinsics)
        options = self.config.ba_options
        if method == "photometric":
            result = photometric_ba(
                image_ref,
                image_tgt,
                parts.basis,
                parts.depth0,
                parts.depth_intrinsics,
                options,
                self.photometric_lambda,
            )
            return _to_numpy(result.pose, result.depth)
        if method == "banet_fixed_lambda":
            features_ref, features_tgt = parts.features_ref, parts.features_tgt
        elif method == "banet_fixed_features":
            random_parts = self.random_model.parts(image_ref, image_tgt, intrinsics)
            features_ref, features_tgt = random_parts.features_ref, random_parts.features_tgt
        else:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        result = bundle_adjust(
            features_ref,
            features_tgt,
            parts.basis,
            parts.depth0,
            parts.depth_intrinsics,
            options,
            [self.fixed_lambda] * len(options.iterations),
        )
        return _to_numpy(result.pose, result.depth)

    def _geometric(self, batch: dict, depth0: np.ndarray | None = None) -> Estimate:
        """Scale from the GT translation norm, or from ``depth0`` (B, h, w) at the depth resolution."""

        h, w = (n // 2 for n in batch["image_ref"].shape[-2:])  # the depth grid: half the input
        poses, depths = [], []
        for b in range(batch["image_ref"].shape[0]):
            fx, fy, cx, cy = batch["intrinsics"][b].double().tolist()
            K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
            gt = batch["pose_tgt_ref"][b].double().numpy()
            scale = float(np.linalg.norm(gt[:3, 3])) if depth0 is None else 1.0
            result = geometric_ba(
                _uint8(batch["image_ref"][b]), _uint8(batch["image_tgt"][b]), K, scale, (w, h)
            )
            pose, depth = result.pose, result.depth
            if depth0 is not None:
                scale = depth0_scale(depth0[b], depth)
                pose = pose.copy()
                pose[:3, 3] *= scale
                depth = depth * np.float32(scale)
            poses.append(pose)
            depths.append(depth)
        return Estimate(np.stack(poses), np.stack(depths))


def depth0_scale(depth0: np.ndarray, sparse_depth: np.ndarray) -> float:
    """Metric scale of a unit-translation reconstruction: median of D0 / z over its triangulated pixels
    (0 where it has none: the pose keeps its rotation and gets no translation)."""
    has = (sparse_depth > 0) & np.isfinite(depth0) & (depth0 > 0)
    if not has.any():
        return 0.0
    return float(np.median(depth0[has] / sparse_depth[has]))


def _uint8(image) -> np.ndarray:
    return (image.permute(1, 2, 0).clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)


def _to_numpy(pose, depth) -> Estimate:
    return Estimate(
        pose.matrix().detach().double().cpu().numpy(), depth.detach()[:, 0].double().cpu().numpy()
    )


def _gt_depth_at(depth_ref, size: tuple[int, int]) -> np.ndarray:
    return downsample_depth_nearest(depth_ref.float(), size)[:, 0].double().numpy()


def evaluate_pairs(
    dataset,
    estimator: PairEstimator,
    methods: Sequence[str] = METHODS,
    batch_size: int = 4,
    max_pairs: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict]:
    """Every method on every pair of ``dataset`` (items as ``banet_vo.data.PairDataset``'s). Returns per
    method: pose error summary (mean/median/count), mean depth metrics (when the data has depth), pair
    count, seconds per pair (this machine, this run).

    A pair a method fails on (the geometric baselines: no pose, identity returned; no depth) stays in:
    its translation direction counts as the worst, 180 deg, and its depth coverage as 0. The depth errors
    are means over the pairs with a depth estimate (``depth_pairs``), coverage over all pairs with ground
    truth (``depth_gt_pairs``)."""

    for m in methods:
        if m not in METHODS:
            raise ValueError(f"methods: unknown method {m!r}; choose from {METHODS}")
    n = len(dataset) if max_pairs is None else min(len(dataset), max_pairs)
    if n == 0:
        raise ValueError("dataset has no pairs")
    results: dict[str, dict] = {}
    for method in methods:
        pose_errors: list[TwoViewPoseError] = []
        depth_scores: list[DepthMetrics] = []
        coverage: list[float] = []  # every pair with ground-truth depth, 0 where the method gave none
        start = time.monotonic()
        for first in range(0, n, batch_size):
            items = [dataset[k] for k in range(first, min(n, first + batch_size))]
            batch = {
                k: torch.stack([it[k] for it in items])
                for k in ("image_ref", "image_tgt", "intrinsics", "pose_tgt_ref", "depth_ref")
            }
            est = estimator.estimate(method, batch)
            gt_poses = batch["pose_tgt_ref"].double().numpy()
            gt_depth = _gt_depth_at(batch["depth_ref"], est.depths.shape[-2:])
            for b in range(len(items)):
                pose_errors.append(
                    two_view_pose_error(est.poses[b], gt_poses[b], missing_direction_is_worst=True)
                )
                if not np.any((gt_depth[b] > 0) & (gt_depth[b] <= MAX_EVAL_DEPTH)):
                    continue
                if np.any(est.depths[b] > 0):
                    pred = np.where(est.depths[b] > 0, est.depths[b], np.nan)  # sparse: score what exists
                    depth_scores.append(depth_metrics(pred, gt_depth[b], max_depth=MAX_EVAL_DEPTH))
                    coverage.append(depth_scores[-1].coverage)
                else:
                    coverage.append(0.0)
            if progress:
                progress(f"{method}: {min(n, first + batch_size)}/{n} pairs")
        elapsed = time.monotonic() - start
        summary: dict = {
            "pairs": n,
            "seconds_per_pair": elapsed / n,
            "pose": summarize_pose_errors(pose_errors),
        }
        if coverage:
            summary["depth_pairs"] = len(depth_scores)
            summary["depth_gt_pairs"] = len(coverage)
            summary["depth_coverage"] = float(np.mean(coverage))
        if depth_scores:
            summary["depth"] = {
                **mean_depth_metrics(depth_scores).as_dict(),
                "coverage": summary["depth_coverage"],
            }
        results[method] = summary
    return results


def sweep_lambda(
    dataset, estimator: PairEstimator, method: str, candidates: Sequence[float] = LAMBDA_CANDIDATES
) -> tuple[float, dict[float, float]]:
    """Pick the constant λ of ``method`` (banet_fixed_lambda, banet_fixed_features or photometric) with the
    lowest mean of (rotation error in degrees + translation error in metres·10) on ``dataset``."""
    if method not in ("banet_fixed_lambda", "banet_fixed_features", "photometric"):
        raise ValueError(f"method {method!r} has no constant λ to sweep")
    scores: dict[float, float] = {}
    for lam in candidates:
        if method == "photometric":
            estimator.photometric_lambda = float(lam)
        else:
            estimator.fixed_lambda = float(lam)
        pose = evaluate_pairs(dataset, estimator, [method])[method]["pose"]
        scores[float(lam)] = pose["rotation_deg"]["mean"] + pose["translation_cm"]["mean"] / 10.0
    best = min(scores, key=lambda k: scores[k] if math.isfinite(scores[k]) else math.inf)
    return best, scores


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_sets(
    sequences: Sequence[str],
    strides: Sequence[int],
    model_config,
    cache_dir: str | Path,
    frames: tuple[int, int] | None = None,
    validation: bool = False,
):
    """(name, dataset) pairs: each real sequence (PairDataset prepared by the model's input geometry, only
    pairs inside ``frames`` = (first, last) positions when given), or the held-out synthetic test set when
    ``sequences`` is empty (the validation scenes, strides 1 and 2, with ``validation``: for choosing
    checkpoints without touching the test set)."""

    if sequences:
        out = []
        for path in sequences:
            dataset = PairDataset(
                open_sequence(path), strides=list(strides), model_config=model_config, shuffle=False,
                frames=frames,
            )  # fmt: skip
            name = str(path) if frames is None else f"{path} positions {frames[0]}-{frames[1]}"
            out.append((name, dataset))
        return out
    size = (model_config.image_width, model_config.image_height)
    if validation:
        cache = load_or_render(Path(cache_dir) / f"val_{size[0]}x{size[1]}.pt", validation_specs(size))
        return [("synthetic validation scenes", CachedPairs(cache, TEST_STRIDES))]
    cache = load_or_render(Path(cache_dir) / f"test_{size[0]}x{size[1]}.pt", held_out_test_specs(size))
    return [("synthetic held-out test set", CachedPairs(cache, TEST_STRIDES))]


def choose_lambdas(
    estimator: PairEstimator,
    methods: Sequence[str],
    cache_dir: str | Path,
    fixed_lambda: float | None = None,
    photometric_lambda: float | None = None,
) -> tuple[dict[str, float], dict]:
    """Constant λ per method: the given ones, or the best of LAMBDA_CANDIDATES on the validation scenes."""

    config = estimator.config
    size = (config.image_width, config.image_height)
    given = {
        "banet_fixed_lambda": fixed_lambda,
        "banet_fixed_features": fixed_lambda,
        "photometric": photometric_lambda,
    }
    sweep: dict = {}
    todo = [
        m
        for m in ("banet_fixed_lambda", "banet_fixed_features", "photometric")
        if m in methods and given[m] is None
    ]
    if todo:
        val_cache = load_or_render(Path(cache_dir) / f"val_{size[0]}x{size[1]}.pt", validation_specs(size))
        val = CachedPairs(val_cache, VAL_STRIDES)
        for method in todo:
            best, scores = sweep_lambda(val, estimator, method)
            sweep[method] = {"best": best, "scores": scores}
            _log(f"λ sweep {method}: {scores} -> {best}")
    lambdas = {
        m: float(given[m] if given[m] is not None else sweep.get(m, {}).get("best", 0.01)) for m in given
    }
    return lambdas, sweep


def evaluate_sets(
    estimator: PairEstimator,
    sets,
    methods: Sequence[str],
    lambdas: dict[str, float],
    batch_size: int = 4,
    max_pairs: int | None = None,
) -> dict[str, dict[str, dict]]:
    out = {}
    for name, dataset in sets:
        per_method: dict[str, dict] = {}
        for method in methods:
            estimator.fixed_lambda = lambdas.get(method, lambdas["banet_fixed_lambda"])
            estimator.photometric_lambda = lambdas["photometric"]
            per_method.update(
                evaluate_pairs(dataset, estimator, [method], batch_size, max_pairs, progress=_log)
            )
        out[name] = per_method
    return out


def load_model(path: str | Path):
    model = load_banet(path, "cpu")
    return model[0] if isinstance(model, tuple) else model


def _counted(cell: str, count: int | None, n: int) -> str:
    return cell if count is None or count == n else f"{cell} (n={count})"


def format_results(title: str, results: dict[str, dict]) -> str:
    """Markdown table: one row per method, pose errors (mean / median) and depth metrics. A cell whose
    figure is over another number of pairs than the title's N says how many: "(n=k)"."""
    lines = [
        f"**{title}** ({next(iter(results.values()))['pairs']} pairs)",
        "",
        "| method | rot. err. deg mean / med | transl. err. cm mean / med | transl. dir. deg mean / med "
        "| abs rel | sq rel | RMSE m | RMSE log | sc.-inv. RMSE log | δ<1.25 | depth coverage | s/pair |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, r in results.items():
        p, n = r["pose"], r["pairs"]
        cells = [method]
        for key, digits in (("rotation_deg", 3), ("translation_cm", 2), ("translation_direction_deg", 2)):
            stats = p[key]
            cell = f"{stats['mean']:.{digits}f} / {stats['median']:.{digits}f}"
            cells.append(_counted(cell, stats.get("count"), n))
        d = r.get("depth")
        if d:
            metrics = [d[k] for k in ("abs_rel", "sq_rel", "rmse", "rmse_log", "si_rmse_log", "delta_1")]
            cells += [_counted(f"{v:.3f}", r.get("depth_pairs"), n) for v in metrics]
        else:
            cells += ["–"] * 6
        has_gt = "depth_coverage" in r
        cells.append(_counted(f"{r['depth_coverage']:.3f}", r["depth_gt_pairs"], n) if has_gt else "–")
        cells.append(f"{r['seconds_per_pair']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
