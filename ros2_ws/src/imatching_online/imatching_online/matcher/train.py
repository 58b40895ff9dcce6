"""Supervised pretraining loop of the matcher on pre-rendered synthetic pairs (PairSet).

Each step: a batch of pairs, photometric augmentation of each image independently (gain, gamma, noise:
the synthetic world is clean, real cameras are not), M random query pixels with ground truth per pair,
the CAPS-style loss (losses.py), Adam with a cosine learning rate over the step or time budget, whichever
ends first. Training state (weights, optimiser, step, history) is saved every ``save_every`` steps so a
killed run can resume.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from imatching_online.matcher.losses import supervised_loss
from imatching_online.matcher.network import Matcher
from imatching_online.matcher.synthetic_pairs import PairSet


@dataclass
class TrainSettings:
    steps: int = 3000
    minutes: float = 35.0  # wall-clock budget; the schedule follows whichever budget ends first
    batch_size: int = 6
    queries: int = 160
    lr: float = 1e-3
    min_lr: float = 2e-5
    grad_clip: float = 1.0
    eval_every: int = 200
    save_every: int = 100
    seed: int = 0


@dataclass
class TrainState:
    step: int = 0
    elapsed_s: float = 0.0
    history: list[dict] = field(default_factory=list)


def augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per-image random gain, gamma and Gaussian noise of (B, 3, H, W) images in [0, 1]."""
    b = images.shape[0]
    gain = torch.empty(b, 1, 1, 1).uniform_(0.6, 1.4, generator=gen)
    gamma = torch.empty(b, 1, 1, 1).uniform_(0.7, 1.4, generator=gen)
    sigma = torch.empty(b, 1, 1, 1).uniform_(0.0, 0.03, generator=gen)
    noise = torch.randn(images.shape, generator=gen) * sigma
    # Drawn on the CPU generator (reproducible whatever the device), then moved to the images.
    gain, gamma, noise = (t.to(images.device, images.dtype) for t in (gain, gamma, noise))
    return ((images.clamp_min(1e-4) ** gamma) * gain + noise).clamp(0, 1)


def sample_batch(
    pairs: PairSet, index: np.ndarray, queries: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images_a, images_b (B, 3, H, W), query pixels (B, M, 2), ground truth (B, M, 2))."""
    qs, gts = [], []
    for i in index:
        gt = pairs.gt_uv[i]
        rows, cols = np.nonzero(np.isfinite(gt[..., 0]))
        pick = rng.choice(len(rows), size=queries, replace=len(rows) < queries)
        qs.append(np.stack([cols[pick], rows[pick]], 1))
        gts.append(gt[rows[pick], cols[pick]])
    a = torch.from_numpy(pairs.images_a[index]).permute(0, 3, 1, 2).float() / 255.0
    b = torch.from_numpy(pairs.images_b[index]).permute(0, 3, 1, 2).float() / 255.0
    return a, b, torch.from_numpy(np.stack(qs)).float(), torch.from_numpy(np.stack(gts)).float()


@torch.no_grad()
def evaluate_pairs(matcher: Matcher, pairs: PairSet, queries: int = 200, seed: int = 123) -> dict[str, float]:
    """Pooled MMA at 1/2/5 px (fine and coarse) on random ground-truth pixels of every pair."""
    rng = np.random.default_rng(seed)
    was_training = matcher.training
    matcher.eval()
    errs, errs_c = [], []
    for start in range(0, len(pairs), 8):
        index = np.arange(start, min(start + 8, len(pairs)))
        a, b, q, gt = sample_batch(pairs, index, queries, rng)
        out = matcher(a, b, q)
        errs.append((out.uv - gt).norm(dim=-1).flatten())
        errs_c.append((out.uv_coarse - gt).norm(dim=-1).flatten())
    matcher.train(was_training)
    e, ec = torch.cat(errs), torch.cat(errs_c)
    result = {f"mma@{t}px": float((e <= t).float().mean()) for t in (1, 2, 5)}
    result.update({f"coarse_mma@{t}px": float((ec <= t).float().mean()) for t in (1, 2, 5)})
    result["median_err_px"] = float(e.median())
    return result


def train(
    matcher: Matcher,
    train_pairs: PairSet,
    val_pairs: PairSet | None,
    settings: TrainSettings,
    state_path: Path | None = None,
    resume: dict | None = None,
) -> TrainState:
    """Run the loop; returns the final state (history holds the periodic evaluations)."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    optimiser = torch.optim.Adam(matcher.parameters(), lr=settings.lr)
    state = TrainState()
    if resume is not None:
        matcher.load_state_dict(resume["model"])
        optimiser.load_state_dict(resume["optimiser"])
        state = TrainState(resume["step"], resume["elapsed_s"], resume["history"])
        if "numpy_rng" in resume:  # a state written before the generators were kept draws afresh
            rng.bit_generator.state = resume["numpy_rng"]
            gen.set_state(resume["torch_generator"])
    matcher.train()
    budget_s = settings.minutes * 60.0
    t_start = time.perf_counter() - state.elapsed_s
    running: dict[str, float] = {}
    while state.step < settings.steps:
        elapsed = time.perf_counter() - t_start
        progress = max(state.step / settings.steps, elapsed / budget_s)
        if progress >= 1.0:
            break
        lr = settings.min_lr + 0.5 * (settings.lr - settings.min_lr) * (1 + math.cos(math.pi * progress))
        for group in optimiser.param_groups:
            group["lr"] = lr
        index = rng.choice(len(train_pairs), size=settings.batch_size, replace=False)
        a, b, q, gt = sample_batch(train_pairs, index, settings.queries, rng)
        out = matcher(augment(a, gen), augment(b, gen), q)
        loss, logs = supervised_loss(out, gt, matcher.config.window_radius)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {state.step}: {logs}")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(matcher.parameters(), settings.grad_clip)
        optimiser.step()
        state.step += 1
        state.elapsed_s = time.perf_counter() - t_start
        for k, v in logs.items():
            running[k] = 0.9 * running.get(k, v) + 0.1 * v
        if state.step % 20 == 0:
            eta = min(
                (settings.steps - state.step) * state.elapsed_s / state.step, budget_s - state.elapsed_s
            )
            text = " ".join(f"{k}={v:.3f}" for k, v in running.items())
            print(
                f"step {state.step} lr={lr:.2e} {text} elapsed={state.elapsed_s:.0f}s eta={eta:.0f}s",
                file=sys.stderr,
            )
        if val_pairs is not None and state.step % settings.eval_every == 0:
            metrics = evaluate_pairs(matcher, val_pairs)
            state.history.append({"step": state.step, "elapsed_s": round(state.elapsed_s, 1), **metrics})
            print(f"eval step {state.step}: {metrics}", file=sys.stderr)
        if state_path is not None and state.step % settings.save_every == 0:
            save_state(state_path, matcher, optimiser, state, rng, gen)
    if val_pairs is not None and (not state.history or state.history[-1]["step"] != state.step):
        metrics = evaluate_pairs(matcher, val_pairs)
        state.history.append({"step": state.step, "elapsed_s": round(state.elapsed_s, 1), **metrics})
        print(f"eval step {state.step}: {metrics}", file=sys.stderr)
    if state_path is not None:
        save_state(state_path, matcher, optimiser, state, rng, gen)
    return state


def save_state(
    path: Path,
    matcher: Matcher,
    optimiser: torch.optim.Optimizer,
    state: TrainState,
    rng: np.random.Generator,
    gen: torch.Generator,
) -> None:
    """Resumable training state (torch.save, atomic: fsync'd before the rename), with the batch and
    augmentation generators, so a resumed run draws what the uninterrupted one would have. Not the
    shipped format: see matcher.io."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(
            {
                "model": matcher.state_dict(),
                "optimiser": optimiser.state_dict(),
                "config": matcher.config.to_dict(),
                "step": state.step,
                "elapsed_s": state.elapsed_s,
                "history": state.history,
                "numpy_rng": rng.bit_generator.state,
                "torch_generator": gen.get_state(),
            },
            f,
        )
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
