"""Message conversions with the real rclpy message classes: images, cameras, depth, odometry, time."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy and the ROS 2 message packages are not importable")

from banet_vo.geometry import PinholeCamera
from banet_vo.ros import conversions as conv
from builtin_interfaces.msg import Time
from rosbags.image import image_to_cvimage
from scipy.linalg import expm
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

pytestmark = pytest.mark.ros

LAYOUTS = {
    "mono8": (np.uint8, 1),
    "8UC1": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "16UC1": (np.uint16, 1),
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    **{f"bayer_{p}8": (np.uint8, 1) for p in ("rggb", "bggr", "gbrg", "grbg")},
    **{f"bayer_{p}16": (np.uint16, 1) for p in ("rggb", "bggr", "gbrg", "grbg")},
    **{e: (np.uint8, 2) for e in ("yuv422", "yuv422_yuy2", "uyvy", "yuyv")},
    "32FC1": (np.float32, 1),
}


def _random_pixels(encoding: str, height: int = 5, width: int = 7, seed: int = 0) -> np.ndarray:
    dtype, channels = LAYOUTS[encoding]
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if np.dtype(dtype).kind == "f":
        pixels = rng.normal(3.0, 2.0, shape).astype(dtype)
        pixels.flat[0] = np.nan
        return pixels
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def _header(sec: int = 12, nanosec: int = 345, frame_id: str = "camera_optical") -> Header:
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def _raw_image(pixels: np.ndarray, encoding: str, pad: int, big_endian: bool) -> Image:
    """An Image built by hand (not by the code under test): rows padded with `pad` junk bytes."""
    wire = pixels.astype(pixels.dtype.newbyteorder(">" if big_endian else "<"))
    height, width = pixels.shape[:2]
    rows = wire.reshape(height, -1).view(np.uint8).reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, pad), 0xAB, np.uint8)], axis=1)
    msg = Image(header=_header(), height=height, width=width, encoding=encoding)
    msg.is_bigendian = int(big_endian)
    msg.step = padded.shape[1]
    msg.data = padded.tobytes()
    return msg


# ---------------------------------------------------------------------------------------------- images


def test_supported_encodings_are_the_tested_ones():
    assert set(conv.SUPPORTED_ENCODINGS) == set(LAYOUTS)
    for encoding, (dtype, channels) in LAYOUTS.items():
        assert conv.encoding_layout(encoding) == (np.dtype(dtype), channels)


def test_image_backend_reports_what_is_importable():
    import importlib.util

    expected = "cv_bridge" if importlib.util.find_spec("cv_bridge") is not None else "numpy"
    assert conv.image_backend() == expected


@pytest.mark.parametrize("encoding", sorted(LAYOUTS))
def test_numpy_image_round_trip(encoding):
    pixels = _random_pixels(encoding)
    header = _header()
    msg = conv.numpy_to_image(pixels, encoding, header)
    dtype, channels = LAYOUTS[encoding]
    assert isinstance(msg, Image)
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * channels * np.dtype(dtype).itemsize
    assert msg.is_bigendian == int(sys.byteorder == "big")
    assert bytes(msg.data) == pixels.tobytes()
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (
        12,
        345,
        "camera_optical",
    )
    assert msg.header is not header
    back = conv.image_to_numpy(msg)
    assert back.dtype == np.dtype(dtype) and back.shape == pixels.shape
    assert np.array_equal(back, pixels, equal_nan=True)
    # independent reference decoder (rosbags-image) agrees on unpadded data
    assert np.array_equal(image_to_cvimage(msg), back, equal_nan=True)


@pytest.mark.parametrize("encoding", sorted(LAYOUTS))
@pytest.mark.parametrize("big_endian", [False, True], ids=["little", "big"])
@pytest.mark.parametrize("pad", [0, 3, 8])
def test_decode_honours_step_padding_and_byte_order(encoding, big_endian, pad):
    pixels = _random_pixels(encoding, height=4, width=6, seed=pad)
    msg = _raw_image(pixels, encoding, pad, big_endian)
    back = conv.image_to_numpy(msg)
    assert back.dtype == pixels.dtype and back.dtype.isnative
    assert np.array_equal(back, pixels, equal_nan=True)
    assert back.flags.c_contiguous and back.flags.writeable
    back[...] = 0  # a copy: the message is untouched
    assert np.array_equal(conv.image_to_numpy(msg), pixels, equal_nan=True)


def test_big_endian_bytes_really_differ():
    # guards the byte-order test above: the two wire layouts are not the same bytes
    pixels = np.array([[1, 256, 4660]], dtype=np.uint16)
    little, big = _raw_image(pixels, "mono16", 0, False), _raw_image(pixels, "mono16", 0, True)
    assert bytes(little.data) != bytes(big.data)
    assert np.array_equal(conv.image_to_numpy(big), pixels)


def _valid_image() -> Image:
    return conv.numpy_to_image(_random_pixels("rgb8"), "rgb8", _header())


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("encoding", "nv21", "encoding"),
        ("encoding", "", "encoding"),
        ("encoding", "RGB8", "encoding"),
        ("height", 0, "Image.height"),
        ("width", 0, "Image.width"),
        ("step", 20, "Image.step"),
        ("data", bytes(5 * 21 - 1), "Image.data"),
        ("data", bytes(5 * 21 + 1), "Image.data"),
        ("data", b"", "Image.data"),
    ],
)
def test_bad_image_messages_name_the_field(field, value, match):
    msg = _valid_image()
    setattr(msg, field, value)
    with pytest.raises(ValueError, match=match):
        conv.image_to_numpy(msg)
    with pytest.raises(ValueError, match=match):
        conv.image_to_model_input(msg)


def test_step_consistent_with_a_wrong_height_is_caught_by_data_length():
    msg = _valid_image()
    msg.height = 6  # one row more than the data holds
    with pytest.raises(ValueError, match=r"Image\.data"):
        conv.image_to_numpy(msg)


@pytest.mark.parametrize(
    ("pixels", "encoding", "match"),
    [
        (np.zeros((4, 5), np.float64), "32FC1", "dtype"),
        (np.zeros((4, 5), np.int16), "16UC1", "dtype"),
        (np.zeros((4, 5), np.uint8), "rgb8", "shape"),
        (np.zeros((4, 5, 4), np.uint8), "rgb8", "shape"),
        (np.zeros((4, 5, 3), np.uint8), "mono8", "shape"),
        (np.zeros((0, 5), np.uint8), "mono8", "empty"),
        (np.zeros((4, 5), np.uint8), "jpeg", "encoding"),
    ],
)
def test_numpy_to_image_rejects_bad_arrays(pixels, encoding, match):
    with pytest.raises(ValueError, match=match):
        conv.numpy_to_image(pixels, encoding)


def test_numpy_to_image_accepts_hw1_and_non_native_arrays():
    pixels = np.arange(12, dtype=np.uint16).reshape(3, 4)
    msg = conv.numpy_to_image(pixels[:, :, None], "mono16")
    assert np.array_equal(conv.image_to_numpy(msg), pixels)
    swapped = pixels.astype(pixels.dtype.newbyteorder(">" if sys.byteorder == "little" else "<"))
    msg = conv.numpy_to_image(swapped, "16UC1")
    assert bytes(msg.data) == pixels.tobytes()
    # a non-contiguous view (every other column) is packed correctly
    wide = np.arange(48, dtype=np.uint8).reshape(4, 12)
    assert np.array_equal(conv.image_to_numpy(conv.numpy_to_image(wide[:, ::2], "mono8")), wide[:, ::2])
    assert conv.numpy_to_image(pixels, "mono16").header.frame_id == ""


def test_model_input_colour_orders():
    rgb = _random_pixels("rgb8")
    alpha = np.full((*rgb.shape[:2], 1), 77, np.uint8)
    cases = {
        "rgb8": rgb,
        "bgr8": rgb[:, :, ::-1],
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[:, :, ::-1], alpha], axis=2),
    }
    for encoding, pixels in cases.items():
        out = conv.image_to_model_input(conv.numpy_to_image(pixels, encoding))
        assert out.dtype == np.uint8 and out.shape == rgb.shape and out.flags.c_contiguous, encoding
        assert np.array_equal(out, rgb), encoding
    gray = _random_pixels("mono8")
    for encoding in ("mono8", "8UC1"):
        assert np.array_equal(conv.image_to_model_input(conv.numpy_to_image(gray, encoding)), gray)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_model_input_16_bit_rule(encoding):
    everything = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    out = conv.image_to_model_input(conv.numpy_to_image(everything, encoding))
    reference = np.round(everything.astype(np.float64) * 255.0 / 65535.0)
    assert out.dtype == np.uint8 and np.array_equal(out, reference.astype(np.uint8))
    assert out[0, 0] == 0 and out[-1, -1] == 255
    twelve_bit = np.array([[0, 1, 2048, 4095, 5000, 65535]], dtype=np.uint16)
    out = conv.image_to_model_input(conv.numpy_to_image(twelve_bit, encoding), max_value_16bit=4095)
    expected = np.clip(np.round(twelve_bit * 255.0 / 4095.0), 0, 255).astype(np.uint8)
    assert np.array_equal(out, expected)
    assert out.tolist() == [[0, 0, 128, 255, 255, 255]]


def test_model_input_refuses_depth_and_bad_scale():
    depth = conv.numpy_to_image(np.ones((3, 3), np.float32), "32FC1")
    with pytest.raises(ValueError, match="got '32FC1'") as err:
        conv.image_to_model_input(depth)
    assert "32FC1" not in str(err.value).split(" got ")[0]  # the list offered must not include it
    mono16 = conv.numpy_to_image(np.ones((3, 3), np.uint16), "mono16")
    for bad in (0, 70000, 1.5, True):
        with pytest.raises(ValueError, match="max_value"):
            conv.image_to_model_input(mono16, max_value_16bit=bad)


def test_real_kitti_and_hololens_images_round_trip(kitti06_dir: Path, hololens_dir: Path):
    import cv2

    gray = cv2.imread(str(kitti06_dir / "image_l" / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert gray.shape == (370, 1226) and gray.dtype == np.uint8
    msg = conv.numpy_to_image(gray, "mono8", _header())
    assert np.array_equal(conv.image_to_model_input(msg), gray)
    bgr = cv2.imread(str(hololens_dir / "images" / "00003.png"), cv2.IMREAD_COLOR)
    assert bgr.shape == (360, 540, 3)
    rgb = conv.image_to_model_input(conv.numpy_to_image(bgr, "bgr8"))
    assert np.array_equal(rgb, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    depth_mm = cv2.imread(str(hololens_dir / "depth" / "00003.png"), cv2.IMREAD_UNCHANGED)
    assert depth_mm.dtype == np.uint16
    assert np.array_equal(conv.image_to_numpy(conv.numpy_to_image(depth_mm, "16UC1")), depth_mm)


# ----------------------------------------------------------------------------------------------- depth


def test_depth_to_image_marks_invalid_with_nan():
    depth = np.array([[1.5, 0.0, -2.0, np.nan], [np.inf, -np.inf, 1e40, 2.25], [3.0, 4.0, 5.0, 6.0]])
    mask = np.zeros(depth.shape, bool)
    mask[2, 1] = True
    msg = conv.depth_to_image(depth, _header(), invalid_mask=mask)
    assert msg.encoding == "32FC1" and (msg.height, msg.width) == (3, 4)
    out = conv.image_to_numpy(msg)
    expected_invalid = np.array([[0, 1, 1, 1], [1, 1, 1, 0], [0, 1, 0, 0]], bool)
    assert np.array_equal(np.isnan(out), expected_invalid)
    assert np.array_equal(out[~expected_invalid], depth[~expected_invalid].astype(np.float32))
    assert msg.header.stamp.nanosec == 345
    assert np.isnan(conv.image_to_numpy(conv.depth_to_image(depth, _header()))).sum() == 6  # no mask


@pytest.mark.parametrize(
    ("depth", "mask", "match"),
    [
        (np.ones((2, 3, 1)), None, "depth_m"),
        (np.ones((2, 3), np.uint16), None, "depth_m"),
        (np.ones((2, 3)), np.zeros((3, 2), bool), "invalid_mask"),
        (np.ones((2, 3)), np.zeros((2, 3), np.uint8), "invalid_mask"),
    ],
)
def test_depth_to_image_rejects_bad_input(depth, mask, match):
    with pytest.raises(ValueError, match=match):
        conv.depth_to_image(depth, _header(), invalid_mask=mask)


def test_depth_messages_scale_intrinsics_and_share_the_header(hololens_dir: Path):
    import cv2

    K = np.loadtxt(hololens_dir / "K.txt")
    camera = PinholeCamera.from_K(K, 540, 360)
    depth_mm = cv2.imread(str(hololens_dir / "depth" / "00003.png"), cv2.IMREAD_UNCHANGED)
    half = cv2.resize(depth_mm, (270, 180), interpolation=cv2.INTER_NEAREST).astype(np.float64) / 1000.0
    header = _header(frame_id="hololens_optical")
    image, info = conv.depth_messages(half, camera, header)
    assert (image.width, image.height) == (270, 180) == (info.width, info.height)
    assert image.header == info.header == header and image.header is not info.header
    depth = conv.image_to_numpy(image)
    assert np.array_equal(np.isnan(depth), half <= 0)
    expected = camera.resized(270, 180)
    assert conv.camera_info_to_camera(info) == expected
    assert info.k[0] == pytest.approx(K[0, 0] / 2, rel=1e-15)
    assert info.k[2] == pytest.approx((K[0, 2] + 0.5) / 2 - 0.5, rel=1e-15)
    # same size: intrinsics untouched
    _, same = conv.depth_messages(np.ones((360, 540)), camera, header)
    assert conv.camera_info_to_camera(same) == camera
    with pytest.raises(ValueError, match="camera"):
        conv.depth_messages(half, K, header)


# --------------------------------------------------------------------------------------------- cameras


def test_camera_info_round_trip_is_exact():
    camera = PinholeCamera(fx=718.8560123, fy=719.0001, cx=607.1928, cy=185.2157, width=1241, height=376)
    header = _header(frame_id="cam0")
    info = conv.camera_to_camera_info(camera, header)
    assert isinstance(info, CameraInfo)
    assert (info.width, info.height) == (1241, 376)
    assert info.distortion_model == "plumb_bob" and list(info.d) == [0.0] * 5
    assert np.array_equal(np.asarray(info.k).reshape(3, 3), camera.K)
    assert np.array_equal(np.asarray(info.p).reshape(3, 4), np.hstack([camera.K, np.zeros((3, 1))]))
    assert np.array_equal(np.asarray(info.r).reshape(3, 3), np.eye(3))
    assert info.header.frame_id == "cam0" and info.header is not header
    back = conv.camera_info_to_camera(info)
    assert back == camera  # exact float equality of every field
    for rectified in (True, False):
        assert conv.camera_info_to_camera(info, rectified=rectified) == camera
    renamed = conv.camera_to_camera_info(camera, header, frame_id="other")
    assert renamed.header.frame_id == "other" and header.frame_id == "cam0"
    with pytest.raises(ValueError, match="frame_id"):
        conv.camera_to_camera_info(camera, header, frame_id="")
    with pytest.raises(ValueError, match="camera"):
        conv.camera_to_camera_info(camera.K, header)
    with pytest.raises(ValueError, match="header"):
        conv.camera_to_camera_info(camera, "cam0")


def _kitti_like_info(kitti06_dir: Path | None = None) -> CameraInfo:
    """Raw K and distortion differ from the rectified P, as on a real KITTI/driver CameraInfo."""
    if kitti06_dir is not None:
        p0 = np.array(
            (kitti06_dir / "calib.txt").read_text().splitlines()[0].split(), dtype=np.float64
        ).reshape(3, 4)
    else:
        p0 = np.array([[707.0912, 0, 601.8873, 0], [0, 707.0912, 183.1104, 0], [0, 0, 1, 0]])
    info = CameraInfo(header=_header(), width=1226, height=370, distortion_model="plumb_bob")
    info.k = np.array([9.8e2, 0, 6.9e2, 0, 9.7e2, 2.4e2, 0, 0, 1], dtype=np.float64)
    info.d = [-0.37, 0.20, 0.0, 0.0, 0.0]
    info.p = p0.reshape(-1).copy()
    return info


def test_camera_info_matrix_choice(kitti06_dir: Path):
    info = _kitti_like_info(kitti06_dir)
    from_p = PinholeCamera(707.0912, 707.0912, 601.8873, 183.1104, 1226, 370)
    from_k = PinholeCamera(980.0, 970.0, 690.0, 240.0, 1226, 370)
    # raw image with distortion: K (auto), unless the images are declared rectified
    assert conv.camera_info_to_camera(info) == from_k
    assert conv.camera_info_to_camera(info, rectified=True) == from_p
    assert conv.camera_info_to_camera(info, rectified=False) == from_k
    # no distortion: raw == rectified, P wins in auto mode
    info.d = [0.0] * 5
    assert conv.camera_info_to_camera(info) == from_p
    info.d = []
    assert conv.camera_info_to_camera(info) == from_p
    # the right camera of a stereo pair: the baseline column of P does not change the intrinsics
    info.p[3] = -379.8145
    assert conv.camera_info_to_camera(info) == from_p
    # P not filled in: K in auto mode, an error when P is demanded
    info.p = np.zeros(12)
    assert conv.camera_info_to_camera(info) == from_k
    with pytest.raises(ValueError, match=r"CameraInfo\.p is all zeros"):
        conv.camera_info_to_camera(info, rectified=True)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("width", 0, r"CameraInfo\.width"),
        ("height", 0, r"CameraInfo\.height"),
        ("k", [np.nan, 0, 1, 0, 1, 1, 0, 0, 1], r"CameraInfo\.k"),
        ("k", [np.inf, 0, 1, 0, 1, 1, 0, 0, 1], r"CameraInfo\.k"),
        ("k", [0.0] * 9, r"CameraInfo\.k is all zeros"),
        ("k", [500, 3, 320, 0, 500, 240, 0, 0, 1], r"CameraInfo\.k: .*skew"),
        ("k", [-500, 0, 320, 0, 500, 240, 0, 0, 1], r"CameraInfo\.k: .*positive"),
        ("p", [np.nan] * 12, r"CameraInfo\.p"),
        ("d", [0.1, np.nan, 0, 0, 0], r"CameraInfo\.d"),
        ("binning_x", -1, "binning"),
    ],
)
def test_bad_camera_info_names_the_field(field, value, match):
    info = conv.camera_to_camera_info(PinholeCamera(500, 500, 320, 240, 640, 480), _header())
    info.p = np.zeros(12)  # force K so K errors surface
    if field in ("k", "d", "p"):
        value = np.asarray(value, dtype=np.float64) if field != "d" else [float(v) for v in value]
    if field == "binning_x":
        # uint32 in the message: go around the setter check to test the guard itself
        info._binning_x = value
    else:
        setattr(info, field, value)
    with pytest.raises(ValueError, match=match):
        conv.camera_info_to_camera(info)


@pytest.mark.parametrize("k", [[-500, 0, 320, 0, 500, 240, 0, 0, 1], [500, 0, 320, 0, 500, 240, 0, 1, 1]])
def test_a_distorted_camera_info_with_a_bad_k_is_refused_before_rectifying(k):
    """The rectification path checks its raw K as the undistorted path does: a negative focal length
    would mirror the rectified images (it passed), and a bottom row other than 0 0 1 is no pinhole K."""
    info = conv.camera_to_camera_info(PinholeCamera(500, 500, 320, 240, 640, 480), _header())
    info.d = [0.1, -0.05, 0.0, 0.0, 0.0]
    info.k = np.asarray(k, dtype=np.float64)
    with pytest.raises(ValueError, match=r"CameraInfo: calibration K must be .* fx, fy > 0"):
        conv.camera_info_to_input(info, rectify=True)
    info.k = np.asarray([500, 0.5, 320, 0, 500, 240, 0, 0, 1], dtype=np.float64)  # skew: OpenCV rectifies it
    camera, calibration = conv.camera_info_to_input(info, rectify=True)
    assert calibration is not None and camera.fx == 500


def test_camera_info_roi_and_binning():
    camera = PinholeCamera(500.0, 480.0, 320.3, 240.7, 641, 481)
    info = conv.camera_to_camera_info(camera, _header())
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 10, 20, 300, 200
    assert conv.camera_info_to_camera(info) == PinholeCamera(500.0, 480.0, 310.3, 220.7, 300, 200)
    info.roi.width = info.roi.height = 0  # zeros = full image (sensor_msgs convention)
    info.binning_x, info.binning_y = 2, 4
    binned = conv.camera_info_to_camera(info)
    # 641 columns: the last one is dropped, then 2:1; pixel centres map as x' = (x + 0.5) / b - 0.5
    assert (binned.width, binned.height) == (320, 120)
    assert binned.fx == pytest.approx(250.0, rel=1e-15) and binned.fy == pytest.approx(120.0, rel=1e-15)
    assert binned.cx == pytest.approx((320.3 + 0.5) / 2 - 0.5, rel=1e-15)
    assert binned.cy == pytest.approx((240.7 + 0.5) / 4 - 0.5, rel=1e-15)
    info.binning_x, info.binning_y = 0, 0
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 400, 0, 300, 200
    with pytest.raises(ValueError, match=r"CameraInfo\.roi"):
        conv.camera_info_to_camera(info)


def test_an_roi_covering_the_whole_image_is_no_roi_when_rectifying():
    """sensor_msgs/CameraInfo: an ROI of the full image is the same as none (all zero). A driver that
    fills it in must not have its distorted images refused as "ROI images" when rectify is on."""
    info = CameraInfo(header=_header(), width=640, height=480, distortion_model="plumb_bob")
    info.d = [-0.1, 0.01, 0.0, 0.0, 0.0]
    info.k = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
    info.r = np.eye(3).reshape(-1)
    info.p = [480.0, 0.0, 320.0, 0.0, 0.0, 480.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    unset, calibration = conv.camera_info_to_input(info, True)
    assert calibration is not None and unset == PinholeCamera(480.0, 480.0, 320.0, 240.0, 640, 480)
    for width, height in ((640, 480), (640, 0), (0, 480)):
        info.roi.width, info.roi.height = width, height
        assert conv.camera_info_to_input(info, True)[0] == unset
        assert conv.camera_info_to_camera(info, rectified=True) == unset
    info.roi.width, info.roi.height = 639, 480  # a real crop is still refused
    with pytest.raises(ValueError, match="ROI"):
        conv.camera_info_to_input(info, True)
    info.roi.x_offset, info.roi.width = 1, 639
    with pytest.raises(ValueError, match="ROI"):
        conv.camera_info_to_input(info, True)


# -------------------------------------------------------------------------------------------- odometry


def _pose(seed: int = 3) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=seed).as_matrix()
    T[:3, 3] = [1.25, -3.5, 0.75]
    return T


def _spd(seed: int, scale: float = 1e-2) -> np.ndarray:
    A = np.random.default_rng(seed).normal(size=(6, 6))
    return scale * (A @ A.T + 0.1 * np.eye(6))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_odometry_fields(seed):
    T = _pose(seed)
    cov = _spd(seed)
    twist = np.array([1.0, 2.0, 3.0, 0.1, 0.2, 0.3])
    twist_cov = _spd(seed + 10)
    header = _header(frame_id="odom")
    msg = conv.odometry_msg(header, "base_link", T, cov, twist, twist_cov)
    assert msg.header == header and msg.header is not header
    assert msg.child_frame_id == "base_link"
    p = msg.pose.pose.position
    assert [p.x, p.y, p.z] == T[:3, 3].tolist()
    o = msg.pose.pose.orientation
    q = np.array([o.x, o.y, o.z, o.w])
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-15) and q[3] >= 0
    assert np.allclose(Rotation.from_quat(q).as_matrix(), T[:3, :3], atol=1e-12)
    assert np.array_equal(np.asarray(msg.pose.covariance), cov.reshape(-1))
    assert msg.pose.covariance[1] == cov[0, 1] and msg.pose.covariance[6 * 2 + 5] == cov[2, 5]
    lin, ang = msg.twist.twist.linear, msg.twist.twist.angular
    assert [lin.x, lin.y, lin.z, ang.x, ang.y, ang.z] == twist.tolist()
    assert np.array_equal(np.asarray(msg.twist.covariance), twist_cov.reshape(-1))


def test_odometry_quaternion_of_known_rotations():
    T = np.eye(4)
    msg = conv.odometry_msg(_header(frame_id="odom"), "cam", T, np.eye(6))
    o = msg.pose.pose.orientation
    assert [o.x, o.y, o.z, o.w] == [0.0, 0.0, 0.0, 1.0]
    T[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # +90 deg about z
    o = conv.odometry_msg(_header(frame_id="odom"), "cam", T, np.eye(6)).pose.pose.orientation
    assert np.allclose([o.x, o.y, o.z, o.w], [0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-15)
    # default twist: zero, covariance marked unknown
    assert list(msg.twist.covariance[:2]) == [-1.0, 0.0] and not np.any(msg.twist.covariance[1:])
    assert msg.twist.twist.linear.x == 0.0 and msg.twist.twist.angular.z == 0.0


def _bad_rotation() -> np.ndarray:
    T = np.eye(4)
    T[0, 0] = 1.1
    return T


def _reflection() -> np.ndarray:
    T = np.eye(4)
    T[2, 2] = -1.0
    return T


def _asymmetric() -> np.ndarray:
    cov = np.eye(6)
    cov[0, 1] = 0.5
    return cov


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"T_parent_child": np.eye(3)}, "T_parent_child"),
        ({"T_parent_child": np.full((4, 4), np.nan)}, "T_parent_child"),
        ({"T_parent_child": _bad_rotation()}, "T_parent_child"),
        ({"T_parent_child": _reflection()}, "T_parent_child"),
        ({"T_parent_child": np.diag([1.0, 1.0, 1.0, 2.0])}, "T_parent_child"),
        ({"pose_cov": np.eye(5)}, "pose_cov"),
        ({"pose_cov": _asymmetric()}, "pose_cov must be symmetric"),
        ({"pose_cov": np.diag([1.0, 1.0, 1.0, 1.0, 1.0, np.nan])}, "pose_cov"),
        ({"pose_cov": -np.eye(6)}, "pose_cov"),
        ({"twist": np.zeros(5)}, "twist"),
        ({"twist": np.full(6, np.inf)}, "twist"),
        ({"twist_cov": _asymmetric()}, "twist_cov"),
        ({"child_frame_id": ""}, "child_frame_id"),
        ({"header": _header(frame_id="")}, r"header\.frame_id"),
        ({"header": 3.0}, "header"),
    ],
)
def test_odometry_rejects_bad_input(kwargs, match):
    args = {
        "header": _header(frame_id="odom"),
        "child_frame_id": "base_link",
        "T_parent_child": np.eye(4),
        "pose_cov": np.eye(6),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        conv.odometry_msg(**args)


def _hat(delta: np.ndarray) -> np.ndarray:
    rho, phi = delta[:3], delta[3:]
    xi = np.zeros((4, 4))
    xi[:3, :3] = [[0.0, -phi[2], phi[1]], [phi[2], 0.0, -phi[0]], [-phi[1], phi[0], 0.0]]
    xi[:3, 3] = rho
    return xi


def _pose_error(T_new: np.ndarray, T: np.ndarray) -> np.ndarray:
    """[position change, rotation vector of R_new Rᵀ] (ROS pose covariance coordinates)."""
    rotvec = Rotation.from_matrix(T_new[:3, :3] @ T[:3, :3].T).as_rotvec()
    return np.concatenate([T_new[:3, 3] - T[:3, 3], rotvec])


@pytest.mark.parametrize("seed", [0, 5])
def test_left_tangent_covariance_matches_finite_differences(seed):
    T = _pose(seed)
    eps = 1e-6
    J = np.zeros((6, 6))
    for k in range(6):
        step = np.zeros(6)
        step[k] = eps
        plus = _pose_error(expm(_hat(step)) @ T, T)
        minus = _pose_error(expm(_hat(-step)) @ T, T)
        J[:, k] = (plus - minus) / (2 * eps)
    cov = _spd(seed)
    out = conv.left_tangent_cov_to_pose_cov(T, cov)
    assert np.allclose(out, J @ cov @ J.T, rtol=1e-7, atol=1e-12)
    assert np.array_equal(out, out.T)
    # a pose at the origin needs no change; far from it the rotation leaks into the position
    assert np.allclose(conv.left_tangent_cov_to_pose_cov(np.eye(4), cov), cov, atol=1e-15)
    assert not np.allclose(out[:3, :3], cov[:3, :3])
    with pytest.raises(ValueError, match="cov_left"):
        conv.left_tangent_cov_to_pose_cov(T, _asymmetric())


# ------------------------------------------------------------------------------------------------ time


def test_stamp_seconds_round_trips():
    assert conv.stamp_to_sec(Time(sec=1, nanosec=500_000_000)) == 1.5
    assert conv.sec_to_stamp(0.1) == Time(sec=0, nanosec=100_000_000)
    assert conv.sec_to_stamp(5) == Time(sec=5, nanosec=0)
    assert conv.sec_to_stamp(np.int64(7)) == Time(sec=7, nanosec=0)
    assert conv.sec_to_stamp(2.9999999999) == Time(sec=3, nanosec=0)  # rounds up across the second
    assert conv.sec_to_stamp(1.000000001) == Time(sec=1, nanosec=1)
    rng = np.random.default_rng(0)
    # every float that is the nearest double to a whole number of nanoseconds comes back exactly,
    # for times up to 2^22 s (~48 days, where a double still resolves well under a nanosecond)
    for ns in [*rng.integers(0, 2**22 * 10**9, 2000).tolist(), 0, 1, 999_999_999, 10**9]:
        t = ns / 10**9  # int / int: correctly rounded
        assert conv.sec_to_ns(t) == ns
        stamp = conv.sec_to_stamp(t)
        assert conv.stamp_to_ns(stamp) == ns
        assert conv.stamp_to_sec(stamp) == t


def test_integer_nanoseconds_are_exact_over_the_whole_range():
    for ns in (0, 1, 1_700_000_000_123_456_789, (2**31 - 1) * 10**9 + 999_999_999):
        stamp = conv.ns_to_stamp(ns)
        assert conv.stamp_to_ns(stamp) == ns
        assert stamp.nanosec < 10**9
    with pytest.raises(ValueError, match="ns"):
        conv.ns_to_stamp(2**31 * 10**9)
    with pytest.raises(ValueError, match="ns"):
        conv.ns_to_stamp(-1)
    with pytest.raises(ValueError, match="ns"):
        conv.ns_to_stamp(1.5)


def test_sec_to_stamp_never_reorders_stamps():
    base = 1_700_000_000.0  # a 2023 epoch time: doubles are 2.4e-7 s apart here
    times = [base]
    for _ in range(200):
        times.append(float(np.nextafter(times[-1], np.inf)))
    rng = np.random.default_rng(1)
    near_integers = np.concatenate([k + rng.normal(0, 1e-9, 50) for k in range(1, 4)])
    # distinct doubles at 1.7e9 s stay distinct (they are ~238 ns apart)
    assert len({conv.sec_to_ns(t) for t in times}) == len(times) == 201
    times += np.abs(near_integers).tolist() + rng.uniform(0, 10, 500).tolist()
    times.sort()
    stamps = [conv.stamp_to_ns(conv.sec_to_stamp(t)) for t in times]
    assert all(a <= b for a, b in itertools.pairwise(stamps))


@pytest.mark.parametrize("bad", [-0.5, -1, float("nan"), float("inf"), True])
def test_sec_to_stamp_rejects_bad_times(bad):
    with pytest.raises(ValueError, match="t "):
        conv.sec_to_stamp(bad)


def test_stamp_with_bad_nanosec_is_rejected():
    class Stamp:
        sec, nanosec = 1, 10**9

    with pytest.raises(ValueError, match=r"stamp\.nanosec"):
        conv.stamp_to_sec(Stamp())


@pytest.mark.parametrize(
    ("encoding", "pixels"),
    [
        ("bgr8", np.random.default_rng(5).integers(0, 256, (9, 11, 3), dtype=np.uint8)),
        ("mono8", np.random.default_rng(6).integers(0, 256, (9, 11), dtype=np.uint8)),
        ("mono16", np.random.default_rng(7).integers(0, 65536, (9, 11), dtype=np.uint16)),
        ("bgra8", np.random.default_rng(8).integers(0, 256, (9, 11, 4), dtype=np.uint8)),
    ],
)
def test_a_png_compressed_image_gives_the_model_what_the_raw_image_gives(encoding, pixels):
    import array

    import cv2

    _, data = cv2.imencode(".png", pixels)  # OpenCV's channel order: what image_transport hands its encoder
    msg = CompressedImage(format=f"{encoding}; png compressed {encoding}")
    msg.data = array.array("B", data.tobytes())
    raw = conv.numpy_to_image(pixels, encoding)
    np.testing.assert_array_equal(conv.compressed_to_model_input(msg), conv.image_to_model_input(raw))
    np.testing.assert_array_equal(
        conv.compressed_to_model_input(msg, max_value_16bit=4095), conv.image_to_model_input(raw, 4095)
    )
    assert conv.compressed_image_size(msg) == (11, 9)
    msg.format = "16UC1; compressedDepth png"
    with pytest.raises(ValueError, match="compressedDepth"):
        conv.compressed_to_model_input(msg)
    with pytest.raises(ValueError, match="compressedDepth"):
        conv.compressed_image_size(msg)


def _smooth_rgb(height: int = 32, width: int = 40) -> np.ndarray:
    """Colour gradients in which red and blue differ everywhere (a swapped channel order shows)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([40 + 150 * x / width, 60 + 120 * y / height, 200 - 100 * x / width], 2).astype(np.uint8)


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """The raw sensor values of a colour filter array: `pattern` names the top-left 2x2 tile, row by row."""
    channel = {"r": 0, "g": 1, "b": 2}
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for k, letter in enumerate(pattern):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, channel[letter]]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_mosaics_are_demosaiced_to_the_scene_in_rgb(pattern):
    rgb = _smooth_rgb()
    raw = conv.numpy_to_image(_mosaic(rgb, pattern), f"bayer_{pattern}8")
    out = conv.image_to_model_input(raw)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    inner = (slice(2, -2), slice(2, -2))  # demosaicing guesses at the border
    error = np.abs(out[inner].astype(int) - rgb[inner].astype(int)).mean()
    swapped = np.abs(out[inner][..., ::-1].astype(int) - rgb[inner].astype(int)).mean()
    assert error < 3.0 and swapped > 30.0, (error, swapped)
    wide = conv.numpy_to_image(_mosaic(rgb.astype(np.uint16) * 257, pattern), f"bayer_{pattern}16")
    out16 = conv.image_to_model_input(wide)  # 16-bit: demosaiced, then the fixed 16 -> 8 rule
    assert np.abs(out16[inner].astype(int) - rgb[inner].astype(int)).mean() < 3.0


def _yuv422(rgb: np.ndarray, order: str) -> np.ndarray:
    """4:2:2 YUV (BT.601, limited range) of an RGB image, packed as `order` (uyvy or yuyv) into H×W×2."""
    r, g, b = (rgb[..., k].astype(np.float64) for k in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u = np.repeat((u[:, 0::2] + u[:, 1::2]) / 2, 2, axis=1)  # one U and one V per pair of pixels
    v = np.repeat((v[:, 0::2] + v[:, 1::2]) / 2, 2, axis=1)
    chroma = np.where(np.arange(rgb.shape[1]) % 2 == 0, u, v)
    planes = [chroma, y] if order == "uyvy" else [y, chroma]
    return np.clip(np.rint(np.stack(planes, axis=2)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("encoding", "order"), [("yuv422", "uyvy"), ("uyvy", "uyvy"), ("yuv422_yuy2", "yuyv"), ("yuyv", "yuyv")]
)
def test_yuv422_is_converted_to_rgb(encoding, order):
    rgb = _smooth_rgb()
    out = conv.image_to_model_input(conv.numpy_to_image(_yuv422(rgb, order), encoding))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    error = np.abs(out.astype(int) - rgb.astype(int)).mean()
    other = "yuyv" if order == "uyvy" else "uyvy"
    wrong = np.abs(
        conv.image_to_model_input(conv.numpy_to_image(_yuv422(rgb, other), encoding)).astype(int) - rgb
    ).mean()
    assert error < 3.0 and wrong > 20.0, (error, wrong)
    odd = conv.numpy_to_image(_yuv422(rgb, order)[:, :-1], encoding)
    with pytest.raises(ValueError, match="even width"):
        conv.image_to_model_input(odd)
