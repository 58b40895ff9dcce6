"""Training augmentation: gray pairs (a mono camera), and the random stream of runs without them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from banet_vo.train.augment import AugmentedPairs, to_gray
from banet_vo.train.config import DataConfig


def _pairs(n: int = 4) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [
        {
            "image_ref": torch.rand(3, 12, 16, generator=g),
            "image_tgt": torch.rand(3, 12, 16, generator=g),
            "depth_ref": torch.rand(1, 12, 16, generator=g) + 1.0,
            "intrinsics": torch.tensor([20.0, 20.0, 7.5, 5.5]),
        }
        for _ in range(n)
    ]


def test_gray_is_opencvs_luma_in_every_channel() -> None:
    image = _pairs(1)[0]["image_ref"]
    gray = to_gray(image)
    rgb8 = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    expected = cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    for channel in gray:
        np.testing.assert_allclose(channel.numpy(), expected, atol=1.0 / 255)
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_gray_one_turns_both_images_and_nothing_else() -> None:
    items = _pairs()
    out = AugmentedPairs(items, gray=1.0)[2]
    for key in ("image_ref", "image_tgt"):
        assert torch.equal(out[key], to_gray(items[2][key]))
    assert torch.equal(out["depth_ref"], items[2]["depth_ref"])
    assert torch.equal(out["intrinsics"], items[2]["intrinsics"])
    assert torch.equal(items[2]["image_ref"], _pairs()[2]["image_ref"])  # the source item is not changed


def test_without_gray_an_item_draws_what_it_drew_before() -> None:
    """Runs made before the option (gray 0) resume with the same augmentations: one item takes exactly five
    numbers from torch's generator, as it always did."""
    data = AugmentedPairs(_pairs(), zoom_max=1.5, brightness=0.2)
    torch.manual_seed(7)
    data[0]
    after_item = torch.rand(1)
    torch.manual_seed(7)
    torch.rand(5)
    assert torch.equal(after_item, torch.rand(1))


def test_gray_is_drawn_with_its_probability() -> None:
    torch.manual_seed(3)
    items = _pairs(1) * 400
    data = AugmentedPairs(items, gray=0.3)
    images = [data[k]["image_ref"] for k in range(400)]
    gray = sum(bool(torch.equal(image[0], image[1])) for image in images)
    assert 0.22 * 400 < gray < 0.38 * 400


def test_gray_probability_is_checked() -> None:
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="gray must be a probability"):
            AugmentedPairs(_pairs(), gray=bad)
        with pytest.raises(ValueError, match=r"data\.gray must be a probability"):
            DataConfig(gray=bad)
    assert DataConfig(gray=0.2).gray == 0.2
