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


def test_process_memory_reads_the_resident_size_and_its_peak():
    from benchmarks.process_memory import proc_status_mb

    block = bytearray(64 * 1024 * 1024)  # touched below, so it is resident
    block[::4096] = b"\x01" * len(block[::4096])
    resident, peak = proc_status_mb("VmRSS"), proc_status_mb("VmHWM")
    assert 64 < resident <= peak
    with pytest.raises(RuntimeError, match="NoSuchField not in"):
        proc_status_mb("NoSuchField")
    del block


def test_allocated_memory_follows_an_allocation_and_its_release():
    from benchmarks.process_memory import malloc_in_use_mb

    before = malloc_in_use_mb()
    if before is None:
        pytest.skip("no glibc >= 2.33 mallinfo2 in this C library: allocated MB is not measured here")
    block = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB through the C allocator
    during = malloc_in_use_mb()
    del block
    after = malloc_in_use_mb()
    assert during - before == pytest.approx(64, abs=4)
    assert after - before == pytest.approx(0, abs=4)
