"""imatching node restarts: a new node continues from its own output_model (same base matcher), saves
the sessions' lineage, refuses another lineage's output and replaces it only with start_from:=matcher.
The frames go straight into the node's core (StreamAdapter); shutdown writes the output as in service."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy")
from banet_vo.data.synthetic import render_sequence  # noqa: E402
from imatching_online.adapt_checkpoints import resume_state_path  # noqa: E402
from imatching_online.matcher.io import load_matcher, save_matcher  # noqa: E402
from imatching_online.matcher.network import Matcher  # noqa: E402
from imatching_online.ros.node import ImatchingNode  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "models" / "matcher_synthetic.safetensors"
FAST = {"window_size": 3, "queries_per_frame": 100, "max_image_size": 160, "device": "cpu"}


def _node(context, **params) -> ImatchingNode:
    overrides = [Parameter(k, value=v) for k, v in {**FAST, **params}.items()]
    return ImatchingNode(context=context, parameter_overrides=overrides)


def _state(matcher: Matcher) -> dict:
    return {k: v.detach().cpu() for k, v in matcher.state_dict().items()}


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(not PRETRAINED.is_file(), reason=f"shipped matcher {PRETRAINED} not present")
def test_a_restart_continues_its_own_output(rclpy_context, tmp_path, capfd):
    seq = render_sequence("indoor", frames=3, size=(160, 120), seed=0)
    out = tmp_path / "adapted.safetensors"
    (tmp_path / ".adapted.safetensors.abc123.tmp").write_bytes(b"")  # a save killed earlier
    first = _node(rclpy_context, matcher=str(PRETRAINED), output_model=str(out))
    assert not (tmp_path / ".adapted.safetensors.abc123.tmp").exists()
    for frame in seq:
        first.stream.add_frame(frame.image, 100.0 + frame.timestamp, frame.camera)
    assert first.stream.steps == 1  # one solved window, one step
    adapted = _state(first.stream.matcher)
    moments = first.stream.adapter.optimiser.state_dict()["state"]
    first.destroy_node()  # shutdown save
    saved, meta = load_matcher(out)
    assert _equal(_state(saved), adapted) and meta["sessions"] == 1 and meta["optimiser_steps"] == 1

    second = _node(rclpy_context, matcher=str(PRETRAINED), output_model=str(out))
    try:
        assert _equal(_state(second.stream.matcher), adapted)  # not the base matcher again
        # Adam goes on with its moments (a fresh Adam's first step moves every weight by the full lr)
        restored = second.stream.adapter.optimiser.state_dict()["state"]
        assert restored.keys() == moments.keys() and len(moments) > 0
        assert all(torch.equal(moments[i]["exp_avg"], restored[i]["exp_avg"]) for i in moments)
        assert "continued Adam's moments (1 steps)" in capfd.readouterr().err
        # anchor_pull still pulls towards the base matcher, not towards the session's starting point
        base = _state(load_matcher(PRETRAINED)[0])
        anchor = dict(zip(base, (p.detach().cpu() for p in second.stream.adapter.anchor), strict=True))
        assert _equal(anchor, base)
        meta = second.stream.save(tmp_path / "second.safetensors")
        assert meta["sessions"] == 2 and meta["earlier_optimiser_steps"] == 1
    finally:
        second.destroy_node()

    # A state of another save (a kill between the matcher's write and its state's) is not taken: the session
    # starts Adam and the guard anew and says so.
    state = torch.load(resume_state_path(out), weights_only=True)
    torch.save({**state, "tag": {**state["tag"], "weights_version": 99}}, resume_state_path(out))
    capfd.readouterr()
    third = _node(rclpy_context, matcher=str(PRETRAINED), output_model=str(out))
    try:
        assert third.stream.adapter.optimiser.state_dict()["state"] == {}
        err = capfd.readouterr().err
        assert "belongs to another save" in err and "start anew" in err
    finally:
        third.destroy_node()


def test_another_lineage_is_refused_and_replaced_only_when_asked(rclpy_context, tmp_path, caplog):
    torch.manual_seed(0)
    base_a, base_b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_matcher(base_a, Matcher(), {"data": "a"})
    save_matcher(base_b, Matcher(), {"data": "b"})
    out = tmp_path / "out.safetensors"
    save_matcher(
        out, Matcher(), {"adapted_from": str(base_a), "base_meta": {"data": "a"}, "optimiser_steps": 3}
    )
    before = out.read_bytes()
    with pytest.raises(ValueError, match=r"parameter output_model: .*adapted from .*a\.safetensors"):
        _node(rclpy_context, matcher=str(base_b), output_model=str(out))
    assert out.read_bytes() == before
    node = _node(rclpy_context, matcher=str(base_b), output_model=str(out), start_from="matcher")
    try:
        assert _equal(_state(node.stream.matcher), _state(load_matcher(base_b)[0]))
    finally:
        node.destroy_node()
    assert load_matcher(out)[1]["adapted_from"] == str(base_b)  # replaced, as asked
