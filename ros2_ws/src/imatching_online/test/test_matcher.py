"""Matcher network: pixel convention, exact matches on shifted features, gradients, config, queries, loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from banet_vo.geometry import PinholeCamera
from imatching_online.matcher.losses import supervised_loss
from imatching_online.matcher.network import (
    STRIDE_COARSE,
    STRIDE_FINE,
    Features,
    Matcher,
    MatcherConfig,
    cell_centres,
    sample_features,
)
from imatching_online.matcher.queries import corner_queries, fit_size, grid_queries, prepare_image

TINY = MatcherConfig(base_channels=8, coarse_channels=16, fine_channels=8, window_radius=2)


def test_sample_features_reads_cell_centres_exactly():
    # A stride-4 map whose channels hold the image pixel of each cell centre.
    h, w, s = 6, 8, STRIDE_COARSE
    centres = cell_centres(h, w, s, dtype=torch.float64).reshape(h, w, 2).permute(2, 0, 1)[None]
    uv = centres[0].permute(1, 2, 0).reshape(1, -1, 2)
    got = sample_features(centres, uv, (h * s, w * s))
    torch.testing.assert_close(got, uv)
    # Between centres the map is linear, so bilinear sampling returns the query itself.
    mid = torch.tensor([[[5.5 + 0.25, 9.5 + 1.0], [13.5 - 2.0, 10.0]]], dtype=torch.float64)
    torch.testing.assert_close(sample_features(centres, mid, (h * s, w * s)), mid)


def _shifted_features(
    shift_px: tuple[int, int], size=(64, 96), channels=1024, seed=0
) -> tuple[Features, Features]:
    """Smooth random features (random Fourier features: cosine similarity ~ a Gaussian of the distance)
    of image A, and the same feature *function* translated by shift_px, sampled at each level's cell
    centres."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    shift = torch.tensor(shift_px, dtype=torch.float64)

    def level(stride: int, length_px: float):
        omega = torch.randn(channels, 2, generator=gen, dtype=torch.float64) / length_px
        phase = torch.rand(channels, generator=gen, dtype=torch.float64) * 2 * torch.pi
        uv = cell_centres(h // stride, w // stride, stride, dtype=torch.float64)

        def sample(points):
            f = torch.cos(points @ omega.T + phase).T.reshape(1, channels, h // stride, w // stride)
            return F.normalize(f, dim=1)

        return sample(uv), sample(uv - shift)

    ca, cb = level(STRIDE_COARSE, 6.0)
    fa, fb = level(STRIDE_FINE, 3.0)
    return Features(ca, fa, size), Features(cb, fb, size)


def test_match_recovers_a_known_translation_to_subpixel():
    matcher = Matcher(MatcherConfig()).double()
    shift = (8, -4)
    feat_a, feat_b = _shifted_features(shift)
    queries = torch.tensor(
        [[[23.5, 27.5], [43.5, 35.5], [63.5, 19.5], [31.5, 43.5], [40.2, 30.7]]], dtype=torch.float64
    )
    out = matcher.match(feat_a, feat_b, queries)
    expected = queries + torch.tensor(shift, dtype=torch.float64)
    err_fine = (out.uv - expected).norm(dim=-1)
    err_coarse = (out.uv_coarse - expected).norm(dim=-1)
    assert err_fine.max() < 0.35 and err_coarse.max() < 1.0
    assert err_fine.mean() < err_coarse.mean()  # the fine window refines the coarse expectation
    assert ((out.confidence > 0) & (out.confidence <= 1)).all()


def test_match_is_differentiable_wrt_every_weight():
    torch.manual_seed(0)
    matcher = Matcher(TINY)
    a, b = torch.rand(2, 3, 48, 64), torch.rand(2, 3, 48, 64)
    q = torch.rand(2, 20, 2) * torch.tensor([63.0, 47.0])
    out = matcher(a, b, q)
    (out.uv.sum() + out.uv_coarse.sum()).backward()
    for name, p in matcher.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert out.uv.shape == (2, 20, 2) and out.confidence.shape == (2, 20)


def test_fine_window_centre_is_detached():
    # The fine match must not send gradients into the coarse expectation (CAPS-style stop-gradient).
    matcher = Matcher(TINY).double()
    feat_a, feat_b = _shifted_features((4, 4), channels=16)
    coarse_b = feat_b.coarse.clone().requires_grad_(True)
    fine_b = feat_b.fine.clone().requires_grad_(True)
    q = torch.tensor([[[30.0, 30.0]]], dtype=torch.float64)
    out = matcher.match(feat_a, Features(coarse_b, fine_b, feat_b.size), q)
    out.uv.sum().backward()
    assert coarse_b.grad is None or coarse_b.grad.abs().sum() == 0
    assert fine_b.grad.abs().sum() > 0


def test_bad_inputs_raise_value_errors():
    matcher = Matcher(TINY)
    with pytest.raises(ValueError, match="multiples of 8"):
        matcher.features(torch.rand(1, 3, 50, 64))
    with pytest.raises(ValueError, match="shape"):
        matcher.features(torch.rand(1, 1, 48, 64))
    feats = matcher.features(torch.rand(1, 3, 48, 64))
    with pytest.raises(ValueError, match="queries"):
        matcher.match(feats, feats, torch.rand(1, 5, 3))
    with pytest.raises(ValueError, match="window_radius"):
        MatcherConfig(window_radius=0)
    with pytest.raises(ValueError, match="unknown keys"):
        MatcherConfig.from_dict({"channels": 3})
    assert MatcherConfig.from_dict(TINY.to_dict()) == TINY


def test_supervised_loss_trains_a_tiny_matcher_on_a_translated_pair():
    # Image B is image A shifted by 6 px: after a few Adam steps the matches must get closer to the truth.
    # One intra-op thread: on the shared 2-core machine two threads made these 48x64 steps ~40x slower
    # (32 s instead of 0.5 s). The matcher is deterministic, so without training the error stays constant.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        base = torch.from_numpy(rng.random((1, 3, 56, 80))).float()
        base = F.avg_pool2d(base, 3, 1, 1)
        a, b = base[..., 8:56, 8:72], base[..., 8:56, 2:66]  # b(u + 6) = a(u)
        q = torch.from_numpy(rng.uniform([10, 10], [53, 37], (1, 64, 2))).float()
        gt = q + torch.tensor([6.0, 0.0])
        matcher = Matcher(TINY)
        opt = torch.optim.Adam(matcher.parameters(), lr=3e-3)
        errors = []
        for _ in range(20):
            out = matcher(a, b, q)
            loss, logs = supervised_loss(out, gt, TINY.window_radius)
            errors.append(logs["err_fine_px"])
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    # Measured: 9.7 px -> 0.7 px (ratio 0.08; 0.06-0.12 over seeds 0-5 and a smaller image).
    assert np.mean(errors[-5:]) < 0.3 * np.mean(errors[:5])


def test_grid_and_corner_queries():
    grid = grid_queries(48, 64, 16)
    assert grid.shape == (6, 2) and grid.min() == 8 and grid[:, 0].max() == 40 and grid[:, 1].max() == 24
    image = np.zeros((60, 80), np.uint8)
    image[20:40, 30:50] = 255  # a bright square has four corners
    corners = corner_queries(image, max_points=10, min_distance=5)
    expected = np.array([[30, 20], [49, 20], [30, 39], [49, 39]], float)
    dist = np.linalg.norm(corners[:, None] - expected[None], axis=-1).min(0)
    assert (dist < 2.0).all()
    with pytest.raises(ValueError, match="uint8"):
        corner_queries(image.astype(np.float32))


def test_prepare_image_scales_intrinsics_by_the_convention():
    cam = PinholeCamera(495.568, 495.482, 269.503, 169.194, 540, 360)
    w, h = fit_size(540, 360, 240)
    assert (w, h) == (240, 160)
    host, tensor, cam2 = prepare_image(np.zeros((360, 540, 3), np.uint8), cam, w, h)
    assert host.shape == (160, 240, 3) and tensor.shape == (1, 3, 160, 240)
    s = 240 / 540
    assert cam2.fx == pytest.approx(495.568 * s) and cam2.cx == pytest.approx(s * (269.503 + 0.5) - 0.5)
    assert fit_size(1226, 370, 416) == (416, 128)


def _shifted_pairs(n: int = 6, shift: int = 4):
    """n pairs of 48x64 random textures, B = A moved `shift` px right (exact ground truth off the edge)."""
    from imatching_online.matcher.synthetic_pairs import PairSet

    rng = np.random.default_rng(0)
    a = (rng.random((n, 48, 64 + shift, 3)) * 255).astype(np.uint8)
    u, v = np.meshgrid(np.arange(64, dtype=np.float32), np.arange(48, dtype=np.float32))
    gt = np.stack([u + shift, v], -1)
    gt[:, 64 - shift :] = np.nan
    return PairSet(
        np.ascontiguousarray(a[:, :, shift:]),
        np.ascontiguousarray(a[:, :, :64]),
        np.repeat(gt[None], n, 0),
        np.tile([50.0, 50.0, 31.5, 23.5], (n, 1)),
        np.tile(np.eye(4), (n, 1, 1)),
        np.zeros(n, np.int64),
    )


def test_a_resumed_pretraining_run_draws_what_the_uninterrupted_one_would(tmp_path, monkeypatch):
    """state.pt keeps the batch and augmentation generators: resumed from its save at step 2, a 4-step run
    ends with the weights of the same run never stopped (the step budget binds, not the wall clock)."""
    import shutil

    import imatching_online.matcher.train as train_module

    saves = []

    def save_and_keep(path, matcher, optimiser, state, *generators):
        save_state(path, matcher, optimiser, state, *generators)
        if state.step == 2 and not saves:  # what a run killed after its step-2 save leaves behind
            saves.append(shutil.copy(path, tmp_path / "stopped.pt"))

    save_state = train_module.save_state
    monkeypatch.setattr(train_module, "save_state", save_and_keep)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pairs = _shifted_pairs()
        settings = train_module.TrainSettings(
            steps=4, minutes=600.0, batch_size=2, queries=16, save_every=2, eval_every=100
        )
        torch.manual_seed(1)
        start = Matcher(TINY).state_dict()

        def run(state_path, resume=None):
            m = Matcher(TINY)
            m.load_state_dict(start)
            train_module.train(m, pairs, None, settings, state_path, resume)
            return m.state_dict()

        whole = run(tmp_path / "whole.pt")
        resume = torch.load(saves[0], weights_only=True)
        resumed = run(tmp_path / "resumed.pt", resume)
    finally:
        torch.set_num_threads(threads)
    assert resume["step"] == 2
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert not (tmp_path / "whole.pt.tmp").exists()
