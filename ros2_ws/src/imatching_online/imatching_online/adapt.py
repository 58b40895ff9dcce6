"""Label-free adaptation of the matcher (the iMatching upper level); its CLI is adapt_cli.py.

One step on a window of N frames:
1. query corners in the anchor frames, match them (with autograd on) into the other frames;
2. the sliding-window BA (imatching_online.ba) solves poses and landmarks from the *detached* matches;
   a failed window is counted and gives no step;
3. the loss is the reprojection error of the matcher's differentiable matches against the BA poses and
   landmarks held constant. At a stationary point of the BA the implicit terms dθ*/dφ vanish from the
   gradient (paper eq. 7), so one backward pass through the matcher is the whole gradient: no unrolling.
   Residuals are divided by the image size (max(W, H)) and go through a Huber kernel; the coarse match
   gets the same target (paper 3.2.3). Optional: a Sampson epipolar term on the BA-inlier matches;
4. Adam (lr 1e-4), gradient-norm clipping, then the rollback guard watches the BA inlier ratio.

Two regularisers against fitting the few views of a short clip (``anchor_pull`` 0.05 by default,
``augment`` off):
- ``augment``: the BA runs on matches of the clean images (no grad), the loss on matches of a photometrically
  augmented copy (gain, gamma, noise as in pretraining) of the same frames and queries, so the matcher is
  pulled towards the BA's answer under appearance changes rather than towards the look of these frames;
- ``anchor_pull``: after every optimiser step the weights move this fraction of the way back to the
  starting ones (an elastic anchor, decoupled from Adam's scaling like AdamW's weight decay).
"""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from banet_vo.config_fields import setting
from banet_vo.geometry import PinholeCamera

from imatching_online.ba import FailureStats, WindowBundleAdjuster, WindowConfig, WindowResult
from imatching_online.ba.multiview import focal_lengths, principal_point
from imatching_online.ba.window import checked_camera
from imatching_online.matcher.network import Matcher, MatchOutput
from imatching_online.matcher.queries import corner_queries
from imatching_online.matcher.train import augment


@dataclass(frozen=True)
class AdaptConfig:
    lr: float = setting(1e-4, "Adam learning rate of the matcher", range=(1e-9, 1.0))
    grad_clip: float = setting(1.0, "gradient-norm clip per step", range=(1e-6, 1e6))
    huber_px: float = 2.0  # Huber threshold of the reprojection residual, in pixels
    coarse_weight: float = 0.5  # weight of the coarse match's reprojection term
    epipolar_weight: float = setting(
        0.0, "weight of the Sampson epipolar term on BA inliers (0: off)", range=(0.0, 100.0)
    )
    queries_per_frame: int = setting(300, "corner queries per anchor frame", range=(10, 10_000))
    anchors: tuple[str, ...] = ("first", "middle")  # frames whose corners are matched into all others
    min_confidence: float = 0.0
    rollback_window: int = setting(8, "windows per rollback-guard block", range=(1, 10_000))
    rollback_tolerance: float = setting(
        0.1,
        "drop of the mean BA inlier ratio below the first block's that restores the last good weights",
        range=(1e-6, 1.0),
    )
    augment: bool = setting(
        False, "BA on the clean frames, loss on a photometrically augmented copy (regulariser)"
    )
    # Fraction of the way back to the starting weights after each step, [0, 1). 0.05: best of the
    # pre-registered validation on HoloLens (models/MATCHER_CARD.md); plain adaptation lost MMA there.
    anchor_pull: float = setting(
        0.05,
        "after each step, move the weights this fraction back to the loaded ones (0: off)",
        range=(0.0, 0.99),
    )
    # Whether a stream adapts at all (StreamAdapter: step, or evaluate only); the node's `adapt`.
    enabled: bool = setting(True, "true: update the matcher; false: run matching + BA and report only")

    def __post_init__(self) -> None:
        for name in ("lr", "grad_clip", "huber_px", "rollback_tolerance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"AdaptConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("coarse_weight", "epipolar_weight", "min_confidence"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"AdaptConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.anchor_pull < 1:
            raise ValueError(f"AdaptConfig.anchor_pull must be in [0, 1), got {self.anchor_pull}")
        if self.queries_per_frame < 10 or self.rollback_window < 1:
            raise ValueError("AdaptConfig.queries_per_frame must be >= 10 and rollback_window >= 1")
        if not self.anchors or any(a not in ("first", "middle", "last") for a in self.anchors):
            raise ValueError(f"AdaptConfig.anchors must be a subset of first/middle/last, got {self.anchors}")


@dataclass
class WindowMatches:
    """Differentiable matches of one window: per pair (a, b) the MatchOutput (B=1) and the query pixels."""

    outputs: dict[tuple[int, int], MatchOutput]
    queries: dict[tuple[int, int], torch.Tensor]  # (M, 2)
    query_ids: dict[tuple[int, int], np.ndarray] | None = None  # (M,) per pair; default 0..M-1 per anchor

    def for_ba(self) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Detached numpy matches {(a, b): (uv_a, uv_b, conf, query_ids)} for the BA."""
        out = {}
        for pair, o in self.outputs.items():
            q = self.queries[pair].detach().cpu().numpy().astype(np.float64)
            out[pair] = (
                q,
                o.uv[0].detach().cpu().numpy().astype(np.float64),
                o.confidence[0].detach().cpu().numpy().astype(np.float64),
                np.arange(len(q)) if self.query_ids is None else self.query_ids[pair],
            )
        return out


def anchor_frames(num_frames: int, anchors: tuple[str, ...]) -> list[int]:
    index = {"first": 0, "middle": num_frames // 2, "last": num_frames - 1}
    return sorted({index[a] for a in anchors})


def match_window(
    matcher: Matcher, images: torch.Tensor, host_images: list[np.ndarray], config: AdaptConfig
) -> WindowMatches:
    """Corners of the anchor frames matched into every other frame of the window (autograd on)."""
    n = images.shape[0]
    if len(host_images) != n or n < 2:
        raise ValueError(f"host_images must hold one image per frame (>= 2), got {len(host_images)} for {n}")
    feats = matcher.features(images)
    outputs, queries = {}, {}
    for a in anchor_frames(n, config.anchors):
        q = torch.from_numpy(corner_queries(host_images[a], config.queries_per_frame)).to(images.device)
        if len(q) < 10:
            continue
        fa = _slice(feats, a)
        for b in range(n):
            if b == a:
                continue
            outputs[(a, b)] = matcher.match(fa, _slice(feats, b), q.unsqueeze(0))
            queries[(a, b)] = q
    return WindowMatches(outputs, queries)


def _slice(feats, i: int):
    return type(feats)(feats.coarse[i : i + 1], feats.fine[i : i + 1], feats.size)


def _huber(x: torch.Tensor, delta: float) -> torch.Tensor:
    return torch.where(x <= delta, 0.5 * x.square(), delta * (x - 0.5 * delta))


def ba_targets(
    result: WindowResult, camera: PinholeCamera
) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """Per pair: (index of the match within the pair, BA reprojection of its landmark (px)) of every inlier
    observation produced by a match. Constants: computed in numpy from the BA solution."""
    if not result.success:
        raise ValueError("result must be a successful WindowResult")
    obs = result.observations
    from_match = obs.match_id >= 0
    frame, lm, mid = obs.frame[from_match], obs.landmark[from_match], obs.match_id[from_match]
    T_cw = np.linalg.inv(result.poses)  # (N, 4, 4)
    X = result.landmarks[lm]
    Xc = np.einsum("nij,nj->ni", T_cw[frame, :3, :3], X) + T_cw[frame, :3, 3]
    uv = (Xc[:, :2] / Xc[:, 2:3]) * focal_lengths(camera) + principal_point(camera)
    pair_index, within = result.tracks.match_pair_index(mid)
    out = {}
    for p, pair in enumerate(result.tracks.pairs):
        sel = pair_index == p
        if sel.any():
            out[pair] = (within[sel], uv[sel])
    return out


def reprojection_loss(
    matches: WindowMatches,
    result: WindowResult,
    camera: PinholeCamera,
    image_size: tuple[int, int],
    config: AdaptConfig,
) -> tuple[torch.Tensor, dict]:
    """The stationary-point loss: robust, size-normalised reprojection error of the differentiable matches
    against the BA landmarks and poses (constants)."""
    scale = float(max(image_size))
    delta = config.huber_px / scale
    terms, coarse_terms, raw = [], [], []
    for pair, (idx, target) in ba_targets(result, camera).items():
        o = matches.outputs[pair]
        t = torch.as_tensor(target, dtype=o.uv.dtype, device=o.uv.device)  # no grad: BA output is constant
        i = torch.as_tensor(idx, device=o.uv.device)
        r = (o.uv[0, i] - t).norm(dim=-1) / scale
        rc = (o.uv_coarse[0, i] - t).norm(dim=-1) / scale
        terms.append(_huber(r, delta))
        coarse_terms.append(_huber(rc, delta))
        raw.append(r.detach() * scale)
    if not terms:
        raise ValueError("the window has no observation produced by a match")
    fine = torch.cat(terms).mean()
    coarse = torch.cat(coarse_terms).mean()
    loss = (fine + config.coarse_weight * coarse) / delta  # / delta: O(1) values, Adam does not mind
    logs = {"observations": int(sum(len(x) for x in raw)), "reproj_px": float(torch.cat(raw).mean())}
    if config.epipolar_weight > 0:
        epi = epipolar_loss(matches, result, camera) / scale
        loss = loss + config.epipolar_weight * _huber(epi, delta).mean() / delta
        logs["epipolar_px"] = float(epi.detach().mean() * scale)
    return loss, logs


def epipolar_loss(matches: WindowMatches, result: WindowResult, camera: PinholeCamera) -> torch.Tensor:
    """Sampson distances (px) of the BA-inlier matches under the fundamental matrices of the BA poses."""
    Kinv = np.linalg.inv(camera.K)
    out = []
    for pair, inl in result.match_inliers.items():
        if not inl.any():
            continue
        a, b = pair
        T_ba = np.linalg.inv(result.poses[b]) @ result.poses[a]
        t = T_ba[:3, 3]
        tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
        Fm = Kinv.T @ tx @ T_ba[:3, :3] @ Kinv
        o = matches.outputs[pair]
        device, dtype = o.uv.device, o.uv.dtype  # the matcher's; the BA's poses and masks are on the host
        Ft = torch.as_tensor(Fm, dtype=dtype, device=device)
        idx = torch.as_tensor(np.flatnonzero(inl), device=device)
        ones = torch.ones(len(idx), 1, dtype=dtype, device=device)
        xa = torch.cat([matches.queries[pair].to(device)[idx].to(dtype), ones], 1)
        xb = torch.cat([o.uv[0, idx], ones], 1)
        Fxa = xa @ Ft.T
        Ftxb = xb @ Ft
        num = (xb * Fxa).sum(-1)
        den = Fxa[:, 0] ** 2 + Fxa[:, 1] ** 2 + Ftxb[:, 0] ** 2 + Ftxb[:, 1] ** 2
        out.append(num.abs() / den.clamp_min(1e-12).sqrt())
    if not out:
        return torch.zeros(1, device=next((o.uv.device for o in matches.outputs.values()), None))
    return torch.cat(out)


class RollbackGuard:
    """Restores the last good weights when the BA inlier ratio degrades.

    Windows are grouped in blocks of ``window``. The first block (taken with weights close to the starting
    ones) in which at least half the windows succeeded sets the reference: its mean inlier ratio, a failed
    window counting 0. (A block of mostly failed windows, e.g. while the camera starts moving, would set a
    reference near 0 that no later block falls below: the guard would never act.) After each later block,
    if the block mean is below reference - tolerance, the guard asks for a rollback to the weights saved
    at the last good block; otherwise the current weights become the last good ones.
    """

    def __init__(self, window: int = 8, tolerance: float = 0.1) -> None:
        if window < 1 or not tolerance > 0:
            raise ValueError(f"window must be >= 1 and tolerance > 0, got {window}, {tolerance}")
        self.window = window
        self.tolerance = tolerance
        self.reference: float | None = None
        self.block: list[float] = []
        self.rollbacks = 0
        self.good_state: dict | None = None

    @property
    def ready(self) -> bool:
        """Whether good weights are recorded: only once the first block has closed."""
        return self.reference is not None and self.good_state is not None

    def snapshot(self, matcher: torch.nn.Module, optimiser: torch.optim.Optimizer) -> None:
        self.good_state = {
            "model": copy.deepcopy(matcher.state_dict()),
            "optimiser": copy.deepcopy(optimiser.state_dict()),
        }

    def record(
        self, inlier_ratio: float | None, matcher: torch.nn.Module, optimiser: torch.optim.Optimizer
    ) -> str:
        """Add one window (None = failed); returns "pending", "accept" or "rollback" (weights restored)."""
        self.block.append(None if inlier_ratio is None else float(inlier_ratio))
        if len(self.block) < self.window:
            return "pending"
        succeeded = sum(r is not None for r in self.block)
        mean = float(np.mean([0.0 if r is None else r for r in self.block]))
        self.block = []
        if self.reference is None:
            if 2 * succeeded < self.window:
                return "pending"  # no reference from a block of mostly failed windows: the next one
            self.reference = mean
            self.snapshot(matcher, optimiser)
            return "accept"
        if mean < self.reference - self.tolerance:
            matcher.load_state_dict(self.good_state["model"])
            optimiser.load_state_dict(self.good_state["optimiser"])
            self.rollbacks += 1
            return "rollback"
        self.snapshot(matcher, optimiser)
        return "accept"


def inlier_ratio(result: WindowResult) -> float:
    usable = max(result.counts.get("usable_matches", 0), 1)
    return result.num_inlier_matches / usable


NON_FINITE = "non_finite_loss"  # StepReport.reason of a window whose loss or gradient was NaN / inf


@dataclass
class StepReport:
    success: bool
    reason: str = ""
    loss: float = float("nan")
    inlier_ratio: float | None = None
    rms_px: float = float("nan")
    guard: str = "pending"
    logs: dict = field(default_factory=dict)
    ba_s: float = 0.0
    step_s: float = 0.0


class OnlineAdapter:
    """The adaptation state of one stream: matcher, Adam, the window BA with its failure counts, rollback
    guard. `step` adapts on a window; `evaluate` runs the same matching and BA and only reports."""

    def __init__(
        self,
        matcher: Matcher,
        camera: PinholeCamera | None,
        config: AdaptConfig | None = None,
        ba_config: WindowConfig | None = None,
        seed: int = 0,
    ) -> None:
        """camera: intrinsics of the images `step` gets (None: set later with set_camera, before a step)."""
        self.matcher = matcher
        self.bundle_adjuster = WindowBundleAdjuster(camera, ba_config)
        self.config = AdaptConfig() if config is None else config
        self.optimiser = torch.optim.Adam(matcher.parameters(), lr=self.config.lr)
        self.guard = RollbackGuard(self.config.rollback_window, self.config.rollback_tolerance)
        self.steps_taken = 0
        # Every change of the weights (optimiser step, rollback): a saved matcher's version within a session.
        self.weight_changes = 0
        # Held while the weights change, so that another thread's copy of them is never half-updated.
        self.weights_lock = threading.Lock()
        self.anchor = (
            [p.detach().clone() for p in matcher.parameters()] if self.config.anchor_pull > 0 else None
        )
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def camera(self) -> PinholeCamera | None:
        """Intrinsics of the working images."""
        return self.bundle_adjuster.camera

    @property
    def ba_config(self) -> WindowConfig:
        return self.bundle_adjuster.config

    @property
    def stats(self) -> FailureStats:
        """Windows, successes and failures by reason, counted by the BA (and matching that gave nothing)."""
        return self.bundle_adjuster.stats

    def rollback(self) -> bool:
        """Restore the guard's last good weights and optimiser state; False when the guard has none yet (its
        first block has not closed). Not during a step: the caller keeps steps out."""
        with self.weights_lock:
            if not self.guard.ready:
                return False
            self.matcher.load_state_dict(self.guard.good_state["model"])
            self.optimiser.load_state_dict(self.guard.good_state["optimiser"])
            self.weight_changes += 1
            return True

    def _record(self, ratio: float | None) -> str:
        """The rollback guard's verdict on one window (None = failed), its rollback counted as a change."""
        with self.weights_lock:
            verdict = self.guard.record(ratio, self.matcher, self.optimiser)
            if verdict == "rollback":
                self.weight_changes += 1
            return verdict

    def set_camera(self, camera: PinholeCamera) -> None:
        """New intrinsics of the working images (the stream's camera or working size changed)."""
        self.bundle_adjuster.camera = checked_camera(camera)

    def _solve(self, matches: WindowMatches, num_frames: int) -> tuple[WindowResult | None, str, float]:
        """The window BA on the detached matches, its outcome counted: (result or None, why not, BA seconds).
        A window without matches fails as "too_few_matches" with no BA run (0 s)."""
        if not matches.outputs:
            self.stats.record(False, "too_few_matches")
            return None, "too_few_matches", 0.0
        t0 = time.perf_counter()
        result = self.bundle_adjuster(matches.for_ba(), num_frames)
        ba_s = time.perf_counter() - t0
        if not result.success:
            return None, f"{result.reason.value}: {result.detail}", ba_s
        return result, "", ba_s

    def evaluate(self, images: torch.Tensor, host_images: list[np.ndarray]) -> StepReport:
        """The same matching and BA as `step`, the loss reported; no gradient, no update, guard off."""
        t0 = time.perf_counter()
        with torch.no_grad():
            matches = match_window(self.matcher, images, host_images, self.config)
            result, reason, ba_s = self._solve(matches, images.shape[0])
            if result is None:
                return StepReport(False, reason, ba_s=ba_s, step_s=time.perf_counter() - t0)
            loss, logs = reprojection_loss(
                matches, result, self.camera, tuple(images.shape[-2:]), self.config
            )
        return StepReport(
            True,
            "",
            float(loss),
            inlier_ratio(result),
            result.rms_px,
            guard="off",
            logs=logs,
            ba_s=ba_s,
            step_s=time.perf_counter() - t0,
        )

    def step(self, images: torch.Tensor, host_images: list[np.ndarray]) -> StepReport:
        """One window: match, BA, and (if the BA succeeded) one optimiser step."""
        t0 = time.perf_counter()
        self.matcher.train()
        if self.config.augment:
            with torch.no_grad():
                ba_matches = match_window(self.matcher, images, host_images, self.config)
        else:
            matches = ba_matches = match_window(self.matcher, images, host_images, self.config)
        result, reason, ba_s = self._solve(ba_matches, images.shape[0])
        if result is None:
            report = StepReport(False, reason, ba_s=ba_s)
            report.guard = self._record(None)
            report.step_s = time.perf_counter() - t0
            return report
        if self.config.augment:  # same frames and corner queries, so match indices line up with the BA's
            matches = match_window(self.matcher, augment(images, self.generator), host_images, self.config)
        loss, logs = reprojection_loss(matches, result, self.camera, tuple(images.shape[-2:]), self.config)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        logs["grad_norm"] = float(
            torch.nn.utils.clip_grad_norm_(self.matcher.parameters(), self.config.grad_clip)
        )
        if not (math.isfinite(float(loss.detach())) and math.isfinite(logs["grad_norm"])):
            # A NaN/inf loss or gradient is never applied: the weights and Adam's moments stay as they were.
            self.optimiser.zero_grad(set_to_none=True)
            report = StepReport(False, NON_FINITE, float(loss.detach()), logs=logs, ba_s=ba_s)
            report.guard = self._record(None)
            report.step_s = time.perf_counter() - t0
            return report
        with self.weights_lock:
            self.optimiser.step()
            if self.anchor is not None:
                with torch.no_grad():
                    for p, p0 in zip(self.matcher.parameters(), self.anchor, strict=True):
                        p.lerp_(p0, self.config.anchor_pull)
            self.steps_taken += 1
            self.weight_changes += 1
        ratio = inlier_ratio(result)
        report = StepReport(True, "", float(loss.detach()), ratio, result.rms_px, logs=logs, ba_s=ba_s)
        report.guard = self._record(ratio)
        report.step_s = time.perf_counter() - t0
        return report
