"""BA-Net network: config presets and validation, output shapes and invariants, gradients to every part,
bf16 backbone with an fp32 BA, and the host-side ``predict``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from banet_vo.geometry.camera import PinholeCamera
from banet_vo.model import BANet, BANetConfig
from banet_vo.model.ba_layer import depth_from_coefficients
from banet_vo.model.checkpoint import load_checkpoint
from banet_vo.model.config import STORED_CONFIG_DEFAULTS

ROOT = Path(__file__).resolve().parents[4]
TINY = dict(
    image_width=64,
    image_height=48,
    channels=8,
    num_basis=4,
    iterations=(2, 1, 1),
    stem_channels=8,
    stem_stride=2,
    level2_channels=8,
    bottleneck_planes=(8, 8, 8, 8),
    bottleneck_blocks=(1, 1, 1, 1),
    bottleneck_expansion=2,
    norm="group",
    decoder_channels=(8, 8, 8, 8),
    damping_hidden=8,
)


def _tiny(**changes) -> BANetConfig:
    return BANetConfig.preset("small", **{**TINY, **changes})


def _inputs(config: BANetConfig, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w, h = config.image_width, config.image_height
    ref = torch.rand(batch, 3, h, w, generator=g)
    # The target: the reference shifted by one pixel plus a little noise, so there is something to align.
    tgt = (torch.roll(ref, shifts=1, dims=-1) + 0.02 * torch.rand(batch, 3, h, w, generator=g)).clamp(0, 1)
    intr = torch.tensor([[0.9 * w, 0.9 * w, (w - 1) / 2, (h - 1) / 2]]).expand(batch, 4).contiguous()
    return ref, tgt, intr


def _tiny_forward(seed: int, same_images: bool = False, **changes):
    """A tiny BANet drawn after torch.manual_seed(seed), run in eval mode without gradients on _inputs
    (on ref twice when same_images): (config, intrinsics, output)."""
    torch.manual_seed(seed)
    config = _tiny(**changes)
    model = BANet(config).eval()
    ref, tgt, intr = _inputs(config)
    with torch.no_grad():
        out = model(ref, ref if same_images else tgt, intr)
    return config, intr, out


def test_presets_match_the_paper_and_the_small_budget():
    paper = BANetConfig.preset("paper")
    assert (paper.channels, paper.num_basis, paper.image_width, paper.image_height) == (128, 128, 320, 240)
    assert paper.iterations == (5, 5, 5) and paper.bottleneck_blocks == (3, 4, 6, 3)
    assert paper.num_unknowns == 134 and paper.depth_size == (160, 120)
    small = BANetConfig.preset("small")
    assert (small.channels, small.num_basis, small.image_width, small.image_height) == (32, 16, 128, 96)
    assert small.depth_size == (64, 48) and small.num_levels == 3
    assert BANetConfig.preset("small", num_basis=8).num_basis == 8
    with pytest.raises(ValueError, match="unknown BANetConfig preset 'huge'"):
        BANetConfig.preset("huge")


def test_default_config_is_the_shipped_network_and_stored_dicts_keep_their_meaning():
    _, shipped, _ = load_checkpoint(ROOT / "models/banet_small_synthetic.safetensors", expected_kind="banet")
    assert BANetConfig() == BANetConfig.from_dict(shipped)
    assert BANetConfig() == BANetConfig.preset("small", separate_depth_damping=True)
    # a dict without a key gets what checkpoints were written against, not today's default
    assert BANetConfig.from_dict({}) == BANetConfig(**STORED_CONFIG_DEFAULTS)
    assert BANetConfig.from_dict({}).to_dict() == {**BANetConfig.preset("paper").to_dict(), **{
        "name": "custom", "depth_activation": "softplus", "depth_update": "additive",
        "depth0_stop_gradient": False}}  # fmt: skip


def test_config_dict_and_json_round_trip_and_reject_unknown_keys():
    config = BANetConfig.preset("small", extra={"note": "x"})
    data = config.to_dict()
    assert isinstance(data["iterations"], list)
    assert BANetConfig.from_dict(data) == config
    assert BANetConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match=r"unknown keys \['chanels'\]"):
        BANetConfig.from_dict({**data, "chanels": 3})
    with pytest.raises(ValueError, match="not valid JSON"):
        BANetConfig.from_json("{nope")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"channels": 0}, "channels"),
        ({"iterations": ()}, "iterations"),
        ({"iterations": (1, 1, 1, 1)}, "iterations"),
        ({"image_width": 100}, "multiples of 8"),
        ({"norm": "layer"}, "norm"),
        ({"backbone_dtype": "fp16"}, "backbone_dtype"),
        ({"stem_stride": 4}, "stem_stride"),
        ({"min_depth": -1.0}, "min_depth"),
        ({"initial_depth": 0.05}, "initial_depth"),
        ({"bottleneck_planes": (8, 8, 8)}, "bottleneck_planes"),
        ({"decoder_channels": (8, 8)}, "decoder_channels"),
        ({"depth_activation": "relu"}, "depth_activation"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        BANetConfig.preset("small", **changes)


def _decoder_io(model: BANet) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backbone maps of a random image, and the decoder's (basis, D0, raw depth-head output) for them."""
    ref, _, _ = _inputs(model.config, batch=1)
    with torch.no_grad():
        maps = model.backbone(ref)
        basis, d0 = model.decoder(maps)
        head = model.decoder.depth_head(basis)
    return maps, basis, d0, head


def test_old_config_dicts_keep_the_softplus_depth_head():
    """Run-1 checkpoints store configs without depth_activation or depth_update: they must load as softplus
    with the additive BA depth model, unchanged."""
    old = BANetConfig.preset("small", **TINY, initial_depth=3.0).to_dict()
    del old["depth_activation"], old["depth_update"]
    config = BANetConfig.from_dict(old)
    assert config.depth_activation == "softplus" and BANetConfig.from_dict({}).depth_activation == "softplus"
    assert config.depth_update == "additive" and BANetConfig.preset("small").depth_update == "bounded"
    with pytest.raises(ValueError, match="depth_update"):
        BANetConfig.preset("small", depth_update="log")
    torch.manual_seed(0)
    model = BANet(config).eval()
    assert float(model.decoder.depth_head.bias.detach()) == pytest.approx(np.log(np.expm1(3.0)))
    _, _, d0, head = _decoder_io(model)
    torch.testing.assert_close(d0, torch.nn.functional.softplus(head))


@pytest.mark.parametrize(("activation", "initial"), [("exp", 3.5), ("exp", 9.0), ("softplus", 3.0)])
def test_depth_head_starts_at_initial_depth(activation, initial):
    d0 = _tiny_forward(0, depth_activation=activation, initial_depth=initial)[2].depth_init
    assert (d0 > 0).all()
    # Weights start at std 1e-3, so D0 is initial_depth up to a small relative spread.
    assert float((d0 / initial - 1).abs().max()) < 0.05
    assert float(d0.median()) == pytest.approx(initial, rel=0.01)


def test_exp_depth_head_is_log_depth():
    torch.manual_seed(0)
    model = BANet(_tiny(depth_activation="exp", initial_depth=3.5)).eval()
    assert float(model.decoder.depth_head.bias.detach()) == pytest.approx(np.log(3.5))
    maps, _, d0, head = _decoder_io(model)
    torch.testing.assert_close(d0, torch.exp(head))
    # A bias step of +0.1 multiplies D0 by e^0.1 everywhere: an optimiser step is a relative change.
    with torch.no_grad():
        model.decoder.depth_head.bias += 0.1
        _, d0_up = model.decoder(maps)
    torch.testing.assert_close(d0_up / d0, torch.full_like(d0, float(np.exp(0.1))))
    assert BANetConfig.preset("small").depth_activation == "exp"
    assert BANetConfig.preset("paper").depth_activation == "exp"


def test_forward_shapes_and_invariants():
    config, intr, out = _tiny_forward(0)
    B, P = 2, 6 + config.num_basis
    assert out.pose.shape == (B, 7) and out.pose.dtype == torch.float32
    assert out.depth.shape == (B, 1, 24, 32) and out.depth_init.shape == (B, 1, 24, 32)
    assert (out.depth > 0).all() and torch.isfinite(out.depth).all()
    assert out.hessian.shape == (B, P, P) and torch.isfinite(out.hessian).all()
    torch.testing.assert_close(out.hessian, out.hessian.mT, rtol=1e-5, atol=1e-5 * out.hessian.abs().max())
    assert torch.linalg.eigvalsh(out.hessian.double()).min() > -1e-4 * out.hessian.abs().max()  # PSD
    assert out.cost.shape == (B,) and (out.cost >= 0).all() and (out.num_valid > 0).all()
    assert len(out.poses_per_level) == len(out.depths_per_level) == 3
    torch.testing.assert_close(out.poses_per_level[-1].tensor(), out.pose.tensor())
    assert len(out.lambdas) == sum(config.iterations) and all((lam > 0).all() for lam in out.lambdas)
    # Depth intrinsics follow the resize rule (half size: f/2, (c + 0.5)/2 - 0.5).
    expected = torch.stack(
        [intr[:, 0] / 2, intr[:, 1] / 2, (intr[:, 2] + 0.5) / 2 - 0.5, (intr[:, 3] + 0.5) / 2 - 0.5], -1
    )
    torch.testing.assert_close(out.depth_intrinsics, expected)
    # D0 starts near initial_depth and is positive.
    assert (out.depth_init > 0).all() and abs(float(out.depth_init.mean()) - config.initial_depth) < 0.5


def test_identical_images_give_the_identity_pose():
    """Zero residual at the identity: the LM step is exactly zero, whatever the (random) weights."""
    config, _, out = _tiny_forward(1, same_images=True)
    torch.testing.assert_close(out.pose.tensor(), torch.tensor([[0, 0, 0, 0, 0, 0, 1.0]]).expand(2, 7))
    torch.testing.assert_close(out.cost, torch.zeros(2))
    # And the final depth is the depth model at w = 0: D0 itself (multiplicative; floored if additive).
    zero = torch.zeros_like(out.depth_init)
    expected = depth_from_coefficients(out.depth_init, zero, config.min_depth, config.depth_update)[0]
    torch.testing.assert_close(out.depth, expected)
    if config.depth_update != "additive":
        torch.testing.assert_close(out.depth, out.depth_init)


@pytest.mark.parametrize("stop_gradient", [True, False], ids=["d0_stop_gradient", "d0_through_ba"])
def test_backward_reaches_every_parameter_with_finite_gradients(stop_gradient):
    torch.manual_seed(2)
    config = _tiny(depth0_stop_gradient=stop_gradient)
    model = BANet(config).train()
    ref, tgt, intr = _inputs(config)
    out = model(ref, tgt, intr)
    target_q = torch.tensor([0.01, -0.02, 0.0, 1.0])
    ba_loss = sum(
        (p.tensor()[:, 3:] - target_q).square().sum() + p.translation().square().sum()
        for p in out.poses_per_level
    )
    ba_loss = ba_loss + sum((d - 2.0).abs().mean() for d in out.depths_per_level)
    head = model.decoder.depth_head.weight
    (head_grad,) = torch.autograd.grad(ba_loss, head, retain_graph=True, allow_unused=True)
    # The stop-gradient keeps every BA-path gradient out of D0's own head; without it they reach it.
    assert (head_grad is None) == stop_gradient
    loss = ba_loss + (out.depth_init - 2.0).abs().mean()  # D0's own term (train loss.initial_depth)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    for part in ("backbone", "pyramid", "decoder", "ba.damping"):
        grads = [p.grad.abs().sum() for n, p in model.named_parameters() if n.startswith(part)]
        assert sum(grads) > 0, part


def test_bf16_backbone_keeps_the_ba_in_fp32():
    torch.manual_seed(3)
    config = _tiny(backbone_dtype="bf16")
    model = BANet(config).eval()
    ref, tgt, intr = _inputs(config)
    with torch.no_grad():
        parts = model.parts(ref, tgt, intr)
        out = model(ref, tgt, intr)
    assert all(f.dtype == torch.float32 for f in parts.features_ref + parts.features_tgt)
    assert parts.basis.dtype == torch.float32 and parts.depth0.dtype == torch.float32
    assert out.hessian.dtype == torch.float32 and out.depth.dtype == torch.float32
    assert torch.isfinite(out.pose.tensor()).all() and torch.isfinite(out.hessian).all()
    # Same weights in fp32: the bf16 networks change features only at bf16 precision.
    fp32 = BANet(config.replace(backbone_dtype="fp32")).eval()
    fp32.load_state_dict(model.state_dict())
    with torch.no_grad():
        parts32 = fp32.parts(ref, tgt, intr)
    rel = (parts.features_ref[-1] - parts32.features_ref[-1]).norm() / parts32.features_ref[-1].norm()
    assert 0 < rel < 0.05


def test_separate_depth_damping_starts_equal_to_the_shared_model_it_is_split_from():
    from banet_vo.model.damping import split_shared_damping

    torch.manual_seed(0)
    shared = BANet(_tiny()).eval()
    separate = BANet(_tiny(separate_depth_damping=True)).eval()
    with pytest.raises(RuntimeError, match="size mismatch"):
        separate.load_state_dict(shared.state_dict())
    split = split_shared_damping(shared.state_dict())
    with pytest.raises(ValueError, match="expected 1"):  # a second split is an error, not a silent no-op
        split_shared_damping(split)
    separate.load_state_dict(split)
    ref, tgt, intr = _inputs(separate.config)
    with torch.no_grad():
        a, b = shared(ref, tgt, intr), separate(ref, tgt, intr)
    torch.testing.assert_close(a.pose.tensor(), b.pose.tensor())
    torch.testing.assert_close(a.depth, b.depth)
    old = {k: v for k, v in _tiny().to_dict().items() if k != "separate_depth_damping"}
    assert BANetConfig.from_dict(old) == _tiny()  # configs written before the option load as shared λ


def test_forward_validates_inputs():
    model = BANet(_tiny())
    ref, tgt, intr = _inputs(model.config)
    with pytest.raises(ValueError, match="image_ref must have shape"):
        model(ref[:, :, :40], tgt, intr)
    with pytest.raises(ValueError, match="image_tgt must have shape"):
        model(ref, tgt[:, :1], intr)
    with pytest.raises(ValueError, match="intrinsics must have shape"):
        model(ref, tgt, intr[:1])
    with pytest.raises(ValueError, match="config must be a BANetConfig"):
        BANet({"channels": 8})


def test_predict_on_host_images_of_any_size():
    torch.manual_seed(4)
    model = BANet(_tiny()).eval()
    rng = np.random.default_rng(0)
    image = (rng.random((75, 100, 3)) * 255).astype(np.uint8)
    camera = PinholeCamera(90.0, 90.0, 49.5, 37.0, 100, 75)
    pred = model.predict(image, image, camera)
    np.testing.assert_allclose(pred.T_tgt_ref, np.eye(4), atol=1e-6)
    assert pred.depth.shape == (24, 32) and pred.depth.dtype == np.float32 and (pred.depth > 0).all()
    assert pred.depth_camera == camera.resized(64, 48).resized(32, 24)
    assert pred.hessian.shape == (10, 10) and pred.cost == pytest.approx(0.0, abs=1e-9)
    # Gray float images and intrinsics given as an array work the same way.
    gray = image.mean(axis=2) / 255.0
    shifted = np.roll(gray, 2, axis=1)
    pred2 = model.predict(gray, shifted, [90.0, 90.0, 49.5, 37.0], pose_init=np.eye(4))
    assert np.isfinite(pred2.T_tgt_ref).all() and pred2.cost > 0
    with pytest.raises(ValueError, match="sizes differ"):
        model.predict(image, image[:50], camera)
    with pytest.raises(ValueError, match="camera size"):
        model.predict(image, image, camera.resized(50, 40))
    with pytest.raises(ValueError, match="HxW or HxWx3"):
        model.predict(image[..., :2], image[..., :2], camera)
    assert model.training is False


@pytest.mark.slow
def test_paper_preset_runs_at_320x240():
    torch.manual_seed(5)
    config = BANetConfig.preset("paper", iterations=(1, 1, 1))
    model = BANet(config).eval()
    ref, tgt, intr = _inputs(config, batch=1)
    with torch.no_grad():
        parts = model.parts(ref, tgt, intr)
        out = model(ref, tgt, intr)
    assert [tuple(f.shape[-3:]) for f in parts.features_ref] == [
        (128, 30, 40),
        (128, 60, 80),
        (128, 120, 160),
    ]
    assert parts.basis.shape == (1, 128, 120, 160)
    assert out.depth.shape == (1, 1, 120, 160) and out.hessian.shape == (1, 134, 134)
    assert torch.isfinite(out.pose.tensor()).all()


@pytest.mark.gpu
def test_cuda_forward_with_bf16_networks_and_fp32_ba():
    torch.manual_seed(6)
    config = _tiny(backbone_dtype="bf16")
    model = BANet(config).cuda().eval()
    ref, tgt, intr = (t.cuda() for t in _inputs(config))
    with torch.no_grad():
        out = model(ref, tgt, intr)
        cpu = BANet(config).eval()
        cpu.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
        out_cpu = cpu(ref.cpu(), tgt.cpu(), intr.cpu())
    assert out.pose.device.type == "cuda" and out.hessian.dtype == torch.float32
    assert torch.isfinite(out.pose.tensor()).all() and torch.isfinite(out.depth).all()
    # bf16 kernels differ between devices; the poses still agree to a small fraction of a degree.
    assert (out.pose.tensor().cpu() - out_cpu.pose.tensor()).abs().max() < 1e-2
