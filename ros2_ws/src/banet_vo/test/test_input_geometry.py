"""Input geometry (model/input_image.py) and focal-aware depth: the aspect is kept, image / camera / depth
stay consistent, a resize does not change the metric depth, and stretch models behave as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from banet_vo.data import Frame, InMemorySequence, PairDataset
from banet_vo.geometry import PinholeCamera
from banet_vo.model import BANet, BANetConfig
from banet_vo.model.checkpoint import load_banet
from banet_vo.model.input_image import input_geometry, model_input

SHIPPED = Path(__file__).resolve().parents[4] / "models" / "banet_small_synthetic.safetensors"
TINY = dict(
    channels=8, num_basis=4, iterations=(1, 1, 1), stem_channels=8, level2_channels=8,
    bottleneck_planes=(8, 8, 8, 8), decoder_channels=(8, 8, 8, 8), damping_hidden=8,
)  # fmt: skip
KEEP = BANetConfig(input_geometry="keep_aspect")
KITTI_W, KITTI_H = 1226, 370
KITTI_CAMERA = PinholeCamera(707.0, 707.0, 601.9, 183.1, KITTI_W, KITTI_H)
# A ramp whose value is the source column: after the geometry, the value at an input pixel says which
# source column it came from.
COLUMN_RAMP = np.tile(np.arange(KITTI_W, dtype=np.float32) / (KITTI_W - 1), (KITTI_H, 1))


def _assert_camera_maps_source_columns(g) -> tuple[np.ndarray, np.ndarray]:
    """Check that the input camera of `g` maps each source column of COLUMN_RAMP to the input column that
    shows it; returns those input columns (middle row, away from the border) and their source columns."""
    cam = g.camera(KITTI_CAMERA)
    pixels = g.image(COLUMN_RAMP)[0]
    u_in = np.arange(10, g.size[0] - 10)  # away from the border (area averaging at the edge)
    source_col = pixels[g.size[1] // 2, u_in] * (KITTI_W - 1)
    # the camera's mapping: a ray through source column u lands at input column fx'/fx·(u − cx) + cx'
    predicted = cam.fx / KITTI_CAMERA.fx * (source_col - KITTI_CAMERA.cx) + cam.cx
    np.testing.assert_allclose(predicted, u_in, atol=0.05)
    return u_in, source_col


@pytest.mark.parametrize(
    ("size", "expected"),
    [((1226, 370), (200, 64)), ((540, 360), (136, 88)), ((320, 240), (128, 96)), ((128, 96), (128, 96))],
)
def test_keep_aspect_sizes_are_stride_multiples_near_the_pixel_budget(size, expected):
    g = input_geometry(KEEP, *size)
    assert g.size == expected
    assert g.size[0] % 8 == 0 and g.size[1] % 8 == 0
    # isotropic: one scale for both axes up to the whole-pixel rounding of the resized image
    sx, sy = g.resized[0] / size[0], g.resized[1] / size[1]
    assert abs(sx / sy - 1) < 0.02
    assert abs(g.size[0] / g.size[1] - size[0] / size[1]) / (size[0] / size[1]) < 0.11  # KITTI: 3.13 vs 3.31
    assert 0.8 < g.size[0] * g.size[1] / (128 * 96) < 1.25


def test_stretch_is_the_old_resize_for_run4_configs():
    g = input_geometry(BANetConfig(), KITTI_W, KITTI_H)
    assert g.size == g.resized == (128, 96) and g.offset == (0, 0)
    image = np.random.default_rng(0).integers(0, 256, (KITTI_H, KITTI_W), dtype=np.uint8)
    assert np.array_equal(g.image(image), model_input(image, 128, 96))
    assert g.camera(KITTI_CAMERA) == KITTI_CAMERA.resized(128, 96)


def test_shipped_checkpoint_loads_as_a_stretch_model_without_focal_scaling():
    if not SHIPPED.is_file():
        pytest.skip(f"{SHIPPED} is not in this checkout")
    config = load_banet(SHIPPED, "cpu").config
    assert config.input_geometry == "stretch" and config.canonical_focal == 0.0


def test_image_camera_and_depth_stay_aligned_through_scale_and_crop():
    g = input_geometry(KEEP, KITTI_W, KITTI_H)
    assert g.camera(KITTI_CAMERA).size == g.size
    u_in, source_col = _assert_camera_maps_source_columns(g)
    # depth: nearest sampling on the same grid (the ramp as a depth map comes out where the image does)
    depth = g.depth(COLUMN_RAMP * 10 + 1)
    assert depth.shape == (g.size[1], g.size[0])
    # measured 0.50 source columns; one input pixel is 6.1 of them, so a crop one pixel off fails
    np.testing.assert_allclose((depth[g.size[1] // 2, u_in] - 1) / 10 * (KITTI_W - 1), source_col, atol=1.0)


def _sequence(width: int, height: int) -> InMemorySequence:
    rng = np.random.default_rng(3)
    camera = PinholeCamera(0.8 * width, 0.8 * width, width / 2 - 0.5, height / 2 - 0.5, width, height)
    frames = [
        Frame(i, 0.1 * i, rng.integers(0, 256, (height, width, 3), dtype=np.uint8), camera, None, np.eye(4))
        for i in range(3)
    ]
    return InMemorySequence(frames, name="random")


def test_dataset_and_predict_prepare_keep_aspect_inputs_identically():
    model = BANet(KEEP.replace(**TINY)).eval()
    seq = _sequence(300, 100)
    item = PairDataset(seq, strides=(1,), model_config=model.config, shuffle=False)[0]
    assert tuple(item["image_ref"].shape) == (3, 64, 192)  # 300x100 at 0.64
    assert torch.equal(item["image_ref"], model._host_image(seq[0].image, "image"))
    expected = input_geometry(model.config, 300, 100).camera(seq.camera).as_tensor()
    assert torch.equal(item["intrinsics"], expected)
    with pytest.raises(ValueError, match="not both"):
        PairDataset(seq, size=(64, 48), model_config=model.config)


def test_dataset_frames_keep_pairs_inside_the_range():
    ds = PairDataset(_sequence(64, 48), strides=(1, 2), size=(32, 24), shuffle=False, frames=(1, 2))
    assert ds.pairs == [(1, 2)]
    with pytest.raises(ValueError, match="frames"):
        PairDataset(_sequence(64, 48), frames=(1, 3))


def test_focal_aware_depth_scales_with_the_focal_length_and_not_with_a_resize():
    torch.manual_seed(0)
    model = BANet(KEEP.replace(canonical_focal=100.0, **TINY)).eval()
    images = torch.rand(1, 3, 96, 128)
    K = torch.tensor([[100.0, 100.0, 63.5, 47.5]])
    with torch.no_grad():
        d1 = model.parts(images, images, K).depth0
        d2 = model.parts(images, images, K * torch.tensor([2.0, 2.0, 1.0, 1.0])).depth0
    torch.testing.assert_close(d2, 2 * d1)  # same pixels seen with twice the focal: twice as far
    # A host image and the same image at 2x: the same model input, hence the same metric depth.
    rng = np.random.default_rng(1)
    small = (rng.random((120, 200, 3)) * 255).astype(np.uint8)
    import cv2

    small = cv2.GaussianBlur(small, (5, 5), 1.5)
    large = cv2.resize(small, (400, 240), interpolation=cv2.INTER_LINEAR)
    cam_small = PinholeCamera(150.0, 150.0, 99.5, 59.5, 200, 120)
    cam_large = cam_small.resized(400, 240)
    p_small = model.predict(small, small, cam_small)
    p_large = model.predict(large, large, cam_large)
    assert p_small.depth.shape == p_large.depth.shape
    np.testing.assert_allclose(p_small.depth_camera.fx, p_large.depth_camera.fx, rtol=1e-3)
    np.testing.assert_allclose(np.median(p_large.depth / p_small.depth), 1.0, atol=0.03)


def test_keep_aspect_model_refuses_inputs_off_the_stride_grid():
    model = BANet(KEEP.replace(**TINY))
    K = torch.tensor([[50.0, 50.0, 30.0, 20.0]])
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.rand(1, 3, 44, 60), torch.rand(1, 3, 44, 60), K)
    out = model(torch.rand(1, 3, 40, 200), torch.rand(1, 3, 40, 200), K)  # 5:1 is fine
    assert tuple(out.depth.shape) == (1, 1, 20, 100)


def test_config_refuses_unknown_geometry_and_negative_focal():
    with pytest.raises(ValueError, match="input_geometry"):
        BANetConfig(input_geometry="pad")
    with pytest.raises(ValueError, match="canonical_focal"):
        BANetConfig(canonical_focal=-1.0)
    stored = BANetConfig(input_geometry="keep_aspect", canonical_focal=100.0).to_dict()
    assert BANetConfig.from_dict(stored).canonical_focal == 100.0
    del stored["input_geometry"], stored["canonical_focal"]
    old = BANetConfig.from_dict(stored)
    assert old.input_geometry == "stretch" and old.canonical_focal == 0.0


def test_zoomed_geometry_is_sharp_crop_with_the_focal_times_the_zoom():
    base = input_geometry(KEEP, KITTI_W, KITTI_H)
    g = base.zoomed(1.8, 0.25, 0.9)
    assert g.size == base.size and g.resized[0] == round(base.resized[0] * 1.8)
    assert g.camera(KITTI_CAMERA).fx == pytest.approx(base.camera(KITTI_CAMERA).fx * 1.8, rel=0.01)
    _assert_camera_maps_source_columns(g)
    assert base.zoomed(1.0).offset == base.offset or base.zoomed(1.0).resized == base.resized
    with pytest.raises(ValueError, match="zoom"):
        base.zoomed(0.5)


def test_dataset_zoom_draws_from_torch_and_keeps_intrinsics_with_the_pixels():
    seq = _sequence(600, 200)
    ds = PairDataset(seq, model_config=KEEP, shuffle=False, zoom_max=2.0)
    torch.manual_seed(5)
    focals = {round(float(ds[0]["intrinsics"][0]), 3) for _ in range(20)}
    assert len(focals) > 5 and min(focals) == pytest.approx(float(ds.camera.fx), rel=1e-6)
    assert max(focals) <= 2.0 * ds.camera.fx + 1e-3
    torch.manual_seed(5)
    again = {round(float(ds[0]["intrinsics"][0]), 3) for _ in range(20)}
    assert again == focals  # resumable: the draws come from torch's generator
