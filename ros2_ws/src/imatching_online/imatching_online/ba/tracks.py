"""Window input (pairwise match sets) and the tracks built from them.

Input: ``{(a, b): PairMatches}``: query pixels in frame a, the matcher's pixels in frame b, confidence,
and optionally the id of each query point. A track is one query point of one frame (its *anchor*) and
every pixel matched to it in other frames, so the matcher's habit of asking the same query grid of frame
a against several frames b yields multi-view tracks without any chaining. Chaining consecutive pairs
would need the matcher to be re-queried at its own outputs and lets one bad match break a whole track;
anchored tracks keep each observation tied to exactly one match id, which the adaptation step needs.

The query pixel is where we asked, not a measurement, so it carries no error: the bundle adjustment
keeps every landmark on its anchor ray (see refine.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

ANCHOR = -1  # match id of the query observation of a track (not produced by a match)
UNOBSERVED = -2  # match id where a track has no observation in a frame
_UV_QUANTUM = 1e-3  # px: query pixels closer than this count as the same query point


@dataclass(frozen=True)
class PairMatches:
    """Matches of query pixels in frame a (uv_a) to pixels in frame b (uv_b), float (M, 2) each.

    conf: (M,) matcher confidence (ones when None). query_ids: (M,) integer id of each query point in
    frame a, unique within the pair; when None, equal uv_a values (to 1e-3 px) in frame a are one query.
    """

    uv_a: np.ndarray
    uv_b: np.ndarray
    conf: np.ndarray | None = None
    query_ids: np.ndarray | None = None

    @classmethod
    def coerce(cls, value, name: str = "matches") -> PairMatches:
        """Accept a PairMatches or a tuple (uv_a, uv_b[, conf[, query_ids]]); validate shapes and values."""
        if not isinstance(value, PairMatches):
            if not isinstance(value, tuple | list) or not 2 <= len(value) <= 4:
                raise ValueError(f"{name} must be PairMatches or a tuple (uv_a, uv_b[, conf[, query_ids]])")
            value = PairMatches(*value)
        uv_a = _as_array(value.uv_a, np.float64, f"{name}.uv_a")
        uv_b = _as_array(value.uv_b, np.float64, f"{name}.uv_b")
        if uv_a.ndim != 2 or uv_a.shape[1] != 2:
            raise ValueError(f"{name}.uv_a must have shape (M, 2), got {uv_a.shape}")
        if uv_b.shape != uv_a.shape:
            raise ValueError(f"{name}.uv_b must have the shape of uv_a {uv_a.shape}, got {uv_b.shape}")
        if not (np.isfinite(uv_a).all() and np.isfinite(uv_b).all()):
            raise ValueError(f"{name}.uv_a / uv_b must be finite (give invalid matches conf 0 instead)")
        m = len(uv_a)
        conf = np.ones(m) if value.conf is None else _as_array(value.conf, np.float64, f"{name}.conf")
        if conf.shape != (m,):
            raise ValueError(f"{name}.conf must have shape ({m},), got {conf.shape}")
        if not np.isfinite(conf).all():
            raise ValueError(f"{name}.conf must be finite")
        qid = None
        if value.query_ids is not None:
            raw = np.asarray(_as_array(value.query_ids, None, f"{name}.query_ids"))
            if raw.shape != (m,) or not np.issubdtype(raw.dtype, np.integer):
                raise ValueError(
                    f"{name}.query_ids must be integers of shape ({m},), got {raw.dtype} {raw.shape}"
                )
            qid = raw.astype(np.int64)
            if len(np.unique(qid)) != m:
                raise ValueError(f"{name}.query_ids must be unique within one frame pair")
        return PairMatches(uv_a, uv_b, conf, qid)


def _as_array(value, dtype, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensors from the matcher
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} is not a numeric array: {exc}") from exc


@dataclass(frozen=True)
class Tracks:
    """Dense track table of one window: T tracks x N frames.

    uv (T, N, 2): pixel of track t in frame n (NaN where unobserved; the query pixel in the anchor frame).
    match_id (T, N): global id of the match that produced the pixel, ANCHOR for the query pixel,
    UNOBSERVED where absent. anchor (T,): anchor frame; query_id (T,): query point id in that frame.
    Global match ids enumerate ``pairs`` in order: pair p owns ids offsets[p] .. offsets[p+1]-1, in the
    order given by the caller (matches dropped for low confidence keep their ids but are never used).
    """

    num_frames: int
    pairs: tuple[tuple[int, int], ...]
    offsets: np.ndarray
    uv: np.ndarray
    match_id: np.ndarray
    anchor: np.ndarray
    query_id: np.ndarray

    @property
    def num_tracks(self) -> int:
        return len(self.anchor)

    @property
    def num_matches(self) -> int:
        return int(self.offsets[-1])

    @property
    def observed(self) -> np.ndarray:
        """(T, N) bool."""
        return self.match_id != UNOBSERVED

    def match_pair_index(self, match_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pair index into ``pairs``, index within that pair) of global match ids."""
        match_ids = np.asarray(match_ids, dtype=np.int64)
        p = np.searchsorted(self.offsets, match_ids, side="right") - 1
        return p, match_ids - self.offsets[p]

    def per_pair(self, flat: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
        """Split a per-match array (num_matches, ...) into {(a, b): array} in the caller's layout."""
        return {pair: flat[self.offsets[p] : self.offsets[p + 1]] for p, pair in enumerate(self.pairs)}


def build_tracks(matches: Mapping, num_frames: int, min_confidence: float = 0.0) -> Tracks:
    """Validate the pairwise matches and turn them into anchored tracks (see module doc)."""
    if not isinstance(num_frames, int | np.integer) or num_frames < 2:
        raise ValueError(f"num_frames must be an integer >= 2, got {num_frames!r}")
    if not isinstance(matches, Mapping) or not matches:
        raise ValueError("matches must be a non-empty mapping {(a, b): PairMatches}")
    pairs: list[tuple[int, int]] = []
    sets: list[PairMatches] = []
    for key, value in matches.items():
        if not isinstance(key, tuple) or len(key) != 2:
            raise ValueError(f"matches key must be a frame pair (a, b), got {key!r}")
        a, b = int(key[0]), int(key[1])
        if not (0 <= a < num_frames and 0 <= b < num_frames) or a == b:
            raise ValueError(f"matches key {key!r}: frames must differ and lie in [0, {num_frames})")
        pairs.append((a, b))
        sets.append(PairMatches.coerce(value, name=f"matches[{a}, {b}]"))
    for a in {p[0] for p in pairs}:
        explicit = {s.query_ids is not None for (pa, _), s in zip(pairs, sets, strict=True) if pa == a}
        if len(explicit) > 1:
            raise ValueError(f"matches from frame {a}: give query_ids for all pairs anchored there or none")

    sizes = np.array([len(s.uv_a) for s in sets], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    frame_a = np.repeat([p[0] for p in pairs], sizes)
    frame_b = np.repeat([p[1] for p in pairs], sizes)
    uv_a = np.concatenate([s.uv_a for s in sets])
    uv_b = np.concatenate([s.uv_b for s in sets])
    conf = np.concatenate([s.conf for s in sets])
    gid = np.arange(offsets[-1])
    qid = _query_ids(pairs, sets, frame_a, uv_a)

    keep = conf >= min_confidence
    frame_a, frame_b, uv_a, uv_b, gid, qid = (x[keep] for x in (frame_a, frame_b, uv_a, uv_b, gid, qid))
    keys, track = np.unique(np.stack([frame_a, qid], 1), axis=0, return_inverse=True)
    track = track.reshape(-1)
    num_tracks = len(keys)

    if len(np.unique(track * num_frames + frame_b)) != len(track):
        raise ValueError("matches: a query point is matched twice into one frame (repeated uv_a or query id)")
    # The query pixel of a track must be one pixel, whichever pair reported it.
    first = np.unique(track, return_index=True)[1]
    if len(track) and np.abs(uv_a - uv_a[first[track]]).max() > _UV_QUANTUM:
        raise ValueError("matches: one query id has different uv_a in different frame pairs")

    uv = np.full((num_tracks, num_frames, 2), np.nan)
    match_id = np.full((num_tracks, num_frames), UNOBSERVED, dtype=np.int64)
    uv[track, frame_b] = uv_b
    match_id[track, frame_b] = gid
    anchor = keys[:, 0].astype(np.int64) if num_tracks else np.zeros(0, np.int64)
    uv[np.arange(num_tracks), anchor] = uv_a[first] if num_tracks else np.zeros((0, 2))
    match_id[np.arange(num_tracks), anchor] = ANCHOR
    query = keys[:, 1].astype(np.int64) if num_tracks else np.zeros(0, np.int64)
    return Tracks(num_frames, tuple(pairs), offsets, uv, match_id, anchor, query)


def _query_ids(pairs, sets, frame_a: np.ndarray, uv_a: np.ndarray) -> np.ndarray:
    """Per match, the id of its query point in its frame a (given, or from equal query pixels)."""
    given = [s.query_ids if s.query_ids is not None else np.full(len(s.uv_a), -1) for s in sets]
    qid = np.concatenate(given).astype(np.int64)
    implicit = np.concatenate([np.full(len(s.uv_a), s.query_ids is None) for s in sets])
    if implicit.any():
        cells = np.round(uv_a[implicit] / _UV_QUANTUM).astype(np.int64)
        _, inv = np.unique(np.column_stack([frame_a[implicit], cells]), axis=0, return_inverse=True)
        qid[implicit] = inv.reshape(-1)
    return qid
