"""benchmarks.real_clips refuses --every, --image-scale, --jpeg-quality and --scales values it cannot
honour."""

from __future__ import annotations

import pytest

from benchmarks import real_clips


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--every", "0"], "--every must be >= 1"),
        (["--every", "3", "--live-only"], "the live node drops its own"),
        (["--every", "3", "--live"], "the live node drops its own"),
        (["--image-scale", "0"], "--image-scale must lie in (0, 4]"),
        (["--image-scale", "nan"], "--image-scale must lie in (0, 4]"),
        (["--image-scale", "0.5", "--live"], "plays the clip's own"),
        (["--scales", "ground_plane,metric"], "must be one of"),
        (["--jpeg-quality", "0"], "--jpeg-quality must lie in [1, 100]"),
        (["--jpeg-quality", "90", "--live"], "re-encodes the frames offline"),
        (["--tracking", "feature_max_pixels=100"], "--tracking: feature_max_pixels must be 0"),
        (["--tracking", "max_keypoints"], "is not FIELD=VALUE"),
        (["--tracking", "no_such_field=1"], "is not FIELD=VALUE"),
        (["--tracking", "max_keypoints=many"], "invalid literal"),
    ],
)
def test_every_is_checked(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        real_clips.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_tracking_fields_are_read_as_their_types():
    config = real_clips.tracking_config(["feature_max_pixels=500000", "pnp_max_px=2.5"])
    assert config.feature_max_pixels == 500000 and config.pnp_max_px == 2.5
    assert real_clips.tracking_config([]) == real_clips.tracking_config(["feature_max_pixels=0"])
