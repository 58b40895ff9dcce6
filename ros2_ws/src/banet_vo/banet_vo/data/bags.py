"""ROS 2 bags from sequences (writer; its CLI `banet-vo-bag` is bags_cli.py) and a reader, with rosbags.

No rclpy here: bags are written and read with `rosbags` (MCAP or sqlite3 storage, metadata.yaml that
`ros2 bag info` reads), so this works on machines without a ROS 2 distro. What a bag holds (docs/bags.md):

- /camera/image_raw: sensor_msgs/Image, mono8 or rgb8, frame camera_optical; with `image_codec` png or jpeg
  /camera/image_raw/compressed instead: sensor_msgs/CompressedImage, as image_transport's compressed
  publisher writes it (data/compressed_image.py)
- /camera/camera_info: sensor_msgs/CameraInfo, K, R = I, P = [K 0], D = 0 (rectified)
- /camera/depth/image: sensor_msgs/Image 32FC1, metres along z, NaN invalid (only with depth)
- /ground_truth/odometry: nav_msgs/Odometry world → camera_optical, pose = camera-to-world (when poses exist)
- /tf_static: tf2_msgs/TFMessage base_link → camera_optical, the REP-103 optical rotation (latched)

Stamps are integer nanoseconds (sequence time + start_time), and the bag's own timestamps equal the
header stamps.
"""

from __future__ import annotations

import decimal
import logging
import math
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import (
    ConnectionExtRosbag2,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import ReaderError, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from banet_vo.data import compressed_image
from banet_vo.data.bag_salvage import SalvageReport, damaged_files, salvage_bag, storage_files
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.frames import R_BODY_OPTICAL  # REP-103 body ← optical
from banet_vo.geometry.rigid import pose_matrix, rotation_to_quaternion

logger = logging.getLogger(__name__)

IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_IMAGE_TOPIC = compressed_image.transport_topic(IMAGE_TOPIC)
IMAGE_MSGTYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_MSGTYPE = "sensor_msgs/msg/CompressedImage"
# How write_bag stores the camera images: raw sensor_msgs/Image, or compressed with one of these codecs.
IMAGE_CODECS = ("raw", *compressed_image.CODECS)
CAMERA_INFO_TOPIC = "/camera/camera_info"
DEPTH_TOPIC = "/camera/depth/image"
ODOMETRY_TOPIC = "/ground_truth/odometry"
TF_STATIC_TOPIC = "/tf_static"

STORAGES = ("mcap", "sqlite3")
# Version 8 is read by rosbag2 in Jazzy and Kilted (Kilted writes 9, which Jazzy refuses).
BAG_VERSIONS = (8, 9)

# The typestore matching the ROS 2 wheels of the venv (Kilted); its type hashes go into the bag.
TYPESTORE = get_typestore(Stores.ROS2_KILTED)

_NS_PER_S = 1_000_000_000
_INT32_MAX = 2**31 - 1


def _qos(reliable: bool, latched: bool, depth: int) -> Qos:
    zero = QosTime(sec=0, nsec=0)
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
        deadline=zero,
        lifespan=zero,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero,
        avoid_ros_namespace_conventions=False,
    )


# Offered QoS recorded in the bag: a player (ours or `ros2 bag play`) reuses these.
_STREAM_QOS = _qos(reliable=True, latched=False, depth=10)
_LATCHED_QOS = _qos(reliable=True, latched=True, depth=1)


def seconds_to_ns(t: float) -> int:
    """Float seconds to integer nanoseconds, rounding the fraction only (no drift from t * 1e9)."""
    if not math.isfinite(t):
        raise ValueError(f"time must be finite, got {t}")
    whole = math.floor(t)
    return int(whole) * _NS_PER_S + round((t - whole) * _NS_PER_S)


def start_time_ns(start_time: float | str | decimal.Decimal) -> int:
    """A start time in integer nanoseconds: exact for decimal text or a Decimal ("1700000000.1" is
    ...100000000), the nearest for a float (whose binary value of 1700000000.1 is ...099999905)."""
    if isinstance(start_time, str | decimal.Decimal):
        try:
            value = decimal.Decimal(start_time)
        except decimal.InvalidOperation:
            raise ValueError(f"start time must be a number of seconds, got {start_time!r}") from None
        if not value.is_finite():
            raise ValueError(f"start time must be finite, got {start_time!r}")
        return int((value * _NS_PER_S).to_integral_value())
    return seconds_to_ns(float(start_time))


def _ros_time(t_ns: int, what: str) -> Any:
    if t_ns < 0:
        raise ValueError(f"{what}: ROS stamps cannot be negative, got {t_ns} ns (use start_time to shift)")
    sec, nanosec = divmod(t_ns, _NS_PER_S)
    if sec > _INT32_MAX:
        raise ValueError(f"{what}: {sec} s does not fit the int32 seconds of builtin_interfaces/Time")
    return TYPESTORE.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def _header(t_ns: int, frame_id: str, what: str) -> Any:
    return TYPESTORE.types["std_msgs/msg/Header"](stamp=_ros_time(t_ns, what), frame_id=frame_id)


def image_message(image: np.ndarray, t_ns: int, frame_id: str) -> Any:
    """sensor_msgs/Image (rosbags object) from H×W uint8 (mono8), H×W×3 uint8 RGB (rgb8) or H×W float32."""
    image = np.asarray(image)
    if image.dtype == np.uint8 and image.ndim == 2:
        encoding, channels = "mono8", 1
    elif image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        encoding, channels = "rgb8", 3
    elif image.dtype == np.float32 and image.ndim == 2:
        encoding, channels = "32FC1", 1
    else:
        raise ValueError(
            f"image must be H×W uint8, H×W×3 uint8 or H×W float32, got {image.dtype} {image.shape}"
        )
    height, width = image.shape[:2]
    data = np.ascontiguousarray(image).astype(image.dtype.newbyteorder("<"), copy=False).view(np.uint8)
    return TYPESTORE.types[IMAGE_MSGTYPE](
        header=_header(t_ns, frame_id, "image stamp"),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels * image.dtype.itemsize,
        data=data.reshape(-1),
    )


def compressed_image_message(image: np.ndarray, t_ns: int, frame_id: str, codec: str) -> Any:
    """sensor_msgs/CompressedImage (rosbags object) of an H×W uint8 (mono8) or H×W×3 uint8 RGB image."""
    fmt, data = compressed_image.encode(image, codec)
    return TYPESTORE.types[COMPRESSED_IMAGE_MSGTYPE](
        header=_header(t_ns, frame_id, "image stamp"), format=fmt, data=np.frombuffer(data, dtype=np.uint8)
    )


def camera_info_message(camera: PinholeCamera, t_ns: int, frame_id: str) -> Any:
    """sensor_msgs/CameraInfo of a rectified pinhole: D = 0 (plumb_bob), R = I, P = [K | 0]."""
    roi = TYPESTORE.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return TYPESTORE.types["sensor_msgs/msg/CameraInfo"](
        header=_header(t_ns, frame_id, "camera_info stamp"),
        height=camera.height,
        width=camera.width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=camera.K.reshape(-1),
        r=np.eye(3).reshape(-1),
        p=camera.to_projection().reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def _pose_message(T: np.ndarray) -> Any:
    types = TYPESTORE.types
    q = rotation_to_quaternion(T[:3, :3])
    return types["geometry_msgs/msg/Pose"](
        position=types["geometry_msgs/msg/Point"](x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
        orientation=types["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
    )


def odometry_message(T_wc: np.ndarray, t_ns: int, world_frame: str, child_frame: str) -> Any:
    """nav_msgs/Odometry with pose = camera-to-world. Twist and covariances are zero (not estimated)."""
    types = TYPESTORE.types
    vec = types["geometry_msgs/msg/Vector3"]
    twist = types["geometry_msgs/msg/Twist"](
        linear=vec(x=0.0, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=0.0)
    )
    return types["nav_msgs/msg/Odometry"](
        header=_header(t_ns, world_frame, "odometry stamp"),
        child_frame_id=child_frame,
        pose=types["geometry_msgs/msg/PoseWithCovariance"](pose=_pose_message(T_wc), covariance=np.zeros(36)),
        twist=types["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)),
    )


def tf_static_message(t_ns: int, body_frame: str, camera_frame: str) -> Any:
    """tf2_msgs/TFMessage with body_frame → camera_frame: zero translation, REP-103 optical rotation."""
    types = TYPESTORE.types
    q = rotation_to_quaternion(R_BODY_OPTICAL)
    transform = types["geometry_msgs/msg/TransformStamped"](
        header=_header(t_ns, body_frame, "tf_static stamp"),
        child_frame_id=camera_frame,
        transform=types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
            rotation=types["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
        ),
    )
    return types["tf2_msgs/msg/TFMessage"](transforms=[transform])


@dataclass(frozen=True)
class BagWriteSummary:
    """What write_bag wrote."""

    path: Path
    storage: str
    frames: int
    message_counts: dict[str, int]
    start_ns: int
    end_ns: int


def _check_frame_name(name: str, field: str) -> str:
    if not isinstance(name, str) or not name or name.startswith("/") or any(c.isspace() for c in name):
        raise ValueError(
            f"{field} must be a non-empty tf frame name without '/' prefix or spaces, got {name!r}"
        )
    return name


def write_bag(
    sequence: Any,
    out: str | Path,
    *,
    storage: str = "mcap",
    version: int = 8,
    camera_frame: str = "camera_optical",
    body_frame: str = "base_link",
    world_frame: str = "world",
    start_time: float | str | decimal.Decimal = 0.0,
    max_frames: int | None = None,
    include_depth: bool = False,
    image_codec: str = "raw",
    progress: Callable[[int, int], None] | None = None,
) -> BagWriteSummary:
    """Write the frames of `sequence` (a banet_vo Sequence, or any list of Frames) to a new bag at `out`.

    Stamps are `start_time + frame.timestamp` in integer nanoseconds; a sequence whose `timestamps_ns` is
    set (EuRoC: integer nanoseconds in data.csv) gives its frame times from those, exactly. Ground-truth
    odometry is written for every frame that has a pose. `include_depth` writes z-depth as 32FC1 with NaN
    where invalid (REP-118). `image_codec` png or jpeg writes the images compressed on
    COMPRESSED_IMAGE_TOPIC (PNG is lossless).
    `progress(done, total)` is called after each frame. On any error the partial bag is removed.
    """
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    if version not in BAG_VERSIONS:
        raise ValueError(f"version must be one of {BAG_VERSIONS}, got {version!r}")
    if image_codec not in IMAGE_CODECS:
        raise ValueError(f"image_codec must be one of {IMAGE_CODECS}, got {image_codec!r}")
    for field, name in (
        ("camera_frame", camera_frame),
        ("body_frame", body_frame),
        ("world_frame", world_frame),
    ):
        _check_frame_name(name, field)
    if camera_frame in (body_frame, world_frame):
        raise ValueError(f"camera_frame {camera_frame!r} must differ from body_frame and world_frame")
    out = Path(out)
    if out.exists():
        raise ValueError(f"out: {out} already exists; bags are never overwritten")
    total = len(sequence)
    if max_frames is not None:
        if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
            raise ValueError(f"max_frames must be a positive int or None, got {max_frames!r}")
        total = min(total, max_frames)
    if total < 1:
        raise ValueError("sequence has no frames")
    offset_ns = start_time_ns(start_time)
    exact_ns = getattr(sequence, "timestamps_ns", None)  # a reader's integer stamps, when it keeps them

    writer = Writer(out, version=version, storage_plugin=StoragePlugin[storage.upper()])
    counts: dict[str, int] = {}
    stamps: list[int] = []
    try:
        writer.open()
        connections: dict[str, Any] = {}

        def write(topic: str, msgtype: str, msg: Any, t_ns: int, qos: Qos = _STREAM_QOS) -> None:
            if topic not in connections:
                connections[topic] = writer.add_connection(
                    topic, msgtype, typestore=TYPESTORE, offered_qos_profiles=[qos]
                )
            writer.write(connections[topic], t_ns, bytes(TYPESTORE.serialize_cdr(msg, msgtype)))
            counts[topic] = counts.get(topic, 0) + 1

        for i in range(total):
            frame = sequence[i]
            t_ns = offset_ns + (
                int(exact_ns[i]) if exact_ns is not None else seconds_to_ns(float(frame.timestamp))
            )
            if stamps and t_ns <= stamps[-1]:
                raise ValueError(
                    f"frame {i}: timestamps must be strictly increasing in ns, got {t_ns} after {stamps[-1]}"
                )
            stamps.append(t_ns)
            camera = frame.camera
            if frame.image.shape[:2] != (camera.height, camera.width):
                raise ValueError(
                    f"frame {i}: image is {frame.image.shape[1]}x{frame.image.shape[0]} "
                    f"but the camera is {camera.width}x{camera.height}"
                )
            if i == 0:
                # Latched, stamped with the first frame so tf lookups at any frame time find it.
                write(
                    TF_STATIC_TOPIC,
                    "tf2_msgs/msg/TFMessage",
                    tf_static_message(t_ns, body_frame, camera_frame),
                    t_ns,
                    _LATCHED_QOS,
                )
            write(
                CAMERA_INFO_TOPIC,
                "sensor_msgs/msg/CameraInfo",
                camera_info_message(camera, t_ns, camera_frame),
                t_ns,
            )
            if image_codec == "raw":
                write(IMAGE_TOPIC, IMAGE_MSGTYPE, image_message(frame.image, t_ns, camera_frame), t_ns)
            else:
                msg = compressed_image_message(frame.image, t_ns, camera_frame, image_codec)
                write(COMPRESSED_IMAGE_TOPIC, COMPRESSED_IMAGE_MSGTYPE, msg, t_ns)
            if include_depth:
                if frame.depth is None:
                    raise ValueError(f"frame {i}: include_depth is set but the frame has no depth")
                depth = np.where(frame.depth > 0, frame.depth, np.nan).astype(np.float32)
                write(DEPTH_TOPIC, IMAGE_MSGTYPE, image_message(depth, t_ns, camera_frame), t_ns)
            if frame.pose is not None:
                T_wc = np.asarray(frame.pose, dtype=np.float64)
                if T_wc.shape != (4, 4) or not np.all(np.isfinite(T_wc)):
                    raise ValueError(f"frame {i}: pose must be a finite 4x4 matrix, got shape {T_wc.shape}")
                msg = odometry_message(T_wc, t_ns, world_frame, camera_frame)
                write(ODOMETRY_TOPIC, "nav_msgs/msg/Odometry", msg, t_ns)
            if progress is not None:
                progress(i + 1, total)
        writer.close()
    except BaseException:
        if writer.storage is not None:
            writer.abort()
        shutil.rmtree(out, ignore_errors=True)
        raise
    return BagWriteSummary(out, storage, total, counts, stamps[0], stamps[-1])


# ---------------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class BagTopic:
    """One topic of a bag, with the QoS its recorder offered (first connection)."""

    name: str
    msgtype: str  # e.g. "sensor_msgs/msg/Image"
    count: int
    reliable: bool
    latched: bool  # transient-local durability (e.g. /tf_static)


def find_image_topic(topics: dict[str, BagTopic], requested: str) -> tuple[str, str]:
    """(topic, transport) of the camera images a bag holds under `requested`: the topic itself when it is
    sensor_msgs/Image ("raw") or CompressedImage ("compressed"; its name must then end in "/compressed", as
    image_transport records it), else `requested + "/compressed"` when that is in the bag. ValueError, with
    the bag's image topics, when neither is."""
    requested = requested if requested.startswith("/") else "/" + requested
    candidates = [requested]
    if compressed_image.base_topic(requested) == requested.rstrip("/"):  # not a compressed topic itself
        candidates.append(compressed_image.transport_topic(requested))
    for name in candidates:
        topic = topics.get(name)
        if topic is None:
            continue
        if topic.msgtype == IMAGE_MSGTYPE:
            return name, "raw"
        if topic.msgtype == COMPRESSED_IMAGE_MSGTYPE:
            if compressed_image.base_topic(name) == name.rstrip("/"):
                raise ValueError(
                    f"{name} holds {COMPRESSED_IMAGE_MSGTYPE} but its name does not end in "
                    f"'/{compressed_image.TRANSPORT}', the name image_transport gives that transport"
                )
            return name, compressed_image.TRANSPORT
        raise ValueError(f"{name} holds {topic.msgtype}, not {IMAGE_MSGTYPE} or {COMPRESSED_IMAGE_MSGTYPE}")
    images = [t.name for t in topics.values() if t.msgtype in (IMAGE_MSGTYPE, COMPRESSED_IMAGE_MSGTYPE)]
    listed = ", ".join(sorted(images)) or "none"
    raise ValueError(f"the bag has no image topic {' or '.join(candidates)}; its image topics: {listed}")


@dataclass(frozen=True)
class BagRecord:
    """One serialized message: CDR bytes as stored, with the bag's receive timestamp."""

    topic: str
    msgtype: str
    timestamp_ns: int
    data: bytes


def not_a_rosbag2(path: Path) -> str:
    """Why `path` cannot be read as a rosbag2, with the way out for a ROS 1 bag or a sequence folder."""
    if not path.exists():
        return f"bag: {path} not found"
    text = f"bag: {path} is not a rosbag2 directory (no metadata.yaml)"
    if path.is_file() and path.suffix == ".bag":
        text += (
            "; it looks like a ROS 1 bag: convert it with `rosbags-convert --src "
            f"{path} --dst {path.with_suffix('')}_ros2 --dst-typestore ros2_kilted` (installed with banet-vo)"
        )
    elif path.is_dir():
        from banet_vo.data.readers import detect_format  # the readers need no bag code: imported here

        try:
            layout = detect_format(path)
        except ValueError:
            return text  # not a sequence folder either: the plain reason
        text += (
            f"; it is a sequence folder ({layout} layout): write it as a bag first with "
            f"`banet-vo-bag {path} {path}_bag`, then run that"
        )
    return text


class BagReader:
    """Read any rosbag2 (MCAP or sqlite3) in bag-time order; use as a context manager.

    Types come from the bag's own message definitions, falling back to the Kilted typestore. A damaged bag
    (an interrupted recording: no MCAP footer, a cut sqlite3 file) is read from a salvaged copy of its
    intact part (banet_vo.data.bag_salvage) with a warning that says how much was lost; ``damage`` then
    holds the report. ValueError when nothing at all is readable, or with ``salvage=False``.
    """

    def __init__(self, path: str | Path, salvage: bool = True) -> None:
        path = Path(path)
        self._has_metadata = (path / "metadata.yaml").is_file()
        if not self._has_metadata and not (salvage and path.is_dir() and storage_files(path)):
            raise ValueError(not_a_rosbag2(path))
        self.path = path
        self.salvage = salvage
        self.damage: SalvageReport | None = None
        self._scratch: tempfile.TemporaryDirectory | None = None
        self._reader: AnyReader | None = None

    def __enter__(self) -> BagReader:
        if not self._has_metadata:  # a recording that never closed: read what its files hold
            self._open_salvaged(ValueError("no metadata.yaml"))
            return self
        # Checked before rosbags opens it: a sqlite3 file cut inside its last pages opens and fails only
        # part-way through reading, when the messages before the cut have already been handed on.
        damaged = damaged_files(self.path) if self.salvage else []
        if damaged:
            self._open_salvaged(ValueError(f"{', '.join(damaged)} cut short or missing"))
            return self
        try:
            self._reader = AnyReader([self.path], default_typestore=TYPESTORE)
            self._reader.open()
        except (AnyReaderError, ReaderError) as exc:
            self._reader = None
            if not self.salvage:
                raise ValueError(f"bag: cannot read {self.path}: {exc}") from exc
            self._open_salvaged(exc)
        return self

    def _open_salvaged(self, error: Exception) -> None:
        self._scratch = tempfile.TemporaryDirectory(prefix="banet-vo-salvaged-bag-")
        try:
            self.damage = salvage_bag(self.path, self._scratch.name)
            if self.damage.readable_total == 0:
                raise ValueError(f"{self.damage.describe()}: nothing to read")
            logger.warning("%s (rosbags: %s)", self.damage.describe(), error)
            self._reader = AnyReader(self.damage.paths, default_typestore=TYPESTORE)
            self._reader.open()
        except BaseException:
            self._scratch.cleanup()
            self._scratch = None
            raise

    def __exit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    @property
    def topics(self) -> dict[str, BagTopic]:
        topics: dict[str, BagTopic] = {}
        for name, info in self._reader.topics.items():
            reliable, latched = True, False
            for conn in info.connections:
                if isinstance(conn.ext, ConnectionExtRosbag2) and conn.ext.offered_qos_profiles:
                    qos = conn.ext.offered_qos_profiles[0]
                    reliable = qos.reliability != QosReliability.BEST_EFFORT
                    latched = qos.durability == QosDurability.TRANSIENT_LOCAL
                    break
            topics[name] = BagTopic(
                name, info.msgtype or "", self._count(name, info.msgcount), reliable, latched
            )
        return topics

    def _count(self, topic: str, indexed: int) -> int:
        # A salvaged copy keeps the recorded metadata (or no index at all): count what can be read.
        return indexed if self.damage is None else self.damage.readable.get(topic, 0)

    @property
    def start_ns(self) -> int:
        return self._reader.start_time

    @property
    def end_ns(self) -> int:
        """Timestamp of the last message (rosbags reports one past it)."""
        return self._reader.end_time - 1

    @property
    def message_count(self) -> int:
        return self._reader.message_count if self.damage is None else self.damage.readable_total

    def _connections(self, topics: Iterator[str] | list[str] | None) -> list[Any]:
        if topics is None:
            return list(self._reader.connections)
        wanted = set(topics)
        missing = wanted - {c.topic for c in self._reader.connections}
        if missing:
            raise ValueError(f"topics: {sorted(missing)} not in bag {self.path}")
        return [c for c in self._reader.connections if c.topic in wanted]

    def records(self, topics: list[str] | None = None) -> Iterator[BagRecord]:
        """Serialized messages of `topics` (all when None) in timestamp order."""
        connections = self._connections(topics)
        if not connections:
            return  # rosbags reads an empty filter as "no filter"
        try:
            for conn, t_ns, data in self._reader.messages(connections=connections):
                yield BagRecord(conn.topic, conn.msgtype, t_ns, bytes(data))
        except (apsw.Error, sqlite3.DatabaseError, ReaderError) as exc:
            # damage the check before opening did not see (not a cut): name the bag, no traceback
            raise ValueError(f"bag: {self.path} is damaged, reading stopped part-way: {exc}") from exc

    def messages(self, topics: list[str] | None = None) -> Iterator[tuple[BagRecord, Any]]:
        """(record, deserialized rosbags message) pairs in timestamp order."""
        for record in self.records(topics):
            yield record, self.deserialize(record)

    def deserialize(self, record: BagRecord) -> Any:
        return self._reader.deserialize(record.data, record.msgtype)


def stamp_ns(header: Any) -> int:
    """Integer nanoseconds of a message header's stamp."""
    return int(header.stamp.sec) * _NS_PER_S + int(header.stamp.nanosec)


def image_layout(msg: Any) -> tuple[np.dtype, int]:
    """(dtype in native byte order, channels) of a sensor_msgs/Image (rclpy's or rosbags'), after checking
    its size fields against its data; ValueError naming the field. Channels and dtype per encoding are
    rosbags-image's table."""
    from rosbags.image.image import ImageFormatError, to_cvtype  # imports cv2: only when reading images

    try:
        _, _, typestr, channels = to_cvtype(msg.encoding)
    except ImageFormatError as err:
        raise ValueError(f"Image.encoding {msg.encoding!r}: {err}") from err
    dtype, channels = np.dtype(typestr), int(channels)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0:
        raise ValueError(f"Image.height must be positive, got {height}")
    if width <= 0:
        raise ValueError(f"Image.width must be positive, got {width}")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(
            f"Image.step {step} is less than width*bytes_per_pixel = {row_bytes} for {msg.encoding}"
        )
    if len(msg.data) != height * step:
        raise ValueError(f"Image.data has {len(msg.data)} bytes, expected height*step = {height}*{step}")
    if msg.is_bigendian not in (0, 1, True, False):
        raise ValueError(f"Image.is_bigendian must be 0 or 1, got {msg.is_bigendian!r}")
    return dtype, channels


def image_pixels(msg: Any) -> np.ndarray:
    """Pixels of a sensor_msgs/Image as stored: H×W (one channel) or H×W×C in the encoding's dtype and
    channel order, native byte order, always a fresh array. The one raw-image decoder of the package
    (ros/conversions.py uses it too; it lives here because bags need no rclpy): a strided view skips the
    row padding (`step`), which rosbags-image's converter ignores and so shears padded images."""
    return decode_pixels(msg, *image_layout(msg))


def decode_pixels(msg: Any, dtype: np.dtype, channels: int) -> np.ndarray:
    """image_pixels for a message whose layout `image_layout` has already checked (the node's per-frame
    path checks once)."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<") if dtype.itemsize > 1 else dtype
    view = np.ndarray(
        shape=(height, width, channels),
        dtype=wire,
        buffer=memoryview(msg.data).cast("B"),
        strides=(step, channels * dtype.itemsize, dtype.itemsize),
    )
    out = view.astype(dtype, order="C", copy=True)
    return out[:, :, 0] if channels == 1 else out


# Channel picks that turn these encodings into RGB.
_TO_RGB = {"bgr8": [2, 1, 0], "rgba8": [0, 1, 2], "bgra8": [2, 1, 0]}


def image_from_message(msg: Any) -> np.ndarray:
    """Numpy image of a sensor_msgs/Image: mono8 as H×W, bgr8/rgba8/bgra8 as H×W×3 RGB, others (rgb8,
    32FC1, 16UC1 …) as stored (image_pixels). For depth in metres use depth_from_message."""
    pixels = image_pixels(msg)
    if msg.encoding in _TO_RGB:
        return np.ascontiguousarray(pixels[:, :, _TO_RGB[msg.encoding]])
    return pixels


# REP-118: 16-bit depth images hold millimetres (0 = no reading); float ones metres (NaN = no reading).
DEPTH_MM_ENCODINGS = ("16UC1", "mono16")
DEPTH_M_ENCODINGS = ("32FC1",)


def depth_from_message(msg: Any) -> np.ndarray:
    """H×W float32 metres along the optical axis of a depth sensor_msgs/Image, NaN where invalid: 32FC1 is
    metres (NaN, ±inf and values <= 0 become NaN), 16UC1/mono16 millimetres (0 becomes NaN), as REP-118
    defines them. ValueError for any other encoding."""
    if msg.encoding not in DEPTH_MM_ENCODINGS + DEPTH_M_ENCODINGS:
        raise ValueError(
            f"depth Image.encoding must be one of {DEPTH_M_ENCODINGS + DEPTH_MM_ENCODINGS}, got "
            f"{msg.encoding!r}"
        )
    pixels = image_pixels(msg)
    if msg.encoding in DEPTH_MM_ENCODINGS:
        depth = pixels.astype(np.float32) / np.float32(1000.0)
    else:
        depth = pixels.astype(np.float32, copy=False)
    depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth


def camera_from_info(msg: Any) -> PinholeCamera:
    """PinholeCamera from sensor_msgs/CameraInfo: P for rectified images when set, K otherwise."""
    p = np.asarray(msg.p, dtype=np.float64)
    if np.any(p[:3]):
        return PinholeCamera.from_projection(p, msg.width, msg.height)
    return PinholeCamera.from_K(msg.k, msg.width, msg.height)


def pose_from_message(pose: Any) -> np.ndarray:
    """4×4 float64 from a geometry_msgs/Pose."""
    q, p = pose.orientation, pose.position
    return pose_matrix([p.x, p.y, p.z], [q.x, q.y, q.z, q.w])
