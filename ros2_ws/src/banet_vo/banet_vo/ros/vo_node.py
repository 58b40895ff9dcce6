"""The banet_vo ROS 2 node: a thin shell around banet_vo.odometry (ROS interface: DESIGN.md, docs/node.md).

Callbacks only validate and convert: an image (with the latest camera_info) goes into a bounded
latest-frame queue, and one worker thread runs the odometry and publishes. A slow model therefore drops
frames (counted, in /diagnostics) and never stalls the executor or grows memory. Outputs carry the input
image's stamp. Bad input is counted and warned about (throttled), never fatal; bad parameters or an
unusable model stop the node at start.
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
import rclpy.executors
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, TransformStamped
from nav_msgs.msg import Odometry, Path
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from banet_vo.geometry import PinholeCamera
from banet_vo.odometry import (
    FAILED,
    OUT_OF_ORDER,
    TRACKED,
    BANetEstimator,
    FrameResult,
    PairEstimator,
    VisualOdometry,
)
from banet_vo.ros.conversions import (
    camera_info_to_camera,
    depth_messages,
    image_to_model_input,
    odometry_msg,
    rotation_to_quaternion,
    stamp_to_sec,
)
from banet_vo.ros.params import NodeParams, declare_parameters
from banet_vo.ros.qos import latched_qos, qos_from_name, reliable_qos, resolve_auto_qos

logger = logging.getLogger(__name__)

NODE_NAME = "banet_vo"
WARN_PERIOD_S = 5.0


@dataclass
class _Input:
    header: Any  # std_msgs/Header of the image
    image: np.ndarray
    camera: PinholeCamera | None  # set when it is queued
    received: float  # time.monotonic() at the callback


class LatestFrameQueue:
    """Bounded FIFO that drops the oldest item when full (a camera wants the newest frames)."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._items: collections.deque = collections.deque()
        self._maxsize = maxsize
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Any) -> int:
        """Add an item; returns how many old items were dropped to make room."""
        with self._cond:
            dropped = 0
            while len(self._items) >= self._maxsize:
                self._items.popleft()
                dropped += 1
            self._items.append(item)
            self._cond.notify()
            return dropped

    def get(self, timeout: float | None = None) -> Any | None:
        """The oldest item, or None on timeout or when closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                return None
            return self._items.popleft() if self._items else None

    def clear(self) -> int:
        with self._cond:
            n = len(self._items)
            self._items.clear()
            return n

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class _TfOutput:
    """/tf and /tf_static through tf2_ros when importable, else plain tf2_msgs publishers, else nothing."""

    def __init__(self, node: Node) -> None:
        self.backend = "none"
        self._dynamic = self._static = None
        try:
            import tf2_ros

            self._dynamic = tf2_ros.TransformBroadcaster(node)
            self._static = tf2_ros.StaticTransformBroadcaster(node)
            self.backend = "tf2_ros"
            return
        except ImportError:
            pass
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            node.get_logger().warning(
                "tf2_ros and tf2_msgs are not importable: /tf and /tf_static are not published "
                "(install ros-tf2-msgs, or use a ROS 2 distro); odometry and path are unaffected"
            )
            return
        self._message = TFMessage
        self._pub = node.create_publisher(TFMessage, "/tf", QoSProfile(depth=100))
        self._static_pub = node.create_publisher(TFMessage, "/tf_static", latched_qos())
        self._static_sent: dict[str, TransformStamped] = {}
        self.backend = "tf2_msgs"

    @property
    def available(self) -> bool:
        return self.backend != "none"

    def send(self, transform: TransformStamped) -> None:
        if self.backend == "tf2_ros":
            self._dynamic.sendTransform(transform)
        elif self.backend == "tf2_msgs":
            self._pub.publish(self._message(transforms=[transform]))

    def send_static(self, transform: TransformStamped) -> None:
        if self.backend == "tf2_ros":
            self._static.sendTransform(transform)
        elif self.backend == "tf2_msgs":
            self._static_sent[transform.child_frame_id] = transform
            self._static_pub.publish(self._message(transforms=list(self._static_sent.values())))


def _transform(header: Any, child: str, T: np.ndarray) -> TransformStamped:
    msg = TransformStamped()
    msg.header = header
    msg.child_frame_id = child
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = (
        float(v) for v in T[:3, 3]
    )
    q = rotation_to_quaternion(T[:3, :3])
    r = msg.transform.rotation
    r.x, r.y, r.z, r.w = (float(v) for v in q)
    return msg


class VONode(Node):
    """banet_vo node. `estimator` may be given programmatically (tests, banet-vo-run); otherwise the
    `model` parameter is loaded. Raises ValueError at construction for bad parameters or model."""

    def __init__(self, *, estimator: PairEstimator | None = None, **node_kwargs: Any) -> None:
        super().__init__(node_kwargs.pop("node_name", NODE_NAME), **node_kwargs)
        try:
            self.params: NodeParams = declare_parameters(self)
            if estimator is None:
                estimator = self._load_estimator(self.params)
        except BaseException:
            super().destroy_node()  # nothing else was created yet
            raise
        p = self.params
        self.estimator = estimator
        self.vo = VisualOdometry(estimator, p.odometry)
        self.counters: collections.Counter[str] = collections.Counter()
        self._latency: collections.deque[float] = collections.deque(maxlen=200)
        self._processed_stamps: collections.deque[float] = collections.deque(maxlen=200)
        self._last_warn: dict[str, float] = {}
        self._lock = threading.Lock()
        self._camera: PinholeCamera | None = None
        self._pending: _Input | None = None  # newest image received before any valid camera_info
        self._reset_requested = threading.Event()
        self._busy = threading.Event()
        self._state = "waiting for images"
        self._trajectory_id = None
        self._path = Path()
        self._path.header.frame_id = p.odom_frame
        self._tracked_since_depth = 0
        self._static_sent_for: str | None = None

        self.odom_pub = self.create_publisher(Odometry, "~/odometry", reliable_qos(depth=10))
        self.path_pub = self.create_publisher(Path, "~/path", reliable_qos(depth=1))
        self.depth_pub = self.create_publisher(Image, "~/depth", reliable_qos(depth=2))
        self.depth_info_pub = self.create_publisher(CameraInfo, "~/depth/camera_info", reliable_qos(depth=2))
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", reliable_qos(depth=10))
        self.reset_srv = self.create_service(Trigger, "~/reset", self._on_reset)
        self.tf = _TfOutput(self) if (p.publish_tf or p.publish_static_tf) else None

        self.image_sub = None
        self.info_sub = None
        self._subscribe_timer = self.create_timer(0.2, self._try_subscribe)
        self._try_subscribe()
        self._diag_timer = self.create_timer(p.diagnostics_period, self._publish_diagnostics)

        self._queue = LatestFrameQueue(p.queue_size)
        self._running = True
        self._worker = threading.Thread(target=self._work, name="banet_vo_inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: model {p.model}, input {estimator.input_size[0]}x{estimator.input_size[1]}, "
            f"image QoS {p.image_qos}, tf {self.tf.backend if self.tf else 'off'}"
        )

    # -- start-up ------------------------------------------------------------------------------------
    def _load_estimator(self, p: NodeParams) -> PairEstimator:
        if p.torch_threads > 0:
            import torch

            torch.set_num_threads(p.torch_threads)
        try:
            return BANetEstimator.from_checkpoint(p.model, device=p.device)
        except ValueError as err:
            raise ValueError(f"parameter model: cannot use {p.model}: {err}") from err
        except (OSError, RuntimeError, KeyError) as err:  # unreadable file, torch refusing the weights
            raise ValueError(f"parameter model: cannot load {p.model}: {type(err).__name__}: {err}") from err

    def _subscription_qos(self, topic: str) -> QoSProfile | None:
        """The QoS for `topic`, or None while `auto` still waits for a publisher to match."""
        mode = self.params.image_qos
        if mode == "sensor_data":
            return qos_from_name("sensor")
        if mode == "reliable":
            return qos_from_name("reliable")
        resolved = self.resolve_topic_name(topic)
        if not self.get_publishers_info_by_topic(resolved):
            return None
        return resolve_auto_qos(self, resolved, depth=5)

    def _try_subscribe(self) -> None:
        """Create the input subscriptions once their QoS is known (auto waits for a publisher, as rosbag2
        does: subscribing reliable before a best-effort publisher appears would never connect)."""
        if self.image_sub is None and (qos := self._subscription_qos("image")) is not None:
            self.image_sub = self.create_subscription(Image, "image", self._on_image, qos)
            self.get_logger().info(f"subscribed to {self.image_sub.topic_name} ({qos.reliability.name})")
        if self.info_sub is None and (qos := self._subscription_qos("camera_info")) is not None:
            self.info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos)
            self.get_logger().info(f"subscribed to {self.info_sub.topic_name} ({qos.reliability.name})")
        if self.image_sub is not None and self.info_sub is not None:
            self._subscribe_timer.cancel()

    # -- callbacks (executor thread) -----------------------------------------------------------------
    def _warn(self, key: str, text: str) -> None:
        """Count `key` and log at most once per WARN_PERIOD_S per key."""
        with self._lock:
            self.counters[key] += 1
            now = time.monotonic()
            if now - self._last_warn.get(key, -np.inf) < WARN_PERIOD_S:
                return
            self._last_warn[key] = now
            count = self.counters[key]
        self.get_logger().warning(f"{text} [{key}: {count} so far]")

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            camera = camera_info_to_camera(msg)
        except ValueError as err:
            self._warn("bad_camera_info", f"camera_info ignored: {err}")
            return
        with self._lock:
            self._camera = camera
            pending, self._pending = self._pending, None
        if pending is not None:  # the image that arrived just before the first camera_info
            self._enqueue(pending, camera)

    def _on_image(self, msg: Image) -> None:
        received = time.monotonic()
        with self._lock:
            self.counters["received"] += 1
            camera = self._camera
        try:
            stamp_to_sec(msg.header.stamp)
            image = image_to_model_input(msg)
        except ValueError as err:
            self._warn("bad_image", f"image dropped: {err}")
            return
        item = _Input(msg.header, image, None, received)
        if camera is None:
            # Image and camera_info are separate topics: the first image can beat the first camera_info.
            # Keep the newest one until a camera_info comes; older ones are dropped and counted.
            with self._lock:
                replaced, self._pending = self._pending, item
            if replaced is not None:
                self._warn("no_camera_info", "image dropped: no valid camera_info received yet")
            return
        self._enqueue(item, camera)

    def _enqueue(self, item: _Input, camera: PinholeCamera) -> None:
        height, width = item.image.shape[:2]
        if (width, height) != camera.size:
            # Same camera at another resolution (binning, a resizing driver): rescale when the aspect agrees.
            if abs(width / height - camera.width / camera.height) > 0.01 * camera.width / camera.height:
                self._warn(
                    "size_mismatch",
                    f"image dropped: {width}x{height} does not match camera_info "
                    f"{camera.width}x{camera.height}",
                )
                return
            camera = camera.resized(width, height)
        item.camera = camera
        dropped = self._queue.put(item)
        if dropped:
            with self._lock:
                self.counters["dropped"] += dropped

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._reset_requested.set()
        cleared = self._queue.clear()
        response.success = True
        response.message = f"trajectory reset requested ({cleared} queued frames discarded)"
        self.get_logger().info(response.message)
        return response

    # -- inference thread ----------------------------------------------------------------------------
    def _work(self) -> None:
        while self._running:
            item = self._queue.get(timeout=0.1)
            if item is None:
                continue
            self._busy.set()
            try:
                self._process(item)
            except ValueError as err:
                self._warn("bad_image", f"frame dropped: {err}")
            except Exception as err:  # keep serving; logged with its traceback and counted
                self._warn("errors", f"frame dropped by an unexpected error: {type(err).__name__}: {err}")
                logger.exception("unexpected error while processing a frame")
            finally:
                self._busy.clear()

    def _process(self, item: _Input) -> None:
        if self._reset_requested.is_set():
            self._reset_requested.clear()
            self.vo.reset(reason="~/reset service")
        result = self.vo.process(item.image, stamp_to_sec(item.header.stamp), item.camera)
        with self._lock:
            self.counters["processed"] += 1
            self._processed_stamps.append(time.monotonic())
        if result.status == OUT_OF_ORDER:
            self._warn("out_of_order", f"frame skipped: {result.message}")
            return
        if result.status == FAILED:
            self._warn("failed", f"frame skipped: {result.message}")
            self._state = "tracking (frames failing)"
            return
        self._state = "tracking" if result.status == TRACKED else "initialised"
        self._publish(item, result)
        with self._lock:
            self._latency.append(time.monotonic() - item.received)

    def _publish(self, item: _Input, result: FrameResult) -> None:
        p = self.params
        header = item.header
        odom_header = type(header)(stamp=header.stamp, frame_id=p.odom_frame)
        odom = odometry_msg(
            odom_header, p.base_frame, result.T_odom_base, result.pose_covariance, result.twist
        )
        self.odom_pub.publish(odom)

        if result.trajectory_id != self._trajectory_id:
            self._trajectory_id = result.trajectory_id
            self._path.poses = []
        pose = PoseStamped(header=odom_header, pose=odom.pose.pose)
        self._path.poses.append(pose)
        if len(self._path.poses) > p.path_max_length:
            del self._path.poses[: len(self._path.poses) - p.path_max_length]
        self._path.header.stamp = header.stamp
        self.path_pub.publish(self._path)

        if self.tf is not None and self.tf.available:
            if p.publish_tf:
                self.tf.send(_transform(odom_header, p.base_frame, result.T_odom_base))
            camera_frame = p.camera_frame or header.frame_id
            if p.publish_static_tf and camera_frame and camera_frame != self._static_sent_for:
                base_header = type(header)(stamp=header.stamp, frame_id=p.base_frame)
                self.tf.send_static(_transform(base_header, camera_frame, p.T_base_camera))
                self._static_sent_for = camera_frame

        if result.depth is not None:
            self._tracked_since_depth += 1
            if self._tracked_since_depth >= p.depth_every_n:
                self._tracked_since_depth = 0
                depth_msg, info_msg = depth_messages(result.depth, result.depth_camera, header)
                self.depth_pub.publish(depth_msg)
                self.depth_info_pub.publish(info_msg)
        with self._lock:
            self.counters["published"] += 1

    # -- diagnostics ---------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, float]:
        """Counters and rates (what /diagnostics reports), for tests and banet-vo-run."""
        with self._lock:
            values: dict[str, float] = dict(self.counters)
            latency = np.array(self._latency) if self._latency else None
            stamps = list(self._processed_stamps)
        for key in (
            "received",
            "processed",
            "published",
            "dropped",
            "failed",
            "out_of_order",
            "bad_image",
            "bad_camera_info",
            "no_camera_info",
            "size_mismatch",
            "errors",
        ):
            values.setdefault(key, 0)
        stats = self.vo.stats
        values.update(
            resets=stats.resets,
            keyframes=stats.keyframes,
            lost=stats.lost,
            camera_changes=stats.camera_changes,
            last_cost=stats.last_cost,
            last_inference_ms=1e3 * stats.last_inference_s,
            queued=len(self._queue),
        )
        recent = [t for t in stamps if t > time.monotonic() - 5.0]
        values["rate_hz"] = (
            (len(recent) - 1) / (recent[-1] - recent[0])
            if len(recent) > 1 and recent[-1] > recent[0]
            else 0.0
        )
        if latency is not None:
            values["latency_p50_ms"] = float(np.percentile(latency, 50) * 1e3)
            values["latency_p95_ms"] = float(np.percentile(latency, 95) * 1e3)
        return values

    def _publish_diagnostics(self) -> None:
        values = self.snapshot()
        status = DiagnosticStatus(name=f"{self.get_name()}: visual odometry", hardware_id=self.params.device)
        problems = [
            k
            for k in ("dropped", "failed", "bad_image", "bad_camera_info", "no_camera_info", "errors")
            if values.get(k)
        ]
        status.level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        status.message = self._state + (f"; counted: {', '.join(problems)}" if problems else "")
        status.values = [
            KeyValue(key=k, value=f"{v:.6g}" if isinstance(v, float) else str(v))
            for k, v in sorted(values.items())
        ]
        status.values.append(KeyValue(key="state", value=self._state))
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()  # diagnostics describe the node, on its clock
        self.diag_pub.publish(msg)

    # -- helpers for in-process users ----------------------------------------------------------------
    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or running (True), or timeout (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self._queue) == 0 and not self._busy.is_set():
                time.sleep(0.02)  # an item may be between get() and _busy.set()
                if len(self._queue) == 0 and not self._busy.is_set():
                    return True
            time.sleep(0.01)
        return False

    def destroy_node(self) -> None:
        self._running = False
        self._queue.close()
        if self._worker.is_alive():
            self._worker.join(timeout=10.0)
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    """`ros2 run banet_vo vo_node --ros-args -p model:=... -r image:=... -r camera_info:=...`."""
    args = sys.argv if argv is None else ["vo_node", *argv]
    logging.basicConfig(level=logging.INFO, format="[banet_vo] %(levelname)s %(message)s", stream=sys.stderr)
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = VONode()
        except ValueError as err:
            print(f"banet_vo: cannot start: {err}", file=sys.stderr)
            return 2
        executor = rclpy.executors.MultiThreadedExecutor(num_threads=2)
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
            pass
        return 0
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    sys.exit(main())
