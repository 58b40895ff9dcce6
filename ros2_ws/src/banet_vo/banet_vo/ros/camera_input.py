"""The image + camera_info input shared by our nodes, and the counters with throttled warnings behind it.

A node owns one `CameraInput`: it subscribes `image` and `camera_info` with the node's `image_qos` mode
(`auto` waits for a publisher and takes its reliability, as rosbag2 does), converts and validates each
message, pairs each image with a camera and hands a `CameraFrame` to the node's callback. With the
`image_transport` parameter `compressed` the image comes as sensor_msgs/CompressedImage on
`<image>/compressed`, image_transport's name for it (`image` resolved with its remapping first), and is
decoded here (JPEG, PNG). Unless `camera_info` is remapped itself, it is taken beside the image, as
image_transport's camera subscriber does (`image:=/cam/left/image_raw` reads `/cam/left/camera_info`).
Pairing:

- `latest` (the default): the latest valid camera_info; the one image that arrived before the first
  camera_info waits for it; the camera is rescaled when the image comes at another resolution of the same
  aspect;
- `exact`: the camera_info with the image's stamp, as message_filters' ExactTime policy does; images and
  camera_infos wait for their partner in queues of `sync_queue_size`, and what falls out is counted;
- a `fixed_camera` (intrinsics from parameters): no camera_info subscription at all.

Images outside the size limits are refused before decoding (a compressed image's size is read from its
header), and with `lock_frame_id` an image whose frame_id differs from the first one is refused until
`unlock_frame_id()`. Bad input is counted and warned about through the node's `EventCounters` (every
occurrence counted, logged at most once per period per kind), never raised.
"""

from __future__ import annotations

import collections
import math
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from banet_vo.data import compressed_image
from banet_vo.data.compressed_image import TRANSPORT as COMPRESSED
from banet_vo.data.compressed_image import TRANSPORTS
from banet_vo.geometry import PinholeCamera
from banet_vo.ros import topics
from banet_vo.ros.conversions import (
    camera_info_to_camera,
    compressed_image_size,
    compressed_to_model_input,
    image_to_model_input,
    stamp_to_ns,
    stamp_to_sec,
)
from banet_vo.ros.node_shell import steady_timer
from banet_vo.ros.parameters import ParameterSpec
from banet_vo.ros.qos import qos_from_name, resolve_auto_qos

WARN_PERIOD_S = 5.0
# Stamps above this (1973 as Unix time) are a clock's, not a bag's own count from 0.
CLOCK_TIME_S = 1e8
IMAGE_QOS_MODES = ("auto", "sensor_data", "reliable")
# Counter keys a CameraInput uses: every image callback, then one key per kind of rejected input.
RECEIVED = "received"
# Reader history of the input topics. It only has to bridge a stall of the executor thread (the GIL is
# shared with inference); with keep-last 5, a 0.25 s stall at 20 Hz silently lost frames under load.
# The node's own latest-frame queue still decides what gets processed.
INPUT_HISTORY_DEPTH = 30
BAD_IMAGE = "bad_image"
BAD_CAMERA_INFO = "bad_camera_info"
NO_CAMERA_INFO = "no_camera_info"
SIZE_MISMATCH = "size_mismatch"
IMAGES_STOPPED = "images_stopped"  # /diagnostics: 1 while a camera that sent images sends none
INPUT_PROBLEMS = (BAD_IMAGE, BAD_CAMERA_INFO, NO_CAMERA_INFO, SIZE_MISMATCH)
FRAME_ID_CHANGED = "frame_id_changed"
LOST_IN_TRANSPORT = "lost_in_transport"  # reported by the middleware (message_lost event), never seen here
# Publishers the middleware matched with an incompatible QoS (reliable wanted, best effort offered): nothing
# they send arrives.
INCOMPATIBLE_QOS = "incompatible_qos"
# Images byte for byte equal to the image before them. A real sensor's noise makes every frame differ, so a
# run of them is a frozen driver or a covered lens (or a noise-free simulated camera standing still): once
# a run spans REPEAT_WARN_S, /diagnostics WARNs until an image differs.
REPEATED_IMAGE = "repeated_image"
REPEAT_WARN_S = 2.0
# The camera input's counters that make a node's /diagnostics WARN (while they grew within its window).
STREAM_PROBLEMS = (*INPUT_PROBLEMS, FRAME_ID_CHANGED, LOST_IN_TRANSPORT, INCOMPATIBLE_QOS)
SYNC_MODES = ("latest", "exact")
ASPECT_TOLERANCE = 0.01  # relative aspect difference up to which an image is the same camera resized


def image_qos_parameter(default: str = "auto") -> ParameterSpec:
    """The `image_qos` parameter every node with a CameraInput declares."""
    return ParameterSpec(
        "image_qos",
        default,
        "image/camera_info subscription reliability: auto matches the publishers (as rosbag2 does), "
        "sensor_data forces best effort, reliable forces reliable",
        choices=IMAGE_QOS_MODES,
    )


def image_transport_parameter() -> ParameterSpec:
    """The `image_transport` parameter every node with a CameraInput declares (the name ROS 2 image
    viewers and image_transport's own subscribers use)."""
    return ParameterSpec(
        "image_transport",
        "raw",
        "how the image topic is carried: raw (sensor_msgs/Image on `image`) or compressed (sensor_msgs/"
        "CompressedImage, JPEG or PNG, on `<image>/compressed`, as image_transport publishes it)",
        choices=TRANSPORTS,
    )


def rectify_parameter() -> ParameterSpec:
    """The `rectify` parameter every node with a CameraInput declares: what its camera_info means for the
    images (a CameraInput's `camera_from_info` is then conversions.camera_info_to_input with it), so that
    two nodes on one image stream use the same intrinsics."""
    return ParameterSpec(
        "rectify",
        True,
        "rectify raw images with the camera_info calibration (D, K, R to P; plumb_bob, rational_polynomial, "
        "equidistant); false when the input is already rectified (image_rect: P is used)",
    )


def max_value_16bit_parameter() -> ParameterSpec:
    """The `image_max_value_16bit` parameter every node with a CameraInput declares (its `max_value_16bit`):
    two nodes on one 16-bit stream read the same brightness."""
    return ParameterSpec(
        "image_max_value_16bit",
        65535,
        "the brightest value of a 16-bit image (mono16, 16UC1, 16-bit Bayer), mapped to 255: 4095 for a "
        "12-bit sensor packed in 16 bits, 1023 for a 10-bit one (one fixed rule, so brightness stays the "
        "same from frame to frame)",
        range=(255, 65535),
    )


def _type_name(msg_type: type) -> str:
    """The graph's name of a message type, e.g. "sensor_msgs/msg/Image"."""
    return f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"


class EventCounters:
    """Thread-safe counters of what a node saw; `warn` counts every occurrence of a kind of problem but
    logs it at most once per `period_s` (a broken stream must not flood the log)."""

    def __init__(
        self,
        log: Callable[[str], Any],
        period_s: float = WARN_PERIOD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (isinstance(period_s, int | float) and math.isfinite(period_s) and period_s >= 0):
            raise ValueError(f"period_s must be a finite number >= 0, got {period_s!r}")
        self._log = log
        self._period_s = float(period_s)
        self._clock = clock
        self._counts: collections.Counter[str] = collections.Counter()
        self._last_logged: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, key: str, n: int = 1) -> int:
        """Count `n` more of `key`; returns the new total."""
        with self._lock:
            self._counts[key] += n
            return self._counts[key]

    def warn(self, key: str, text: str) -> bool:
        """Count `key` and log `text [key: N so far]` unless `key` was logged less than period_s ago.
        Returns whether it logged."""
        with self._lock:
            self._counts[key] += 1
            now = self._clock()
            if now - self._last_logged.get(key, -math.inf) < self._period_s:
                return False
            self._last_logged[key] = now
            count = self._counts[key]
        self._log(f"{text} [{key}: {count} so far]")
        return True

    def get(self, key: str) -> int:
        with self._lock:
            return self._counts[key]

    def as_dict(self) -> dict[str, int]:
        """Every key counted so far (keys never counted are absent)."""
        with self._lock:
            return dict(self._counts)


@dataclass(frozen=True)
class CameraFrame:
    """One validated input image with the camera it was taken with."""

    header: Any  # std_msgs/Header of the image (outputs carry its stamp)
    stamp: float  # header stamp in seconds
    image: np.ndarray  # H×W or H×W×3 uint8 (image_to_model_input)
    camera: PinholeCamera  # intrinsics at the image's size (after rectification when calibration is set)
    received: float  # time.monotonic() when the image callback ran
    calibration: Any = None  # a geometry.rectify.CameraCalibration when the image still has to be rectified


@dataclass(frozen=True)
class _Image:
    """An image converted before its camera is known."""

    header: Any
    stamp: float
    image: np.ndarray
    received: float


def _content_digest(msg: Image | CompressedImage) -> tuple:
    """What tells one image's content from another's (CRC-32 of its bytes: ~0.6 ms for a KITTI frame)."""
    if isinstance(msg, CompressedImage):
        return (msg.format, zlib.crc32(msg.data))
    return (msg.width, msg.height, msg.encoding, msg.step, zlib.crc32(msg.data))


def camera_for_image(camera: PinholeCamera, width: int, height: int) -> PinholeCamera | None:
    """`camera` at width×height: itself, resized when the aspect agrees (binning, a resizing driver), or
    None when the image cannot come from this camera."""
    if (width, height) == camera.size:
        return camera
    aspect = camera.width / camera.height
    if abs(width / height - aspect) > ASPECT_TOLERANCE * aspect:
        return None
    return camera.resized(width, height)


class CameraInput:
    """Subscriptions, validation and pairing of a node's image and camera_info topics.

    `on_frame` is called (on the executor thread) with each valid image and its camera. Callbacks and the
    latest camera are also usable without subscriptions (`on_image`, `on_camera_info`, `camera`).
    """

    def __init__(
        self,
        node: Node,
        qos_mode: str,
        on_frame: Callable[[CameraFrame], Any],
        events: EventCounters,
        *,
        image_topic: str = topics.IMAGE,
        info_topic: str = topics.CAMERA_INFO,
        transport: str = "raw",
        retry_period_s: float = 0.2,
        sync: str = "latest",
        sync_queue_size: int = 10,
        camera_from_info: Callable[[CameraInfo], tuple[PinholeCamera, Any]] | None = None,
        fixed_camera: PinholeCamera | None = None,
        min_image_side: int = 1,
        max_image_pixels: int | None = None,
        max_value_16bit: int = 65535,
        lock_frame_id: bool = False,
    ) -> None:
        if qos_mode not in IMAGE_QOS_MODES:
            raise ValueError(f"qos_mode must be one of {IMAGE_QOS_MODES}, got {qos_mode!r}")
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {SYNC_MODES}, got {sync!r}")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
        if sync_queue_size < 1:
            raise ValueError(f"sync_queue_size must be >= 1, got {sync_queue_size}")
        self._sync = sync
        self._sync_queue_size = sync_queue_size
        # (camera, calibration) of a camera_info; the default keeps the pinhole of camera_info_to_camera
        self._camera_from_info = camera_from_info or (lambda msg: (camera_info_to_camera(msg), None))
        self._fixed_camera = fixed_camera
        self._min_side = min_image_side
        self._max_pixels = max_image_pixels
        self._max_value_16bit = max_value_16bit
        self._lock_frame_id = lock_frame_id
        self._frame_id: str | None = None
        self._last_stamp = 0.0  # of the last image taken (an unset stamp among clock times is refused)
        self._infos: collections.OrderedDict[int, tuple[PinholeCamera, Any]] = collections.OrderedDict()
        self._images: collections.OrderedDict[int, _Image] = collections.OrderedDict()
        self._calibration: Any = None
        self._node = node
        self._qos_mode = qos_mode
        self._on_frame = on_frame
        self.events = events
        self._compressed = transport == COMPRESSED
        # image_transport's topic for a transport: the base topic, remapped, then "/<transport>"; a remap that
        # already names the compressed topic is taken as meant.
        base = compressed_image.base_topic(node.resolve_topic_name(image_topic))
        self._image_topic = compressed_image.transport_topic(base) if self._compressed else image_topic
        self._image_type = CompressedImage if self._compressed else Image
        self._hinted = False
        self._rescaled_from: tuple[int, int] | None = None  # camera_info size last said to be rescaled
        self._digest: tuple | None = None  # of the last decoded image's content
        self._digest_since = 0.0  # time.monotonic() when an image with that content first arrived
        # (images equal to the one before, seconds spanned, time.monotonic() of the last of them)
        self._repeat: tuple[int, float, float] | None = None
        self._incompatible_qos: str | None = None  # why a publisher cannot reach the image subscription
        self._qos_warned = False
        remapped = node.resolve_topic_name(info_topic) != node.resolve_topic_name(
            info_topic, only_expand=True
        )
        # Beside the camera's base topic, also when a raw input was remapped onto a compressed one.
        self._info_topic = (
            topics.camera_info_beside(base)
            if info_topic == topics.CAMERA_INFO and not remapped
            else info_topic
        )
        self._lock = threading.Lock()
        self._camera: PinholeCamera | None = None
        self._pending: _Image | None = None  # newest image received before any valid camera_info
        # Frames are handed on in the order their pairing was decided (under self._lock), though the image
        # and the camera_info callbacks run on two threads and each hands on outside the lock: without
        # this, a camera_info releasing an older image could lose the race to a newer image's callback,
        # and the odometry would skip the older frame as reordered.
        self._turns = threading.Condition()
        self._next_ticket = 0  # taken under self._lock with each decision to hand a frame on
        self._serving = 0  # the ticket whose frame is handed on next
        self.image_sub = None
        self.info_sub = None
        # One group per input: in the node's shared group every camera_info waits for the image callback
        # (decoding) in progress, and multi-threaded executors can starve one callback of a shared group
        # (rclcpp#2645). Each group still takes its own messages in order; shared state is under self._lock.
        self._groups = {Image: MutuallyExclusiveCallbackGroup(), CameraInfo: MutuallyExclusiveCallbackGroup()}
        self._subscribe_timer = steady_timer(node, retry_period_s, self._try_subscribe)
        self._try_subscribe()

    @property
    def image_topic(self) -> str:
        """The image topic subscribed, resolved (remaps, namespace, the transport's suffix)."""
        return self._node.resolve_topic_name(self._image_topic)

    @property
    def info_topic(self) -> str | None:
        """The camera_info topic subscribed, resolved; None with a camera from parameters."""
        return self._node.resolve_topic_name(self._info_topic) if self.needs_camera_info else None

    @property
    def camera(self) -> PinholeCamera | None:
        """The camera of the latest valid camera_info (None before the first)."""
        with self._lock:
            return self._camera

    @property
    def needs_camera_info(self) -> bool:
        return self._fixed_camera is None

    @property
    def subscribed(self) -> bool:
        return self.image_sub is not None and (self.info_sub is not None or not self.needs_camera_info)

    @property
    def has_camera(self) -> bool:
        """Whether a camera is known (fixed, or at least one valid camera_info arrived)."""
        with self._lock:
            return self._fixed_camera is not None or self._camera is not None or bool(self._infos)

    def close(self) -> None:
        """Destroy the subscriptions (and the retry timer); images that wait for a partner are dropped."""
        self._subscribe_timer.cancel()
        self._node.destroy_timer(self._subscribe_timer)
        for sub in (self.image_sub, self.info_sub):
            if sub is not None:
                self._node.destroy_subscription(sub)
        self.image_sub = self.info_sub = None
        with self._lock:
            self._images.clear()
            self._pending = None

    def waiting(self) -> int:
        """Images held for their camera_info (exact sync, or the one before the first camera_info)."""
        with self._lock:
            return len(self._images) + (self._pending is not None)

    def wait_paired(self, timeout: float = 10.0) -> bool:
        """Wait until no image waits for its camera_info (True), or timeout (False). For replays: the last
        image can be taken from the reader before its camera_info."""
        deadline = time.monotonic() + timeout
        while self.waiting():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def unlock_frame_id(self) -> None:
        """Accept the frame_id of the next image as the camera's, and its stamp whatever the last was (after
        a reset: another camera, or a bag whose stamps start at 0)."""
        with self._lock:
            self._frame_id = None
            self._last_stamp = 0.0

    def transport_hint(self) -> str | None:
        """Why no image can arrive, when the graph shows it: the image topic carries another message type,
        nothing is on it but the other transport's topic has a publisher, or the middleware matched a
        publisher whose QoS this subscription cannot take. None when nothing is wrong that the graph can
        tell. Logged once as a warning the first time it is found."""
        node = self._node
        topic = node.resolve_topic_name(self._image_topic)
        wanted = _type_name(self._image_type)
        fix = "image_transport:=raw" if self._compressed else f"image_transport:={COMPRESSED}"
        types = {info.topic_type for info in node.get_publishers_info_by_topic(topic)}
        hint = None
        if types and wanted not in types:
            hint = f"{topic} carries {', '.join(sorted(types))}, not {wanted}: set {fix}"
        elif not types:
            base = compressed_image.base_topic(topic)
            other = base if self._compressed else compressed_image.transport_topic(topic)
            other_type = _type_name(Image if self._compressed else CompressedImage)
            if any(info.topic_type == other_type for info in node.get_publishers_info_by_topic(other)):
                hint = f"nothing is published on {topic}, but {other} has {other_type}: set {fix}"
            else:
                elsewhere = self._image_topics_elsewhere(wanted)
                if elsewhere:
                    hint = (
                        f"nothing is published on {topic}; {wanted} is on {', '.join(elsewhere)}: remap the "
                        f"input (-r image:={elsewhere[0]}, or vo.launch.py image:={elsewhere[0]})"
                    )
        if hint is None and self._incompatible_qos is not None:
            return self._incompatible_qos  # warned once already, where the middleware reported it
        if hint is not None and not self._hinted:
            self._hinted = True
            node.get_logger().warning(hint)
        return hint

    def _image_topics_elsewhere(self, wanted: str, most: int = 3) -> list[str]:
        """Topics of the graph with a publisher of `wanted` other than this node (its own depth image), for a
        node that hears nothing on its image topic: most often a missing remap."""
        node = self._node
        found = []
        for name, types in node.get_topic_names_and_types():
            if wanted not in types:
                continue
            others = [
                info
                for info in node.get_publishers_info_by_topic(name)
                if (info.node_name, info.node_namespace) != (node.get_name(), node.get_namespace())
            ]
            if others:
                found.append(name)
        return sorted(found)[:most]

    def waiting_text(self, text: str) -> str:
        """A node's state `text`, followed by the transport hint in brackets while no image has arrived and
        the graph shows why (both nodes' /diagnostics use it)."""
        hint = self.transport_hint() if self.events.get(RECEIVED) == 0 else None
        return text + (f" ({hint})" if hint else "")

    def standing_problems(self, recent: Mapping[str, float] | None = None) -> list[str]:
        """Keys that make /diagnostics WARN however long ago they grew: `incompatible_qos` while no image
        has arrived (the middleware reports a publisher once, and nothing it sends will ever arrive),
        `repeated_image` while the images have repeated one content for at least REPEAT_WARN_S, and, given
        the node's `recent` counter increases, IMAGES_STOPPED while a camera that sent images has sent none
        over that window (a stopped camera is a fault to a robot's diagnostic aggregator, not OK; the node
        sets its value to 1)."""
        problems = []
        if self._incompatible_qos is not None and self.events.get(RECEIVED) == 0:
            problems.append(INCOMPATIBLE_QOS)
        if self._repeating() is not None:
            problems.append(REPEATED_IMAGE)
        if recent is not None and self.events.get(RECEIVED) and not recent.get(f"recent_{RECEIVED}"):
            problems.append(IMAGES_STOPPED)
        return problems

    def _repeating(self) -> tuple[int, float] | None:
        """(identical images, seconds) of the current run of images equal to the one before them, once it
        spans at least REPEAT_WARN_S; None otherwise, and once no repeat has come for REPEAT_WARN_S (the
        camera stopped: the input's other states say so)."""
        run = self._repeat  # one read: the image callback replaces it on its own thread
        if run is None or run[1] < REPEAT_WARN_S or time.monotonic() - run[2] > REPEAT_WARN_S:
            return None
        return run[0] + 1, run[1]

    def input_state(
        self, state: str, recent: Mapping[str, float] | None, used_key: str, window_s: float
    ) -> str:
        """What a node's /diagnostics says: its own `state` unless the input explains more. `recent`: the
        node's counter increases over its last `window_s` seconds (`recent_<counter>`, CounterWindow),
        `used_key` the counter of frames it took in (processed, adapted on)."""
        if self.events.get(RECEIVED) == 0:
            return self.waiting_text("waiting for images")
        if self.needs_camera_info and not self.has_camera:
            return "waiting for camera_info (images arrive, no valid camera_info yet)"
        repeating = self._repeating()
        if repeating is not None and (not recent or recent.get(f"recent_{RECEIVED}")):
            images, seconds = repeating
            return (
                f"the camera repeats one image ({images} identical images over {seconds:.1f} s): a frozen "
                f"driver or a covered lens? (a noise-free simulated camera standing still repeats too; "
                f"before: {state})"
            )
        if not recent:
            return state
        if recent.get(f"recent_{RECEIVED}") and not recent.get(f"recent_{used_key}"):
            # the last state would go on saying e.g. "tracking" while every image is dropped
            if recent.get(f"recent_{NO_CAMERA_INFO}"):
                return "waiting for camera_info (images arrive without one of their stamp: has it stopped?)"
            unusable = [k for k in INPUT_PROBLEMS if recent.get(f"recent_{k}")]
            if unusable:
                return f"images arrive, none usable in the last {window_s:g} s ({', '.join(unusable)})"
        if not recent.get(f"recent_{RECEIVED}"):
            return f"no image in the last {window_s:g} s: has the camera stopped? (before: {state})"
        return state

    def wait_for_publishers(self, timeout: float = 10.0, min_count: int = 1) -> bool:
        """Wait until both subscriptions have matched `min_count` publishers; False on timeout.

        A publisher that sees our subscription is not enough: with volatile durability our reader drops
        what a writer sends before the reader has matched it, so a replay must also wait on this side.
        """
        deadline = time.monotonic() + timeout
        while not (
            self.subscribed
            and self.image_sub.get_publisher_count() >= min_count
            and (self.info_sub is None or self.info_sub.get_publisher_count() >= min_count)
        ):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def wait_received(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until `count` images have reached the image callback (True), or timeout (False).

        For replays: a publisher returning from its last publish does not mean the message has been taken
        from the reader yet, so "the worker is idle" alone can be checked too early.
        """
        deadline = time.monotonic() + timeout
        while self.events.get(RECEIVED) < count:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    # -- subscriptions -------------------------------------------------------------------------------
    def _subscription_qos(self, topic: str, latched: bool = False) -> QoSProfile | None:
        """The QoS for `topic`, or None while `auto` still waits for a publisher to match (`latched`:
        transient-local when every publisher offers it: resolve_auto_qos)."""
        if self._qos_mode == "sensor_data":
            return qos_from_name("sensor", depth=INPUT_HISTORY_DEPTH)
        if self._qos_mode == "reliable":
            return qos_from_name("reliable", depth=INPUT_HISTORY_DEPTH)
        resolved = self._node.resolve_topic_name(topic)
        if not self._node.get_publishers_info_by_topic(resolved):
            return None
        return resolve_auto_qos(self._node, resolved, depth=INPUT_HISTORY_DEPTH, latched=latched)

    def _subscribe(self, msg_type: type, topic: str, callback: Callable[[Any], None]) -> Any | None:
        # A driver or a bag may latch camera_info (published once): auto then subscribes transient-local.
        qos = self._subscription_qos(topic, latched=msg_type is CameraInfo)
        if qos is None:
            return None
        # Messages the middleware knows it lost (best effort gaps) are counted, not silently missing.
        events = SubscriptionEventCallbacks(
            message_lost=self._on_message_lost,
            incompatible_qos=lambda info: self._on_incompatible_qos(info, topic, qos),
        )
        group = self._groups[CameraInfo if msg_type is CameraInfo else Image]
        sub = self._node.create_subscription(
            msg_type,
            topic,
            callback,
            qos,
            event_callbacks=events,
            callback_group=group,
            qos_overriding_options=self._overriding_options(topic),
        )
        self._node.get_logger().info(f"subscribed to {sub.topic_name} ({qos.reliability.name})")
        return sub

    def _overriding_options(self, topic: str) -> QoSOverridingOptions | None:
        """ROS 2's QoS overriding for `topic` where the node was given qos_overrides.<topic>.subscription.*
        (they then beat image_qos); None otherwise. Not always on: rclpy declares those parameters with the
        first QoS it sees and applies them to every later subscription, so a lifecycle node re-activated
        under auto would keep its first QoS."""
        prefix = f"qos_overrides.{self._node.resolve_topic_name(topic)}.subscription."
        given = getattr(self._node, "_parameter_overrides", {})  # as PARAMS.check_no_unknown reads them
        if any(name.startswith(prefix) for name in given):
            return QoSOverridingOptions.with_default_policies()
        return None

    def _try_subscribe(self) -> None:
        """Create the subscriptions once their QoS is known (auto waits for a publisher, as rosbag2 does:
        subscribing reliable before a best-effort publisher appears would never connect)."""
        if self.image_sub is None:
            self.image_sub = self._subscribe(self._image_type, self._image_topic, self.on_image)
        if self.info_sub is None and self.needs_camera_info:
            self.info_sub = self._subscribe(CameraInfo, self._info_topic, self.on_camera_info)
        if self.subscribed:
            self._subscribe_timer.cancel()

    # -- callbacks -----------------------------------------------------------------------------------
    def _on_message_lost(self, info: Any) -> None:
        self.events.add(LOST_IN_TRANSPORT, int(info.total_count_change))

    def _on_incompatible_qos(self, info: Any, topic: str, qos: QoSProfile) -> None:
        """A publisher whose QoS cannot serve this subscription: counted, and said once (it replaces
        rclpy's own warning) with the parameter that fixes it."""
        self.events.add(INCOMPATIBLE_QOS, int(info.total_count_change))
        policy = getattr(info.last_policy_kind, "name", str(info.last_policy_kind)).lower()
        policy = policy.removeprefix("rmw_qos_policy_")  # rmw's enum name: "rmw_qos_policy_reliability"
        fix = "" if self._qos_mode == "auto" else "; set image_qos:=auto"
        self._incompatible_qos = (
            f"a publisher on {self._node.resolve_topic_name(topic)} offers a QoS this subscription "
            f"({qos.reliability.name.lower()}) cannot take ({policy}): nothing it sends arrives{fix}"
        )
        if not self._qos_warned:
            self._qos_warned = True
            self._node.get_logger().warning(self._incompatible_qos)

    def on_camera_info(self, msg: CameraInfo) -> None:
        try:
            camera, calibration = self._camera_from_info(msg)
            ns = stamp_to_ns(msg.header.stamp)
        except ValueError as err:
            self.events.warn(BAD_CAMERA_INFO, f"camera_info ignored: {err}")
            return
        if self._sync == "exact":
            with self._lock:
                self._infos[ns] = (camera, calibration)
                while len(self._infos) > self._sync_queue_size:
                    self._infos.popitem(last=False)  # an unused camera_info costs nothing: not counted
                partner = self._images.pop(ns, None)
                ticket = self._ticket() if partner is not None else None
            if partner is not None:
                self._deliver_in_turn(ticket, partner, camera, calibration)
            return
        with self._lock:
            self._camera, self._calibration = camera, calibration
            pending, self._pending = self._pending, None
            ticket = self._ticket() if pending is not None else None
        if pending is not None:  # the image that arrived just before the first camera_info
            self._deliver_in_turn(ticket, pending, camera, calibration)

    def _refuse_size(self, msg: Image | CompressedImage) -> str | None:
        if self._compressed:
            try:
                width, height = compressed_image_size(msg)
            except ValueError as err:
                return f"image dropped: {err}"
        else:
            width, height = int(msg.width), int(msg.height)
        if min(width, height) < self._min_side:
            return f"image dropped: {width}x{height} is below the minimum side of {self._min_side} px"
        if self._max_pixels is not None and width * height > self._max_pixels:
            return f"image dropped: {width}x{height} has more than the {self._max_pixels} pixels allowed"
        return None

    def _refuse_frame_id(self, frame_id: str) -> str | None:
        if not self._lock_frame_id:
            return None
        with self._lock:
            if self._frame_id is None:
                self._frame_id = frame_id
                return None
            locked = self._frame_id
        if frame_id == locked:
            return None
        return (
            f"image dropped: frame_id {frame_id!r} differs from {locked!r} of the images so far "
            "(call ~/reset to start a trajectory with the new camera)"
        )

    def on_image(self, msg: Image | CompressedImage) -> None:
        received = time.monotonic()
        self.events.add(RECEIVED)
        refused = self._refuse_size(msg)
        if refused is not None:  # before decoding: a burst of huge frames must not be copied around
            self.events.warn(BAD_IMAGE, refused)
            return
        refused = self._refuse_frame_id(msg.header.frame_id)
        if refused is not None:
            self.events.warn(FRAME_ID_CHANGED, refused)
            return
        try:
            stamp = stamp_to_sec(msg.header.stamp)
            if stamp == 0.0 and self._last_stamp > CLOCK_TIME_S:
                # A header left unset among clock-time stamps, not a bag played again from its start
                # (which goes back to its own first stamp): taken as a jump back, it reset the trajectory.
                raise ValueError("its header stamp is 0 (unset) among clock-time stamps")
            decode = compressed_to_model_input if self._compressed else image_to_model_input
            image = decode(msg, self._max_value_16bit)
        except ValueError as err:
            self.events.warn(BAD_IMAGE, f"image dropped: {err}")
            return
        self._last_stamp = stamp
        self._note_repeat(_content_digest(msg), received)
        item = _Image(msg.header, stamp, image, received)
        if self._fixed_camera is not None:
            self._deliver(item, self._fixed_camera, None)
            return
        if self._sync == "exact":
            self._pair_exact(item, stamp_to_ns(msg.header.stamp))
            return
        with self._lock:  # check and park in one step: a camera_info in between must release this image
            camera, calibration = self._camera, self._calibration
            replaced = ticket = None
            if camera is None:
                replaced, self._pending = self._pending, item
            else:
                ticket = self._ticket()
        if camera is None:
            # Image and camera_info are separate topics: the first image can beat the first camera_info.
            # Keep the newest one until a camera_info comes; older ones are dropped and counted.
            if replaced is not None:
                self.events.warn(NO_CAMERA_INFO, "image dropped: no valid camera_info received yet")
            return
        self._deliver_in_turn(ticket, item, camera, calibration)

    def _note_repeat(self, digest: tuple, received: float) -> None:
        """Count an image whose content equals the previous image's, and time the run it extends."""
        if digest != self._digest:
            self._digest, self._digest_since, self._repeat = digest, received, None
            return
        repeats = self._repeat[0] + 1 if self._repeat is not None else 1
        seconds = received - self._digest_since
        self._repeat = (repeats, seconds, received)
        if seconds < REPEAT_WARN_S:
            self.events.add(REPEATED_IMAGE)
            return
        self.events.warn(
            REPEATED_IMAGE,
            f"the camera has sent the same image {repeats + 1} times over {seconds:.1f} s: a frozen driver "
            "or a covered lens?",
        )

    def _pair_exact(self, item: _Image, ns: int) -> None:
        with self._lock:
            partner = self._infos.get(ns)
            dropped = []
            if partner is None:
                self._images[ns] = item
                while len(self._images) > self._sync_queue_size:
                    dropped.append(self._images.popitem(last=False)[1])
            ticket = self._ticket() if partner is not None else None
            newest_info = max(self._infos, default=None)  # by stamp
        for old in dropped:
            if newest_info is None:
                why = "no valid camera_info received yet"
            else:
                away = newest_info / 1e9 - old.stamp
                why = f"no camera_info with its stamp (the newest camera_info is {away:+.3f} s from it)"
            self.events.warn(NO_CAMERA_INFO, f"image at {old.stamp:.6f} s dropped: {why}")
        if partner is not None:
            self._deliver_in_turn(ticket, item, *partner)

    def _ticket(self) -> int:
        """The next place in the hand-on order; call with self._lock held, with the decision it orders."""
        ticket = self._next_ticket
        self._next_ticket += 1
        return ticket

    def _deliver_in_turn(self, ticket: int, item: _Image, camera: PinholeCamera, calibration: Any = None):
        """_deliver once every frame decided before this one has been handed on (or dropped there)."""
        with self._turns:
            self._turns.wait_for(lambda: self._serving == ticket)
        try:
            self._deliver(item, camera, calibration)
        finally:
            with self._turns:
                self._serving += 1
                self._turns.notify_all()

    def _deliver(self, item: _Image, camera: PinholeCamera, calibration: Any = None) -> None:
        height, width = item.image.shape[:2]
        if calibration is not None:  # a raw image is rectified at its calibrated size, never rescaled
            if (width, height) != (calibration.width, calibration.height):
                self.events.warn(
                    SIZE_MISMATCH,
                    f"image dropped: {width}x{height} does not match camera_info "
                    f"{calibration.width}x{calibration.height}",
                )
                return
            self._on_frame(
                CameraFrame(item.header, item.stamp, item.image, camera, item.received, calibration)
            )
            return
        matched = camera_for_image(camera, width, height)
        if matched is None:
            self.events.warn(
                SIZE_MISMATCH,
                f"image dropped: {width}x{height} does not match camera_info {camera.width}x{camera.height}",
            )
            return
        if matched is not camera and self._rescaled_from != camera.size:
            # documented (a binning or resizing driver), but said once: a wrong camera_info looks the same
            self._rescaled_from = camera.size
            self._node.get_logger().info(
                f"images are {width}x{height}, camera_info {camera.width}x{camera.height} (same aspect): its "
                "intrinsics are scaled to the images"
            )
        self._on_frame(CameraFrame(item.header, item.stamp, item.image, matched, item.received))
