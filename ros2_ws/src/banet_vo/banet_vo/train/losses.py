"""BA-Net training losses (paper §4.5): rotation as a quaternion distance, metric translation, berHu depth.

Poses are relative poses T_tgt_ref as pypose SE3 LieTensors (layout [tx, ty, tz, qx, qy, qz, qw]).
Depth is z-depth in metres with 0 = invalid ground truth. All losses are means over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import pypose as pp
import torch
import torch.nn.functional as F

from banet_vo.train.numbers import coerce_floats

__all__ = [
    "LossWeights",
    "banet_loss",
    "berhu_loss",
    "downsample_depth_nearest",
    "rotation_loss",
    "translation_loss",
]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the three terms and of the coarse levels (the finest level always weighs 1)."""

    rotation: float = 20.0  # quaternion distance ≈ angle/2 in radians: 1 deg ≈ 0.0087 (x20 ≈ 0.17)
    translation: float = 1.0  # metres
    depth: float = 1.0  # berHu of the depth error, in log space by default (see depth_space)
    # Same berHu on the initial depth D0 (before the BA), at the depth resolution. 0 = off (the paper).
    # Required by models with depth0_stop_gradient (the presets), whose D0 learns from nothing else.
    initial_depth: float = 1.0
    coarse_levels: float = 0.5  # weight of each earlier (coarser) level's pose/depth
    max_depth: float = 50.0  # ground truth beyond this is ignored (far street ends, near-sky)
    # "log": berHu of log(D) − log(D*): one scale for 2 m rooms and 50 m streets, and a bounded gradient
    # when the BA throws a depth far off (berHu in metres made the first small run diverge at step ~60).
    # "metric": berHu of D − D* in metres, as the paper.
    depth_space: str = "log"
    # Pairs without depth labels (KITTI: poses only): photometric error of the target warped into the
    # reference with D0 and with the final depth under the ground-truth pose, and edge-aware smoothness of
    # D0 (train/photometric.py). 0 = off (runs 1-4).
    photometric: float = 0.0
    smoothness: float = 0.0

    def __post_init__(self) -> None:
        coerce_floats(self, "LossWeights.")
        for name in (
            "rotation", "translation", "depth", "initial_depth", "coarse_levels", "photometric", "smoothness"
        ):  # fmt: skip
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"LossWeights.{name} must be a number >= 0, got {value!r}")
        if not self.max_depth > 0:
            raise ValueError(f"LossWeights.max_depth must be > 0, got {self.max_depth!r}")
        if self.depth_space not in ("log", "metric"):
            raise ValueError(f"LossWeights.depth_space must be 'log' or 'metric', got {self.depth_space!r}")


def _as_se3(pose: pp.LieTensor | torch.Tensor, name: str) -> pp.LieTensor:
    if isinstance(pose, pp.LieTensor):
        return pose
    if isinstance(pose, torch.Tensor) and pose.shape[-2:] == (4, 4):
        return pp.mat2SE3(pose, check=False)
    raise ValueError(f"{name} must be a pypose SE3 or (B, 4, 4) matrices, got {type(pose).__name__}")


def rotation_loss(pose: pp.LieTensor, pose_gt: pp.LieTensor | torch.Tensor) -> torch.Tensor:
    """‖q − q*‖, with the sign of q* chosen to match q (q and −q are the same rotation)."""
    q = _as_se3(pose, "pose").tensor()[..., 3:7]
    q_gt = _as_se3(pose_gt, "pose_gt").tensor()[..., 3:7].to(q)
    dist = torch.minimum((q - q_gt).norm(dim=-1), (q + q_gt).norm(dim=-1))
    return dist.mean()


def translation_loss(pose: pp.LieTensor, pose_gt: pp.LieTensor | torch.Tensor) -> torch.Tensor:
    """‖t − t*‖ in metres (t: translation of T_tgt_ref)."""
    t = _as_se3(pose, "pose").tensor()[..., :3]
    t_gt = _as_se3(pose_gt, "pose_gt").tensor()[..., :3].to(t)
    return (t - t_gt).norm(dim=-1).mean()


def downsample_depth_nearest(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 1, H, W) → (B, 1, h, w) by nearest sampling at the output pixel centres (never averages across
    depth edges or into invalid zeros). ``size`` is (h, w)."""
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must have shape (B, 1, H, W), got {tuple(depth.shape)}")
    if tuple(depth.shape[-2:]) == tuple(size):
        return depth
    return F.interpolate(depth, size=size, mode="nearest-exact")


def berhu_loss(
    pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, c_fraction: float = 0.2
) -> torch.Tensor:
    """Reverse Huber (Laina et al.): |x| if |x| ≤ c, (x² + c²) / 2c otherwise, c = c_fraction · max|x| of
    the batch (detached), averaged over valid pixels. ``pred``, ``gt`` (B, 1, h, w); ``valid`` bool."""
    if pred.shape != gt.shape or valid.shape != gt.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)}, gt {tuple(gt.shape)} and valid {tuple(valid.shape)} must match"
        )
    if valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool mask, got {valid.dtype}")
    if not bool(valid.any()):
        return pred.sum() * 0.0  # no supervision in this batch; keeps the graph and the dtype
    diff = (pred - gt)[valid].abs()
    c = (c_fraction * diff.max()).detach().clamp_min(1e-6)
    loss = torch.where(diff <= c, diff, (diff.square() + c * c) / (2 * c))
    return loss.mean()


def banet_loss(
    poses_per_level: list[pp.LieTensor],
    depths_per_level: list[torch.Tensor],
    pose_gt: pp.LieTensor | torch.Tensor,
    depth_gt: torch.Tensor,
    weights: LossWeights = LossWeights(),
    depth_init: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over levels (coarse → fine; coarse ones weighted by ``weights.coarse_levels``) of
    w_r·L_rot + w_t·L_trans + w_d·berHu(depth error, log or metric per ``weights.depth_space``), plus
    ``weights.initial_depth`` · the same berHu of ``depth_init`` (D0, (B, 1, h, w)) when that weight is > 0.
    ``depth_gt`` (B, 1, H, W) at any resolution ≥ the depth maps; it is nearest-downsampled to each.
    Returns the loss and the finest level's terms as floats (plus ``depth_init`` when used)."""
    if not poses_per_level or len(poses_per_level) != len(depths_per_level):
        raise ValueError(
            f"poses_per_level ({len(poses_per_level)}) and depths_per_level ({len(depths_per_level)}) must "
            "be non-empty and of equal length"
        )
    if weights.initial_depth > 0 and depth_init is None:
        raise ValueError("depth_init is required when LossWeights.initial_depth > 0")
    pose_gt = _as_se3(pose_gt, "pose_gt")
    total = torch.zeros((), dtype=depths_per_level[-1].dtype, device=depths_per_level[-1].device)
    terms: dict[str, float] = {}
    last = len(poses_per_level) - 1
    for level, (pose, depth) in enumerate(zip(poses_per_level, depths_per_level, strict=True)):
        gt = downsample_depth_nearest(depth_gt.to(depth), tuple(depth.shape[-2:]))
        valid = (gt > 0) & (gt <= weights.max_depth)
        rot = rotation_loss(pose, pose_gt)
        trans = translation_loss(pose, pose_gt)
        dep = _depth_term(depth, gt, valid, weights.depth_space)
        level_loss = weights.rotation * rot + weights.translation * trans + weights.depth * dep
        total = total + (1.0 if level == last else weights.coarse_levels) * level_loss.to(total.dtype)
        if level == last:
            terms = {
                "rotation": float(rot.detach()),
                "translation": float(trans.detach()),
                "depth": float(dep.detach()),
            }
    if weights.initial_depth > 0:
        gt = downsample_depth_nearest(depth_gt.to(depth_init), tuple(depth_init.shape[-2:]))
        valid = (gt > 0) & (gt <= weights.max_depth)
        dep0 = _depth_term(depth_init, gt, valid, weights.depth_space)
        total = total + weights.initial_depth * dep0.to(total.dtype)
        terms["depth_init"] = float(dep0.detach())
    terms["loss"] = float(total.detach())
    return total, terms


def _depth_term(depth: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, space: str) -> torch.Tensor:
    if space == "log":
        safe_gt = torch.where(valid, gt, torch.ones_like(gt))
        return berhu_loss(depth.clamp_min(1e-3).log(), safe_gt.log(), valid)
    return berhu_loss(depth, gt, valid)
