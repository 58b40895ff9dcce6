"""Self-supervised depth for pairs without depth labels (KITTI here has poses only).

With the ground-truth relative pose the warp of the target image into the reference camera is metric: a
depth that is too short or too long moves the warped pixels off their match, so the photometric error
supervises depth *with* scale, which is what the odometry needs from BA-Net's D0. The error is the usual
mix of SSIM and L1 (0.85 / 0.15, Godard et al.), on images area-averaged to the depth grid, with two masks:
pixels that warp outside the target or behind it, and an auto-mask that keeps only pixels where the
warped error beats the unwarped one (Godard et al. 2019): static pixels, sky and the ego car's bonnet say
nothing about depth. An edge-aware smoothness term on mean-normalised inverse depth fills textureless
regions.

``warp_score`` is not a loss but a score of a model's own depth and pose (banet-vo-adapt-stream's guard):
every pixel counts, and one that the warp sends out of view or behind the camera scores the error of the
unwarped target (what "no motion" explains), so a model cannot improve its score by warping pixels away.
"""

from __future__ import annotations

import pypose as pp
import torch
import torch.nn.functional as F

from banet_vo.geometry.warp import warp_image

__all__ = [
    "image_at",
    "photometric_depth_loss",
    "photometric_error",
    "smoothness_loss",
    "warp_score",
]

_SSIM_C1, _SSIM_C2 = 0.01**2, 0.03**2
_SSIM_WEIGHT = 0.85


def image_at(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) area-averaged to size (h, w) (the depth grid is half the input)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="area")


def _ssim_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1 − SSIM) / 2 per pixel over 3x3 windows (reflection padded), in [0, 1]."""
    x, y = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    var_x = F.avg_pool2d(x * x, 3, 1) - mu_x**2
    var_y = F.avg_pool2d(y * y, 3, 1) - mu_y**2
    cov = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + _SSIM_C1) * (2 * cov + _SSIM_C2)) / (
        (mu_x**2 + mu_y**2 + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
    )
    return ((1 - ssim) / 2).clamp(0, 1)


def photometric_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, H, W): 0.85·(1 − SSIM)/2 + 0.15·|a − b|, averaged over channels."""
    l1 = (a - b).abs()
    return (_SSIM_WEIGHT * _ssim_distance(a, b) + (1 - _SSIM_WEIGHT) * l1).mean(1)


def photometric_depth_loss(
    depth: torch.Tensor,
    image_ref: torch.Tensor,
    image_tgt: torch.Tensor,
    T_tgt_ref: pp.LieTensor | torch.Tensor,
    depth_intrinsics: torch.Tensor,
    samples: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean masked photometric error of the target warped into the reference with ``depth`` (B, 1, h, w)
    of the reference and the (ground-truth) pose; ``samples`` (B,) bool selects the pairs that count
    (default all). Images (B, 3, H, W) at the input size; ``depth_intrinsics`` (B, 4) of the depth grid."""
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must have shape (B, 1, h, w), got {tuple(depth.shape)}")
    size = tuple(depth.shape[-2:])
    ref, tgt = image_at(image_ref.to(depth), size), image_at(image_tgt.to(depth), size)
    warped, inside = warp_image(tgt, depth[:, 0], T_tgt_ref, depth_intrinsics)
    error = photometric_error(warped, ref)
    with torch.no_grad():
        unwarped = photometric_error(tgt, ref)
    mask = inside & (error.detach() < unwarped)
    if samples is not None:
        mask = mask & samples.view(-1, 1, 1).to(mask.device)
    if not bool(mask.any()):
        return depth.sum() * 0.0  # nothing to supervise; keeps the graph
    return error[mask].mean()


def warp_score(
    depth: torch.Tensor,
    image_ref: torch.Tensor,
    image_tgt: torch.Tensor,
    T_tgt_ref: pp.LieTensor | torch.Tensor,
    depth_intrinsics: torch.Tensor,
) -> torch.Tensor:
    """(B,) mean photometric error over *every* pixel of the depth grid of the target warped into the
    reference with ``depth`` (B, 1, h, w) and the pose. A pixel that warps outside the target, behind its
    camera or from an invalid depth scores the unwarped error there (target against reference as they
    are): the static-camera explanation, so a warp that sends every pixel away scores exactly what a model
    predicting no motion scores, and a model whose warp beats "no motion" scores less. Not the largest
    error: a correct warp of a moving camera legitimately sends border pixels out of view (44 % of a
    rendered driving pair at its true pose), and that would rank it below a model predicting no motion.
    No auto-mask: the pixel set is the same for any depth and pose, so two models' scores compare
    (photometric_depth_loss, whose pixels depend on the warp, gives 0 for a warp that sends every pixel
    away)."""
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must have shape (B, 1, h, w), got {tuple(depth.shape)}")
    size = tuple(depth.shape[-2:])
    ref, tgt = image_at(image_ref.to(depth), size), image_at(image_tgt.to(depth), size)
    warped, inside = warp_image(tgt, depth[:, 0], T_tgt_ref, depth_intrinsics)
    error = torch.where(inside, photometric_error(warped, ref), photometric_error(tgt, ref))
    return error.flatten(1).mean(1)


def smoothness_loss(
    depth: torch.Tensor, image_ref: torch.Tensor, samples: torch.Tensor | None = None
) -> torch.Tensor:
    """Edge-aware smoothness of mean-normalised inverse depth: |∂ d| · exp(−|∂ I|), x and y."""
    inv = 1.0 / depth.clamp_min(1e-3)
    inv = inv / inv.mean(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    gray = image_at(image_ref.to(depth), tuple(depth.shape[-2:])).mean(1, keepdim=True)
    dx = (inv[..., :, 1:] - inv[..., :, :-1]).abs() * torch.exp(-(gray[..., :, 1:] - gray[..., :, :-1]).abs())
    dy = (inv[..., 1:, :] - inv[..., :-1, :]).abs() * torch.exp(-(gray[..., 1:, :] - gray[..., :-1, :]).abs())
    per_sample = dx.mean(dim=(1, 2, 3)) + dy.mean(dim=(1, 2, 3))
    if samples is not None:
        if not bool(samples.any()):
            return depth.sum() * 0.0
        per_sample = per_sample[samples.to(per_sample.device)]
    return per_sample.mean()


def unlabelled_depth_loss(
    depth_init: torch.Tensor,
    depth_final: torch.Tensor,
    image_ref: torch.Tensor,
    image_tgt: torch.Tensor,
    pose_gt: pp.LieTensor | torch.Tensor,
    depth_intrinsics: torch.Tensor,
    depth_gt: torch.Tensor,
    photometric: float,
    smoothness: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The self-supervised depth terms on the pairs of the batch whose reference has no depth label
    (``depth_gt`` all ≤ 0): photometric·(L_photo(D0) + L_photo(D)) + smoothness·L_smooth(D0). Labelled pairs
    get their depth from the supervised terms and are left out. Returns the loss and its float terms."""
    samples = ~(depth_gt > 0).flatten(1).any(1)
    zero = depth_init.sum() * 0.0
    if not bool(samples.any()) or not (photometric > 0 or smoothness > 0):
        return zero, {}
    photo = photometric_depth_loss(depth_init, image_ref, image_tgt, pose_gt, depth_intrinsics, samples)
    photo = photo + photometric_depth_loss(
        depth_final, image_ref, image_tgt, pose_gt, depth_intrinsics, samples
    )
    smooth = smoothness_loss(depth_init, image_ref, samples)
    loss = photometric * photo + smoothness * smooth
    return loss, {"photometric": float(photo.detach()), "smoothness": float(smooth.detach())}
