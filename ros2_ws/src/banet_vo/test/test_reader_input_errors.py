"""A user's own dataset with a mistake in it: found and named, or read right, never silently misread.
(Each case was found by converting the shared clips into every supported layout and breaking them.)"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from banet_vo.data import open_sequence
from banet_vo.geometry import PinholeCamera


def _kitti_tree(tmp_path: Path, kitti06_dir: Path, frames: int = 3) -> Path:
    seq_dir = tmp_path / "dataset" / "sequences" / "06"
    (seq_dir / "image_0").mkdir(parents=True)
    for i in range(frames):
        (seq_dir / "image_0" / f"{i:06d}.png").symlink_to(kitti06_dir / "image_l" / f"{i:06d}.png")
    calib = (kitti06_dir / "calib.txt").read_text().splitlines()
    (seq_dir / "calib.txt").write_text(f"P0: {calib[0]}\nP1: {calib[1]}\n")
    (tmp_path / "dataset" / "poses").mkdir()
    poses = (kitti06_dir / "poses.txt").read_text().splitlines()
    (tmp_path / "dataset" / "poses" / "06.txt").write_text("\n".join(poses[:frames]) + "\n")
    return seq_dir


def test_kitti_tree_opened_by_a_relative_path_finds_its_poses(tmp_path, kitti06_dir, monkeypatch):
    seq_dir = _kitti_tree(tmp_path, kitti06_dir)
    expected = open_sequence(seq_dir).poses
    for cwd, given in ((seq_dir.parent, "06"), (seq_dir, ".")):
        monkeypatch.chdir(cwd)
        seq = open_sequence(given)
        assert seq.name == "06" and seq.has_poses, given
        np.testing.assert_array_equal(seq.poses, expected)


def test_k_written_column_by_column_or_not_normalised_is_refused():
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    assert PinholeCamera.from_K(K, 640, 480).cx == 320
    with pytest.raises(ValueError, match="row by row"):
        PinholeCamera.from_K(K.T, 640, 480)  # read row-major, this was a camera with cx = cy = 0
    with pytest.raises(ValueError, match="row by row"):
        PinholeCamera.from_K(2 * K, 640, 480)


def test_k_for_another_resolution_is_warned_about(tmp_path, caplog):
    (tmp_path / "images").mkdir()
    import cv2

    for i in range(2):
        assert cv2.imwrite(str(tmp_path / "images" / f"{i:05d}.png"), np.zeros((240, 320, 3), np.uint8))
    np.savetxt(tmp_path / "K.txt", [[500, 0, 319.5], [0, 500, 239.5], [0, 0, 1]])  # K of 640x480
    with caplog.at_level(logging.WARNING, logger="banet_vo"):
        open_sequence(tmp_path)
    assert "another resolution" in caplog.text
    caplog.clear()
    np.savetxt(tmp_path / "K.txt", [[250, 0, 159.5], [0, 250, 119.5], [0, 0, 1]])
    with caplog.at_level(logging.WARNING, logger="banet_vo"):
        open_sequence(tmp_path)
    assert "another resolution" not in caplog.text


def test_kitti_calib_mistakes_name_the_file_and_line(tmp_path, kitti06_dir):
    seq_dir = _kitti_tree(tmp_path, kitti06_dir)
    calib = (kitti06_dir / "calib.txt").read_text().splitlines()
    short = " ".join(calib[0].split()[:11])
    (seq_dir / "calib.txt").write_text(f"P0: {short}\nP1: {calib[1]}\n")
    with pytest.raises(ValueError, match=r"calib\.txt line 1: P0 must have 12 numbers \(3x4\), got 11"):
        open_sequence(seq_dir)
    skewed = calib[0].split()
    skewed[1] = "5.0"
    (seq_dir / "calib.txt").write_text(f"P0: {' '.join(skewed)}\nR0_rect: 1 0 0 0 1 0 0 0 1\n")
    with pytest.raises(ValueError, match=r"calib\.txt, P0: K has non-zero skew"):
        open_sequence(seq_dir)


def test_a_frame_missing_from_a_numbered_folder_keeps_its_gap(tmp_path, kitti06_dir):
    # KITTI without times.txt: stamps from the file numbers; the poses file's line for the missing frame
    # is skipped, not shifted onto the next frame.
    seq_dir = _kitti_tree(tmp_path, kitti06_dir, frames=6)
    full = open_sequence(seq_dir)
    (seq_dir / "image_0" / "000003.png").unlink()
    seq = open_sequence(seq_dir)
    assert len(seq) == 5
    np.testing.assert_allclose(seq.timestamps, [0.0, 0.1, 0.2, 0.4, 0.5], atol=1e-12)
    np.testing.assert_array_equal(seq.poses, full.poses[[0, 1, 2, 4, 5]])
    # A poses file that fits neither the images nor their numbering says which frames are missing.
    lines = (tmp_path / "dataset" / "poses" / "06.txt").read_text().splitlines()
    (tmp_path / "dataset" / "poses" / "06.txt").write_text("\n".join(lines[:4]) + "\n")
    with pytest.raises(ValueError, match=r"has 4 lines but the sequence has 5 images \(frames 3 are missing"):
        open_sequence(seq_dir)


def test_a_cut_of_kitti_images_beside_the_whole_recordings_files_reads_its_own_lines(tmp_path, kitti06_dir):
    """KITTI's poses/NN.txt and times.txt have one line per frame of the whole drive (line k is frame k).
    A user's cut of the images (frames 10-14, one missing) beside those whole files takes the lines of its
    own frames (it was refused: 51 lines for 4 images)."""
    seq_dir = _kitti_tree(tmp_path, kitti06_dir, frames=51)
    whole = open_sequence(seq_dir)
    times = "\n".join(f"{0.1 * k:.6f}" for k in range(51)) + "\n"
    (seq_dir / "times.txt").write_text(times)
    for k in [*range(10), 12, *range(15, 51)]:
        (seq_dir / "image_0" / f"{k:06d}.png").unlink()
    cut = open_sequence(seq_dir)
    assert len(cut) == 4
    np.testing.assert_array_equal(cut.poses, whole.poses[[10, 11, 13, 14]])
    np.testing.assert_allclose(cut.timestamps, [1.0, 1.1, 1.3, 1.4], atol=1e-9)


def test_a_hololens_frame_missing_keeps_its_gap(tmp_path, hololens_dir):
    root = tmp_path / "scene"
    (root / "images").mkdir(parents=True)
    for n in (3, 4, 6, 7):
        (root / "images" / f"{n:05d}.png").symlink_to(hololens_dir / "images" / f"{n:05d}.png")
    (root / "K.txt").symlink_to(hololens_dir / "K.txt")
    poses = (hololens_dir / "poses.txt").read_text().splitlines()
    (root / "poses.txt").write_text("\n".join(poses[:5]) + "\n")  # frames 3-7
    seq = open_sequence(root)
    np.testing.assert_allclose(seq.timestamps, [0.0, 0.1, 0.3, 0.4], atol=1e-12)
    np.testing.assert_allclose(seq.poses[2].reshape(-1), np.array(poses[3].split(), float))


def test_real_clips_refuses_a_folder_without_poses_before_running(tmp_path, hololens_dir):
    from banet_vo.evaluation.real_clips import resolve_clip

    root = tmp_path / "scene"
    (root / "images").mkdir(parents=True)
    (root / "images" / "00003.png").symlink_to(hololens_dir / "images" / "00003.png")
    (root / "K.txt").symlink_to(hololens_dir / "K.txt")
    with pytest.raises(ValueError, match="has no ground-truth poses"):
        resolve_clip(str(root), tmp_path)


def test_banet_vo_bag_shows_what_the_reader_left_out(tmp_path, hololens_dir, capsys):
    from banet_vo.data.bags_cli import main

    root = tmp_path / "scene"
    (root / "images").mkdir(parents=True)
    for n in (3, 5):
        (root / "images" / f"{n:05d}.png").symlink_to(hololens_dir / "images" / f"{n:05d}.png")
    (root / "K.txt").symlink_to(hololens_dir / "K.txt")
    level = logging.getLogger("banet_vo").level
    # A caller that set up logging of its own (a root handler on stderr) sees each message once.
    import sys

    caller = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(caller)
    try:
        assert main([str(root), str(tmp_path / "bag")]) == 0
    finally:
        logging.getLogger().removeHandler(caller)
    assert capsys.readouterr().err.count("1 frame numbers missing between 3 and 5") == 1
    assert logging.getLogger("banet_vo").level == level  # left as it was
    assert logging.getLogger("banet_vo").propagate


def test_stamps_as_file_names_are_not_frame_numbers(tmp_path, hololens_dir):
    # Frames exported from a bag are often named by their nanosecond stamp: not frame numbers.
    (tmp_path / "images").mkdir()
    for k in range(3):
        name = f"{1699999999000000000 + k * 33333333}.png"
        (tmp_path / "images" / name).symlink_to(hololens_dir / "images" / f"{3 + k:05d}.png")
    (tmp_path / "K.txt").symlink_to(hololens_dir / "K.txt")
    np.testing.assert_allclose(open_sequence(tmp_path).timestamps, [0.0, 0.1, 0.2], atol=1e-12)


def test_decimal_stamps_as_names_sort_by_time():
    from banet_vo.data.readers._files import frame_order

    names = ["1305031102.2.png", "1305031102.175304.png", "1305031103.01.png", "1305031102.19.png"]
    assert sorted(names, key=frame_order) == [
        "1305031102.175304.png",
        "1305031102.19.png",
        "1305031102.2.png",
        "1305031103.01.png",
    ]


def test_frame_numbers_after_a_dotted_prefix_sort_as_numbers():
    """A renderer's frame.%d.png: the numbers after "frame." were taken for fractions and sorted as text
    (0, 1, 10, 11, 2, ...), pairing every image from 2 on with another frame's pose and time."""
    from banet_vo.data.readers._files import frame_order

    names = [f"frame.{i}.png" for i in (10, 2, 0, 11, 1)]
    assert sorted(names, key=frame_order) == [f"frame.{i}.png" for i in (0, 1, 2, 10, 11)]
    assert sorted(["img.2.5.png", "img.2.25.png"], key=frame_order) == ["img.2.25.png", "img.2.5.png"]


def test_a_linked_sequence_folder_keeps_its_name_and_its_neighbours(tmp_path, kitti06_dir):
    elsewhere = _kitti_tree(tmp_path / "disk2", kitti06_dir) / ".."
    tree = tmp_path / "dataset"
    (tree / "sequences").mkdir(parents=True)
    (tree / "sequences" / "07").symlink_to((elsewhere / "06").resolve())  # another sequence's images
    (tree / "poses").mkdir()
    source = tmp_path / "disk2" / "dataset" / "poses" / "06.txt"
    (tree / "poses" / "07.txt").write_text(source.read_text())
    source.unlink()  # only beside the link
    seq = open_sequence(tree / "sequences" / "07")
    assert seq.name == "07" and seq.has_poses


def test_tum_bad_stamps_name_the_line(tmp_path):
    import cv2

    (tmp_path / "rgb").mkdir()
    assert cv2.imwrite(str(tmp_path / "rgb" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    np.savetxt(tmp_path / "K.txt", [[10, 0, 3.5], [0, 10, 3.5], [0, 0, 1]])
    for bad in ("inf", "nan", "1e30", "-5"):
        (tmp_path / "rgb.txt").write_text(f"# stamps\n1.0 rgb/a.png\n{bad} rgb/a.png\n")
        with pytest.raises(ValueError, match=rf"rgb\.txt line 3: bad timestamp '{bad}'"):
            open_sequence(tmp_path)


def test_a_bad_pose_is_named_by_its_line_in_the_file(tmp_path, kitti06_dir):
    seq_dir = _kitti_tree(tmp_path, kitti06_dir, frames=6)
    (seq_dir / "image_0" / "000003.png").unlink()
    poses_file = tmp_path / "dataset" / "poses" / "06.txt"
    lines = poses_file.read_text().splitlines()
    lines[4] = " ".join(["2"] * 12)  # frame 4's line (the file's 5th), not a rotation
    poses_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"06\.txt line 5 rotation"):
        open_sequence(seq_dir)
    # Comment and blank lines count: the line named is the one an editor shows.
    poses_file.write_text("# poses of drive 06\n\n" + "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"06\.txt line 7 rotation"):
        open_sequence(seq_dir)


def test_real_clips_says_a_readers_warning_once(tmp_path, hololens_dir, caplog):
    # resolve_clip opens the folder to check it has poses; the warning comes when the clip is loaded.
    from banet_vo.evaluation.real_clips import load_clip, resolve_clip

    root = tmp_path / "scene"
    (root / "images").mkdir(parents=True)
    for n in (3, 4, 6):  # frame 5 missing: the reader warns
        (root / "images" / f"{n:05d}.png").symlink_to(hololens_dir / "images" / f"{n:05d}.png")
    (root / "K.txt").symlink_to(hololens_dir / "K.txt")
    poses = (hololens_dir / "poses.txt").read_text().splitlines()
    (root / "poses.txt").write_text("\n".join(poses[:4]) + "\n")
    with caplog.at_level(logging.WARNING, logger="banet_vo"):
        spec = resolve_clip(str(root), tmp_path)
        assert "have no image" not in caplog.text
        load_clip(spec, tmp_path)
    assert caplog.text.count("have no image") == 1
    assert logging.getLogger("banet_vo.data").level == logging.NOTSET
