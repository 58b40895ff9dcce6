"""imatching_online.online (ROS-free streaming wrapper): frame selection, window life cycle, monitor-only
mode, rollback and checkpoint round trip, on rendered hand-held frames (160x120)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from banet_vo.data.synthetic import render_sequence
from banet_vo.geometry import PinholeCamera
from imatching_online.adapt import AdaptConfig, StepReport
from imatching_online.matcher.io import load_matcher
from imatching_online.matcher.network import Matcher
from imatching_online.online import (
    KEPT,
    SKIPPED_GAP,
    SKIPPED_STATIC,
    STEPPED,
    WINDOW_RESTARTS,
    StreamAdapter,
    StreamConfig,
    median_flow,
    working_size,
)

PRETRAINED = Path(__file__).resolve().parents[4] / "models" / "matcher_synthetic.safetensors"


@pytest.fixture(scope="module")
def seq():
    return render_sequence("indoor", frames=6, size=(160, 120), seed=0)


def _random_matcher(seed: int = 0) -> Matcher:
    torch.manual_seed(seed)
    return Matcher()


def _no_step(**kw) -> StreamConfig:
    return StreamConfig(window_size=30, window_stride=1, max_image_size=160, **kw)


def _weights(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_working_size_keeps_aspect_multiple_of_8_and_never_upscales():
    assert working_size(1241, 376, 320) == (320, 96)
    assert working_size(160, 120, 320) == (160, 120)
    w, h = working_size(640, 480, 200)
    assert w % 8 == h % 8 == 0 and max(w, h) <= 200 and abs(w / h - 4 / 3) < 0.1
    with pytest.raises(ValueError, match="image size"):
        working_size(0, 10, 320)


def test_median_flow_measures_a_known_shift(seq):
    gray = seq[0].image.mean(axis=2).astype(np.uint8)
    shifted = np.roll(gray, 3, axis=1)  # content moves 3 px right
    assert median_flow(gray, shifted) == pytest.approx(3.0, abs=0.2)
    assert median_flow(gray, gray) == pytest.approx(0.0, abs=0.05)
    assert median_flow(np.zeros_like(gray), gray) is None  # nothing to track on a blank frame


def test_stream_config_rejects_bad_values():
    with pytest.raises(ValueError, match="window_size"):
        StreamConfig(window_size=1)
    with pytest.raises(ValueError, match="window_stride"):
        StreamConfig(window_size=3, window_stride=4)
    with pytest.raises(ValueError, match="min_frame_gap"):
        StreamConfig(min_frame_gap=0)
    with pytest.raises(ValueError, match="min_flow_px"):
        StreamConfig(min_flow_px=float("nan"))
    with pytest.raises(ValueError, match="max_image_size"):
        StreamConfig(max_image_size=8)
    with pytest.raises(ValueError, match="max_frame_interval"):
        StreamConfig(max_frame_interval=-1.0)


def test_bad_frames_are_value_errors(seq):
    sa = StreamAdapter(_random_matcher(), _no_step())
    f = seq[0]
    with pytest.raises(ValueError, match="uint8"):
        sa.add_frame(f.image.astype(np.float32), 0.0, f.camera)
    with pytest.raises(ValueError, match="does not match the camera"):
        sa.add_frame(f.image[:60], 0.0, f.camera)
    with pytest.raises(ValueError, match="channels"):
        sa.add_frame(np.zeros((120, 160, 4), np.uint8), 0.0, f.camera)
    with pytest.raises(ValueError, match="stamp"):
        sa.add_frame(f.image, float("nan"), f.camera)
    assert sa.counters["frames"] == 0


def test_frame_selection_by_gap_and_motion(seq):
    sa = StreamAdapter(_random_matcher(), _no_step(min_frame_gap=2, min_flow_px=2.0))
    f = seq
    outcomes = [sa.add_frame(f[i].image, f[i].timestamp, f[i].camera).status for i in range(4)]
    assert outcomes == [KEPT, SKIPPED_GAP, KEPT, SKIPPED_GAP]
    # a parked camera: the same picture again has no flow and is not kept
    sa2 = StreamAdapter(_random_matcher(), _no_step(min_flow_px=2.0))
    assert sa2.add_frame(f[0].image, 0.0, f[0].camera).status == KEPT
    static = sa2.add_frame(f[0].image, 0.1, f[0].camera)
    assert static.status == SKIPPED_STATIC and static.flow_px < 0.1
    moved = sa2.add_frame(f[1].image, 0.2, f[1].camera)
    assert moved.status == KEPT and moved.flow_px > 2.0  # hand-held motion: several px per frame
    assert sa2.window_length == 2 and sa2.counters[SKIPPED_STATIC] == 1


def test_camera_change_and_time_jump_empty_the_window(seq):
    sa = StreamAdapter(_random_matcher(), _no_step(min_flow_px=0.0))
    f = seq
    for i in range(3):
        sa.add_frame(f[i].image, f[i].timestamp, f[i].camera)
    assert sa.window_length == 3
    sa.add_frame(f[3].image, f[1].timestamp, f[3].camera)  # stamp behind the last: loop / reorder
    assert sa.window_length == 1 and sa.counters["time_jumps"] == 1
    c = f[0].camera
    other = PinholeCamera(c.fx * 1.1, c.fy * 1.1, c.cx, c.cy, c.width, c.height)
    sa.add_frame(f[4].image, 10.0, other)
    assert sa.window_length == 1 and sa.counters["camera_changes"] == 1
    assert sa.adapter.camera == other  # working size = native size here
    assert sa.reset() == 1 and sa.window_length == 0


@pytest.mark.parametrize(("interval", "restarted"), [(0.5, True), (0.0, False)])
def test_a_frame_long_after_the_one_before_starts_the_window_again(seq, interval, restarted):
    """A node slower than its camera: the frames that came while a step ran were dropped, and the next
    one is 1.4 s after the frame before it. With max_frame_interval it starts a new window, which the
    frames after it fill; without, it joins the frames of 1.4 s before."""
    sa = StreamAdapter(_random_matcher(), _no_step(min_flow_px=0.0, max_frame_interval=interval))
    f = seq
    for i in range(4):
        sa.add_frame(f[i].image, 0.1 * i, f[i].camera)
    assert sa.window_length == 4 and sa.counters[WINDOW_RESTARTS] == 0
    sa.add_frame(f[4].image, 0.3 + 1.4, f[4].camera)
    assert sa.window_length == (1 if restarted else 5)
    assert sa.counters[WINDOW_RESTARTS] == int(restarted)
    sa.add_frame(f[5].image, 1.7 + 0.1, f[5].camera)
    assert sa.window_length == (2 if restarted else 6)


def test_skipped_frames_and_a_slow_camera_never_restart_the_window(seq):
    """Frames the selection skips still arrive (every 6th kept at 10 Hz: kept frames 0.6 s apart), and a
    1 Hz camera sets its own pace: neither empties the window (the first version measured from the last
    kept frame and never filled a window in either case: review, 2026-12-07)."""
    f = seq
    sa = StreamAdapter(_random_matcher(), _no_step(min_flow_px=0.0, min_frame_gap=6))
    for k in range(31):
        sa.add_frame(f[k % 6].image, 0.1 * k, f[k % 6].camera)
    assert sa.window_length == 6 and sa.counters[WINDOW_RESTARTS] == 0
    slow = StreamAdapter(_random_matcher(), _no_step(min_flow_px=0.0))
    for k in range(6):
        slow.add_frame(f[k].image, 1.0 * k, f[k].camera)
    assert slow.window_length == 6 and slow.counters[WINDOW_RESTARTS] == 0
    slow.add_frame(f[0].image, 5.0 + 3.5, f[0].camera)  # 3.5 intervals of its own pace: a gap
    assert slow.window_length == 1 and slow.counters[WINDOW_RESTARTS] == 1


def test_downscaled_frames_carry_the_scaled_intrinsics(seq):
    sa = StreamAdapter(_random_matcher(), StreamConfig(window_size=30, max_image_size=80, min_flow_px=0.0))
    f = seq[0]
    sa.add_frame(f.image, 0.0, f.camera)
    assert sa.working_camera.size == (80, 56)
    assert sa.adapter.camera == f.camera.resized(80, 56)


@pytest.mark.slow
def test_random_matcher_windows_are_counted_and_slide(seq):
    """Random weights: the BA may fail; every window is counted once, by success or by reason."""
    config = AdaptConfig(queries_per_frame=60, rollback_window=2)
    sa = StreamAdapter(
        _random_matcher(), StreamConfig(window_size=3, window_stride=2, max_image_size=160), config
    )
    statuses = [sa.add_frame(seq[i].image, seq[i].timestamp, seq[i].camera).status for i in range(5)]
    # stride 2: frames 0-2 make the first window, 3-4 refill it (1 frame kept from the first)
    assert statuses == [KEPT, KEPT, STEPPED, KEPT, STEPPED]
    stats = sa.adapter.stats.as_dict()
    assert stats["windows"] == 2 == stats["successes"] + stats["failed"]
    assert sum(v for k, v in stats.items() if k not in ("windows", "successes", "failed")) == stats["failed"]
    assert sa.adapter.steps_taken == stats["successes"] and len(sa.step_times) == 2


def _failing_step(*_args):
    raise ValueError("a numerical failure inside the step")


def test_a_failing_step_still_slides_the_window(seq, monkeypatch):
    """A step that raises must not leave its window full: else every later frame makes it one longer."""
    sa = StreamAdapter(_random_matcher(), StreamConfig(window_size=3, max_image_size=160, min_flow_px=0.0))
    monkeypatch.setattr(sa.adapter, "step", _failing_step)
    for i in range(2):
        sa.add_frame(seq[i].image, seq[i].timestamp, seq[i].camera)
    for i in range(2, 6):
        # a failure inside the step is the node's error, not a bad frame (the frame worker tells them apart)
        with pytest.raises(RuntimeError, match="adaptation step failed"):
            sa.add_frame(seq[i].image, seq[i].timestamp, seq[i].camera)
        assert sa.window_length == 2


def test_frame_gap_and_flow_hold_across_a_disjoint_slide(seq, monkeypatch):
    """With window_stride == window_size the window empties after each step; the next frame is still
    measured from the last kept one (gap and flow), as only a clear forgets it."""
    stream = StreamConfig(
        window_size=2, window_stride=2, min_frame_gap=3, max_image_size=160, min_flow_px=0.0
    )
    sa = StreamAdapter(_random_matcher(), stream)
    monkeypatch.setattr(sa.adapter, "step", lambda *_: StepReport(False, "test"))
    images = [seq[i % len(seq)].image for i in range(12)]
    kept = [i for i in range(12) if sa.add_frame(images[i], 0.1 * i, seq[0].camera).status != SKIPPED_GAP]
    assert kept == [0, 3, 6, 9]
    # the flow gate: the frame after a slide is compared with the last kept frame (the same picture here)
    sa2 = StreamAdapter(_random_matcher(), StreamConfig(window_size=2, window_stride=2, max_image_size=160))
    monkeypatch.setattr(sa2.adapter, "step", lambda *_: StepReport(False, "test"))
    f = seq
    assert sa2.add_frame(f[0].image, 0.0, f[0].camera).status == KEPT
    assert sa2.add_frame(f[1].image, 0.1, f[1].camera).status == STEPPED
    assert sa2.window_length == 0
    assert sa2.add_frame(f[1].image, 0.2, f[1].camera).status == SKIPPED_STATIC


def test_save_and_reset_do_not_wait_for_a_running_step(seq, monkeypatch, tmp_path):
    """~/save and ~/reset come from the executor thread while the worker steps: they wait for milliseconds,
    not for the step; a reset drops the window the step had, and the step still ends cleanly."""
    sa = StreamAdapter(_random_matcher(), StreamConfig(window_size=2, max_image_size=160, min_flow_px=0.0))
    inside, release = threading.Event(), threading.Event()

    def slow_step(*_args):
        inside.set()
        assert release.wait(30.0)
        return StepReport(False, "test")

    monkeypatch.setattr(sa.adapter, "step", slow_step)
    sa.add_frame(seq[0].image, 0.0, seq[0].camera)
    errors = []
    worker = threading.Thread(
        target=lambda: errors.append(sa.add_frame(seq[1].image, 0.1, seq[1].camera).status)
    )
    worker.start()
    assert inside.wait(30.0)
    done = threading.Event()

    def save_and_reset():
        sa.save(tmp_path / "m.safetensors")
        assert sa.reset() == 2
        done.set()

    threading.Thread(target=save_and_reset, daemon=True).start()
    waited = done.wait(10.0)
    release.set()
    worker.join(30.0)
    assert waited, "save / reset waited for the step"
    assert errors == [STEPPED] and sa.window_length == 0
    assert sa.add_frame(seq[2].image, 0.2, seq[2].camera).status == KEPT and sa.window_length == 1


def test_rollback_needs_a_closed_block_and_changes_the_version(seq):
    """Manual rollback: refused until the guard's first block has closed (no good weights yet); then it
    restores them and counts as a change of the weights (a new version to announce)."""
    sa = StreamAdapter(_random_matcher(), _no_step(), AdaptConfig(rollback_window=2))
    adapter = sa.adapter
    assert adapter.guard.record(0.8, adapter.matcher, adapter.optimiser) == "pending"
    assert sa.rollback() is False and sa.weights_version == 0
    assert adapter.guard.record(0.8, adapter.matcher, adapter.optimiser) == "accept"
    good = _weights(adapter.matcher)
    with torch.no_grad():
        for p in adapter.matcher.parameters():
            p.add_(1.0)
    assert sa.rollback() is True and sa.manual_rollbacks == 1
    assert all(torch.equal(good[k], v) for k, v in adapter.matcher.state_dict().items())
    assert sa.weights_version == 1
    resumed = StreamAdapter(_random_matcher(), _no_step(), source_meta={"earlier_weight_changes": 7})
    assert resumed.weights_version == 7  # a later session's versions go on from its lineage's


def test_save_round_trip_and_rollback_before_any_block(seq, tmp_path):
    m = _random_matcher(3)
    before = _weights(m)
    sa = StreamAdapter(m, _no_step(), source_meta={"source": "/cam/image"})
    sa.add_frame(seq[0].image, 0.0, seq[0].camera)
    assert sa.rollback() is False  # the guard has no good weights yet
    meta = sa.save(tmp_path / "out" / "m.safetensors")
    loaded, loaded_meta = load_matcher(tmp_path / "out" / "m.safetensors")
    assert all(torch.equal(before[k], v) for k, v in loaded.state_dict().items())
    assert loaded_meta["source"] == "/cam/image" and loaded_meta["optimiser_steps"] == 0
    assert loaded_meta["image_size"] == [160, 120] and loaded_meta["frames"]["kept"] == 1
    assert meta["saved_at_utc"] == loaded_meta["saved_at_utc"] and sa.saved_at_step == 0


@pytest.mark.slow
@pytest.mark.skipif(not PRETRAINED.is_file(), reason=f"shipped matcher {PRETRAINED} not present")
@pytest.mark.parametrize("adapt", [True, False])
def test_pretrained_matcher_adapts_or_only_monitors(seq, adapt):
    """With real weights the BA succeeds: adapt=True steps and changes the weights; adapt=False runs the
    same match + BA, reports the loss, and leaves every weight bit-identical."""
    matcher, _ = load_matcher(PRETRAINED)
    before = _weights(matcher)
    config = AdaptConfig(queries_per_frame=100, rollback_window=2, enabled=adapt)
    stream = StreamConfig(window_size=3, window_stride=3, max_image_size=160)
    sa = StreamAdapter(matcher, stream, config)
    reports = []
    for i in range(6):
        out = sa.add_frame(seq[i].image, seq[i].timestamp, seq[i].camera)
        if out.status == STEPPED:
            reports.append(out.report)
    assert len(reports) == 2 and all(r.success for r in reports)
    assert all(np.isfinite(r.loss) and 0 < r.inlier_ratio <= 1 for r in reports)
    changed = any(not torch.equal(before[k], v) for k, v in matcher.state_dict().items())
    assert changed is adapt
    assert sa.steps == (2 if adapt else 0) and sa.adapter.stats.successes == 2
    if adapt:  # the guard closed its 2-window block and kept these weights: rollback restores them
        assert reports[1].guard == "accept" and sa.rollback() and sa.manual_rollbacks == 1


def test_node_parameters_carry_the_adaptation_regularisers():
    from imatching_online.ros.params import params_from_values

    params = params_from_values({"matcher": "m.safetensors", "anchor_pull": 0.2, "augment": True})
    assert params.adapt.anchor_pull == 0.2 and params.adapt.augment is True
    assert params_from_values({"matcher": "m.safetensors"}).adapt == AdaptConfig()
    with pytest.raises(ValueError, match="anchor_pull"):
        params_from_values({"matcher": "m.safetensors", "anchor_pull": 1.5})


@pytest.mark.slow
def test_stream_adapts_an_xfeat_matcher_and_saves_it(seq, tmp_path):
    """The node's core with XFeat: working size a multiple of 32, windows go through match + BA + step,
    and the saved checkpoint loads back as the same XFeat weights."""
    from imatching_online.matcher.xfeat_matcher import XFeatMatcher

    matcher = XFeatMatcher()
    stream = StreamConfig(window_size=3, window_stride=3, max_image_size=160)
    sa = StreamAdapter(matcher, stream, AdaptConfig(queries_per_frame=100, rollback_window=2))
    outcomes = [sa.add_frame(seq[i].image, seq[i].timestamp, seq[i].camera) for i in range(6)]
    assert sum(o.status == STEPPED for o in outcomes) == 2 and sa.adapter.stats.windows == 2
    meta = sa.save(tmp_path / "x.safetensors")
    assert meta["image_size"] == [160, 96]
    loaded, _ = load_matcher(tmp_path / "x.safetensors")
    assert isinstance(loaded, XFeatMatcher)
    assert all(torch.equal(v, matcher.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert sa.steps == sa.adapter.stats.successes  # every solved window stepped, the others did not
