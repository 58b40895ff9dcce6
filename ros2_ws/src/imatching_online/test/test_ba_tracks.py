"""Track building from pairwise matches: grouping, match-id bookkeeping, input validation."""

import numpy as np
import pytest
from imatching_online.ba import ANCHOR, PairMatches, WindowConfig, build_tracks
from imatching_online.ba.tracks import UNOBSERVED


def _pairs():
    uv0 = np.array([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])
    return {
        (0, 1): PairMatches(uv0, uv0 + 1.0, np.array([0.9, 0.8, 0.7]), np.array([5, 6, 7])),
        # Same query points of frame 0, another order and a subset.
        (0, 2): PairMatches(uv0[[2, 0]], uv0[[2, 0]] + 2.0, None, np.array([7, 5])),
        (2, 1): (np.array([[1.0, 1.0]]), np.array([[2.0, 2.0]])),
    }


def test_shared_query_ids_make_one_track_per_query_point():
    tracks = build_tracks(_pairs(), 3)
    assert tracks.num_tracks == 4  # three queries of frame 0, one of frame 2
    assert tracks.num_matches == 6
    t7 = np.flatnonzero((tracks.anchor == 0) & (tracks.query_id == 7))[0]
    np.testing.assert_allclose(tracks.uv[t7, 0], [50.0, 60.0])
    np.testing.assert_allclose(tracks.uv[t7, 1], [51.0, 61.0])
    np.testing.assert_allclose(tracks.uv[t7, 2], [52.0, 62.0])
    assert tracks.match_id[t7, 0] == ANCHOR
    # Global ids follow the caller's layout: pair (0, 1) row 2 is id 2, pair (0, 2) row 0 is id 3.
    assert tracks.match_id[t7, 1] == 2 and tracks.match_id[t7, 2] == 3
    pair, row = tracks.match_pair_index(np.array([2, 3, 5]))
    assert [tracks.pairs[p] for p in pair] == [(0, 1), (0, 2), (2, 1)]
    np.testing.assert_array_equal(row, [2, 0, 0])
    t6 = np.flatnonzero((tracks.anchor == 0) & (tracks.query_id == 6))[0]
    assert tracks.match_id[t6, 2] == UNOBSERVED and np.isnan(tracks.uv[t6, 2]).all()


def test_every_match_lands_in_the_table_at_its_id():
    matches = _pairs()
    tracks = build_tracks(matches, 3)
    flat_uv_b = np.concatenate([PairMatches.coerce(m).uv_b for m in matches.values()])
    t, n = np.nonzero(tracks.match_id >= 0)
    np.testing.assert_allclose(tracks.uv[t, n], flat_uv_b[tracks.match_id[t, n]])
    per_pair = tracks.per_pair(np.arange(tracks.num_matches))
    assert [len(v) for v in per_pair.values()] == [3, 2, 1]


def test_implicit_query_ids_group_equal_query_pixels():
    uv0 = np.array([[10.0, 20.0], [30.0, 40.0]])
    matches = {(1, 0): (uv0, uv0 + 1), (1, 2): (uv0[::-1] + 1e-5, uv0[::-1] + 3)}
    tracks = build_tracks(matches, 3)
    assert tracks.num_tracks == 2
    assert (tracks.observed.sum(1) == 3).all()


def test_low_confidence_matches_are_dropped_but_keep_their_ids():
    tracks = build_tracks(_pairs(), 3, min_confidence=0.75)
    assert tracks.num_matches == 6
    used = set(tracks.match_id[tracks.match_id >= 0].tolist())
    assert 2 not in used and {0, 1, 3, 4, 5} <= used


@pytest.mark.parametrize(
    ("matches", "num_frames", "field"),
    [
        ({(0, 3): (np.zeros((2, 2)), np.zeros((2, 2)))}, 3, "lie in"),
        ({(1, 1): (np.zeros((2, 2)), np.zeros((2, 2)))}, 3, "frames must differ"),
        ({(0, 1): (np.zeros((2, 3)), np.zeros((2, 3)))}, 3, "uv_a must have shape"),
        ({(0, 1): (np.zeros((2, 2)), np.zeros((3, 2)))}, 3, "uv_b must have the shape"),
        ({(0, 1): (np.full((2, 2), np.nan), np.zeros((2, 2)))}, 3, "finite"),
        ({(0, 1): (np.zeros((2, 2)), np.ones((2, 2)), np.ones(3))}, 3, "conf must have shape"),
        ({(0, 1): (np.eye(2), np.eye(2), None, np.array([1, 1]))}, 3, "unique"),
        ({(0, 1): (np.eye(2), np.eye(2), None, np.array([0.5, 1.0]))}, 3, "query_ids must be integers"),
        (
            {(0, 1): (np.eye(2), np.eye(2), None, np.arange(2)), (0, 2): (np.eye(2), np.eye(2))},
            3,
            "all pairs",
        ),
        (
            {
                (0, 1): (np.eye(2), np.eye(2), None, np.arange(2)),
                (0, 2): (np.eye(2) + 5, np.eye(2), None, np.arange(2)),
            },
            3,
            "different uv_a",
        ),
        ({(0, 1): (np.ones((2, 2)), np.eye(2))}, 3, "matched twice"),
        ({}, 3, "non-empty"),
        ({(0, 1): (np.eye(2), np.eye(2))}, 1, "num_frames"),
        ({(0, 1): "nonsense"}, 3, "PairMatches or a tuple"),
    ],
)
def test_bad_input_raises_value_error_naming_the_field(matches, num_frames, field):
    with pytest.raises(ValueError, match=field):
        build_tracks(matches, num_frames)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window_size": 1}, "window_size"),
        ({"outlier_threshold_px": 0.0}, "outlier_threshold_px"),
        ({"passes": 0}, "passes"),
        ({"kernel": "tukey"}, "kernel"),
        ({"min_track_length": 1}, "min_track_length"),
        ({"min_inlier_ratio": 1.5}, "min_inlier_ratio"),
        ({"min_parallax_deg": float("nan")}, "min_parallax_deg"),
        ({"lm_iterations": 2.5}, "lm_iterations"),
        ({"min_pair_matches": 4}, "min_pair_matches"),
    ],
)
def test_window_config_validates(kwargs, field):
    with pytest.raises(ValueError, match=field):
        WindowConfig(**kwargs)
