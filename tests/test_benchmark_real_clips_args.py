"""benchmarks.real_clips refuses --every values it cannot honour before it loads anything."""

from __future__ import annotations

import pytest

from benchmarks import real_clips


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--every", "0"], "--every must be >= 1"),
        (["--every", "3", "--live-only"], "the live node drops its own"),
        (["--every", "3", "--live"], "the live node drops its own"),
    ],
)
def test_every_is_checked(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        real_clips.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
