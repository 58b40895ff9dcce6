"""The banet_vo ROS 2 node: a thin shell around banet_vo.odometry (ROS interface: DESIGN.md, docs/node.md).

The shared CameraInput validates and converts: an image (with the latest camera_info) goes into a
bounded latest-frame queue, and one FrameWorker thread runs the odometry and publishes. A slow model
therefore drops frames (counted, in /diagnostics) and never stalls the executor or grows memory. Outputs
carry the input image's stamp. Bad input is counted and warned about (throttled), never fatal; bad
parameters or an unusable model stop the node at start.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TransformStamped
from nav_msgs.msg import Odometry, Path
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from banet_vo.odometry import (
    FAILED,
    OUT_OF_ORDER,
    TRACKED,
    BANetEstimator,
    FrameResult,
    PairEstimator,
    make_odometry,
)
from banet_vo.ros.camera_input import (
    BAD_CAMERA_INFO,
    BAD_IMAGE,
    INPUT_PROBLEMS,
    NO_CAMERA_INFO,
    CameraFrame,
    CameraInput,
    EventCounters,
)
from banet_vo.ros.conversions import depth_messages, odometry_msg, rotation_to_quaternion
from banet_vo.ros.frame_worker import DROPPED, ERRORS, FrameWorker
from banet_vo.ros.node_shell import diagnostics, run_node
from banet_vo.ros.params import NodeParams, declare_parameters
from banet_vo.ros.qos import latched_qos, reliable_qos

NODE_NAME = "banet_vo"


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
        self.vo = make_odometry(estimator, p.odometry)
        self.events = EventCounters(self.get_logger().warning)
        self._latency: collections.deque[float] = collections.deque(maxlen=200)
        self._processed_stamps: collections.deque[float] = collections.deque(maxlen=200)
        self._lock = threading.Lock()
        self._reset_requested = threading.Event()
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

        self.worker = FrameWorker(self._process, self.events, p.queue_size, name="banet_vo_inference")
        self.camera_input = CameraInput(self, p.image_qos, self.worker.put, self.events)
        self._diag_timer = self.create_timer(p.diagnostics_period, self._publish_diagnostics)
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

    @property
    def image_sub(self) -> Any | None:
        """The image subscription, None while `auto` QoS waits for a publisher."""
        return self.camera_input.image_sub

    @property
    def info_sub(self) -> Any | None:
        return self.camera_input.info_sub

    # -- callbacks (executor thread) -----------------------------------------------------------------
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._reset_requested.set()
        cleared = self.worker.clear()
        response.success = True
        response.message = f"trajectory reset requested ({cleared} queued frames discarded)"
        self.get_logger().info(response.message)
        return response

    # -- inference thread ----------------------------------------------------------------------------
    def _process(self, item: CameraFrame) -> None:
        if self._reset_requested.is_set():
            self._reset_requested.clear()
            self.vo.reset(reason="~/reset service")
        result = self.vo.process(item.image, item.stamp, item.camera)
        self.events.add("processed")
        with self._lock:
            self._processed_stamps.append(time.monotonic())
        if result.status == OUT_OF_ORDER:
            self.events.warn("out_of_order", f"frame skipped: {result.message}")
            return
        if result.status == FAILED:
            self.events.warn("failed", f"frame skipped: {result.message}")
            self._state = "tracking (frames failing)"
            return
        self._state = "tracking" if result.status == TRACKED else "initialised"
        self._publish(item, result)
        with self._lock:
            self._latency.append(time.monotonic() - item.received)

    def _publish(self, item: CameraFrame, result: FrameResult) -> None:
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
        self.events.add("published")

    # -- diagnostics ---------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, float]:
        """Counters and rates (what /diagnostics reports), for tests and banet-vo-run."""
        values: dict[str, float] = dict(self.events.as_dict())
        with self._lock:
            latency = np.array(self._latency) if self._latency else None
            stamps = list(self._processed_stamps)
        for key in (
            "received",
            "processed",
            "published",
            DROPPED,
            "failed",
            "out_of_order",
            *INPUT_PROBLEMS,
            ERRORS,
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
            queued=len(self.worker),
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
        problems = (DROPPED, "failed", BAD_IMAGE, BAD_CAMERA_INFO, NO_CAMERA_INFO, ERRORS)
        msg = diagnostics(self, "visual odometry", self.params.device, self._state, self.snapshot(), problems)
        self.diag_pub.publish(msg)

    # -- helpers for in-process users ----------------------------------------------------------------
    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or running (True), or timeout (False)."""
        return self.worker.wait_idle(timeout)

    def destroy_node(self) -> None:
        self.worker.stop(timeout=10.0)
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    """`ros2 run banet_vo vo_node --ros-args -p model:=... -r image:=... -r camera_info:=...`."""
    args = sys.argv if argv is None else ["vo_node", *argv]
    return run_node(VONode, args, prog="banet_vo", log_tag="banet_vo")


if __name__ == "__main__":
    sys.exit(main())
