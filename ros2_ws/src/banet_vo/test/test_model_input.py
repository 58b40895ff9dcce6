"""model_input: training, evaluation and inference hand BA-Net the same tensor for the same frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from banet_vo.data import Frame, InMemorySequence, PairDataset
from banet_vo.geometry import PinholeCamera
from banet_vo.model import BANet, BANetConfig
from banet_vo.model.input_image import model_input
from banet_vo.odometry import BANetEstimator, prepare_frame
from banet_vo.train.data import CachedPairs

MODEL_SIZE = (64, 48)


def _sequence(width: int, height: int, rgb: bool) -> InMemorySequence:
    rng = np.random.default_rng(3)
    camera = PinholeCamera(0.8 * width, 0.8 * width, width / 2 - 0.5, height / 2 - 0.5, width, height)
    shape = (height, width, 3) if rgb else (height, width)
    frames = [
        Frame(i, 0.1 * i, rng.integers(0, 256, shape, dtype=np.uint8), camera, None, np.eye(4))
        for i in range(2)
    ]
    return InMemorySequence(frames, name="random")


def _tiny_model(**changes) -> BANet:
    tiny = dict(
        image_width=MODEL_SIZE[0], image_height=MODEL_SIZE[1], channels=8, num_basis=4, iterations=(1, 1, 1),
        stem_channels=8, stem_stride=2, level2_channels=8, bottleneck_planes=(8, 8, 8, 8),
        bottleneck_blocks=(1, 1, 1, 1), bottleneck_expansion=2, norm="group", decoder_channels=(8, 8, 8, 8),
        damping_hidden=8,
    )  # fmt: skip
    return BANet(BANetConfig.preset("small", **{**tiny, **changes}))


@pytest.mark.parametrize(("width", "height"), [(160, 120), (64, 48), (40, 30), (150, 40)])
@pytest.mark.parametrize("rgb", [False, True])
def test_training_evaluation_and_inference_paths_give_identical_tensors(width, height, rgb):
    seq = _sequence(width, height, rgb)
    frame = seq[0]
    # training and evaluation (evaluation.pairs reads the same PairDataset)
    from_dataset = PairDataset(seq, strides=(1,), size=MODEL_SIZE, shuffle=False)[0]["image_ref"]
    # inference: the odometry and BANet.predict
    from_odometry = torch.from_numpy(prepare_frame(frame.image, frame.camera, 0.0, MODEL_SIZE).image)
    from_predict = _tiny_model()._host_image(frame.image, "image")
    assert from_dataset.shape == (3, MODEL_SIZE[1], MODEL_SIZE[0]) and from_dataset.dtype == torch.float32
    assert torch.equal(from_dataset, from_odometry)
    assert torch.equal(from_dataset, from_predict)


@pytest.mark.parametrize(("width", "height"), [(1226, 370), (540, 360), (160, 120)])
def test_keep_aspect_models_get_the_same_cropped_tensor_and_camera_in_odometry_and_training(width, height):
    """A keep_aspect model: the odometry prepares frames through the estimator's input geometry (scaled
    and centre-cropped, never squeezed to the config size), as training and BANet.predict do."""
    seq = _sequence(width, height, rgb=True)
    frame = seq[0]
    model = _tiny_model(input_geometry="keep_aspect")
    estimator = BANetEstimator(model, "cpu")
    from_odometry = prepare_frame(frame.image, frame.camera, 0.0, estimator.input_geometry)
    item = PairDataset(seq, strides=(1,), model_config=model.config, shuffle=False)[0]
    assert torch.equal(torch.from_numpy(from_odometry.image), item["image_ref"])
    assert torch.equal(torch.from_numpy(from_odometry.image), model._host_image(frame.image, "image"))
    np.testing.assert_allclose(
        from_odometry.camera.as_tensor(dtype=torch.float64).numpy(), item["intrinsics"].numpy(), rtol=1e-6
    )
    cam = from_odometry.camera  # one scale on both axes (up to rounding the resized size): not squeezed
    np.testing.assert_allclose(cam.fx / cam.fy, frame.camera.fx / frame.camera.fy, rtol=1e-2)


def test_cached_training_pairs_are_model_input_of_the_rendered_frames():
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (3, MODEL_SIZE[1], MODEL_SIZE[0], 3), dtype=np.uint8)
    cache = {
        "sequences": [
            {
                "scene": "driving", "seed": 0, "images": torch.from_numpy(images),
                "depths": torch.ones(3, MODEL_SIZE[1], MODEL_SIZE[0]),
                "poses": torch.eye(4, dtype=torch.float64).repeat(3, 1, 1),
                "intrinsics": torch.tensor([50.0, 50.0, 31.5, 23.5], dtype=torch.float64),
            }
        ]
    }  # fmt: skip
    item = CachedPairs(cache, {"driving": [1]})[0]
    camera = PinholeCamera(50.0, 50.0, 31.5, 23.5, *MODEL_SIZE)
    assert torch.equal(
        item["image_ref"], torch.from_numpy(prepare_frame(images[0], camera, 0.0, MODEL_SIZE).image)
    )


def test_resize_rule_area_when_shrinking_bilinear_when_growing():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    halved = model_input(image, 2, 2)[0] * 255.0
    expected = image.reshape(2, 2, 2, 2).astype(np.float64).mean(axis=(1, 3))  # 2x2 block means
    np.testing.assert_allclose(halved, np.round(expected), atol=0.5)
    grown = model_input(np.array([[0, 255]], dtype=np.uint8), 4, 1)[0, 0] * 255.0
    # pixel-centre bilinear: output centres at source x = -0.25, 0.25, 0.75, 1.25 (edges clamp)
    np.testing.assert_allclose(grown, [0.0, 63.75, 191.25, 255.0], atol=0.5)
    assert model_input(image.astype(np.float32) / 255.0, 4, 4).dtype == np.float32
    with pytest.raises(ValueError, match="uint8 or float"):
        model_input(image.astype(np.int32), 2, 2)
    with pytest.raises(ValueError, match="HxW or HxWx3"):
        model_input(np.zeros((4, 4, 2), np.uint8), 2, 2)
