"""Readers on the real clips in ../shared/data (KITTI 06, HoloLens) and on small TUM/KITTI fixtures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from banet_vo.data import HoloLensSequence, KittiSequence, TumSequence, open_sequence
from banet_vo.data.readers import detect_format
from banet_vo.data.readers.tum import match_one_to_one
from banet_vo.geometry import PinholeCamera
from scipy.spatial.transform import Rotation


def test_kitti06_clip(kitti06_dir: Path) -> None:
    seq = open_sequence(kitti06_dir)
    assert isinstance(seq, KittiSequence) and detect_format(kitti06_dir) == "kitti"
    assert len(seq) == 51 and not seq.has_depth
    cam = seq.camera
    assert (cam.width, cam.height) == (1226, 370)
    assert cam.fx == pytest.approx(707.0912) and cam.fy == pytest.approx(707.0912)
    assert (cam.cx, cam.cy) == pytest.approx((601.8873, 183.1104))
    np.testing.assert_allclose(seq.timestamps, 0.1 * np.arange(51), atol=1e-12)
    poses = seq.poses
    np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-5)
    assert np.linalg.norm(poses[50, :3, 3] - poses[0, :3, 3]) == pytest.approx(59.9, abs=0.1)
    # Driving forward: the camera's z axis is the direction of travel.
    travel = poses[50, :3, 3] - poses[0, :3, 3]
    assert travel @ poses[0, :3, 2] > 0.99 * np.linalg.norm(travel)
    frame = seq[50]
    assert frame.image.shape == (370, 1226) and frame.image.dtype == np.uint8
    assert frame.timestamp == pytest.approx(5.0) and frame.depth is None
    np.testing.assert_array_equal(frame.pose, poses[50])


def test_hololens_clip(hololens_dir: Path) -> None:
    seq = open_sequence(hololens_dir)
    assert isinstance(seq, HoloLensSequence) and detect_format(hololens_dir) == "hololens"
    assert len(seq) == 50 and seq.has_depth and seq.has_poses
    K = np.loadtxt(hololens_dir / "K.txt")
    np.testing.assert_array_equal(seq.camera.K, K)
    assert seq.camera.size == (540, 360)
    np.testing.assert_allclose(seq.timestamps, 0.1 * np.arange(50), atol=1e-12)
    f0 = seq[0]
    assert f0.image.shape == (360, 540, 3) and f0.depth.dtype == np.float32
    assert (f0.depth > 0).mean() == pytest.approx(0.78, abs=0.02)
    valid = f0.depth[f0.depth > 0]
    assert 0.2 < np.median(valid) < 10.0  # indoor scene in metres, not millimetres
    raw = cv2.imread(str(hololens_dir / "depth" / "00003.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(f0.depth, raw / 1000.0, rtol=1e-6)
    np.testing.assert_allclose(f0.pose, np.loadtxt(hololens_dir / "poses.txt")[0].reshape(4, 4))
    # The poses are camera-to-world: warping frame 2 into frame 0 with the GT depth and relative pose
    # explains the image far better than assuming no motion, and better than the world-to-camera reading.
    f2 = seq[2]
    ref = f0.image.astype(np.float32)

    def error_ratio(T_tgt_ref: np.ndarray) -> float:
        warped, mask = warp_into_reference(f2.image, f0.depth, seq.camera, T_tgt_ref)
        return np.abs(warped - ref)[mask].mean() / np.abs(f2.image.astype(np.float32) - ref)[mask].mean()

    assert error_ratio(np.linalg.inv(f2.pose) @ f0.pose) < 0.6  # measured 0.44
    assert error_ratio(f2.pose @ np.linalg.inv(f0.pose)) > 0.9  # measured 1.19


def warp_into_reference(
    image_tgt: np.ndarray, depth_ref: np.ndarray, cam: PinholeCamera, T_tgt_ref: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[0 : cam.height, 0 : cam.width].astype(np.float64)
    z = depth_ref.astype(np.float64)
    points = np.stack([(u - cam.cx) / cam.fx * z, (v - cam.cy) / cam.fy * z, z], axis=-1)
    moved = points @ T_tgt_ref[:3, :3].T + T_tgt_ref[:3, 3]
    zt = np.where(moved[..., 2] > 1e-6, moved[..., 2], np.nan)
    ut = cam.fx * moved[..., 0] / zt + cam.cx
    vt = cam.fy * moved[..., 1] / zt + cam.cy
    inside = (
        (z > 0) & np.isfinite(ut) & (ut >= 0) & (ut <= cam.width - 1) & (vt >= 0) & (vt <= cam.height - 1)
    )
    map_u = np.where(inside, ut, -1).astype(np.float32)
    map_v = np.where(inside, vt, -1).astype(np.float32)
    warped = cv2.remap(image_tgt, map_u, map_v, cv2.INTER_LINEAR).astype(np.float32)
    return warped, inside


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def make_tum_fixture(root: Path, with_k: bool = False) -> dict:
    """10 rgb frames at 30 Hz; depth jittered by 3 ms with frame 4's missing; ground truth at 100 Hz."""
    rng = np.random.default_rng(3)
    t_rgb = 1305031102.175304 + np.arange(10) / 30.0
    t_depth = np.delete(t_rgb + 0.003, 4)
    t_gt = 1305031102.10 + np.arange(60) / 100.0
    lines_rgb, lines_depth = ["# color images", "# timestamp filename"], ["# depth maps"]
    depths = {}
    for t in t_rgb:
        _write_png(root / "rgb" / f"{t:.6f}.png", rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        lines_rgb.append(f"{t:.6f} rgb/{t:.6f}.png")
    for t in t_depth:
        raw = rng.integers(0, 20000, (48, 64), dtype=np.uint16)
        raw[:5] = 0
        _write_png(root / "depth" / f"{t:.6f}.png", raw)
        lines_depth.append(f"{t:.6f} depth/{t:.6f}.png")
        depths[round(t, 6)] = raw
    quats = Rotation.random(len(t_gt), random_state=4).as_quat()  # qx qy qz qw
    trans = rng.normal(size=(len(t_gt), 3))
    gt = np.column_stack([t_gt, trans, quats])
    (root / "rgb.txt").write_text("\n".join(lines_rgb) + "\n")
    (root / "depth.txt").write_text("\n".join(lines_depth) + "\n")
    np.savetxt(root / "groundtruth.txt", gt, fmt="%.6f", header="timestamp tx ty tz qx qy qz qw")
    if with_k:
        np.savetxt(root / "K.txt", [[100.0, 0, 31.5], [0, 101.0, 23.5], [0, 0, 1]])
    return {"t_rgb": t_rgb, "t_gt": t_gt, "gt": np.loadtxt(root / "groundtruth.txt"), "depths": depths}


def test_tum_fixture(tmp_path: Path) -> None:
    root = tmp_path / "rgbd_dataset_freiburg1_xyz"
    fx = make_tum_fixture(root)
    seq = open_sequence(root)
    assert isinstance(seq, TumSequence) and detect_format(root) == "tum"
    keep = [0, 1, 2, 3, 5, 6, 7, 8, 9]  # frame 4 has no depth within 20 ms
    assert len(seq) == 9 and seq.has_depth and seq.has_poses
    np.testing.assert_allclose(seq.timestamps, np.round(fx["t_rgb"][keep], 6), rtol=0, atol=1e-6)
    # fr1 intrinsics scaled from 640x480 to the fixture's 64x48
    assert seq.camera == PinholeCamera(517.3, 516.5, 318.6, 255.3, 640, 480).resized(64, 48)
    for k, frame in zip(keep, seq, strict=True):
        t = round(fx["t_rgb"][k], 6)
        assert frame.image.shape == (48, 64, 3)
        np.testing.assert_allclose(frame.depth, fx["depths"][round(t + 0.003, 6)] / 5000.0, rtol=1e-6)
        row = fx["gt"][np.argmin(np.abs(fx["gt"][:, 0] - t))]
        expected = np.eye(4)
        expected[:3, :3] = Rotation.from_quat(row[4:8]).as_matrix()
        expected[:3, 3] = row[1:4]
        np.testing.assert_allclose(frame.pose, expected, atol=1e-12)


def test_tum_frames_without_ground_truth_are_left_out_with_a_warning(tmp_path: Path, caplog) -> None:
    """Ground truth sparser than the camera (a 10 Hz tracker, a 30 Hz camera) keeps only the frames it
    reaches: that must be said at WARNING, since the run on the rest still looks valid."""
    root = tmp_path / "tum"
    make_tum_fixture(root, with_k=True)
    full = len(open_sequence(root, format="tum"))
    lines = [
        ln for ln in (root / "groundtruth.txt").read_text().splitlines() if ln and not ln.startswith("#")
    ]
    (root / "groundtruth.txt").write_text("\n".join(lines[::10]) + "\n")  # 10 Hz, the camera 30 Hz
    caplog.clear()
    sparse = open_sequence(root, format="tum")
    assert len(sparse) < full
    warned = [
        r for r in caplog.records if r.levelname == "WARNING" and "rgb frames left out" in r.getMessage()
    ]
    rgb = 10  # the fixture's frames; frame 4 has no depth in either case
    assert warned and f"{rgb - len(sparse)} of {rgb} rgb frames left out" in warned[0].getMessage()


def test_tum_strict_tolerance_and_k_file(tmp_path: Path) -> None:
    root = tmp_path / "tum"
    make_tum_fixture(root, with_k=True)
    with pytest.raises(ValueError, match=r"within 0\.002 s"):
        open_sequence(root, tolerance=0.002)  # the 3 ms depth offset is now too large
    seq = open_sequence(root, format="tum")
    assert seq.camera == PinholeCamera(100.0, 101.0, 31.5, 23.5, 64, 48)
    (root / "K.txt").unlink()
    with pytest.raises(ValueError, match="no intrinsics"):
        open_sequence(root)
    seq = open_sequence(root, camera=PinholeCamera(90, 90, 32, 24, 64, 48))
    assert seq.camera.fx == 90
    lines = (root / "rgb.txt").read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]
    (root / "rgb.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="strictly increasing"):
        open_sequence(root, camera=PinholeCamera(90, 90, 32, 24, 64, 48))


def test_tum_depth_matching_is_one_to_one() -> None:
    rgb = np.array([0.0, 0.030, 0.061])
    depth = np.array([0.016, 0.062])  # 0.016 is 16 ms from rgb 0 and 14 ms from rgb 1
    np.testing.assert_array_equal(match_one_to_one(rgb, depth, 0.02), [-1, 0, 1])


def test_kitti_official_layout(tmp_path: Path, kitti06_dir: Path) -> None:
    # dataset/sequences/06/{image_0, calib.txt "P0: ...", times.txt} + dataset/poses/06.txt
    seq_dir = tmp_path / "dataset" / "sequences" / "06"
    (seq_dir / "image_0").mkdir(parents=True)
    for i in range(3):
        (seq_dir / "image_0" / f"{i:06d}.png").write_bytes(
            (kitti06_dir / "image_l" / f"{i:06d}.png").read_bytes()
        )
    calib = (kitti06_dir / "calib.txt").read_text().splitlines()
    (seq_dir / "calib.txt").write_text(f"P0: {calib[0]}\nP1: {calib[1]}\n")
    (seq_dir / "times.txt").write_text("0.000000e+00\n1.036793e-01\n2.073585e-01\n")
    (tmp_path / "dataset" / "poses").mkdir()
    poses = (kitti06_dir / "poses.txt").read_text().splitlines()
    (tmp_path / "dataset" / "poses" / "06.txt").write_text("\n".join(poses[:3]) + "\n")
    seq = open_sequence(seq_dir)
    assert seq.name == "06" and len(seq) == 3 and seq.camera.fx == pytest.approx(707.0912)
    np.testing.assert_allclose(seq.timestamps, [0.0, 0.1036793, 0.2073585])
    np.testing.assert_allclose(seq.poses[2, :3].reshape(-1), np.array(poses[2].split(), float))
    # The whole drive's file (line k is frame k, as KITTI ships it) beside the first 3 images: their lines.
    (tmp_path / "dataset" / "poses" / "06.txt").write_text("\n".join(poses[:5]) + "\n")
    np.testing.assert_array_equal(open_sequence(seq_dir).poses, seq.poses)
    (tmp_path / "dataset" / "poses" / "06.txt").write_text("\n".join(poses[:2]) + "\n")
    with pytest.raises(ValueError, match=r"06\.txt has 2 lines"):
        open_sequence(seq_dir)


def test_hololens_layout_errors(tmp_path: Path, hololens_dir: Path) -> None:
    root = tmp_path / "scene"
    for sub in ("images", "depth"):
        (root / sub).mkdir(parents=True)
        for name in ("00003.png", "00004.png"):
            (root / sub / name).write_bytes((hololens_dir / sub / name).read_bytes())
    (root / "K.txt").write_bytes((hololens_dir / "K.txt").read_bytes())
    poses = (hololens_dir / "poses.txt").read_text().splitlines()
    (root / "poses.txt").write_text("\n".join(poses[:3]) + "\n")
    with pytest.raises(ValueError, match=r"poses\.txt has 3 lines"):
        HoloLensSequence(root)
    (root / "poses.txt").write_text("\n".join(poses[:2]) + "\n")
    assert len(HoloLensSequence(root)) == 2
    (root / "depth" / "00004.png").unlink()
    with pytest.raises(ValueError, match="depth folder"):
        HoloLensSequence(root)


def test_kitti_image_2_poses_are_camera_2s(tmp_path: Path) -> None:
    """KITTI's poses are camera 0's; image_2/ (the colour camera, P2) sits beside it. Check against the
    projection itself: a world point seen through P2 from camera 0's pose must land where the reader's
    camera and pose put it."""
    root = tmp_path / "seq"
    (root / "image_2").mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(root / "image_2" / f"{i:06d}.png"), np.zeros((40, 60, 3), np.uint8))
    P0 = np.array([[700.0, 0.0, 30.0, 0.0], [0.0, 700.0, 20.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    K2 = np.array([[710.0, 0.0, 31.0], [0.0, 710.0, 19.0], [0.0, 0.0, 1.0]])
    t2 = np.array([0.06, -0.002, 0.003])  # camera 2's P2 = K2 [I | t2]: ~6 cm beside camera 0
    P2 = np.c_[K2, K2 @ t2]
    lines = [f"P{k}: " + " ".join(map(str, P.reshape(-1))) for k, P in enumerate((P0, P0, P2))]
    (root / "calib.txt").write_text("\n".join(lines) + "\n")
    T_w_c0 = np.stack([np.eye(4), np.eye(4)])
    T_w_c0[1, :3, :3] = Rotation.from_euler("xyz", [0.1, -0.2, 0.3]).as_matrix()
    T_w_c0[1, :3, 3] = [1.0, 2.0, 3.0]
    (root / "poses.txt").write_text("\n".join(" ".join(map(str, T[:3].reshape(-1))) for T in T_w_c0) + "\n")
    seq = open_sequence(root)
    assert isinstance(seq, KittiSequence) and seq.camera.fx == 710.0
    X_w = np.array([0.7, -0.4, 12.0, 1.0])
    for T, frame in zip(T_w_c0, seq, strict=True):
        expected = P2 @ (np.linalg.inv(T) @ X_w)  # KITTI's definition: P2 maps camera 0 coordinates
        x_c2 = (np.linalg.inv(frame.pose) @ X_w)[:3]
        got = seq.camera.K @ x_c2
        np.testing.assert_allclose(got[:2] / got[2], expected[:2] / expected[2], atol=1e-9)
        # camera 2's centre is -t2 in camera 0's frame
        np.testing.assert_allclose(np.linalg.inv(T) @ frame.pose[:, 3], [*(-t2), 1.0], atol=1e-12)


def test_a_failed_overwrite_leaves_the_old_sequence(tmp_path: Path) -> None:
    """overwrite=True must not delete the old sequence before the new one is complete: a frame refused
    half-way (depth too far for uint16 mm) leaves the old one readable, and nothing beside it."""
    from banet_vo.data import Frame, write_sequence

    camera = PinholeCamera(40.0, 40.0, 15.5, 11.5, 32, 24)
    rng = np.random.default_rng(1)

    def frames(n: int, far_at: int | None = None) -> list[Frame]:
        out = []
        for i in range(n):
            depth = np.full((24, 32), 70.0 if i == far_at else 2.0 + i, np.float32)
            image = rng.integers(0, 256, (24, 32), dtype=np.uint8)
            out.append(Frame(i, 0.1 * i, image, camera, depth, np.eye(4)))
        return out

    out = tmp_path / "seq"
    old = frames(4)
    write_sequence(old, out)
    (out / "notes.txt").write_text("mine")  # not ours: always left alone
    with pytest.raises(ValueError, match=r"frames\[2\]\.depth"):
        write_sequence(frames(5, far_at=2), out, overwrite=True)
    seq = open_sequence(out)
    assert len(seq) == 4 and (out / "notes.txt").read_text() == "mine"
    np.testing.assert_array_equal(seq[3].image, old[3].image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq"]  # no staging folder left behind
    # a complete overwrite replaces it, without depth now: the old depth folder goes too
    new = [Frame(f.index, f.timestamp, f.image, f.camera, None, f.pose) for f in frames(2)]
    write_sequence(new, out, overwrite=True)
    seq = open_sequence(out)
    assert len(seq) == 2 and not seq.has_depth and not (out / "depth").exists()
    assert (out / "notes.txt").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["seq"]
    np.testing.assert_array_equal(seq[1].image, new[1].image)


def test_a_tum_file_list_keeps_a_path_with_spaces(tmp_path):
    """`stamp path` lines were split on every space: 'rgb/my img 0.png' read as 'rgb/my'."""
    from banet_vo.data.readers.tum import read_file_list

    listing = tmp_path / "rgb.txt"
    listing.write_text(
        "# timestamp filename\n1305031102.175304 rgb/my img 0.png\n1305031102.211214 rgb/b.png\n"
    )
    _, names, stamps_ns = read_file_list(listing)
    assert names == ["rgb/my img 0.png", "rgb/b.png"]
    assert stamps_ns.tolist() == [1_305_031_102_175_304_000, 1_305_031_102_211_214_000]
