"""tf for the banet_vo node: the odom → base broadcast, and where the base → camera extrinsic comes from.

On a robot the camera's mounting is already on tf (robot_state_publisher from the URDF), so the node reads
it from there, as isaac_ros_visual_slam, rtabmap and kiss-icp do, and does not publish it: a second
publisher of base → camera would give the camera frame two parents. Without tf2_ros (the pip install) or
when asked to, the extrinsic comes from the base_camera_xyz / base_camera_rpy parameters. The static
transform is published only with publish_static_tf (a robot without a URDF).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile

from banet_vo.data.bag_tf import transform_matrix as transform_to_matrix
from banet_vo.geometry.rigid import rotation_to_quaternion
from banet_vo.ros.qos import latched_qos


def transform_msg(header: Any, child: str, T: np.ndarray) -> TransformStamped:
    """TransformStamped of the pose T of `child` in header.frame_id."""
    msg = TransformStamped()
    msg.header = header
    msg.child_frame_id = child
    t = msg.transform.translation
    t.x, t.y, t.z = (float(v) for v in T[:3, 3])
    q = rotation_to_quaternion(T[:3, :3])
    r = msg.transform.rotation
    r.x, r.y, r.z, r.w = (float(v) for v in q)
    return msg


class TfOutput:
    """/tf and /tf_static through tf2_ros when importable, else plain tf2_msgs publishers, else nothing."""

    def __init__(self, node: Node, warn: bool = True) -> None:
        self.backend = "none"
        self._node = node
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
            if warn:
                node.get_logger().warning(
                    "tf2_ros and tf2_msgs are not importable: /tf and /tf_static are not published "
                    "(use a ROS 2 distro); odometry and path are unaffected"
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

    def close(self) -> None:
        """Destroy the publishers this output made on the node (a lifecycle cleanup: the next configure makes
        new ones); nothing is sent afterwards."""
        if self.backend == "tf2_ros":
            publishers = (self._dynamic.pub_tf, self._static.pub_tf)
        elif self.backend == "tf2_msgs":
            publishers = (self._pub, self._static_pub)
        else:
            publishers = ()
        for publisher in publishers:
            self._node.destroy_publisher(publisher)
        self.backend = "none"
        self._dynamic = self._static = None

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


class ExtrinsicSource:
    """T_base_camera from tf (looked up once, at the first frame) or from the parameters.

    `ready` is True once the extrinsic is known; until then `resolve` is called per frame (the worker
    thread) and returns the transform, or None while tf has not delivered it. In `auto` mode the parameters
    are used once `extrinsic_timeout` has passed since the first frame without the transform on tf, and
    `fallback` then says so (the node's /diagnostics stays WARN: a robot whose tf came late runs with the
    wrong mounting). Once resolved, the tf listener is unsubscribed: it is read once, and every /tf
    message would otherwise be deserialised on the node's executor thread for the rest of the run.
    """

    def __init__(self, node: Node, params: Any) -> None:
        self._node = node
        self._mode = params.camera_extrinsic_source
        self._timeout = params.extrinsic_timeout
        self._T_params = params.T_base_camera
        self._buffer = None
        self._listener = None
        self._first_try: float | None = None
        self.fallback: str | None = None  # why the parameters are used in `auto` mode after a timeout
        if self._mode in ("auto", "tf"):
            try:
                import tf2_ros
            except ImportError:
                if self._mode == "tf":
                    raise ValueError(
                        "parameter camera_extrinsic_source: tf needs tf2_ros, which is not importable "
                        "(use a ROS 2 distro, or camera_extrinsic_source:=parameters)"
                    ) from None
                self._mode = "parameters"
            else:
                self._buffer = tf2_ros.Buffer()
                self._listener = tf2_ros.TransformListener(self._buffer, node)
        self.ready = self._mode == "parameters"

    def describe(self) -> str:
        if self.fallback is not None:
            return f"parameters base_camera_xyz/rpy ({self.fallback})"
        return "tf" if self._buffer is not None else "parameters base_camera_xyz/rpy"

    def close(self) -> None:
        """Unsubscribe the tf listener, if any (a lifecycle cleanup; the next configure makes a new one)."""
        listener, self._listener = self._listener, None  # once, from whichever thread comes first
        if listener is not None:
            try:  # as an executor task, an exception would stop the node's executor: said, not raised
                listener.unregister()
            except Exception as err:
                self._node.get_logger().warning(f"tf listener not unsubscribed: {type(err).__name__}: {err}")

    def resolve(self, camera_frame: str, base_frame: str) -> np.ndarray | None:
        import rclpy.time

        now = time.monotonic()
        if self._first_try is None:
            self._first_try = now
        try:
            msg = self._buffer.lookup_transform(base_frame, camera_frame, rclpy.time.Time())
        except Exception as err:  # tf2's LookupException / ConnectivityException / ExtrapolationException
            if self._mode == "auto" and now - self._first_try >= self._timeout:
                self.fallback = (
                    f"no transform {base_frame} → {camera_frame} on tf within {self._timeout:g} s; "
                    "set camera_extrinsic_source:=parameters if that is meant, or raise extrinsic_timeout"
                )
                self._node.get_logger().warning(
                    f"no transform {base_frame} → {camera_frame} on tf after {self._timeout:g} s "
                    f"({type(err).__name__}): using base_camera_xyz/rpy until a restart or a lifecycle "
                    "cleanup"
                )
                self._resolved()
                return self._T_params
            return None
        self._node.get_logger().info(f"camera extrinsic {base_frame} → {camera_frame} read from tf")
        self._resolved()
        return transform_to_matrix(msg.transform)

    def _resolved(self) -> None:
        """Known for the rest of the run: stop listening to /tf. The subscription is destroyed on the
        executor's thread (resolve runs on the worker's), or here when the node is not spun yet."""
        self.ready = True
        executor = self._node.executor
        if executor is None:
            self.close()
        else:
            executor.create_task(self.close)
