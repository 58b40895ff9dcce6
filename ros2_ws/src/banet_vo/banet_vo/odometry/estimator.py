"""Two-view estimators the odometry runs on (keyframe, current) pairs, and the BA-Net one.

The pipeline hands an estimator two `PreparedFrame`s (images already at the model's resolution, with
the intrinsics for that resolution) and gets a `PairEstimate` back. The current frame is BA-Net's
*reference* (the frame that carries the depth), the keyframe its *target*, so the depth that comes back
belongs to the newest frame (the one the node publishes with the input header) and the pose is
T_kf_cur = T_tgt_ref: it maps current-camera points into the keyframe camera.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pypose as pp
import torch

from banet_vo.geometry import PinholeCamera
from banet_vo.model.checkpoint import load_banet
from banet_vo.model.input_image import InputGeometry, input_geometry
from banet_vo.odometry.config import DEVICES
from banet_vo.odometry.depth_calibration import DepthCalibration, load_beside

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class PreparedFrame:
    """One input frame at the estimator's resolution."""

    stamp: float  # seconds
    image: np.ndarray  # (3, H, W) float32 in [0, 1], gray replicated to 3 channels
    camera: PinholeCamera  # intrinsics of `image` (the input camera resized to the model size)
    source_camera: PinholeCamera  # intrinsics of the image as it came in


@dataclass(frozen=True, eq=False)
class PairEstimate:
    """What an estimator returns for (reference = current, target = keyframe)."""

    T_tgt_ref: np.ndarray  # 4x4 float64: current camera → keyframe camera
    depth: np.ndarray  # (h, w) float32 metres along z of the current frame, 0 where invalid
    depth_camera: PinholeCamera  # intrinsics of `depth`
    hessian: np.ndarray  # (6+K, 6+K) float64 AᵀA for a left perturbation of T_tgt_ref, then K depth terms
    residual_variance: float  # σ² of one residual component at the solution (scales AᵀA⁻¹ to a covariance)
    cost: float  # final BA cost (mean squared feature residual per pixel)
    # Reference pixels that land inside the keyframe at the final pose (None: the estimator does not say).
    # 0 means the BA diverged out of view: the cost is then 0 and says nothing.
    valid_pixels: int | None = None


class PairEstimator(Protocol):
    """Anything that estimates the relative pose and the reference depth of a prepared pair."""

    input_size: tuple[int, int]  # (width, height) frames are prepared at

    def estimate(
        self, reference: PreparedFrame, target: PreparedFrame, pose_init: np.ndarray | None = None
    ) -> PairEstimate: ...


def prepare_frame(
    image: np.ndarray,
    camera: PinholeCamera,
    stamp: float,
    target: tuple[int, int] | Callable[[int, int], InputGeometry],
) -> PreparedFrame:
    """Validate a host image and make it model input, with its intrinsics. `target` is a (width, height)
    to stretch to, or an estimator's `input_geometry(width, height)` (keep_aspect models: scaled and
    centre-cropped, never squeezed); either way through `banet_vo.model.input_image`, the pixels training
    used."""
    if not isinstance(camera, PinholeCamera):
        raise ValueError(f"camera must be a PinholeCamera, got {type(camera).__name__}")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"image must be a uint8 numpy array, got {getattr(image, 'dtype', type(image))}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image must be H×W gray or H×W×3 RGB, got shape {image.shape}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"image must not be empty, got shape {image.shape}")
    if (width, height) != camera.size:
        raise ValueError(f"image is {width}x{height} but camera is {camera.width}x{camera.height}")
    if not np.isfinite(stamp):
        raise ValueError(f"stamp must be finite, got {stamp}")
    if callable(target):
        geometry = target(width, height)
    else:
        out_w, out_h = target
        geometry = InputGeometry((width, height), (out_w, out_h), (0, 0), (out_w, out_h))
    return PreparedFrame(float(stamp), geometry.image(image), geometry.camera(camera), camera)


def with_mean_intensity(frame: PreparedFrame, mean: float) -> PreparedFrame:
    """The frame with its image's gain set so that its mean intensity is `mean` (saturating at 1), as a
    camera's exposure would have made it; a black image is left as it is."""
    current = float(frame.image.mean())
    if current <= 0.0:
        return frame
    image = np.clip(frame.image * np.float32(mean / current), 0.0, 1.0)
    return replace(frame, image=image)


def resolve_device(name: str) -> Any:
    """torch.device for "auto" (CUDA when available), "cuda" (ValueError when absent) or "cpu"."""

    if name not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False")
    return torch.device(name)


# Passes of the model before a node takes frames: CUDA's start-up, then TorchScript's later compiles.
WARM_UP_PASSES = 3


class BANetEstimator:
    """Runs a `banet_vo.model.BANet` on prepared pairs (no gradients, eval mode, fp32 BA)."""

    def __init__(self, model: Any, device: Any = None) -> None:
        self.model = model
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device).eval()
        config = model.config
        self.input_size = (int(config.image_width), int(config.image_height))
        self.channels = int(config.channels)
        self.config = config
        # The curve shipped beside the checkpoint (odometry.depth_calibration); the odometry decides whether
        # to apply it (OdometryConfig.depth_calibration).
        self.depth_calibration: DepthCalibration | None = None

    def input_geometry(self, width: int, height: int) -> InputGeometry:
        """Where a width x height frame goes for this model (its config's input_geometry)."""
        return input_geometry(self.config, width, height)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto") -> BANetEstimator:
        """Load a BA-Net checkpoint (banet_vo.model.checkpoint format); ValueError when it cannot be used."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"model file {path} does not exist")
        torch_device = resolve_device(device)

        model = load_banet(path, device=torch_device)
        estimator = cls(model, torch_device)
        estimator.depth_calibration = load_beside(path)
        return estimator

    def warm_up(self, passes: int | None = None) -> list[float]:
        """Estimate one textured pair `passes` times (through `estimate`, unseeded first, then from an
        identity seed, as the odometry calls it); returns the seconds of each pass. By default
        WARM_UP_PASSES on a GPU and one on the CPU, where nothing is compiled on a later call.

        On a GPU the first pass pays for CUDA's start-up (context, library handles, kernel loading: 4-5 s on
        an H200 against 0.11 s per pair after it). After one such pass the node's next pair still took
        9-21 s there. pypose's TorchScript functions compile their fused kernels on a later call than the
        first, and more passes take that before frames arrive. This is not yet confirmed on a GPU; the
        per-pass times in the node's log will say. The node runs this on its inference thread before it
        subscribes."""
        if passes is None:
            passes = WARM_UP_PASSES if self.device.type == "cuda" else 1
        if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
            raise ValueError(f"passes must be an int >= 1, got {passes!r}")
        width, height = self.input_size
        rng = np.random.default_rng(0)
        texture = rng.random((3, height // 4 + 1, width // 4 + 2), dtype=np.float32)
        big = torch.nn.functional.interpolate(torch.from_numpy(texture)[None], scale_factor=4, mode="bicubic")
        big = big[0].clamp(0, 1).numpy()
        camera = PinholeCamera(0.8 * width, 0.8 * width, (width - 1) / 2, (height - 1) / 2, width, height)
        reference = PreparedFrame(0.0, np.ascontiguousarray(big[:, :height, :width]), camera, camera)
        target = PreparedFrame(0.1, np.ascontiguousarray(big[:, :height, 4 : width + 4]), camera, camera)
        seconds = []
        for k in range(passes):
            start = time.perf_counter()
            self.estimate(reference, target, pose_init=None if k == 0 else np.eye(4))
            seconds.append(time.perf_counter() - start)
        return seconds

    def estimate(
        self, reference: PreparedFrame, target: PreparedFrame, pose_init: np.ndarray | None = None
    ) -> PairEstimate:
        def tensor(frame: PreparedFrame) -> torch.Tensor:
            return torch.from_numpy(frame.image)[None].to(self.device)

        intrinsics = reference.camera.as_tensor(dtype=torch.float32, device=self.device)[None]
        init = None
        if pose_init is not None:
            # A seed composed through the map may be off SO(3) by more than pypose's check allows in
            # float32 (1e-5 refused it, and the keyframe lost its depth): the quaternion is taken as it is.
            seed = torch.as_tensor(pose_init, dtype=torch.float32, device=self.device)[None]
            init = pp.mat2SE3(seed, check=False)
        with torch.inference_mode():
            out = self.model(tensor(reference), tensor(target), intrinsics, pose_init=init)
        T = out.pose.matrix()[0].double().cpu().numpy()
        depth = out.depth[0, 0].float().cpu().numpy()
        fx, fy, cx, cy = (float(v) for v in out.depth_intrinsics[0].cpu())
        depth_camera = PinholeCamera(fx, fy, cx, cy, depth.shape[1], depth.shape[0])
        cost = float(out.cost[0])
        return PairEstimate(
            T_tgt_ref=T,
            depth=depth,
            depth_camera=depth_camera,
            hessian=out.hessian[0].double().cpu().numpy(),
            residual_variance=cost / self.channels,
            cost=cost,
            valid_pixels=int(out.num_valid[0]),
        )
