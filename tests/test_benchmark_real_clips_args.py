"""benchmarks.real_clips refuses --every, --image-scale, --jpeg-quality, --ba-hold and --scales values it
cannot honour."""

from __future__ import annotations

import pytest

from benchmarks import real_clips


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--every", "0"], "--every must be >= 1"),
        (["--every", "3", "--live-only"], "the live node drops its own"),
        (["--every", "3", "--live"], "the live node drops its own"),
        (["--settle", "--live"], "timing decides"),
        (["--reverse", "--live"], "the bags play forward"),
        (["--ba-hold", "-1"], "--ba-hold must be >= 0"),
        (["--ba-hold", "2", "--live-only"], "stands in for the live worker offline"),
        (["--depth-calibration", "--live-only"], "--live-param depth_calibration:=true"),
        (["--image-scale", "0"], "--image-scale must lie in (0, 4]"),
        (["--image-scale", "nan"], "--image-scale must lie in (0, 4]"),
        (["--image-scale", "0.5", "--live"], "plays the clip's own"),
        (["--scales", "ground_plane,metric"], "must be one of"),
        (["--jpeg-quality", "0"], "--jpeg-quality must lie in [1, 100]"),
        (["--jpeg-quality", "90", "--live"], "re-encodes the frames offline"),
        (["--gray", "--live"], "--gray converts the frames offline"),
        (["--clips", "hololens150-199", "--live"], "hololens150-199 is part of one"),
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


def test_an_unknown_clip_names_what_was_looked_for(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        real_clips.main(["--clips", "no_such_clip", "--data", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--clips: unknown clip 'no_such_clip'" in err and "kitti06" in err


def _own_kitti_clip(kitti06_dir, root, frames: int):
    """A clip of one's own in KITTI's layout: the first `frames` frames of KITTI 06, linked, not copied."""
    clip = root / "my_kitti_clip"
    (clip / "image_l").mkdir(parents=True)
    for i in range(frames):
        name = f"{i:06d}.png"
        (clip / "image_l" / name).symlink_to(kitti06_dir / "image_l" / name)
    (clip / "calib.txt").symlink_to(kitti06_dir / "calib.txt")
    lines = (kitti06_dir / "poses.txt").read_text().splitlines()[:frames]
    (clip / "poses.txt").write_text("\n".join(lines) + "\n")
    return clip


def test_a_folder_of_ones_own_runs_with_the_same_command(kitti06_dir, tmp_path):
    clip = _own_kitti_clip(kitti06_dir, tmp_path, 8)
    out = tmp_path / "table.md"
    argv = ["--clips", str(clip), "--frontends", "none", "--references", "orb", "--threads", "1"]
    argv += ["--tracking", "pnp_max_px=3"]  # today's value: the title names an override all the same
    assert real_clips.main([*argv, "--out", str(out)]) == 0
    table = out.read_text()
    assert table.splitlines()[0].endswith(", tracking pnp_max_px=3")
    rows = [line for line in table.splitlines() if line.startswith("| my_kitti_clip |")]
    methods = [row.split("|")[2].strip() for row in rows]
    assert "banet_vo none, scale learned" in methods and "OpenCV ORB + 5-point" in methods
    for row in rows[:2]:
        assert float(row.split("|")[3]) > 0  # an ATE was computed against the folder's own poses
    # The shape with the scale given, beside the reference that had it too.
    lines = table.splitlines()
    at = lines.index("| clip | Sim(3) ATE with the true step lengths [m] |")
    (shape,) = [line for line in lines[at + 2 :] if line.startswith("| my_kitti_clip |")]
    cells = dict(c.rsplit(" ", 1) for c in shape.split("|")[2].strip().split("; "))
    assert set(cells) == {"banet_vo none, scale learned", "OpenCV ORB + 5-point"}
    orb = next(r for r in rows if "OpenCV ORB" in r)
    assert float(cells["OpenCV ORB + 5-point"]) == float(orb.split("|")[3])
    assert 0 < float(cells["banet_vo none, scale learned"]) < float(rows[0].split("|")[3])


def test_ba_hold_runs_the_xfeat_rows_with_a_held_window_ba(kitti06_dir, tmp_path, monkeypatch):
    """--ba-hold N: the xfeat rows run background_ba with backend.background.HeldBundleAdjuster(N), every
    frame ticking it, and the table says so."""
    from banet_vo.backend import background

    made = []
    real = background.HeldBundleAdjuster

    def recording(hold_frames):
        made.append(real(hold_frames))
        return made[-1]

    monkeypatch.setattr(background, "HeldBundleAdjuster", recording)
    clip = _own_kitti_clip(kitti06_dir, tmp_path, 12)
    out = tmp_path / "table.md"
    argv = ["--clips", str(clip), "--frontends", "xfeat", "--scales", "none", "--references", "orb"]
    assert real_clips.main([*argv, "--threads", "1", "--ba-hold", "2", "--out", str(out)]) == 0
    table = out.read_text()
    assert "each window's result taken 2 frames late (--ba-hold)" in table
    assert any(line.startswith("| my_kitti_clip | banet_vo xfeat, scale none") for line in table.splitlines())
    assert len(made) == 1 and made[0].hold_frames == 2 and made[0].submitted >= 2


def test_a_clip_that_fails_mid_run_keeps_the_others_results(kitti06_dir, tmp_path, capsys):
    good = _own_kitti_clip(kitti06_dir, tmp_path, 6)
    broken = tmp_path / "broken"
    broken.mkdir()
    bad = _own_kitti_clip(kitti06_dir, broken, 6)
    (bad / "image_l" / "000003.png").unlink()
    (bad / "image_l" / "000003.png").write_bytes(b"not a png")  # read when its frame comes
    out = tmp_path / "table.md"
    argv = ["--clips", f"{bad},{good}", "--frontends", "none", "--references", "orb", "--threads", "1"]
    assert real_clips.main([*argv, "--out", str(out)]) == 1
    assert "could not be decoded" in capsys.readouterr().err
    table = out.read_text()
    assert any(line.startswith("| my_kitti_clip | banet_vo none") for line in table.splitlines())
    assert "failed (image file" in table
