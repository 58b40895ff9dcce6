"""Rectification of raw camera images from a ROS-style calibration (D, K, R, P), with cached OpenCV maps.

The model takes pinhole images, so a raw image from a lens with distortion must be resampled to the
rectified camera P first (what image_proc's rectify node does). Supported distortion models are the three
that sensor_msgs/distortion_models names and OpenCV implements:

- plumb_bob: radial k1, k2, k3 and tangential p1, p2 (D = k1 k2 p1 p2 [k3]), OpenCV's standard model;
- rational_polynomial: plumb_bob with the rational radial term (D = k1 k2 p1 p2 k3 k4 k5 k6);
- equidistant: the Kannala-Brandt fisheye model (D = k1 k2 k3 k4), cv2.fisheye; its f·θ projection is no
  pinhole even with D = 0, so it is always rectified.

A raw image with no distortion is resampled too when P's intrinsics are not K's, so that the image and the
camera reported with it (P's) agree.

Anything else is refused with a ValueError that says what to do instead. No ROS here: the node converts its
CameraInfo into a `CameraCalibration` (banet_vo.ros.conversions.camera_info_to_calibration).
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from banet_vo.geometry.camera import PinholeCamera

PLUMB_BOB = "plumb_bob"
RATIONAL_POLYNOMIAL = "rational_polynomial"
EQUIDISTANT = "equidistant"
# Accepted coefficient counts per model (ROS publishes 5 / 8 / 4; 4 and 5 are both plumb_bob in OpenCV).
DISTORTION_MODELS = {PLUMB_BOB: (4, 5), RATIONAL_POLYNOMIAL: (8,), EQUIDISTANT: (4,)}
# A P whose intrinsics differ from K's by less than this [px] anywhere in the image (rounding in a
# driver's camera_info) is taken as K's: resampling would only blur the image.
REMAP_TOLERANCE_PX = 1e-3


@dataclass(frozen=True)
class CameraCalibration:
    """One camera's calibration as sensor_msgs/CameraInfo carries it (tuples, so it hashes as a cache key).

    K: raw intrinsics (9, row-major); D: distortion coefficients of `distortion_model`; R: rectifying
    rotation (9); P: projection of the rectified camera (12; all zeros when the driver did not set it).
    """

    width: int
    height: int
    distortion_model: str
    D: tuple[float, ...]
    K: tuple[float, ...]
    R: tuple[float, ...]
    P: tuple[float, ...]

    def __post_init__(self) -> None:
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"calibration size must be positive, got {self.width}x{self.height}")
        for name, size in (("K", 9), ("R", 9), ("P", 12)):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != size or not np.all(np.isfinite(values)):
                raise ValueError(f"calibration {name} must have {size} finite values, got {values}")
            object.__setattr__(self, name, values)
        d = tuple(float(v) for v in self.D)
        if not np.all(np.isfinite(d)):
            raise ValueError(f"calibration D has non-finite values: {d}")
        object.__setattr__(self, "D", d)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        if not np.any(self.K):
            raise ValueError("calibration K is all zeros (uncalibrated camera)")
        K = np.reshape(self.K, (3, 3))
        if not (K[0, 0] > 0 and K[1, 1] > 0) or np.abs(K[2] - [0.0, 0.0, 1.0]).max() > 1e-9:
            # a negative focal length would mirror the rectified image and the map with it
            raise ValueError(
                "calibration K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0; "
                f"got {K.tolist()}"
            )
        if self.distorted:
            counts = DISTORTION_MODELS.get(self.distortion_model)
            if counts is None:
                raise ValueError(
                    f"distortion model {self.distortion_model!r} is not supported (supported: "
                    f"{', '.join(DISTORTION_MODELS)}); rectify the images upstream (image_proc) and "
                    "subscribe to image_rect with rectify:=false"
                )
            if len(d) not in counts:
                raise ValueError(
                    f"distortion model {self.distortion_model} takes {' or '.join(map(str, counts))} "
                    f"coefficients, got {len(d)}"
                )

    @property
    def distorted(self) -> bool:
        """True when the raw image is no pinhole image in the rectified camera's orientation: non-zero D,
        R not the identity, or an equidistant lens, whose f·θ projection is no pinhole even with D = 0."""
        rotated = not np.allclose(np.reshape(self.R, (3, 3)), np.eye(3), atol=1e-12) and np.any(self.R)
        return bool(np.any(self.D)) or bool(rotated) or self.distortion_model == EQUIDISTANT

    @property
    def needs_remap(self) -> bool:
        """True when the raw image must be resampled to be an image of rectified_camera(): distorted, or
        P's intrinsics move some corner of the image by more than REMAP_TOLERANCE_PX from where K has it."""
        if self.distorted:
            return True
        w, h = self.width - 1, self.height - 1
        corners = np.array([[0.0, 0.0, 1.0], [w, 0.0, 1.0], [0.0, h, 1.0], [w, h, 1.0]])
        raw = corners @ (self.K_matrix @ np.linalg.inv(self.new_camera_matrix)).T
        return bool(np.abs(raw[:, :2] / raw[:, 2:] - corners[:, :2]).max() > REMAP_TOLERANCE_PX)

    @property
    def K_matrix(self) -> np.ndarray:
        return np.reshape(self.K, (3, 3))

    @property
    def R_matrix(self) -> np.ndarray:
        # An all-zero R means "not set" in many drivers: the identity.
        return np.reshape(self.R, (3, 3)) if np.any(self.R) else np.eye(3)

    @property
    def new_camera_matrix(self) -> np.ndarray:
        """3x3 intrinsics of the rectified image: P's left block when P is set, else K."""
        P = np.reshape(self.P, (3, 4))
        return P[:, :3].copy() if np.any(P[:, :3]) else self.K_matrix

    def rectified_camera(self) -> PinholeCamera:
        """The pinhole camera of the rectified image (same size as the raw image)."""
        return PinholeCamera.from_K(self.new_camera_matrix, self.width, self.height)


def rectification_maps(
    calibration: CameraCalibration, fixed_point: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps from rectified pixels to raw pixels. fixed_point=True gives OpenCV's compact
    CV_16SC2 maps (remap runs about twice as fast on them); False gives float32 (x, y) maps."""
    c = calibration
    size = (c.width, c.height)
    m1type = cv2.CV_16SC2 if fixed_point else cv2.CV_32FC1
    D = np.asarray(c.D, dtype=np.float64)
    if c.distortion_model == EQUIDISTANT:  # f·θ even with D = 0: OpenCV's pinhole model would not undo it
        return cv2.fisheye.initUndistortRectifyMap(
            c.K_matrix, D.reshape(4, 1), c.R_matrix, c.new_camera_matrix, size, m1type
        )
    return cv2.initUndistortRectifyMap(c.K_matrix, D, c.R_matrix, c.new_camera_matrix, size, m1type)


def undistort_points(points: np.ndarray, calibration: CameraCalibration) -> np.ndarray:
    """Raw pixel coordinates (N×2) to rectified pixel coordinates, through OpenCV's iterative inverse."""
    c = calibration
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 1, 2)
    D = np.asarray(c.D, dtype=np.float64)
    if c.distortion_model == EQUIDISTANT:
        out = cv2.fisheye.undistortPoints(
            pts, c.K_matrix, D.reshape(4, 1), R=c.R_matrix, P=c.new_camera_matrix
        )
    else:
        out = cv2.undistortPoints(pts, c.K_matrix, D, R=c.R_matrix, P=c.new_camera_matrix)
    return out.reshape(-1, 2)


class Rectifier:
    """Rectifies raw images, keeping the maps of the last few calibrations (building them costs ~10 ms
    per megapixel; a camera_info arrives with every image, so they must not be rebuilt per frame)."""

    def __init__(self, cache_size: int = 4) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        self._cache: collections.OrderedDict[CameraCalibration, tuple[np.ndarray, np.ndarray]] = (
            collections.OrderedDict()
        )
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.maps_built = 0

    def maps(self, calibration: CameraCalibration) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            maps = self._cache.get(calibration)
            if maps is not None:
                self._cache.move_to_end(calibration)
                return maps
        maps = rectification_maps(calibration)
        with self._lock:
            self._cache[calibration] = maps
            self.maps_built += 1
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return maps

    def rectify(self, image: np.ndarray, calibration: CameraCalibration) -> tuple[np.ndarray, PinholeCamera]:
        """(rectified image, its pinhole camera). A calibration that needs no remap (needs_remap) returns the
        image unchanged."""
        height, width = image.shape[:2]
        if (width, height) != (calibration.width, calibration.height):
            raise ValueError(
                f"image is {width}x{height} but its calibration is {calibration.width}x{calibration.height}"
            )
        camera = calibration.rectified_camera()
        if not calibration.needs_remap:
            return image, camera
        map1, map2 = self.maps(calibration)
        # Pixels that map outside the raw image become 0 (black), as image_proc does.
        rectified = cv2.remap(image, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return rectified, camera
