"""Adaptation: the stationary-point loss against BA constants, skipped failed windows, the rollback guard,
and the checkpoint round trip of matcher weights."""

from __future__ import annotations

from types import SimpleNamespace

import imatching_online.adapt as adapt
import numpy as np
import pytest
import torch
from banet_vo.geometry import PinholeCamera
from imatching_online.adapt import (
    AdaptConfig,
    OnlineAdapter,
    RollbackGuard,
    WindowMatches,
    ba_targets,
    reprojection_loss,
)
from imatching_online.ba import WindowConfig, solve_window
from imatching_online.ba.synthetic import make_window
from imatching_online.matcher.network import Matcher, MatcherConfig, MatchOutput

TINY = MatcherConfig(base_channels=8, coarse_channels=16, fine_channels=8, window_radius=2)
FAST_BA = WindowConfig(passes=2, lm_iterations=5)
# Tests that run the real window BA take several seconds on a shared CPU.


@pytest.fixture(scope="module")
def solved():
    window = make_window(num_frames=4, queries_per_anchor=60, seed=3, width=320, height=240, focal=250.0)
    result = solve_window(window.camera, window.matches, 4, FAST_BA)
    assert result.success, result.detail
    return window, result


def _matches_from(window, values: dict | None = None, requires_grad: bool = True) -> WindowMatches:
    """WindowMatches whose fine/coarse matches are leaf tensors holding the window's matched pixels."""
    outputs, queries = {}, {}
    for pair, m in window.matches.items():
        uv = torch.tensor(m.uv_b if values is None else values[pair], dtype=torch.float64)[None]
        uv = uv.clone().requires_grad_(requires_grad)
        ones = torch.ones(uv.shape[:2], dtype=torch.float64)
        outputs[pair] = MatchOutput(uv, uv, ones, ones, ones)
        queries[pair] = torch.tensor(m.uv_a, dtype=torch.float64)
    return WindowMatches(outputs, queries)


@pytest.mark.slow
def test_ba_targets_reproduce_the_ba_reprojection_errors(solved):
    window, result = solved
    targets = ba_targets(result, window.camera)
    errors = []
    for pair, (idx, uv) in targets.items():
        errors.append(np.linalg.norm(window.matches[pair].uv_b[idx] - uv, axis=1))
    obs = result.observations
    expected = np.sort(obs.error_px[obs.match_id >= 0])
    np.testing.assert_allclose(np.sort(np.concatenate(errors)), expected, atol=1e-6)
    # Inliers of a 0.5 px-noise window sit close to their landmark's projection.
    assert np.median(expected) < 1.0


@pytest.mark.slow
def test_loss_gradient_only_reaches_ba_inlier_matches_and_points_at_the_ba_reprojection(solved):
    window, result = solved
    matches = _matches_from(window)
    config = AdaptConfig(coarse_weight=0.0)
    loss, logs = reprojection_loss(matches, result, window.camera, (window.height, window.width), config)
    loss.backward()
    targets = ba_targets(result, window.camera)
    for pair, out in matches.outputs.items():
        grad = out.uv.grad[0].numpy()
        used = np.zeros(len(grad), bool)
        if pair in targets:
            idx, target = targets[pair]
            used[idx] = True
            residual = window.matches[pair].uv_b[idx] - target
            # Gradient descent moves each observed match towards the BA reprojection of its landmark.
            moving = np.linalg.norm(residual, axis=1) > 1e-6
            assert (np.sum(grad[idx][moving] * residual[moving], axis=1) > 0).all()
        assert np.all(grad[~used] == 0)  # outliers and unobserved matches get no gradient
    assert logs["observations"] == int((result.observations.match_id >= 0).sum())


def test_coarse_term_is_computed_on_the_coarse_matches(solved):
    """Fine matches exactly on the BA reprojections, coarse ones 1 px to the right: the fine term is 0,
    the coarse term is coarse_weight · ½(1 px / size)² / δ per observation (Huber's quadratic zone), and
    only the coarse matches get a gradient. Feeding the fine output to the coarse term gives 0 here."""
    window, result = solved
    targets = ba_targets(result, window.camera)
    size = (window.height, window.width)
    scale = float(max(size))
    config = AdaptConfig(coarse_weight=0.5)
    outputs, queries = {}, {}
    for pair, m in window.matches.items():
        fine = m.uv_b.copy()
        if pair in targets:
            idx, target = targets[pair]
            fine[idx] = target
        uv = torch.tensor(fine, dtype=torch.float64)[None].requires_grad_(True)
        uv_coarse = torch.tensor(fine + np.array([1.0, 0.0]), dtype=torch.float64)[None].requires_grad_(True)
        ones = torch.ones(uv.shape[:2], dtype=torch.float64)
        outputs[pair] = MatchOutput(uv, uv_coarse, ones, ones, ones)
        queries[pair] = torch.tensor(m.uv_a, dtype=torch.float64)
    loss, _ = reprojection_loss(WindowMatches(outputs, queries), result, window.camera, size, config)
    delta = config.huber_px / scale
    assert float(loss.detach()) == pytest.approx(
        config.coarse_weight * 0.5 * (1.0 / scale) ** 2 / delta, rel=1e-9
    )
    loss.backward()
    for pair, out in outputs.items():
        assert torch.all(out.uv.grad == 0)
        if pair in targets:
            grad = out.uv_coarse.grad[0, targets[pair][0]]
            assert torch.all(grad[:, 0] > 0) and torch.all(grad[:, 1] == 0)  # pulls back to the left


@pytest.mark.slow
def test_loss_matches_finite_differences_in_float64(solved):
    window, result = solved
    pair = next(iter(ba_targets(result, window.camera)))
    config = AdaptConfig(coarse_weight=0.5, epipolar_weight=0.3)
    size = (window.height, window.width)
    matches = _matches_from(window)
    loss, _ = reprojection_loss(matches, result, window.camera, size, config)
    loss.backward()
    idx = ba_targets(result, window.camera)[pair][0][0]
    analytic = matches.outputs[pair].uv.grad[0, idx].numpy()
    numeric = np.zeros(2)
    for d in range(2):
        vals = []
        for sign in (1, -1):
            values = {p: m.uv_b.copy() for p, m in window.matches.items()}
            values[pair][idx, d] += sign * 1e-6
            lo, _ = reprojection_loss(
                _matches_from(window, values, False), result, window.camera, size, config
            )
            vals.append(float(lo))
        numeric[d] = (vals[0] - vals[1]) / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-9)


def _window_images(n: int = 4, size=(48, 64), seed: int = 0):
    rng = np.random.default_rng(seed)
    host = (rng.random(size) * 255).astype(np.uint8)
    host = np.repeat(host[..., None], 3, axis=2)
    images = torch.from_numpy(host).permute(2, 0, 1).float().div(255)[None].repeat(n, 1, 1, 1)
    return images, [host] * n


def test_failed_window_gives_no_step_and_is_counted():
    torch.manual_seed(0)
    matcher = Matcher(TINY)
    before = {k: v.clone() for k, v in matcher.state_dict().items()}
    camera = PinholeCamera(60.0, 60.0, 31.5, 23.5, 64, 48)
    adapter = OnlineAdapter(matcher, camera, AdaptConfig(queries_per_frame=40))
    images, hosts = _window_images()
    report = adapter.step(images, hosts)  # identical frames: no motion, the BA must refuse the window
    assert not report.success and report.reason
    assert adapter.steps_taken == 0 and adapter.stats.failed == 1
    for k, v in matcher.state_dict().items():
        assert torch.equal(v, before[k]), k


def _synthetic_match_window(window, calls=None):
    """A match_window whose values are the synthetic window's matches (so the BA succeeds) and whose
    gradient path is the real matcher; ``calls`` records (images, grad enabled) of every call."""

    def fake_match_window(matcher, images, host_images, config):
        if calls is not None:
            calls.append((images.clone(), torch.is_grad_enabled()))
        feats = matcher.features(images)
        outputs, queries, ids = {}, {}, {}
        for (a, b), m in window.matches.items():
            q = torch.tensor(m.uv_a, dtype=torch.float32)[None] * 0.1
            out = matcher.match(adapt._slice(feats, a), adapt._slice(feats, b), q)
            uv = torch.tensor(m.uv_b, dtype=torch.float32)[None] + (out.uv - out.uv.detach())
            uvc = torch.tensor(m.uv_b, dtype=torch.float32)[None] + (out.uv_coarse - out.uv_coarse.detach())
            outputs[(a, b)] = MatchOutput(
                uv, uvc, out.std_fine, out.std_coarse, torch.ones_like(out.confidence)
            )
            queries[(a, b)] = torch.tensor(m.uv_a, dtype=torch.float32)
            ids[(a, b)] = m.query_ids
        return WindowMatches(outputs, queries, ids)

    return fake_match_window


def _synthetic_adapter(monkeypatch, window, camera) -> tuple[Matcher, OnlineAdapter]:
    """A seeded tiny matcher and its adapter, matching through the synthetic window's matches."""
    torch.manual_seed(0)
    matcher = Matcher(TINY)
    monkeypatch.setattr(adapt, "match_window", _synthetic_match_window(window))
    return matcher, OnlineAdapter(matcher, camera, AdaptConfig(lr=1e-3), FAST_BA)


@pytest.mark.slow
def test_successful_window_updates_the_real_matcher_weights(monkeypatch, solved):
    window, _ = solved
    matcher, adapter = _synthetic_adapter(monkeypatch, window, window.camera)
    before = {k: v.clone() for k, v in matcher.state_dict().items()}
    images, hosts = _window_images(n=4)
    report = adapter.step(images, hosts)
    assert report.success and np.isfinite(report.loss) and report.inlier_ratio > 0.5
    assert adapter.steps_taken == 1 and report.logs["grad_norm"] > 0
    changed = [k for k, v in matcher.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) == len(before)


@pytest.mark.slow
def test_evaluate_runs_the_steps_match_and_ba_and_changes_nothing(monkeypatch, solved):
    window, _ = solved
    matcher, adapter = _synthetic_adapter(monkeypatch, window, None)
    with pytest.raises(ValueError, match="no camera yet"):  # a step before the camera is known
        adapter.evaluate(*_window_images(n=4))
    adapter.set_camera(window.camera)  # the stream learns its camera after construction
    assert adapter.camera == window.camera
    before = {k: v.clone() for k, v in matcher.state_dict().items()}
    images, hosts = _window_images(n=4)
    report = adapter.evaluate(images, hosts)
    assert report.success and report.guard == "off" and np.isfinite(report.loss)
    assert adapter.steps_taken == 0 and adapter.stats.successes == 1
    assert all(torch.equal(v, before[k]) for k, v in matcher.state_dict().items())
    stepped = adapter.step(images, hosts)  # same window, same BA: same inliers, now with an update
    assert stepped.success and stepped.inlier_ratio == report.inlier_ratio
    assert stepped.loss == pytest.approx(report.loss, rel=1e-5) and adapter.stats.successes == 2


@pytest.mark.slow
def test_anchor_pull_moves_the_step_back_towards_the_starting_weights(monkeypatch, solved):
    window, _ = solved
    monkeypatch.setattr(adapt, "match_window", _synthetic_match_window(window))
    images, hosts = _window_images(n=4)
    after = {}
    for pull in (0.0, 0.25):
        torch.manual_seed(0)
        matcher = Matcher(TINY)
        start = [p.detach().clone() for p in matcher.parameters()]
        adapter = OnlineAdapter(matcher, window.camera, AdaptConfig(lr=1e-3, anchor_pull=pull), FAST_BA)
        assert adapter.step(images, hosts).success
        after[pull] = [p.detach().clone() for p in matcher.parameters()]
    for p0, plain, pulled in zip(start, after[0.0], after[0.25], strict=True):
        torch.testing.assert_close(pulled, plain + 0.25 * (p0 - plain), rtol=0, atol=1e-7)
    assert any(not torch.equal(a, b) for a, b in zip(after[0.0], after[0.25], strict=True))


@pytest.mark.slow
def test_augment_solves_the_ba_on_clean_frames_and_trains_on_an_augmented_copy(monkeypatch, solved):
    window, _ = solved
    calls = []
    monkeypatch.setattr(adapt, "match_window", _synthetic_match_window(window, calls))
    torch.manual_seed(0)
    matcher = Matcher(TINY)
    before = [p.detach().clone() for p in matcher.parameters()]
    adapter = OnlineAdapter(matcher, window.camera, AdaptConfig(lr=1e-3, augment=True), FAST_BA)
    images, hosts = _window_images(n=4)
    report = adapter.step(images, hosts)
    assert report.success and adapter.steps_taken == 1
    (clean, clean_grad), (augmented, augmented_grad) = calls
    assert torch.equal(clean, images) and not clean_grad  # the BA's matches: clean, no graph
    assert augmented_grad and augmented.shape == images.shape and not torch.equal(augmented, images)
    assert 0 <= float(augmented.min()) and float(augmented.max()) <= 1
    assert any(not torch.equal(p, q) for p, q in zip(before, matcher.parameters(), strict=True))


def test_rollback_guard_restores_the_last_good_weights():
    net = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    guard = RollbackGuard(window=2, tolerance=0.1)
    assert guard.record(0.8, net, opt) == "pending"
    assert guard.record(0.8, net, opt) == "accept"  # reference 0.8
    good = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.weight += 1.0
    assert guard.record(0.3, net, opt) == "pending"
    assert guard.record(None, net, opt) == "rollback"  # mean 0.15 < 0.7
    assert guard.rollbacks == 1
    for k, v in net.state_dict().items():
        assert torch.equal(v, good[k])
    with torch.no_grad():
        net.weight += 0.5
    assert guard.record(0.75, net, opt) == "pending"
    assert guard.record(0.72, net, opt) == "accept"  # within tolerance: new last-good weights
    kept = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.weight -= 3.0
    guard.record(0.0, net, opt)
    assert guard.record(0.1, net, opt) == "rollback"
    for k, v in net.state_dict().items():
        assert torch.equal(v, kept[k])
    with pytest.raises(ValueError):
        RollbackGuard(window=0)


def test_rollback_guard_takes_its_reference_from_a_block_that_mostly_succeeded():
    """A first block of failed windows (a camera that has not moved yet) set the reference to 0: no later
    block could fall below it, and the guard accepted (and kept as good) whatever the weights became."""
    net = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    guard = RollbackGuard(window=2, tolerance=0.1)
    assert [guard.record(None, net, opt) for _ in range(2)] == ["pending", "pending"]
    assert guard.reference is None and not guard.ready
    assert guard.record(0.8, net, opt) == "pending"
    assert guard.record(0.8, net, opt) == "accept" and guard.reference == pytest.approx(0.8)
    assert guard.record(None, net, opt) == "pending"
    assert guard.record(None, net, opt) == "rollback"  # a later block of failures does count


def test_rollback_guard_has_no_good_weights_before_its_first_block_closes():
    net = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    guard = RollbackGuard(window=2, tolerance=0.1)
    assert guard.record(0.8, net, opt) == "pending"
    assert not guard.ready and guard.good_state is None  # taken after one step: not known to be good
    assert guard.record(0.8, net, opt) == "accept" and guard.ready


def test_epipolar_loss_stays_on_the_matcher_device():
    """The BA's poses and masks are host arrays; the loss must be built on the matcher's device (CUDA in a
    node with device auto). The meta device stands in for a GPU here."""
    device = torch.device("meta")
    uv = torch.zeros(1, 4, 2, device=device)
    out = MatchOutput(uv, uv, uv[..., 0], uv[..., 0], uv[..., 0])
    matches = adapt.WindowMatches({(0, 1): out}, {(0, 1): torch.zeros(4, 2, device=device)})
    poses = np.tile(np.eye(4), (2, 1, 1))
    poses[1, 0, 3] = 1.0
    result = SimpleNamespace(match_inliers={(0, 1): np.ones(4, bool)}, poses=poses)
    camera = PinholeCamera(50.0, 50.0, 31.5, 23.5, 64, 48)
    loss = adapt.epipolar_loss(matches, result, camera)
    assert loss.device.type == "meta" and loss.shape == (4,)
    empty = SimpleNamespace(match_inliers={(0, 1): np.zeros(4, bool)}, poses=poses)
    assert (
        adapt.epipolar_loss(matches, empty, PinholeCamera(50.0, 50.0, 31.5, 23.5, 64, 48)).device.type
        == "meta"
    )


def test_adapt_config_validates():
    with pytest.raises(ValueError, match="lr"):
        AdaptConfig(lr=0)
    with pytest.raises(ValueError, match="anchors"):
        AdaptConfig(anchors=("centre",))
    with pytest.raises(ValueError, match="anchor_pull"):
        AdaptConfig(anchor_pull=1.0)


def test_matcher_checkpoint_round_trip(tmp_path):
    from imatching_online.matcher.io import load_matcher, save_matcher

    torch.manual_seed(1)
    matcher = Matcher(TINY)
    path = tmp_path / "m.safetensors"
    save_matcher(path, matcher, {"steps": 3, "data": "unit test"})
    loaded, meta = load_matcher(path)
    assert meta["steps"] == 3 and meta["data"] == "unit test" and "code_version" in meta
    assert loaded.config == TINY
    x, q = torch.rand(1, 3, 48, 64), torch.rand(1, 8, 2) * 40
    torch.testing.assert_close(loaded(x, x.flip(-1), q).uv, matcher(x, x.flip(-1), q).uv)
    # A checkpoint of another kind is refused.
    from banet_vo.model.checkpoint import save_checkpoint

    other = tmp_path / "b.safetensors"
    save_checkpoint(other, {"w": torch.zeros(1)}, kind="banet", config={}, meta={})
    with pytest.raises(ValueError):
        load_matcher(other)


@pytest.mark.slow
def test_loss_graph_has_only_the_matches_as_leaves(solved):
    # The BA poses and landmarks enter as constants: the only tensors the loss can send gradients to
    # are the matcher's outputs (no unrolled BA, no gradient into the BA solution).
    window, result = solved
    matches = _matches_from(window)
    loss, _ = reprojection_loss(matches, result, window.camera, (window.height, window.width), AdaptConfig())
    leaves, stack, seen = [], [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):
            leaves.append(node.variable)
        stack.extend(fn for fn, _ in node.next_functions)
    allowed = {id(o.uv) for o in matches.outputs.values()}
    assert leaves and all(id(leaf) in allowed for leaf in leaves)
    assert isinstance(result.poses, np.ndarray) and isinstance(result.landmarks, np.ndarray)


@pytest.mark.slow
def test_a_non_finite_loss_is_never_applied(monkeypatch, solved):
    """A NaN loss (or gradient) gives no optimiser step: weights and Adam state stay bit-identical."""
    window, _ = solved
    matcher, adapter = _synthetic_adapter(monkeypatch, window, window.camera)
    real = adapt.reprojection_loss

    def nan_loss(*args, **kwargs):
        loss, logs = real(*args, **kwargs)
        return loss * float("nan"), logs

    monkeypatch.setattr(adapt, "reprojection_loss", nan_loss)
    before = {k: v.clone() for k, v in matcher.state_dict().items()}
    images, hosts = _window_images(n=4)
    report = adapter.step(images, hosts)
    assert not report.success and report.reason == adapt.NON_FINITE
    assert adapter.steps_taken == 0 and not adapter.optimiser.state
    for k, v in matcher.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.slow
def test_the_same_adapter_steps_an_xfeat_base(monkeypatch, solved):
    """XFeat goes through the same adaptation code: a solved window updates its backbone and fine head
    and leaves its frozen BatchNorm statistics alone."""
    from imatching_online.matcher.xfeat_matcher import XFeatMatcher

    window, _ = solved
    matcher = XFeatMatcher()
    monkeypatch.setattr(adapt, "match_window", _synthetic_match_window(window))
    adapter = OnlineAdapter(matcher, window.camera, AdaptConfig(lr=1e-3), FAST_BA)
    before = {k: v.clone() for k, v in matcher.state_dict().items()}
    images, hosts = _window_images(n=4, size=(64, 96))
    report = adapter.step(images, hosts)
    assert report.success and np.isfinite(report.loss) and adapter.steps_taken == 1
    after = matcher.state_dict()
    assert not torch.equal(after["net.fine_matcher.0.weight"], before["net.fine_matcher.0.weight"])
    assert not torch.equal(after["net.block1.0.layer.0.weight"], before["net.block1.0.layer.0.weight"])
    stats = [k for k in before if "running" in k]
    assert stats and all(torch.equal(after[k], before[k]) for k in stats)
