"""benchmarks.long_run's stream order: continuous positions, turning at each end."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.long_run import ping_pong


def test_ping_pong_turns_at_each_end_without_repeating_a_frame():
    assert ping_pong(4, 1).tolist() == [0, 1, 2, 3]
    assert ping_pong(4, 3).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    order = ping_pong(51, 10)
    assert len(order) == 51 + 9 * 50
    assert np.all(np.abs(np.diff(order)) == 1)  # every step moves one frame: positions stay continuous


@pytest.mark.parametrize(("n", "passes"), [(1, 3), (5, 0)])
def test_ping_pong_refuses_degenerate_input(n, passes):
    with pytest.raises(ValueError, match="need n >= 2"):
        ping_pong(n, passes)
