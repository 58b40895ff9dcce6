"""Conversions between ROS messages and the numpy/core types of banet_vo (docs/ros_conversions.md).

Images: `sensor_msgs/Image` <-> numpy for the encodings in SUPPORTED_ENCODINGS. The message is validated
first (encoding, size, step, data length) and any mismatch is a ValueError naming the field. Decoding uses
cv_bridge when it is importable (a ROS 2 distro) and otherwise the package's one strided decoder
(data/bags.decode_pixels, which bag reading shares), with the dtype and channel count taken from
rosbags-image's encoding table. rosbags-image's own converter is not used for the pixels: it ignores
`step`, so row-padded images would come out sheared. `sensor_msgs/CompressedImage`
(image_transport's `compressed`: JPEG, PNG) goes to the same model input (rules in data/compressed_image.py).

Also here: CameraInfo <-> PinholeCamera, depth -> 32FC1 Image + CameraInfo, pose + covariance ->
nav_msgs/Odometry, and exact builtin_interfaces/Time <-> seconds / nanoseconds.
"""

from __future__ import annotations

import array
import functools
import logging
import math
import sys
from typing import Any

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from nav_msgs.msg import Odometry
from rosbags.image.image import to_cvtype
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from banet_vo.data import compressed_image
from banet_vo.data.bags import decode_pixels, image_layout
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.rectify import CameraCalibration
from banet_vo.geometry.rigid import rotation_to_quaternion, skew

logger = logging.getLogger(__name__)

# Raw colour filter arrays as machine-vision drivers publish them (Spinnaker, Pylon, Aravis), named by the
# top-left 2x2 tile; OpenCV names the same tile by its second row's pair, hence RGGB -> BayerBG (as cv_bridge
# and rosbags-image map them).
_DEMOSAIC = {
    "bayer_rggb": cv2.COLOR_BayerBG2RGB_EA,
    "bayer_bggr": cv2.COLOR_BayerRG2RGB_EA,
    "bayer_gbrg": cv2.COLOR_BayerGR2RGB_EA,
    "bayer_grbg": cv2.COLOR_BayerGB2RGB_EA,
}
_BAYER8 = tuple(f"{pattern}8" for pattern in _DEMOSAIC)
_BAYER16 = tuple(f"{pattern}16" for pattern in _DEMOSAIC)
# 4:2:2 YUV as USB (UVC) camera drivers publish it: yuv422 is UYVY and yuv422_yuy2 is YUYV (REP-0104's
# names; uyvy / yuyv are their newer aliases).
_YUV422 = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}
SUPPORTED_ENCODINGS = (
    "mono8",
    "8UC1",
    "mono16",
    "16UC1",
    "rgb8",
    "bgr8",
    "rgba8",
    "bgra8",
    *_BAYER8,
    *_BAYER16,
    *_YUV422,
    "32FC1",
)
# What the model takes as input: the intensity encodings (32FC1 is depth, decoded but never a model input).
MODEL_INPUT_ENCODINGS = tuple(e for e in SUPPORTED_ENCODINGS if e != "32FC1")
_MONO8 = ("mono8", "8UC1")
_MONO16 = ("mono16", "16UC1")
_NS_PER_S = 1_000_000_000
_INT32_MAX = 2**31 - 1


# --------------------------------------------------------------------------------------------- images


def encoding_layout(encoding: str) -> tuple[np.dtype, int]:
    """(numpy dtype in native byte order, channels) of a supported encoding."""
    if not isinstance(encoding, str) or encoding not in SUPPORTED_ENCODINGS:
        raise ValueError(f"encoding must be one of {SUPPORTED_ENCODINGS}, got {encoding!r}")
    _, _, typestr, channels = to_cvtype(encoding)
    return np.dtype(typestr), int(channels)


@functools.cache
def _cv_bridge() -> Any | None:
    """A CvBridge when cv_bridge is importable (ROS 2 distros), else None (pip-only installs)."""
    try:
        from cv_bridge import CvBridge
    except ImportError:
        logger.debug("cv_bridge not importable: decoding images with numpy")
        return None
    return CvBridge()


def _validate_image(msg: Any) -> tuple[np.dtype, int]:
    encoding_layout(msg.encoding)  # only the encodings the node handles
    return image_layout(msg)


def image_to_numpy(msg: Any) -> np.ndarray:
    """Pixels of a sensor_msgs/Image as H×W (one channel) or H×W×C, dtype of the encoding, native byte
    order, channels in the encoding's order (bgr8 stays BGR). Always a fresh array, never a view."""
    dtype, channels = _validate_image(msg)
    bridge = _cv_bridge()
    # cv_bridge reshapes by step // pixel size (padding must be whole pixels) and byte-swaps with an
    # ndarray method NumPy 2 removed, so it only gets the plain case; the numpy path handles the rest
    native = dtype.itemsize == 1 or bool(msg.is_bigendian) == (sys.byteorder == "big")
    if bridge is not None and native and int(msg.step) % (channels * dtype.itemsize) == 0:
        return np.array(bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough"), dtype=dtype, order="C")
    return decode_pixels(msg, dtype, channels)


def image_backend() -> str:
    """ "cv_bridge" or "numpy": which decoder image_to_numpy uses for plain images (for diagnostics)."""
    return "numpy" if _cv_bridge() is None else "cv_bridge"


def scale_16_to_8(values: np.ndarray, max_value: int = 65535) -> np.ndarray:
    """16-bit intensities to uint8 with a fixed linear rule: round(v * 255 / max_value), clipped to 255.

    Fixed (not per-image min/max) so brightness stays consistent between frames, which photometric and
    feature-metric alignment rely on. Pass max_value=4095 for a 12-bit sensor packed in 16 bits.
    """
    if (
        isinstance(max_value, bool)
        or not isinstance(max_value, int | np.integer)
        or not 0 < max_value <= 65535
    ):
        raise ValueError(f"max_value must be an int in [1, 65535], got {max_value!r}")
    wide = values.astype(np.uint32)
    return np.minimum((wide * 255 + max_value // 2) // max_value, 255).astype(np.uint8)


def image_to_model_input(msg: Any, max_value_16bit: int = 65535) -> np.ndarray:
    """The host image layout the model takes: H×W uint8 gray, or H×W×3 uint8 RGB.

    bgr8/bgra8 are reordered to RGB, alpha is dropped, mono16/16UC1 go through `scale_16_to_8`, Bayer
    mosaics are demosaiced (OpenCV's edge-aware interpolation; 16-bit ones then scaled), 4:2:2 YUV is
    converted to RGB (BT.601, as OpenCV reads it).
    32FC1 (depth) is not an intensity image and is refused.
    """
    if msg.encoding not in MODEL_INPUT_ENCODINGS:
        raise ValueError(
            f"encoding must be one of {MODEL_INPUT_ENCODINGS} (an intensity image), got {msg.encoding!r}"
        )
    return pixels_to_model_input(image_to_numpy(msg), msg.encoding, max_value_16bit)


def pixels_to_model_input(pixels: np.ndarray, encoding: str, max_value_16bit: int = 65535) -> np.ndarray:
    """`pixels` of an intensity `encoding` (image_to_numpy's layout) in the model's layout (see
    image_to_model_input)."""
    if encoding in _MONO8 or encoding == "rgb8":
        return pixels
    if encoding in _MONO16:
        return scale_16_to_8(pixels, max_value_16bit)
    # OpenCV's channel shuffles are ~10x faster than numpy's strided copies at camera sizes
    if encoding == "bgr8":
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if encoding == "rgba8":
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB)
    if encoding == "bgra8":
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)
    if encoding in _BAYER8:
        return cv2.cvtColor(pixels, _DEMOSAIC[encoding[:-1]])
    if encoding in _BAYER16:
        return scale_16_to_8(cv2.cvtColor(pixels, _DEMOSAIC[encoding[:-2]]), max_value_16bit)
    if encoding in _YUV422:
        if pixels.shape[1] % 2:
            raise ValueError(
                f"{encoding} needs an even width (two pixels share U and V), got {pixels.shape[1]}"
            )
        return cv2.cvtColor(pixels, _YUV422[encoding])
    raise ValueError(
        f"encoding {encoding!r} is not an intensity image; the model takes mono or colour images"
    )


def compressed_image_size(msg: Any) -> tuple[int, int]:
    """(width, height) of a sensor_msgs/CompressedImage from its header, without decoding the pixels (a
    receiver refuses an oversized image before allocating it). ValueError for compressedDepth or data that
    is no image."""
    compressed_image.parse_format(msg.format)
    return compressed_image.image_size(msg.data)


def compressed_to_model_input(msg: Any, max_value_16bit: int = 65535) -> np.ndarray:
    """A sensor_msgs/CompressedImage (image_transport's `compressed`: JPEG, PNG, …) in the model's layout,
    by the same rules as image_to_model_input. ValueError when it cannot be decoded."""
    fmt = compressed_image.parse_format(msg.format)
    pixels, encoding = compressed_image.decode(fmt, msg.data)
    return pixels_to_model_input(pixels, encoding, max_value_16bit)


def _copy_header(header: Any | None, field: str = "header") -> Header:
    """A fresh std_msgs/Header (messages are mutable: never share one between outputs)."""
    if header is None:
        return Header()
    try:
        sec, nanosec, frame_id = header.stamp.sec, header.stamp.nanosec, header.frame_id
    except AttributeError as err:
        raise ValueError(f"{field} must be a std_msgs/Header, got {type(header).__name__}") from err
    return Header(stamp=Time(sec=int(sec), nanosec=int(nanosec)), frame_id=str(frame_id))


def _byte_array(data: np.ndarray) -> array.array:
    # array.array from bytes skips rclpy's per-element type checks (seconds for a megapixel image)
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(data)).cast("B"))  # one copy, no bytes in between
    return out


def numpy_to_image(pixels: np.ndarray, encoding: str, header: Any | None = None) -> Image:
    """A sensor_msgs/Image holding `pixels` (H×W or H×W×C in the encoding's dtype and channel order).

    Data is written in this machine's byte order (is_bigendian set to match) with no row padding.
    """
    dtype, channels = encoding_layout(encoding)
    pixels = np.asarray(pixels)
    if pixels.dtype.kind != dtype.kind or pixels.dtype.itemsize != dtype.itemsize:
        raise ValueError(f"pixels dtype must be {dtype} for encoding {encoding!r}, got {pixels.dtype}")
    if channels == 1 and pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    expected = "H×W" if channels == 1 else f"H×W×{channels}"
    if pixels.ndim != (2 if channels == 1 else 3) or (channels > 1 and pixels.shape[2] != channels):
        raise ValueError(f"pixels must be {expected} for encoding {encoding!r}, got shape {pixels.shape}")
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"pixels must not be empty, got shape {pixels.shape}")
    msg = Image()
    msg.header = _copy_header(header)
    msg.height, msg.width, msg.encoding = int(height), int(width), encoding
    msg.is_bigendian = int(sys.byteorder == "big")
    msg.step = int(width * channels * dtype.itemsize)
    msg.data = _byte_array(pixels.astype(dtype, copy=False))
    return msg


def depth_to_image(depth_m: np.ndarray, header: Any, invalid_mask: np.ndarray | None = None) -> Image:
    """32FC1 depth image (metres along the optical axis, REP-118): NaN where depth ≤ 0, non-finite,
    not representable in float32, or where `invalid_mask` is True."""
    depth_m = np.asarray(depth_m)
    if depth_m.ndim != 2:
        raise ValueError(f"depth_m must be H×W, got shape {depth_m.shape}")
    if depth_m.dtype.kind != "f":
        raise ValueError(f"depth_m must be floating point (metres), got dtype {depth_m.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        depth = depth_m.astype(np.float32)
        invalid = ~np.isfinite(depth) | ~(depth > 0)
    if invalid_mask is not None:
        invalid_mask = np.asarray(invalid_mask)
        if invalid_mask.dtype != np.bool_ or invalid_mask.shape != depth.shape:
            raise ValueError(
                f"invalid_mask must be a bool array of shape {depth.shape}, "
                f"got {invalid_mask.dtype} {invalid_mask.shape}"
            )
        invalid |= invalid_mask
    depth[invalid] = np.nan
    return numpy_to_image(depth, "32FC1", header)


# -------------------------------------------------------------------------------------------- cameras


def _finite_matrix(values: Any, size: int, field: str) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float64).reshape(-1)
    if matrix.size != size:
        raise ValueError(f"CameraInfo.{field} must have {size} values, got {matrix.size}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"CameraInfo.{field} has non-finite values: {matrix.tolist()}")
    return matrix


def _binned_camera(camera: PinholeCamera, binning_x: int, binning_y: int) -> PinholeCamera:
    """Binning b merges b×b pixels; the leftover columns/rows are dropped before the 1/b resize."""
    bx, by = max(binning_x, 1), max(binning_y, 1)
    if bx == 1 and by == 1:
        return camera
    width, height = camera.width // bx, camera.height // by
    if width == 0 or height == 0:
        raise ValueError(
            f"CameraInfo.binning_x/y = {bx}/{by} leave no pixel of {camera.width}x{camera.height}"
        )
    return camera.cropped(0, 0, width * bx, height * by).resized(width, height)


def _roi(msg: Any) -> tuple[int, int, int, int] | None:
    """(x_offset, y_offset, width, height) of a CameraInfo's ROI, or None when there is none: all zero,
    or the whole image at the origin, which sensor_msgs/CameraInfo defines as the same thing."""
    roi = msg.roi
    x0, y0, rw, rh = int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)
    if rw <= 0 or rh <= 0 or (x0, y0, rw, rh) == (0, 0, int(msg.width), int(msg.height)):
        return None
    return x0, y0, rw, rh


def camera_info_to_camera(msg: Any, rectified: bool | None = None) -> PinholeCamera:
    """The pinhole model of the images that go with `msg`.

    Which matrix (docs/ros_conversions.md):
    - rectified=True: the images are rectified (`image_rect`): use P (its 3x3 part; P must be set).
    - rectified=False: the images are raw: use K (distortion D is not modelled and is logged).
    - rectified=None (default): P when P's 3x3 part is non-zero and D is all zero (the raw image equals
      the rectified one, e.g. KITTI or a simulator); K otherwise.
    Then the ROI (when set) crops and binning_x/y downsample, as in sensor_msgs/CameraInfo.
    NaN/inf, an all-zero chosen matrix, non-zero skew or zero size are ValueErrors naming the field.
    """
    width, height = int(msg.width), int(msg.height)
    if width <= 0:
        raise ValueError(f"CameraInfo.width must be positive, got {width}")
    if height <= 0:
        raise ValueError(f"CameraInfo.height must be positive, got {height}")
    k = _finite_matrix(msg.k, 9, "k")
    p = _finite_matrix(msg.p, 12, "p")
    d = np.asarray(msg.d, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(d)):
        raise ValueError(f"CameraInfo.d has non-finite values: {d.tolist()}")
    p_set = bool(np.any(p.reshape(3, 4)[:, :3]))
    if rectified is None:
        use_p = p_set and not np.any(d)
    else:
        use_p = bool(rectified)
    field, values = ("p", p) if use_p else ("k", k)
    if not np.any(values.reshape(3, -1)[:, :3]):
        raise ValueError(f"CameraInfo.{field} is all zeros (uncalibrated camera)")
    if not use_p and np.any(d):
        logger.warning(
            "CameraInfo.d is non-zero (%s): using K and ignoring lens distortion", msg.distortion_model
        )
    try:
        if use_p:
            camera = PinholeCamera.from_projection(p, width, height)
        else:
            camera = PinholeCamera.from_K(k, width, height)
    except ValueError as err:
        raise ValueError(f"CameraInfo.{field}: {err}") from err
    roi = _roi(msg)
    if roi is not None:
        x0, y0, rw, rh = roi
        if x0 + rw > width or y0 + rh > height:
            raise ValueError(f"CameraInfo.roi ({x0}, {y0}, {rw}x{rh}) does not fit in {width}x{height}")
        camera = camera.cropped(x0, y0, rw, rh)
    if int(msg.binning_x) < 0 or int(msg.binning_y) < 0:
        raise ValueError(f"CameraInfo.binning_x/y must be >= 0, got {msg.binning_x}/{msg.binning_y}")
    return _binned_camera(camera, int(msg.binning_x), int(msg.binning_y))


def camera_info_to_calibration(msg: Any) -> CameraCalibration:
    """The calibration a raw image is rectified with (ValueError naming the problem: an unsupported
    distortion model with non-zero D, a wrong coefficient count, NaN, zero K)."""
    try:
        return CameraCalibration(
            int(msg.width),
            int(msg.height),
            str(msg.distortion_model),
            tuple(msg.d),
            tuple(msg.k),
            tuple(msg.r),
            tuple(msg.p),
        )
    except ValueError as err:
        raise ValueError(f"CameraInfo: {err}") from err


def camera_info_to_input(msg: Any, rectify: bool) -> tuple[PinholeCamera, CameraCalibration | None]:
    """(the pinhole camera of the images the model will see, the calibration to rectify them with or None).

    rectify=True: a distorted camera (D ≠ 0 or R ≠ I) is rectified to P (K when P is unset) and the
    calibration is returned; an undistorted one is used as it is (camera_info_to_camera). rectify=False:
    the images are already rectified (image_rect), so P is their camera; a distorted camera_info without P
    cannot say what the rectified camera is and is refused.
    """
    calibration = camera_info_to_calibration(msg)
    if not calibration.distorted:
        return camera_info_to_camera(msg), None
    has_p = bool(np.any(np.reshape(calibration.P, (3, 4))[:, :3]))
    if not rectify:
        if not has_p:
            raise ValueError(
                "CameraInfo has distortion but no P: the rectified camera is unknown (set rectify:=true "
                "to rectify raw images in the node)"
            )
        return camera_info_to_camera(msg, rectified=True), None
    binned = int(msg.binning_x) > 1 or int(msg.binning_y) > 1
    if binned or _roi(msg) is not None:
        raise ValueError(
            "CameraInfo: rectifying a binned or ROI image is not supported; rectify upstream (image_proc) "
            "and set rectify:=false"
        )
    return calibration.rectified_camera(), calibration


def camera_to_camera_info(camera: PinholeCamera, header: Any, frame_id: str | None = None) -> CameraInfo:
    """CameraInfo of an undistorted, rectified camera: K, P = [K | 0], R = I, plumb_bob with zero D."""
    if not isinstance(camera, PinholeCamera):
        raise ValueError(f"camera must be a PinholeCamera, got {type(camera).__name__}")
    msg = CameraInfo()
    msg.header = _copy_header(header)
    if frame_id is not None:
        if not isinstance(frame_id, str) or not frame_id:
            raise ValueError(f"frame_id must be a non-empty string, got {frame_id!r}")
        msg.header.frame_id = frame_id
    msg.width, msg.height = camera.width, camera.height
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = camera.K.reshape(-1).astype(np.float64)
    msg.r = np.eye(3).reshape(-1)
    msg.p = camera.to_projection().reshape(-1).astype(np.float64)
    return msg


def depth_messages(
    depth_m: np.ndarray, camera: PinholeCamera, header: Any, invalid_mask: np.ndarray | None = None
) -> tuple[Image, CameraInfo]:
    """(32FC1 depth Image, its CameraInfo) with the same header; intrinsics are resized to the depth
    image when its size differs from `camera` (the model predicts depth at a lower resolution)."""
    if not isinstance(camera, PinholeCamera):
        raise ValueError(f"camera must be a PinholeCamera, got {type(camera).__name__}")
    image = depth_to_image(depth_m, header, invalid_mask)
    if (image.width, image.height) != camera.size:
        camera = camera.resized(image.width, image.height)
    return image, camera_to_camera_info(camera, image.header)


def points_to_cloud(points: np.ndarray, header: Any) -> Any:
    """sensor_msgs/PointCloud2 of N×3 points (x, y, z float32, unorganised, dense), header copied."""
    from sensor_msgs.msg import PointCloud2, PointField

    pts = np.ascontiguousarray(np.asarray(points, dtype=np.float32))
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must be N×3, got shape {pts.shape}")
    msg = PointCloud2()
    msg.header = _copy_header(header)
    msg.height, msg.width = 1, len(pts)
    msg.fields = [
        PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
        for i, name in enumerate("xyz")
    ]
    msg.is_bigendian = sys.byteorder == "big"
    msg.point_step, msg.row_step = 12, 12 * len(pts)
    msg.is_dense = bool(np.all(np.isfinite(pts)))
    msg.data = _byte_array(pts)
    return msg


# ------------------------------------------------------------------------------------------- odometry


def _matrix(values: Any, shape: tuple[int, ...], field: str) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.shape != shape:
        raise ValueError(f"{field} must have shape {shape}, got {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{field} has non-finite values")
    return matrix


def _covariance(values: Any, field: str) -> np.ndarray:
    cov = _matrix(values, (6, 6), field)
    scale = max(1.0, float(np.max(np.abs(cov))))
    if not np.allclose(cov, cov.T, rtol=0.0, atol=1e-9 * scale):
        raise ValueError(f"{field} must be symmetric, max |C - Cᵀ| = {np.max(np.abs(cov - cov.T)):.3g}")
    if np.any(np.diag(cov) < 0):
        raise ValueError(f"{field} has negative variances on its diagonal: {np.diag(cov).tolist()}")
    return cov


def _rigid_transform(values: Any, field: str) -> np.ndarray:
    T = _matrix(values, (4, 4), field)
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise ValueError(f"{field} bottom row must be [0, 0, 0, 1], got {T[3].tolist()}")
    R = T[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
        raise ValueError(f"{field} rotation block is not a proper rotation (RᵀR ≠ I or det < 0)")
    return T


def left_tangent_cov_to_pose_cov(T_parent_child: np.ndarray, cov_left: np.ndarray) -> np.ndarray:
    """6x6 covariance of a left perturbation T ← Exp([ρ, φ]) · T (our BA convention) expressed as the ROS
    pose covariance: position (x, y, z) and rotation about the parent's x, y, z axes.

    To first order the position moves by ρ + φ × t = ρ − [t]× φ and the rotation by φ, so
    Σ_ros = J Σ Jᵀ with J = [[I, −[t]×], [0, I]].
    """
    T = _rigid_transform(T_parent_child, "T_parent_child")
    cov = _covariance(cov_left, "cov_left")
    J = np.eye(6)
    J[:3, 3:] = -skew(T[:3, 3])
    out = J @ cov @ J.T
    return 0.5 * (out + out.T)


def odometry_msg(
    header: Any,
    child_frame_id: str,
    T_parent_child: np.ndarray,
    pose_cov: np.ndarray,
    twist: np.ndarray | None = None,
    twist_cov: np.ndarray | None = None,
) -> Odometry:
    """nav_msgs/Odometry of the pose of `child_frame_id` in `header.frame_id`.

    pose_cov: 6x6 in the ROS order (x, y, z, rot x, rot y, rot z) about the parent axes; convert a BA
    left-tangent covariance with `left_tangent_cov_to_pose_cov`. twist: [vx, vy, vz, wx, wy, wz] in the
    child frame, zeros by default. twist_cov None means unknown and is sent as -1 in element 0 (the
    sensor_msgs convention); the node always passes one (output_covariance.twist_covariance).
    """
    header = _copy_header(header)
    if not header.frame_id:
        raise ValueError("header.frame_id must name the parent frame (e.g. 'odom'), got ''")
    if not isinstance(child_frame_id, str) or not child_frame_id:
        raise ValueError(f"child_frame_id must be a non-empty string, got {child_frame_id!r}")
    T = _rigid_transform(T_parent_child, "T_parent_child")
    pose_cov = _covariance(pose_cov, "pose_cov")
    twist = np.zeros(6) if twist is None else _matrix(twist, (6,), "twist")
    if twist_cov is None:
        twist_cov_flat = np.zeros(36)
        twist_cov_flat[0] = -1.0
    else:
        twist_cov_flat = _covariance(twist_cov, "twist_cov").reshape(-1)
    msg = Odometry()
    msg.header = header
    msg.child_frame_id = child_frame_id
    position = msg.pose.pose.position
    position.x, position.y, position.z = (float(v) for v in T[:3, 3])
    q = rotation_to_quaternion(T[:3, :3])
    orientation = msg.pose.pose.orientation
    orientation.x, orientation.y, orientation.z, orientation.w = (float(v) for v in q)
    msg.pose.covariance = np.ascontiguousarray(pose_cov.reshape(-1))
    linear, angular = msg.twist.twist.linear, msg.twist.twist.angular
    linear.x, linear.y, linear.z = (float(v) for v in twist[:3])
    angular.x, angular.y, angular.z = (float(v) for v in twist[3:])
    msg.twist.covariance = np.ascontiguousarray(twist_cov_flat)
    return msg


# ---------------------------------------------------------------------------------------------- time


def stamp_to_ns(stamp: Any) -> int:
    """Exact integer nanoseconds of a builtin_interfaces/Time."""
    sec, nanosec = int(stamp.sec), int(stamp.nanosec)
    if not 0 <= nanosec < _NS_PER_S:
        raise ValueError(f"stamp.nanosec must be in [0, 1e9), got {nanosec}")
    return sec * _NS_PER_S + nanosec


def stamp_to_sec(stamp: Any) -> float:
    """Float seconds of a builtin_interfaces/Time (the core's time type)."""
    return stamp_to_ns(stamp) / _NS_PER_S


def ns_to_stamp(ns: int) -> Time:
    """builtin_interfaces/Time of integer nanoseconds (exact)."""
    if isinstance(ns, bool) or not isinstance(ns, int | np.integer):
        raise ValueError(f"ns must be an int, got {type(ns).__name__}")
    sec, nanosec = divmod(int(ns), _NS_PER_S)
    if not 0 <= sec <= _INT32_MAX:
        raise ValueError(f"ns = {ns} is outside the range of builtin_interfaces/Time")
    return Time(sec=sec, nanosec=nanosec)


def sec_to_ns(t: float) -> int:
    """Nearest integer nanoseconds of float (or int) seconds t ≥ 0, computed without float rounding
    errors: the whole seconds are split off exactly, only the fraction is scaled. Monotonic in t, so
    stamps never reorder, and exact whenever t is the nearest float to a whole number of nanoseconds."""
    if isinstance(t, bool):
        raise ValueError("t must be a number of seconds, got a bool")
    if isinstance(t, int | np.integer):
        if t < 0:
            raise ValueError(f"t must be >= 0 seconds, got {t}")
        return int(t) * _NS_PER_S
    t = float(t)
    if not math.isfinite(t) or t < 0:
        raise ValueError(f"t must be finite and >= 0 seconds, got {t}")
    whole = math.floor(t)
    fraction = t - whole  # exact: whole and t share the binade or whole is 0 (Sterbenz)
    return int(whole) * _NS_PER_S + round(fraction * _NS_PER_S)


def sec_to_stamp(t: float) -> Time:
    """builtin_interfaces/Time of seconds t (see sec_to_ns for exactness)."""
    return ns_to_stamp(sec_to_ns(t))
