"""Training-only augmentation of prepared pairs: random zoom (a crop resized back up, the intrinsics to
match), brightness, and gray (a pair as a mono camera records it).

Why zoom: with focal-aware depth (``canonical_focal``) the depth head must tell metric depth from apparent
size. Each training source has one camera (TartanAir 64 px, KITTI 122 px, synthetic 76 / 100 px at the
input), so without zoom the head can learn "this kind of scene, this depth" and the focal factor only
rescales a dataset prior. A zoom by z multiplies the focal by z and must multiply the head's canonical
depth by 1/z for the same metric depth: the same scene at several focal lengths.
Why gray: many cameras are mono (KITTI's image_0, EuRoC, most machine-vision cameras), and BA-Net sees
them as gray in all three channels. A network trained on colour alone reads depth off colour: with the
shipped model on HoloLens, the same frames in gray moved the learned scale from 0.886 to 0.686 of the truth
(benchmarks/results/real_clips_gray.md).
Randomness comes from torch's generator, which the training checkpoints save, so a resumed run draws the
same augmentations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = ["AugmentedPairs", "to_gray", "zoom_pair"]

# ITU-R BT.601 luma weights of R, G, B: what OpenCV's RGB2GRAY, and a mono camera's response roughly, give.
LUMA = (0.299, 0.587, 0.114)


def to_gray(image: torch.Tensor) -> torch.Tensor:
    """A (3, H, W) RGB image as its luma in all three channels (the model's input for a gray camera)."""
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device)[:, None, None]
    return (image * weights).sum(0, keepdim=True).expand_as(image).clone()


def zoom_pair(item: dict, zoom: float, x0: float, y0: float) -> dict:
    """The pair seen through the window of 1/zoom of its size at (x0, y0) (fractions of the free margin),
    resized back to the input size: images bilinear, depth nearest, intrinsics fx·z and
    cx' = (cx + ½ − u0)·z − ½ (u0: the window's left edge in pixels)."""
    if zoom <= 1.0:
        return item
    _, H, W = item["image_ref"].shape
    w, h = W / zoom, H / zoom
    u0, v0 = x0 * (W - w), y0 * (H - h)
    # affine grid over the window (align_corners=False: pixel centres at (u + ½)/W)
    xs = (u0 + (torch.arange(W) + 0.5) * (w / W)) / W * 2 - 1
    ys = (v0 + (torch.arange(H) + 0.5) * (h / H)) / H * 2 - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)[None]
    out = dict(item)
    for key in ("image_ref", "image_tgt"):
        out[key] = F.grid_sample(item[key][None], grid, mode="bilinear", align_corners=False)[0]
    depth = F.grid_sample(item["depth_ref"][None].float(), grid, mode="nearest", align_corners=False)[0]
    out["depth_ref"] = depth
    if "depth_valid" in item:
        out["depth_valid"] = depth > 0
    fx, fy, cx, cy = item["intrinsics"].tolist()
    out["intrinsics"] = torch.tensor(
        [fx * zoom, fy * zoom, (cx + 0.5 - u0) * zoom - 0.5, (cy + 0.5 - v0) * zoom - 0.5],
        dtype=item["intrinsics"].dtype,
    )
    return out


class AugmentedPairs(Dataset):
    """``dataset`` with, per item, zoom z ~ U(1, zoom_max) at a uniform window position (with probability
    ``zoom_probability``), one brightness gain ~ U(1 − brightness, 1 + brightness) for both images, and
    with probability ``gray`` both images in gray (to_gray). With ``gray`` 0 an item takes exactly the
    random numbers it took before the option existed, so earlier runs resume and replay as they were."""

    def __init__(
        self,
        dataset: Dataset,
        zoom_max: float = 1.0,
        brightness: float = 0.0,
        zoom_probability: float = 0.5,
        gray: float = 0.0,
    ) -> None:
        if not 0.0 <= float(gray) <= 1.0:
            raise ValueError(f"gray must be a probability in [0, 1], got {gray}")
        self.dataset = dataset
        self.zoom_max = float(zoom_max)
        self.brightness = float(brightness)
        self.zoom_probability = float(zoom_probability)
        self.gray = float(gray)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, k: int) -> dict:
        item = self.dataset[k]
        draw = torch.rand(5)
        if self.zoom_max > 1.0 and float(draw[0]) < self.zoom_probability:
            zoom = 1.0 + float(draw[1]) * (self.zoom_max - 1.0)
            item = zoom_pair(item, zoom, float(draw[2]), float(draw[3]))
        if self.brightness > 0:
            gain = 1.0 + (2 * float(draw[4]) - 1) * self.brightness
            item = dict(item)
            for key in ("image_ref", "image_tgt"):
                item[key] = (item[key] * gain).clamp(0, 1)
        if self.gray > 0 and float(torch.rand(1)) < self.gray:
            item = dict(item)
            for key in ("image_ref", "image_tgt"):
                item[key] = to_gray(item[key])
        return item
