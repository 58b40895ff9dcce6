"""imatching_online.lineage: a restart continues its own output of the same base matcher, and never
replaces another lineage's output without being told to."""

from __future__ import annotations

import pytest
import torch
from banet_vo.model.checkpoint import save_checkpoint
from imatching_online.lineage import choose_start, lineage_meta, same_base
from imatching_online.matcher.io import load_matcher, save_matcher
from imatching_online.matcher.network import Matcher, MatcherConfig

TINY = MatcherConfig(base_channels=8, coarse_channels=16, fine_channels=8, window_radius=2)


def _matcher(seed: int) -> Matcher:
    torch.manual_seed(seed)
    return Matcher(TINY)


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "base.safetensors"
    save_matcher(path, _matcher(0), {"data": "base"})
    return str(path)


def _output(path, adapted: Matcher, base_path: str, base_meta: dict, **meta) -> str:
    save_matcher(path, adapted, {"adapted_from": base_path, "base_meta": base_meta, **meta})
    return str(path)


def _equal(a: Matcher, b: Matcher) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_no_output_yet_starts_from_the_base(base, tmp_path):
    matcher, meta = load_matcher(base)
    choice = choose_start(matcher, meta, base, str(tmp_path / "new.safetensors"))
    assert choice.matcher is matcher and choice.resumed_meta is None and not choice.replaces
    assert "is new" in choice.message
    meta = lineage_meta(choice)
    assert meta.pop("lineage") != lineage_meta(choice)["lineage"]  # a new id for each new lineage
    assert meta == {"sessions": 1, "earlier_optimiser_steps": 0, "earlier_weight_changes": 0}


def test_own_output_is_continued_and_sessions_add_up(base, tmp_path):
    matcher, meta = load_matcher(base)
    adapted = _matcher(1)
    out = _output(tmp_path / "out.safetensors", adapted, base, meta, optimiser_steps=7, sessions=2,
                  earlier_optimiser_steps=5)  # fmt: skip
    choice = choose_start(matcher, meta, base, out)
    assert _equal(choice.matcher, adapted) and not _equal(choice.matcher, matcher)
    assert choice.base_matcher is matcher and not choice.replaces
    assert "12 optimiser steps in 2 earlier session(s)" in choice.message
    # an output written before versions counted rollbacks (and lineage ids): its version was its steps
    continued = lineage_meta(choice)
    assert len(continued.pop("lineage")) == 32
    assert continued == {
        "sessions": 3,
        "earlier_optimiser_steps": 12,
        "earlier_weight_changes": 12,
    }
    out = _output(tmp_path / "out.safetensors", adapted, base, meta, optimiser_steps=7, sessions=2,
                  earlier_optimiser_steps=5, weights_version=15, lineage="abc")  # fmt: skip
    # its session rolled back three times: the next session's versions go on from 15, not from 12; and a
    # continued lineage keeps its id
    assert lineage_meta(choose_start(matcher, meta, base, out))["earlier_weight_changes"] == 15
    assert lineage_meta(choose_start(matcher, meta, base, out))["lineage"] == "abc"


def test_another_lineage_is_refused_unless_start_from_matcher(base, tmp_path):
    matcher, meta = load_matcher(base)
    other_base = tmp_path / "other.safetensors"
    save_matcher(other_base, _matcher(2), {"data": "other"})
    out = _output(tmp_path / "out.safetensors", _matcher(3), str(other_base), {"data": "other"},
                  optimiser_steps=4)  # fmt: skip
    assert not same_base(load_matcher(out)[1], base, meta)
    with pytest.raises(ValueError, match=r"adapted from .*other\.safetensors.* start_from:=matcher"):
        choose_start(matcher, meta, base, out)
    choice = choose_start(matcher, meta, base, out, start_from="matcher")
    assert choice.matcher is matcher and choice.replaces and "REPLACING" in choice.message
    assert "4 optimiser steps" in choice.message
    # same path, but the base file now holds other weights and metadata: another lineage too
    save_matcher(base, _matcher(4), {"data": "retrained"})
    own = _output(tmp_path / "own.safetensors", _matcher(5), base, meta)
    matcher2, meta2 = load_matcher(base)
    with pytest.raises(ValueError, match="not from matcher"):
        choose_start(matcher2, meta2, base, own)


def test_unusable_output_is_refused_naming_the_problem(base, tmp_path):
    matcher, meta = load_matcher(base)
    broken = _matcher(6)
    with torch.no_grad():
        next(broken.parameters())[0].fill_(float("nan"))
    with pytest.raises(ValueError, match="non-finite"):  # save_matcher never writes NaN weights ...
        _output(tmp_path / "out.safetensors", broken, base, meta)
    # ... so a NaN file on disk comes from elsewhere (a foreign writer, bit rot): write it below the check.
    save_checkpoint(
        tmp_path / "out.safetensors",
        broken.state_dict(),
        kind="matcher",
        config=broken.config.to_dict(),
        meta={"adapted_from": base, "base_meta": meta},
    )
    out = str(tmp_path / "out.safetensors")
    with pytest.raises(ValueError, match=r"unusable .*non-finite weights"):
        choose_start(matcher, meta, base, out)
    choice = choose_start(matcher, meta, base, out, start_from="matcher")
    assert choice.replaces and choice.matcher is matcher
    with pytest.raises(ValueError, match="start_from"):
        choose_start(matcher, meta, base, out, start_from="latest")
