"""The optimiser state the imatching node keeps beside its output_model: a session that continues the output
goes on with Adam's moments, the rollback guard and the RNG as they were, as if it had never stopped; a state
of another save is refused and the session starts them anew."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from banet_vo.data.synthetic import render_sequence
from imatching_online.adapt import AdaptConfig
from imatching_online.adapt_checkpoints import (
    restore_resume_state,
    resume_state,
    resume_state_path,
    save_resume_state,
)
from imatching_online.matcher.io import load_matcher
from imatching_online.online import STEPPED, ResumeStateNotWritten, StreamAdapter, StreamConfig

PRETRAINED = Path(__file__).resolve().parents[4] / "models" / "matcher_synthetic.safetensors"
needs_matcher = pytest.mark.skipif(
    not PRETRAINED.is_file(), reason=f"shipped matcher {PRETRAINED} not present"
)
STREAM = StreamConfig(window_size=3, window_stride=1, max_image_size=160)


@pytest.fixture(scope="module")
def seq():
    frames = render_sequence("indoor", frames=6, size=(160, 120), seed=0)
    return [frames[i] for i in range(len(frames))]


def _adapter(config: AdaptConfig, source_meta: dict | None = None, matcher=None) -> StreamAdapter:
    if matcher is None:
        matcher, _ = load_matcher(PRETRAINED)
    return StreamAdapter(matcher, STREAM, config, source_meta=source_meta)


def _feed(sa: StreamAdapter, frames) -> int:
    steps = 0
    for frame in frames:
        steps += sa.add_frame(frame.image, frame.timestamp, frame.camera).status == STEPPED
    return steps


def _weights(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


@pytest.mark.slow
@needs_matcher
def test_a_continued_session_gives_the_uninterrupted_weights(seq, tmp_path):
    """Two windows, save, a new adapter from the saved file and its state, the rest of the stream: the same
    weights as one adapter over the whole stream. Without the state (Adam from zero moments) they differ."""
    config = AdaptConfig(queries_per_frame=100, rollback_window=2, augment=True)
    whole = _adapter(config)
    assert _feed(whole, seq) == 4
    out = tmp_path / "adapted.safetensors"
    first = _adapter(config, {"lineage": "abc"})
    assert _feed(first, seq[:4]) == 2
    meta = first.save(out)
    assert first.adapter.guard.reference is not None  # the 2-window block closed: a reference to keep
    tag = {"lineage": "abc", "weights_version": meta["weights_version"]}

    # The frames after the save go into a fresh stream whose window starts from the last two kept frames.
    def _continued(restore: bool) -> StreamAdapter:
        sa = _adapter(config, matcher=load_matcher(out)[0])
        # anchor_pull pulls towards the lineage's base, as the node sets it (not the continued weights)
        sa.adapter.anchor = [p.detach().clone() for p in load_matcher(PRETRAINED)[0].parameters()]
        if restore:
            text = restore_resume_state(resume_state_path(out), sa.adapter, tag)
            assert "reference" in text and resume_state_path(out).is_file()
            assert sa.adapter.guard.reference == first.adapter.guard.reference
        assert _feed(sa, seq[2:]) == 2
        return sa

    continued = _weights(_continued(True).matcher)
    expected = _weights(whole.matcher)
    assert all(torch.allclose(expected[k], v, rtol=0, atol=1e-6) for k, v in continued.items())
    fresh = _weights(_continued(False).matcher)
    assert any(not torch.allclose(expected[k], v, rtol=0, atol=1e-6) for k, v in fresh.items())


@needs_matcher
def test_a_state_of_another_save_or_lineage_is_refused(tmp_path):
    sa = _adapter(AdaptConfig(), {"lineage": "abc"})
    out = tmp_path / "m.safetensors"
    sa.save(out)
    path = resume_state_path(out)
    fresh = _adapter(AdaptConfig())
    with pytest.raises(ValueError, match="another save"):
        restore_resume_state(path, fresh.adapter, {"lineage": "abc", "weights_version": 5})
    with pytest.raises(ValueError, match="another save"):
        restore_resume_state(path, fresh.adapter, {"lineage": "xyz", "weights_version": 0})
    first = {"lineage": "abc", "weights_version": 0}
    with pytest.raises(ValueError, match="no optimiser state"):
        restore_resume_state(tmp_path / "none.state.pt", fresh.adapter, first)
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not readable"):
        restore_resume_state(path, fresh.adapter, first)


@needs_matcher
def test_a_changed_learning_rate_is_kept_and_other_weights_are_refused(tmp_path):
    """The state carries Adam's moments, not its settings: a session started with another lr keeps it (also
    in the guard's good state a rollback restores). A state for other weights is refused."""
    sa = _adapter(AdaptConfig(lr=1e-4), {"lineage": "abc"})
    for p in sa.matcher.parameters():
        p.grad = torch.ones_like(p)
    sa.adapter.optimiser.step()
    sa.adapter.guard.snapshot(sa.matcher, sa.adapter.optimiser)
    sa.adapter.guard.reference = 0.5
    path = tmp_path / "s.state.pt"
    tag = {"lineage": "abc", "weights_version": 0}
    save_resume_state(path, resume_state(sa.adapter), tag)
    other = _adapter(AdaptConfig(lr=3e-5))
    restore_resume_state(path, other.adapter, tag)
    assert [g["lr"] for g in other.adapter.optimiser.param_groups] == [3e-5]
    saved = sa.adapter.optimiser.state_dict()["state"]
    restored = other.adapter.optimiser.state_dict()["state"]
    assert saved.keys() == restored.keys()
    assert all(torch.equal(saved[i]["exp_avg_sq"], restored[i]["exp_avg_sq"]) for i in saved)
    assert other.adapter.guard.reference == 0.5 and other.rollback()
    assert [g["lr"] for g in other.adapter.optimiser.param_groups] == [3e-5]

    small = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="other weights"):
        restore_resume_state(path, _adapter(AdaptConfig(), matcher=_wrapped(small)).adapter, tag)


def _wrapped(module: torch.nn.Module):
    """A matcher stand-in with other weights (the state must not fit it)."""
    from imatching_online.matcher.network import Matcher

    matcher = Matcher()
    matcher.extra = module
    return matcher


@needs_matcher
def test_a_matcher_saved_without_its_state_is_still_announced(tmp_path, monkeypatch):
    """The optimiser state is written after the matcher: when only it fails, the matcher stands (the error
    carries the matcher's meta, for the node to announce it)."""
    sa = _adapter(AdaptConfig(), {"lineage": "abc"})
    out = tmp_path / "m.safetensors"

    def refuse(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("imatching_online.online.save_resume_state", refuse)
    with pytest.raises(ResumeStateNotWritten, match="disk full") as caught:
        sa.save(out)
    assert out.is_file() and caught.value.meta["weights_version"] == 0
    assert not resume_state_path(out).exists()


@needs_matcher
@pytest.mark.parametrize("broken", ["no_generator", "bad_generator", "guard_not_a_dict", "optimiser_list"])
def test_a_malformed_state_is_refused_and_leaves_the_adapter_as_it_was(tmp_path, broken):
    """A state whose tag matches but whose contents do not fit is a ValueError (the node warns and starts
    Adam anew), never a KeyError that stops the node or a restore that stops halfway."""
    sa = _adapter(AdaptConfig(), {"lineage": "abc"})
    for p in sa.matcher.parameters():
        p.grad = torch.ones_like(p)
    sa.adapter.optimiser.step()
    sa.adapter.guard.reference = 0.5
    state = resume_state(sa.adapter)
    if broken == "no_generator":
        del state["generator"]
    elif broken == "bad_generator":
        state["generator"] = torch.zeros(3, dtype=torch.uint8)
    elif broken == "guard_not_a_dict":
        state["guard"] = [0.5]
    else:
        state["optimiser"] = []
    tag = {"lineage": "abc", "weights_version": 0}
    path = save_resume_state(tmp_path / "s.state.pt", state, tag)
    fresh = _adapter(AdaptConfig())
    with pytest.raises(ValueError, match=re.escape("s.state.pt")):
        restore_resume_state(path, fresh.adapter, tag)
    assert fresh.adapter.optimiser.state_dict()["state"] == {} and fresh.adapter.guard.reference is None
