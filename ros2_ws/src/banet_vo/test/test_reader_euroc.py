"""The EuRoC (ASL layout) reader on a real clip written out as EuRoC would ship it: raw images through a
known lens distortion, ground truth of another sensor at a higher rate, the camera's extrinsics in
sensor.yaml. Reading it back must give the clip's own camera poses and (up to resampling) its images."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from banet_vo.data import open_sequence
from banet_vo.data.readers import detect_format
from banet_vo.data.readers.euroc import EurocSequence, interpolate_poses, read_sensor_yaml
from scipy.spatial.transform import Rotation, Slerp

# A camera in the body frame and a ground-truth sensor in the body frame (EuRoC's cam0 is about this far
# from the IMU; the marker offset is made up).
T_B_CAM = np.eye(4)
T_B_CAM[:3, :3] = Rotation.from_euler("xyz", [2.0, -1.5, 91.0], degrees=True).as_matrix()
T_B_CAM[:3, 3] = [-0.02, -0.065, 0.01]
T_B_GT = np.eye(4)
T_B_GT[:3, :3] = Rotation.from_euler("xyz", [0.0, 10.0, -5.0], degrees=True).as_matrix()
T_B_GT[:3, 3] = [0.05, 0.0, -0.1]
RADTAN = [-0.28, 0.074, 0.0002, 0.00002]  # EuRoC cam0's order of magnitude
EQUIDISTANT = [0.0034, 0.0007, -0.0020, 0.0003]  # a mild fisheye's


@pytest.fixture(scope="module")
def tartanair_dir(shared_data: Path) -> Path:
    return shared_data / "tartanair_hospital_000-188"


def _distort(image: np.ndarray, K: np.ndarray, D: list[float], model: str) -> np.ndarray:
    """The raw image a lens with distortion D would have recorded of this pinhole image (camera K)."""
    h, w = image.shape[:2]
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    raw = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
    if model == "equidistant":
        undistorted = cv2.fisheye.undistortPoints(raw, K, np.asarray(D).reshape(4, 1), P=K)
    else:
        undistorted = cv2.undistortPoints(raw, K, np.asarray(D), P=K)
    maps = undistorted.reshape(h, w, 2).astype(np.float32)
    return cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _pose_between(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([a[:3, :3], b[:3, :3]])))([w]).as_matrix()[0]
    T[:3, 3] = (1.0 - w) * a[:3, 3] + w * b[:3, 3]
    return T


def write_euroc(
    seq,
    root: Path,
    count: int,
    model: str = "radial-tangential",
    gt_folder: str = "state_groundtruth_estimate0",
    yaml_header: bool = False,
    lens: bool = True,
) -> np.ndarray:
    """Write the first `count` frames of `seq` (a pinhole sequence with poses) in EuRoC's layout under
    root/mav0, through a lens of `model`'s distortion (none with `lens` False); ground truth at twice the
    frame rate, starting one frame late. Returns the stamps (ns)."""
    cam = seq.camera
    K = cam.K
    D = (EQUIDISTANT if model == "equidistant" else RADTAN) if lens else [0.0, 0.0, 0.0, 0.0]
    cam_dir = root / "mav0" / "cam0"
    (cam_dir / "data").mkdir(parents=True)
    stamps = 1403636579763555584 + np.round(seq.timestamps[:count] * 1e9).astype(np.int64)
    lines = ["#timestamp [ns],filename"]
    for k in range(count):
        image = seq[k].image
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        raw = _distort(gray, K, D, model) if lens else gray
        assert cv2.imwrite(str(cam_dir / "data" / f"{stamps[k]}.png"), raw)
        lines.append(f"{stamps[k]},{stamps[k]}.png")
    (cam_dir / "data.csv").write_text("\n".join(lines) + "\n")
    sensor = {
        "sensor_type": "camera",
        "T_BS": {"cols": 4, "rows": 4, "data": T_B_CAM.ravel().tolist()},
        "rate_hz": 20,
        "resolution": [cam.width, cam.height],
        "camera_model": "pinhole",
        "intrinsics": [cam.fx, cam.fy, cam.cx, cam.cy],
        "distortion_model": model,
        "distortion_coefficients": D,
    }
    text = yaml.safe_dump(sensor)
    (cam_dir / "sensor.yaml").write_text(("%YAML:1.0\n" if yaml_header else "") + text)
    # Ground truth of the sensor T_B_GT: at each frame from the second on and half-way to the next.
    T_R_gt = [seq.poses[k] @ np.linalg.inv(T_B_CAM) @ T_B_GT for k in range(count)]
    rows = []
    for k in range(1, count):
        for w in (0.0, 0.5) if k + 1 < count else (0.0,):
            T = T_R_gt[k] if w == 0 else _pose_between(T_R_gt[k], T_R_gt[k + 1], w)
            t = stamps[k] if w == 0 else (stamps[k] + stamps[k + 1]) // 2
            qx, qy, qz, qw = Rotation.from_matrix(T[:3, :3]).as_quat()
            extra = [0.0] * 9 if gt_folder == "state_groundtruth_estimate0" else []
            rows.append(",".join(str(v) for v in [t, *T[:3, 3], qw, qx, qy, qz, *extra]))
    gt_dir = root / "mav0" / gt_folder
    gt_dir.mkdir(parents=True)
    (gt_dir / "data.csv").write_text("#timestamp, p_RS_R_x [m], p_RS_R_y [m], p_RS_R_z [m], q_RS_w []\n")
    with open(gt_dir / "data.csv", "a") as f:
        f.write("\n".join(rows) + "\n")
    (gt_dir / "sensor.yaml").write_text(yaml.safe_dump({"T_BS": {"data": T_B_GT.ravel().tolist()}}))
    return stamps


@pytest.mark.parametrize("model", ["radial-tangential", "equidistant"])
def test_a_real_clip_written_as_euroc_reads_back(
    tmp_path: Path, tartanair_dir: Path, model: str, caplog
) -> None:
    source = open_sequence(tartanair_dir)
    stamps = write_euroc(source, tmp_path / "seq", 8, model=model, yaml_header=True)
    # The folder above mav0 and mav0 itself are both a EuRoC sequence.
    for path in (tmp_path / "seq", tmp_path / "seq" / "mav0"):
        assert detect_format(path) == "euroc"
    seq = open_sequence(tmp_path / "seq")
    assert isinstance(seq, EurocSequence) and seq.ground_truth == "state_groundtruth_estimate0"
    # Frame 0 comes before the ground truth's first sample: left out, and said (a warning: a benchmark on
    # part of the frames still looks valid).
    assert len(seq) == 7 and seq.has_poses and not seq.has_depth
    assert any(
        r.levelname == "WARNING" and "1 of 8 images left out" in r.getMessage() for r in caplog.records
    )
    np.testing.assert_allclose(seq.timestamps, stamps[1:] * 1e-9, rtol=0, atol=1e-6)
    assert seq.camera == source.camera
    # Camera poses through both sensors' extrinsics: the clip's own.
    np.testing.assert_allclose(seq.poses, source.poses[1:8], atol=1e-9)
    for k, frame in enumerate(seq, start=1):
        gray = cv2.cvtColor(source[k].image, cv2.COLOR_RGB2GRAY).astype(np.float64)
        raw = cv2.imread(str(tmp_path / "seq" / "mav0" / "cam0" / "data" / f"{stamps[k]}.png"), 0)
        # Rectified: the original up to two bilinear resamplings, away from the border the lens squeezed in.
        inner = (slice(30, -30), slice(40, -40))
        rectified_error = np.abs(frame.image.astype(np.float64) - gray)[inner].mean()
        raw_error = np.abs(raw.astype(np.float64) - gray)[inner].mean()
        assert rectified_error < 3.0 and rectified_error < 0.35 * raw_error, (rectified_error, raw_error)
        assert frame.camera == seq.camera and frame.image.shape == gray.shape


def test_ground_truth_folders_and_a_gap(tmp_path: Path, tartanair_dir: Path) -> None:
    source = open_sequence(tartanair_dir)
    stamps = write_euroc(source, tmp_path / "vicon", 6, gt_folder="vicon0")
    seq = EurocSequence(tmp_path / "vicon")
    assert seq.ground_truth == "vicon0"
    np.testing.assert_allclose(seq.poses, source.poses[1:6], atol=1e-9)
    # A ground truth whose samples lie further apart than max_gap brackets no image but the exact ones.
    sparse = EurocSequence(tmp_path / "vicon", max_gap=1e-4)
    assert len(sparse) == 5  # every kept frame has a sample at its own stamp
    # The other camera of a stereo pair (here a copy of cam0) by its folder.
    shutil.copytree(tmp_path / "vicon" / "mav0" / "cam0", tmp_path / "vicon" / "mav0" / "cam1")
    np.testing.assert_allclose(EurocSequence(tmp_path / "vicon", camera_folder="cam1").poses, seq.poses)
    # Without a ground truth (leica0 holds positions only) the sequence has no poses and keeps every image.
    (tmp_path / "vicon" / "mav0" / "vicon0").rename(tmp_path / "vicon" / "mav0" / "leica0")
    bare = EurocSequence(tmp_path / "vicon")
    assert len(bare) == 6 and not bare.has_poses and bare.ground_truth is None
    np.testing.assert_allclose(bare.timestamps, stamps * 1e-9, rtol=0, atol=1e-6)


def test_interpolation_between_samples() -> None:
    # A constant-rate rotation about a fixed axis and a linear translation: slerp and lerp are exact.
    t = np.array([0, 5_000_000, 10_000_000, 15_000_000], dtype=np.int64)
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    poses = np.tile(np.eye(4), (4, 1, 1))
    for k, tk in enumerate(t):
        poses[k, :3, :3] = Rotation.from_rotvec(axis * 20.0 * tk * 1e-9).as_matrix()
        poses[k, :3, 3] = np.array([1.0, 2.0, -0.5]) * tk * 1e-9
    queries = np.array([-1, 0, 2_500_000, 12_000_001, 15_000_000, 15_000_001], dtype=np.int64)
    out, valid = interpolate_poses(t, poses, queries, max_gap_s=0.01)
    np.testing.assert_array_equal(valid, [False, True, True, True, True, False])
    for q, T, ok in zip(queries, out, valid, strict=True):
        if ok:
            np.testing.assert_allclose(
                T[:3, :3], Rotation.from_rotvec(axis * 20.0 * q * 1e-9).as_matrix(), atol=1e-12
            )
            np.testing.assert_allclose(T[:3, 3], np.array([1.0, 2.0, -0.5]) * q * 1e-9, atol=1e-12)
        else:
            np.testing.assert_array_equal(T, np.eye(4))
    # Samples 5 ms apart do not bracket anything under a 4 ms limit, except at a sample itself.
    _, valid = interpolate_poses(t, poses, queries, max_gap_s=0.004)
    np.testing.assert_array_equal(valid, [False, True, False, False, True, False])
    # A ground truth of one sample locates a query on it and nothing else.
    out, valid = interpolate_poses(t[2:3], poses[2:3], queries, max_gap_s=0.01)
    np.testing.assert_array_equal(valid, [False, False, False, False, False, False])
    out, valid = interpolate_poses(t[2:3], poses[2:3], t[1:4], max_gap_s=0.01)
    np.testing.assert_array_equal(valid, [False, True, False])
    np.testing.assert_array_equal(out[1], poses[2])


def test_bad_sensor_files_are_refused(tmp_path: Path, tartanair_dir: Path) -> None:
    source = open_sequence(tartanair_dir)
    write_euroc(source, tmp_path / "seq", 3)
    path = tmp_path / "seq" / "mav0" / "cam0" / "sensor.yaml"
    good = read_sensor_yaml(path)
    cases = {
        "camera_model": ({**good, "camera_model": "omni"}, "camera_model 'omni' is not supported"),
        "distortion": ({**good, "distortion_model": "fov"}, "distortion_model 'fov' is not supported"),
        "coefficients": ({**good, "distortion_coefficients": [0.1, 0.2, 0.3]}, "takes 4 or 5 coefficients"),
        "intrinsics": ({k: v for k, v in good.items() if k != "intrinsics"}, "must give intrinsics"),
        "T_BS": ({**good, "T_BS": {"data": [1.0, 2.0]}}, "T_BS must hold 16 numbers"),
        "resolution": ({**good, "resolution": [330, 240]}, "gives resolution 330x240"),
    }
    for sensor, message in cases.values():
        path.write_text(yaml.safe_dump(sensor))
        with pytest.raises(ValueError, match=message):
            EurocSequence(tmp_path / "seq")
    path.write_text(yaml.safe_dump(good))
    with pytest.raises(FileNotFoundError, match="mocap0"):
        EurocSequence(tmp_path / "seq", ground_truth="mocap0")
    (tmp_path / "seq" / "mav0" / "cam0" / "data.csv").write_text(
        "#timestamp [ns],filename\n2,a.png\n1,b.png\n"
    )
    with pytest.raises(ValueError, match="strictly increasing"):
        EurocSequence(tmp_path / "seq")
