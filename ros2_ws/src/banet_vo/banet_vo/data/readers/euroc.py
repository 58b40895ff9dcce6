"""EuRoC MAV layout (ETH ASL's dataset format, used by others too): one camera's raw images, rectified
here to a pinhole, and each image's camera pose from the ground-truth poses through the sensors' extrinsics.

    <seq>/mav0/cam0/data.csv      "#timestamp [ns],filename" per image (filenames under cam0/data/)
    <seq>/mav0/cam0/sensor.yaml   T_BS (the camera in the body frame, 4x4 under `data`), camera_model
                                  pinhole, intrinsics [fu, fv, cu, cv], resolution [w, h],
                                  distortion_model radial-tangential | equidistant, distortion_coefficients
    <seq>/mav0/<gt>/data.csv      optional ground truth: timestamp [ns], p_RS_R x y z [m], q_RS w x y z, ...
                                  (the pose of sensor S in the world R); <gt> is the first of
                                  state_groundtruth_estimate0 (EuRoC), mocap0, vicon0 (EuRoC) present,
                                  with its own sensor.yaml T_BS (identity when it has none)

<seq> may also be the mav0 folder itself. The camera's pose at an image's time is the ground truth's pose
interpolated (linear in position, slerp in rotation) between the two samples around it, composed with the
extrinsics: T_R_cam = T_R_S(t) · T_BS(gt)^-1 · T_BS(cam). Images outside the ground truth's span, or in a gap
of more than `max_gap` seconds in it, are left out (logged). leica0 (positions only) gives no camera
orientation and is not read.

The images are rectified with OpenCV (banet_vo.geometry.rectify, as the node rectifies a raw camera) to the
pinhole camera of the same intrinsics and size, so the sequence is a pinhole one like every other reader's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml
from scipy.spatial.transform import Rotation, Slerp

from banet_vo.data.readers._files import FileSequence, absolute, read_image
from banet_vo.data.sequence import Frame, check_pose
from banet_vo.geometry.rectify import EQUIDISTANT, PLUMB_BOB, CameraCalibration, Rectifier

log = logging.getLogger(__name__)

# Ground-truth folders in the order they are preferred: EuRoC's estimate (the body's full state), a motion
# capture (the name TUM-VI uses), EuRoC's Vicon markers.
GROUND_TRUTH_FOLDERS = ("state_groundtruth_estimate0", "mocap0", "vicon0")
# EuRoC / Kalibr names for the distortion models the rectifier implements.
DISTORTION_MODELS = {"radial-tangential": PLUMB_BOB, "radtan": PLUMB_BOB, "equidistant": EQUIDISTANT}
# Two ground-truth samples further apart than this do not bracket an image (EuRoC's estimate is at 200 Hz,
# its Vicon at 100 Hz; a longer gap is a dropout).
DEFAULT_MAX_GAP_S = 0.05


def _mav0(path: Path) -> Path:
    return path / "mav0" if (path / "mav0").is_dir() else path


def looks_like_euroc(path: Path) -> bool:
    root = _mav0(path)
    return (root / "cam0" / "data.csv").is_file() and (root / "cam0" / "sensor.yaml").is_file()


def read_sensor_yaml(path: Path) -> dict:
    """A sensor.yaml as a dict (a leading OpenCV "%YAML:1.0" line, which PyYAML refuses, is skipped)."""
    if not path.is_file():
        raise FileNotFoundError(f"sensor file not found: {path}")
    text = path.read_text()
    if text.startswith("%YAML:"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"sensor file {path} is not YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"sensor file {path} must hold a mapping, got {type(data).__name__}")
    return data


def sensor_extrinsics(sensor: dict, path: Path) -> np.ndarray:
    """The 4x4 T_BS of a sensor.yaml (the sensor's pose in the body frame)."""
    T_BS = sensor.get("T_BS")
    data = T_BS.get("data") if isinstance(T_BS, dict) else T_BS
    try:
        T = np.asarray(data, dtype=np.float64).reshape(4, 4)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"sensor file {path}: T_BS must hold 16 numbers (a 4x4 matrix), got {data!r}"
        ) from err
    return check_pose(T, f"sensor file {path} T_BS")


def camera_calibration(sensor: dict, path: Path) -> CameraCalibration:
    """The raw camera of a cam sensor.yaml as a CameraCalibration whose rectified camera keeps K."""
    model = sensor.get("camera_model", "pinhole")
    if model != "pinhole":
        raise ValueError(
            f"sensor file {path}: camera_model {model!r} is not supported (only pinhole, with "
            f"{' or '.join(sorted(set(DISTORTION_MODELS)))} distortion)"
        )
    try:
        fu, fv, cu, cv = (float(v) for v in sensor["intrinsics"])
        width, height = (int(v) for v in sensor["resolution"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"sensor file {path} must give intrinsics [fu, fv, cu, cv] and resolution [width, height]: {err}"
        ) from err
    name = sensor.get("distortion_model", "radial-tangential")
    if name not in DISTORTION_MODELS:
        raise ValueError(
            f"sensor file {path}: distortion_model {name!r} is not supported "
            f"(supported: {', '.join(DISTORTION_MODELS)})"
        )
    D = tuple(float(v) for v in sensor.get("distortion_coefficients") or ())
    K = (fu, 0.0, cu, 0.0, fv, cv, 0.0, 0.0, 1.0)
    P = (fu, 0.0, cu, 0.0, 0.0, fv, cv, 0.0, 0.0, 0.0, 1.0, 0.0)
    identity = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    try:
        return CameraCalibration(width, height, DISTORTION_MODELS[name], D, K, identity, P)
    except ValueError as err:
        raise ValueError(f"sensor file {path}: {err}") from err


def _csv_rows(path: Path, what: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped fields) of each line of a comma-separated file that is not blank or '#'."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield lineno, [p.strip() for p in line.split(",")]


def read_image_list(path: Path) -> tuple[np.ndarray, list[str]]:
    """cam0/data.csv -> (timestamps in ns as int64, filenames)."""
    stamps, names = [], []
    for lineno, parts in _csv_rows(path, "image list"):
        if len(parts) < 2 or not parts[1]:
            raise ValueError(f"image list {path} line {lineno}: expected 'timestamp,filename', got {parts}")
        try:
            stamps.append(int(parts[0]))
        except ValueError as err:
            raise ValueError(f"image list {path} line {lineno}: bad timestamp {parts[0]!r}") from err
        names.append(parts[1])
    if not names:
        raise ValueError(f"image list {path} lists no images")
    ns = np.asarray(stamps, dtype=np.int64)
    if np.any(np.diff(ns) <= 0):
        raise ValueError(f"image list {path}: timestamps must be strictly increasing")
    return ns, names


def read_ground_truth(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A ground-truth data.csv -> (timestamps in ns (N,) int64, poses T_R_S (N, 4, 4)); only the first
    eight columns are read (timestamp, position, quaternion w x y z)."""
    stamps, rows = [], []
    for lineno, parts in _csv_rows(path, "ground-truth file"):
        if len(parts) < 8:
            raise ValueError(
                f"ground-truth file {path} line {lineno}: expected timestamp, p x y z, q w x y z "
                f"(8 columns or more), got {len(parts)}"
            )
        try:
            stamps.append(int(parts[0]))
            rows.append([float(v) for v in parts[1:8]])
        except ValueError as err:
            raise ValueError(f"ground-truth file {path} line {lineno}: not numeric: {err}") from err
    if not rows:
        raise ValueError(f"ground-truth file {path} is empty")
    ns = np.asarray(stamps, dtype=np.int64)
    if np.any(np.diff(ns) <= 0):
        raise ValueError(f"ground-truth file {path}: timestamps must be strictly increasing")
    table = np.asarray(rows)
    quat_wxyz = table[:, 3:7]
    norms = np.linalg.norm(quat_wxyz, axis=1)
    if not np.all(np.isfinite(table)) or np.any(np.abs(norms - 1.0) > 1e-2):
        raise ValueError(f"ground-truth file {path} has non-finite values or non-unit quaternions")
    poses = np.tile(np.eye(4), (len(table), 1, 1))
    poses[:, :3, :3] = Rotation.from_quat(quat_wxyz[:, [1, 2, 3, 0]]).as_matrix()
    poses[:, :3, 3] = table[:, :3]
    return ns, poses


def interpolate_poses(
    stamps_ns: np.ndarray, poses: np.ndarray, queries_ns: np.ndarray, max_gap_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Poses at `queries_ns` between the two samples around each (linear position, slerp rotation), and a
    mask of the queries that have two such samples at most `max_gap_s` apart (the others' poses are the
    identity)."""
    right = np.searchsorted(stamps_ns, queries_ns, side="left")
    exact = (right < len(stamps_ns)) & (stamps_ns[np.minimum(right, len(stamps_ns) - 1)] == queries_ns)
    left = np.where(exact, right, right - 1)
    inside = exact | ((right > 0) & (right < len(stamps_ns)))
    left, right = np.clip(left, 0, len(stamps_ns) - 1), np.clip(right, 0, len(stamps_ns) - 1)
    gap_s = (stamps_ns[right] - stamps_ns[left]) * 1e-9
    valid = inside & (gap_s <= max_gap_s)
    out = np.tile(np.eye(4), (len(queries_ns), 1, 1))
    if len(stamps_ns) == 1:
        out[valid] = poses[0]  # a query on the one sample itself
    elif valid.any():
        # Seconds from the first sample, differenced in integers first: float64 keeps the nanoseconds.
        t = (stamps_ns - stamps_ns[0]) * 1e-9
        q = (queries_ns[valid] - stamps_ns[0]) * 1e-9
        out[valid, :3, :3] = Slerp(t, Rotation.from_matrix(poses[:, :3, :3]))(q).as_matrix()
        for axis in range(3):
            out[valid, axis, 3] = np.interp(q, t, poses[:, axis, 3])
    return out, valid


def find_ground_truth(root: Path, folder: str | None) -> Path | None:
    """The ground-truth folder to read: `folder` when given (it must exist), else the first of
    GROUND_TRUTH_FOLDERS present; None when there is none."""
    if folder is not None:
        if not (root / folder / "data.csv").is_file():
            raise FileNotFoundError(f"ground-truth file not found: {root / folder / 'data.csv'}")
        return root / folder
    for name in GROUND_TRUTH_FOLDERS:
        if (root / name / "data.csv").is_file():
            return root / name
    if (root / "leica0" / "data.csv").is_file():
        log.warning("%s: leica0 holds positions only (no orientation); the sequence has no poses", root)
    return None


class EurocSequence(FileSequence):
    """A EuRoC MAV (ASL layout) sequence directory (see the module docstring). `camera_folder` picks the
    camera (cam0, cam1); `ground_truth` a ground-truth folder instead of the first found."""

    def __init__(
        self,
        path: str | Path,
        name: str | None = None,
        camera_folder: str = "cam0",
        ground_truth: str | None = None,
        max_gap: float = DEFAULT_MAX_GAP_S,
    ) -> None:
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"sequence directory not found: {path}")
        if not max_gap > 0:
            raise ValueError(f"max_gap must be positive seconds, got {max_gap}")
        root = _mav0(path)
        cam_dir = root / camera_folder
        sensor = read_sensor_yaml(cam_dir / "sensor.yaml")
        self.calibration = camera_calibration(sensor, cam_dir / "sensor.yaml")
        stamps_ns, names = read_image_list(cam_dir / "data.csv")
        keep = np.ones(len(names), dtype=bool)
        poses = None
        gt_dir = find_ground_truth(root, ground_truth)
        if gt_dir is not None:
            gt_ns, T_R_S = read_ground_truth(gt_dir / "data.csv")
            T_B_gt = (
                sensor_extrinsics(read_sensor_yaml(gt_dir / "sensor.yaml"), gt_dir / "sensor.yaml")
                if (gt_dir / "sensor.yaml").is_file()
                else np.eye(4)
            )
            T_gt_cam = np.linalg.inv(T_B_gt) @ sensor_extrinsics(sensor, cam_dir / "sensor.yaml")
            T_R_gt, keep = interpolate_poses(gt_ns, T_R_S, stamps_ns, max_gap)
            if not keep.any():
                raise ValueError(
                    f"no image in {cam_dir / 'data.csv'} lies within the ground truth of {gt_dir} "
                    f"(with samples at most {max_gap} s apart)"
                )
            if not keep.all():  # said, not whispered: a benchmark on part of the frames still looks valid
                log.warning(
                    "%s: %d of %d images left out (outside the ground truth of %s or in a gap of it)",
                    path,
                    (~keep).sum(),
                    len(keep),
                    gt_dir.name,
                )
            poses = T_R_gt[keep] @ T_gt_cam
        kept = np.flatnonzero(keep)
        images = [cam_dir / "data" / names[k] for k in kept]
        first = read_image(images[0])
        c = self.calibration
        if (first.shape[1], first.shape[0]) != (c.width, c.height):
            raise ValueError(
                f"image {images[0]} is {first.shape[1]}x{first.shape[0]}, but {cam_dir / 'sensor.yaml'} "
                f"gives resolution {c.width}x{c.height}"
            )
        self._rectifier = Rectifier(cache_size=1)
        # FileSequence checks the seconds; the list's nanoseconds were checked when read, and are kept
        # exact for what needs them (bags: header stamps equal to data.csv's).
        super().__init__(
            name or absolute(path).name,
            images,
            c.rectified_camera(),
            stamps_ns[kept] * 1e-9,
            poses,
            timestamps_ns=stamps_ns[kept],
        )
        self.root = path
        self.ground_truth = None if gt_dir is None else gt_dir.name

    def _load(self, i: int) -> Frame:
        raw = super()._load(i)
        image, _ = self._rectifier.rectify(raw.image, self.calibration)
        return Frame(raw.index, raw.timestamp, image, raw.camera, None, raw.pose)
