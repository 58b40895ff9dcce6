"""The banet_vo ROS 2 node: a thin shell around banet_vo.odometry (ROS interface: DESIGN.md, docs/node.md).

The shared CameraInput validates, pairs (image + camera_info of the same stamp) and converts: each frame
goes into a bounded latest-frame queue, and one FrameWorker thread rectifies it, runs the odometry and
publishes. A slow model therefore drops frames (counted, in /diagnostics) and never stalls the executor
or grows memory. Outputs carry the input image's stamp. Every frame processed gets a ~/status message;
a frame that fails gets no pose (the last good one stands: no jumps). Bad input is counted and warned
about (throttled), never fatal; bad parameters or an unusable model stop the node at start; a run-time
parameter change is validated like a start-up value and refused with the reason.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import sys
import threading
import time
from pathlib import Path as FilePath
from typing import Any

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from nav_msgs.msg import Odometry, Path
from rcl_interfaces.msg import SetParametersResult
from rclpy.logging import LoggingSeverity
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import String
from std_srvs.srv import Trigger

from banet_vo.frontend.xfeat import load_weights
from banet_vo.geometry.rectify import Rectifier
from banet_vo.odometry import (
    FAILED,
    INITIALISING,
    LOST,
    OUT_OF_ORDER,
    BANetEstimator,
    FrameResult,
    PairEstimator,
    make_odometry,
    resolve_device,
)
from banet_vo.odometry.depth_output import depth_to_points, upsample_depth
from banet_vo.odometry.matcher_swap import MatcherUpdate
from banet_vo.odometry.output_covariance import pose_covariance, step_covariance, twist_covariance
from banet_vo.odometry.pipeline import RELATIVE_TO_PREVIOUS
from banet_vo.ros import log_bridge, topics
from banet_vo.ros.camera_input import (
    BAD_IMAGE,
    IMAGES_STOPPED,
    REPEATED_IMAGE,
    STREAM_PROBLEMS,
    CameraFrame,
    CameraInput,
    EventCounters,
)
from banet_vo.ros.conversions import (
    camera_info_to_input,
    depth_messages,
    odometry_msg,
    points_to_cloud,
    sec_to_stamp,
    stamp_to_sec,
)
from banet_vo.ros.frame_worker import DROPPED, ERRORS, FrameWorker
from banet_vo.ros.node_shell import (
    WAITING_FOR_CLOCK,
    NodeHelp,
    diagnostics,
    node_main,
    steady_timer,
    waiting_for_clock,
)
from banet_vo.ros.params import (
    ODOMETRY_PARAMS,
    PARAMS,
    TRACKING_PARAMS,
    NodeParams,
    odometry_with_extrinsic,
    params_from_values,
)
from banet_vo.ros.qos import latched_qos, reliable_qos
from banet_vo.ros.topics import NODE_NAME
from banet_vo.ros.vo_reporting import CounterWindow, live_setting_advice, pose_matrix, tracking_status
from banet_vo.ros.vo_tf import ExtrinsicSource, TfOutput, transform_msg

NO_EXTRINSIC = "no_extrinsic"  # frames waiting for the base → camera transform from tf
BAD_EXTRINSIC = "bad_extrinsic"  # frames dropped: the transform from tf cannot serve the configuration
MATCHER_UPDATE_ERRORS = "matcher_update_errors"  # matcher updates that could not be read or used
WARM_UP_TIMEOUT_S = 120.0  # the longest the node waits for the model's warm-up before subscribing
INPUT_STAMPS_KEPT = 64  # published frames whose input stamp a keyframe's late depth can still take
# Counters that make /diagnostics WARN while they grew within the window.
PROBLEMS = (
    DROPPED,
    "failed",
    *STREAM_PROBLEMS,
    NO_EXTRINSIC,
    BAD_EXTRINSIC,
    MATCHER_UPDATE_ERRORS,
    ERRORS,
)


class VOShell:
    """What the banet_vo node does, on any rclpy Node: `VONode` sets it all up at construction,
    `banet_vo.ros.vo_lifecycle.VOLifecycleNode` in its configure / activate transitions. Needs
    `self.params` (validated NodeParams) before `_configure`."""

    def _current_values(self) -> dict[str, Any]:
        """{name: value} of every table parameter as the node holds it now (arrays as lists)."""
        values = {}
        for spec in PARAMS:
            value = self.get_parameter(spec.name).value
            values[spec.name] = list(value) if isinstance(spec.default, list) else value
        return values

    def _check_parameter_extrinsic(self) -> None:
        """When the extrinsic is the parameters' (no tf), check now what depends on it, so that a bad
        configuration stops the node at start; with tf that waits for the transform (`_process`)."""
        if self.extrinsic.ready:
            odometry = odometry_with_extrinsic(self.params.odometry, self.params.T_base_camera)
            self.params = dataclasses.replace(self.params, odometry=odometry)
            self.get_logger().info(odometry.describe_scale())

    def _configure(self, estimator: PairEstimator) -> None:
        """Everything but the image input: odometry, outputs, services, worker, diagnostics."""
        p = self.params
        # First: an odometry that cannot be built (a matcher that does not load) leaves nothing made. The
        # caller (construction, a lifecycle configure) attached the log bridge before it, so that what
        # building it logs (the depth calibration in use) reaches the node's log.
        self.vo = make_odometry(estimator, p.odometry)
        self._values = self._current_values()
        self.estimator = estimator
        self.events = EventCounters(self.get_logger().warning)
        self.rectifier = Rectifier()
        self._latency: collections.deque[float] = collections.deque(maxlen=200)
        self._window = CounterWindow(time.monotonic())  # starts with nothing counted
        self._lock = threading.Lock()
        self._reset_requested: str | None = None  # reason, set by ~/reset and ~/reset_to_pose
        self._reset_pose: np.ndarray | None = None
        self._reset_pose_cov = np.zeros((6, 6))
        self._T_origin = np.eye(4)  # odom pose of the trajectory's first frame (~/reset_to_pose)
        self._origin_cov = np.zeros((6, 6))
        self._pending_config: Any = None
        self._pending_matcher: tuple[dict, MatcherUpdate] | None = None  # loaded, waiting for the worker
        self._live_advised = False  # live_setting_advice said once
        self._last_update: MatcherUpdate | None = None
        self._state = "waiting for images"
        self._extrinsic_error = ""  # why the extrinsic from tf cannot be used (every frame is dropped)
        self._last: FrameResult | None = None
        self._trajectory_id = None
        self._path = Path()
        self._path.header.frame_id = p.odom_frame
        self._tracked_since_depth = 0
        # The input stamps of the latest frames by their float seconds: a keyframe's depth that comes back
        # late carries its frame's float stamp, which at clock time does not round-trip to the same ns.
        self._input_stamps: dict[float, Any] = {}
        self._static_sent_for: str | None = None
        self.camera_input: CameraInput | None = None

        # ROS 2's qos_overrides.<topic>.publisher.<policy> parameters, where given, beat these profiles.
        pub = functools.partial(
            self.create_publisher, qos_overriding_options=QoSOverridingOptions.with_default_policies()
        )
        self.odom_pub = pub(Odometry, topics.private(topics.ODOMETRY), reliable_qos(depth=10))
        self.path_pub = pub(Path, topics.private(topics.PATH), reliable_qos(depth=1))
        self.depth_pub = pub(Image, topics.private(topics.DEPTH_IMAGE), reliable_qos(depth=2))
        self.depth_info_pub = pub(CameraInfo, topics.private(topics.DEPTH_CAMERA_INFO), reliable_qos(depth=2))
        self.points_pub = pub(PointCloud2, topics.private(topics.POINTS), reliable_qos(depth=2))
        self.status_pub = pub(DiagnosticStatus, topics.private(topics.STATUS), reliable_qos(depth=10))
        self.diag_pub = pub(DiagnosticArray, topics.DIAGNOSTICS, reliable_qos(depth=10))
        self.reset_srv = self.create_service(Trigger, "~/reset", self._on_reset)
        self.reset_pose_sub = self.create_subscription(
            PoseWithCovarianceStamped, "~/reset_to_pose", self._on_reset_to_pose, reliable_qos(depth=1)
        )
        self.matcher_sub = self.create_subscription(
            String, topics.MATCHER_UPDATES, self._on_matcher_update, latched_qos(depth=1)
        )
        # always there: publish_tf can be switched on at run time (the warning only when it is on now)
        self.tf = TfOutput(self, warn=p.publish_tf or p.publish_static_tf)
        self.worker = FrameWorker(
            self._process,
            self.events,
            p.queue_size,
            name="banet_vo_inference",
            on_start=self._warm_up,
            alive=self.context.ok,
        )
        self._param_callback = self._on_set_parameters
        self.add_on_set_parameters_callback(self._param_callback)
        self._diag_timer = steady_timer(self, p.diagnostics_period, self._publish_diagnostics)

    def _warm_up(self) -> None:
        """The model's first passes, on the inference thread: on a GPU they take seconds (CUDA's start-up),
        and frames arriving meanwhile would be dropped. Estimators without `warm_up` (tests' fakes) skip
        it."""
        warm_up = getattr(self.estimator, "warm_up", None)
        if warm_up is not None:
            seconds = ", ".join(f"{t:.2f}" for t in warm_up())
            self.get_logger().info(f"model warmed up on {self.estimator.device}: passes of {seconds} s")

    def _open_input(self) -> None:
        """Subscribe image (+ camera_info): frames start flowing into the worker."""
        p = self.params
        if not self.worker.wait_started(timeout=WARM_UP_TIMEOUT_S):
            self.get_logger().warning(
                f"the model's warm-up took over {WARM_UP_TIMEOUT_S:.0f} s; subscribing now"
            )
        self.camera_input = CameraInput(
            self,
            p.image_qos,
            self.worker.put,
            self.events,
            transport=p.image_transport,
            sync=p.camera_info_sync,
            sync_queue_size=p.sync_queue_size,
            camera_from_info=lambda msg: camera_info_to_input(msg, rectify=p.rectify),
            fixed_camera=p.fixed_camera,
            min_image_side=p.min_image_side,
            max_image_pixels=p.max_image_pixels,
            max_value_16bit=p.image_max_value_16bit,
            lock_frame_id=True,
        )
        info = "from parameters" if p.fixed_camera else f"{p.camera_info_sync} sync"
        self.get_logger().info(
            f"ready: model {p.model}, input {self.estimator.input_size[0]}x{self.estimator.input_size[1]}, "
            f"image {self.camera_input.image_topic} ({p.image_transport}, QoS {p.image_qos}), camera_info "
            f"{self.camera_input.info_topic or '(none)'} ({info}), rectify {p.rectify}, "
            f"extrinsic from {self.extrinsic.describe()}, tf {self.tf.backend}"
        )

    def _close_input(self) -> None:
        """Unsubscribe and drop what is queued (the frame in progress finishes)."""
        if self.camera_input is not None:
            self.camera_input.close()
            self.camera_input = None
        self.worker.clear()
        self.worker.wait_idle(10.0)

    def _release(self) -> None:
        """Undo _configure: stop the worker, destroy what it created, forget the model."""
        self._close_input()
        stopped = self.worker.stop(timeout=10.0)
        for pub in (
            self.odom_pub,
            self.path_pub,
            self.depth_pub,
            self.depth_info_pub,
            self.points_pub,
            self.status_pub,
            self.diag_pub,
        ):
            self.destroy_publisher(pub)
        self.destroy_service(self.reset_srv)
        self.destroy_subscription(self.reset_pose_sub)
        self.destroy_subscription(self.matcher_sub)
        self.destroy_timer(self._diag_timer)
        self.tf.close()
        self.extrinsic.close()  # made by the lifecycle node's configure, with the parameters it validated
        self.remove_on_set_parameters_callback(self._param_callback)
        self._detach_log()
        self._close_odometry(stopped)
        self.vo = self.estimator = None

    def _attach_log(self) -> None:
        """Forward the banet_vo Python loggers to this node's ROS logger (once; `_detach_log` undoes it)."""
        if getattr(self, "_log_handler", None) is None:
            self._log_handler = log_bridge.attach(self.get_logger())

    def _detach_log(self) -> None:
        if getattr(self, "_log_handler", None) is not None:
            log_bridge.detach(self._log_handler)
            self._log_handler = None

    def _close_odometry(self, stopped: bool) -> None:
        """Close the odometry (its BA worker process, its threads) once the inference thread has stopped;
        a frame still running after the wait keeps it open: its BA worker ends with this process."""
        if not stopped:
            self.get_logger().warning(
                "the inference thread is still in a frame after 10 s: the odometry is left to end with the "
                "process"
            )
        elif self.vo is not None:
            self.vo.close()

    # -- start-up ------------------------------------------------------------------------------------
    def _load_estimator(self, p: NodeParams) -> PairEstimator:
        try:
            resolve_device(p.device)  # a missing GPU is the device's fault, not the model's
        except ValueError as err:
            raise ValueError(f"parameter device: {err}") from err
        path = FilePath(p.model)
        if path.is_dir():
            raise ValueError(f"parameter model: {p.model} is a directory; give the .safetensors file in it")
        if not path.exists():
            raise ValueError(f"parameter model: {p.model} does not exist")
        if p.torch_threads > 0:
            torch.set_num_threads(p.torch_threads)
        try:
            return BANetEstimator.from_checkpoint(p.model, device=p.device)
        except ValueError as err:
            raise ValueError(f"parameter model: cannot use {p.model}: {err}") from err
        except (OSError, RuntimeError, KeyError) as err:  # unreadable file, torch refusing the weights
            raise ValueError(f"parameter model: cannot load {p.model}: {type(err).__name__}: {err}") from err

    @property
    def image_sub(self) -> Any | None:
        """The image subscription, None while `auto` QoS waits for a publisher (or the input is closed)."""
        return self.camera_input.image_sub if self.camera_input is not None else None

    @property
    def info_sub(self) -> Any | None:
        return self.camera_input.info_sub if self.camera_input is not None else None

    # -- parameters at run time (executor thread) ---------------------------------------------------
    def _declare_parameters(self, writable: bool = False) -> dict[str, Any]:
        """Declare the table (its values returned) and, for the node's whole life, configured or not,
        carry a deprecated name's value to its new names as it is set. `writable`: no parameter is
        read-only to rclpy (the lifecycle node refuses start-up ones itself while configured)."""
        values = PARAMS.declare(self, writable=writable)
        self.add_pre_set_parameters_callback(self._expand_renamed)
        return values

    def _expand_renamed(self, parameters: list[Any]) -> list[Any]:
        return PARAMS.expand_renamed(parameters, self.get_logger().warning)

    def _on_set_parameters(self, parameters: list[Any]) -> SetParametersResult:
        changes, renamed = {}, {}
        for param in parameters:
            if param.name in PARAMS.renamed:
                renamed[param.name] = param.value
                continue
            if param.name not in PARAMS:
                continue  # rclpy's own (use_sim_time)
            if not PARAMS[param.name].dynamic:
                return SetParametersResult(
                    successful=False, reason=f"parameter {param.name}: read-only (set it at start)"
                )
            value = param.value
            changes[param.name] = list(value) if isinstance(PARAMS[param.name].default, list) else value
        try:
            # a deprecated name arrives with its new names (_expand_renamed), unless it clashes or is bad
            left = PARAMS.renamed_given(changes, renamed)
            carried = PARAMS.carry_renamed({**changes, **left}, self.get_logger().warning)
            changes = {name: value for name, value in carried.items() if name in PARAMS}
            if not changes:
                return SetParametersResult(successful=True)
            values = {**self._values, **changes}
            params = params_from_values(values)
        except ValueError as err:
            return SetParametersResult(successful=False, reason=str(err))
        with self._lock:
            self._values = values
            if any(name in ODOMETRY_PARAMS or name in TRACKING_PARAMS for name in changes):
                self._pending_config = params.odometry  # applied by the worker between frames
            self.params = params
        self.get_logger().info(f"parameters set: {changes}")
        return SetParametersResult(successful=True)

    # -- callbacks (executor thread) -----------------------------------------------------------------
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self._reset_requested = "~/reset service"
            self._reset_pose = np.eye(4)
            self._reset_pose_cov = np.zeros((6, 6))
        cleared = self.worker.clear()
        if self.camera_input is not None:
            self.camera_input.unlock_frame_id()
        response.success = True
        response.message = f"trajectory reset requested ({cleared} queued frames discarded)"
        self.get_logger().info(response.message)
        return response

    def _on_reset_to_pose(self, msg: PoseWithCovarianceStamped) -> None:
        frame = msg.header.frame_id
        if frame and frame != self.params.odom_frame:
            self.get_logger().warning(
                f"~/reset_to_pose ignored: the pose must be in {self.params.odom_frame!r}, got {frame!r}"
            )
            return
        try:
            T = pose_matrix(msg.pose.pose)
            cov = np.asarray(msg.pose.covariance, dtype=np.float64).reshape(6, 6)
            if not np.all(np.isfinite(cov)):
                raise ValueError("covariance must be finite")
            # A negative variance would make every later frame's covariance unusable (and drop the frames),
            # a matrix that is not positive semi-definite would reach the odometry's consumers as it is.
            if np.any(np.diag(cov) < 0):
                raise ValueError(f"covariance has negative variances: {np.diag(cov).round(9).tolist()}")
            values, vectors = np.linalg.eigh(0.5 * (cov + cov.T))
            if values.min() < -1e-9 * max(1.0, float(np.abs(cov).max())):
                raise ValueError(
                    f"covariance must be positive semi-definite (smallest eigenvalue {values.min():.3g})"
                )
            # what rounding leaves below zero is clipped: each later frame's covariance adds to this one
            cov = (vectors * np.clip(values, 0.0, None)) @ vectors.T
        except ValueError as err:
            self.get_logger().warning(f"~/reset_to_pose ignored: {err}")
            return
        with self._lock:
            self._reset_requested = "~/reset_to_pose"
            self._reset_pose, self._reset_pose_cov = T, cov
        cleared = self.worker.clear()
        self.get_logger().info(
            f"trajectory reset to the pose at {T[:3, 3].round(3).tolist()} requested "
            f"({cleared} queued frames discarded)"
        )

    def _on_matcher_update(self, msg: String) -> None:
        """A new matcher version (imatching_node): read and checked here, taken by the worker between
        frames. A version that cannot be used is counted and warned about; the matcher in use stays."""
        try:
            update = MatcherUpdate.from_json(msg.data)
            if update == self._last_update:
                return  # the latched message again (a reconnect)
            self._last_update = update
            if self.params.odometry.frontend != "xfeat":
                raise ValueError(f"frontend {self.params.odometry.frontend} has no matcher to update")
            state, _ = load_weights(update.path)
        except (ValueError, OSError, RuntimeError) as err:
            self.events.warn(MATCHER_UPDATE_ERRORS, f"matcher update not used: {err}")
            return
        with self._lock:
            self._pending_matcher = (state, update)
        self.get_logger().info(f"matcher version {update.version} read from {update.path}")

    # -- inference thread ----------------------------------------------------------------------------
    def _between_frames(self) -> None:
        """Apply what the executor thread asked for (reset, new odometry config, new matcher) before the
        next frame."""
        with self._lock:
            reason, self._reset_requested = self._reset_requested, None
            pose, cov = self._reset_pose, self._reset_pose_cov
            config, self._pending_config = self._pending_config, None
            matcher, self._pending_matcher = self._pending_matcher, None
        if matcher is not None:
            try:
                outcome = self.vo.swap_matcher(matcher[0], matcher[1].version)
            except ValueError as err:  # weights the extractor refuses: the matcher in use stays
                self.events.warn(MATCHER_UPDATE_ERRORS, f"matcher update not used: {err}")
            except Exception as err:  # the swap put the old weights back; the reset and config still apply
                self.get_logger().error(f"matcher update not used: {type(err).__name__}: {err}")
                self.events.add(MATCHER_UPDATE_ERRORS)
            else:
                severity = LoggingSeverity.INFO if outcome.applied else LoggingSeverity.WARN
                log_bridge.log_at(self.get_logger(), severity, outcome.message)
        if config is not None:
            # thresholds are read by the pipeline at each use; the extrinsic stays the resolved one
            self.vo.config = dataclasses.replace(
                config, T_base_camera=self.vo.config.T_base_camera, extrinsic_pending=not self.extrinsic.ready
            )
        if reason is not None:
            self.vo.reset(reason=reason)
            self._T_origin, self._origin_cov = pose, cov
            self._last = None

    def _process(self, item: CameraFrame) -> None:
        self._between_frames()
        p = self.params
        image, camera = item.image, item.camera
        camera_frame = p.camera_frame or item.header.frame_id
        if not camera_frame:  # depth, points and tf would name no frame: RViz and tf could not place them
            self.events.warn(
                BAD_IMAGE,
                "image dropped: its header.frame_id is empty; set the camera_frame parameter to the "
                "camera's optical frame",
            )
            return
        if item.calibration is not None:
            image, camera = self.rectifier.rectify(image, item.calibration)
        if self._extrinsic_error:
            self.events.warn(BAD_EXTRINSIC, f"frame dropped: {self._extrinsic_error}")
            return
        if not self.extrinsic.ready:
            T = self.extrinsic.resolve(camera_frame, p.base_frame)
            if T is None:
                self.events.warn(
                    NO_EXTRINSIC,
                    f"frame dropped: waiting for the transform {p.base_frame} → {camera_frame} on tf",
                )
                return
            try:
                config = odometry_with_extrinsic(self.vo.config, T)
            except ValueError as err:
                self._extrinsic_error = f"{err} (extrinsic {p.base_frame} → {camera_frame}; restart the node)"
                self._state = self._extrinsic_error
                self.get_logger().error(self._extrinsic_error)
                self.events.add(BAD_EXTRINSIC)
                return
            self.get_logger().info(config.describe_scale())
            old, self.vo = self.vo, make_odometry(self.estimator, config)
            old.close()
            if hasattr(old, "extractor"):  # a matcher version taken before the extrinsic came stays
                self.vo.extractor.load_state_dict(old.extractor.state_dict())
                self.vo.matcher_version = old.matcher_version
        result = self.vo.process(image, item.stamp, camera)
        self.events.add("processed")
        self._advise_live_setting()
        if result.status == OUT_OF_ORDER:
            self.events.warn("out_of_order", f"frame skipped: {result.message}")
            return
        if result.status == FAILED:
            if result.waiting:
                # No map yet, the camera has not moved enough (a robot standing at its start): waiting, not
                # lost, and not a failure (the pipeline does not count it either); no pose to publish.
                self._state = INITIALISING
            else:
                self.events.add("failed")  # the pipeline logs why (throttled through the log bridge)
                self._state = LOST
            self._publish_status(item, result)
            return
        self._state = result.state or INITIALISING
        self._publish(item, result, camera, camera_frame)
        self._publish_status(item, result)
        with self._lock:
            self._latency.append(time.monotonic() - item.received)

    def _advise_live_setting(self) -> None:
        """Say once per node how to keep up when it drops many of the camera's frames (on the worker)."""
        if self._live_advised:
            return
        advice = live_setting_advice(self.events.get("received"), self.events.get(DROPPED), self.vo.config)
        if advice is not None:
            self._live_advised = True
            self.get_logger().warning(advice)

    def _odometry(self, item: CameraFrame, result: FrameResult) -> Odometry:
        p = self.params
        covariance = p.covariance
        R = self._T_origin[:3, :3]
        B = np.kron(np.eye(2), R)  # both blocks of the ROS pose covariance turn with the origin's rotation
        pose_cov = B @ pose_covariance(result.pose_covariance, covariance) @ B.T + self._origin_cov
        last = self._last
        same = last is not None and last.trajectory_id == result.trajectory_id
        step = (
            step_covariance(
                result.relative_covariance,
                last.relative_covariance,
                last.is_keyframe,
                result.relative_reference == RELATIVE_TO_PREVIOUS,
                T_odom_previous=last.T_odom_base,
                T_odom_current=result.T_odom_base,
            )
            if same
            else None
        )
        dt = result.stamp - last.stamp if same else None
        header = type(item.header)(stamp=item.header.stamp, frame_id=p.odom_frame)
        return odometry_msg(
            header,
            p.base_frame,
            self._T_origin @ result.T_odom_base,
            0.5 * (pose_cov + pose_cov.T),
            result.twist,
            twist_covariance(step, dt, covariance),
        )

    def _publish(self, item: CameraFrame, result: FrameResult, camera: Any, camera_frame: str) -> None:
        p = self.params
        header = item.header
        self._input_stamps[item.stamp] = header.stamp
        if len(self._input_stamps) > INPUT_STAMPS_KEPT:
            del self._input_stamps[next(iter(self._input_stamps))]
        odom = self._odometry(item, result)
        self._last = result
        self.odom_pub.publish(odom)

        if result.trajectory_id != self._trajectory_id:
            self._trajectory_id = result.trajectory_id
            self._path.poses = []
        self._path.header.frame_id = p.odom_frame
        self._path.poses.append(PoseStamped(header=odom.header, pose=odom.pose.pose))
        if len(self._path.poses) > p.path_max_length:
            del self._path.poses[: len(self._path.poses) - p.path_max_length]
        self._path.header.stamp = header.stamp
        self.path_pub.publish(self._path)

        if self.tf.available:
            if p.publish_tf:
                self.tf.send(transform_msg(odom.header, p.base_frame, self._T_origin @ result.T_odom_base))
            if p.publish_static_tf and camera_frame and camera_frame != self._static_sent_for:
                base_header = type(header)(stamp=header.stamp, frame_id=p.base_frame)
                self.tf.send_static(transform_msg(base_header, camera_frame, self.vo.config.T_base_camera))
                self._static_sent_for = camera_frame

        if result.depth is not None:
            self._tracked_since_depth += 1
            if self._tracked_since_depth >= p.depth_every_n:
                self._tracked_since_depth = 0
                # in the camera's optical frame: the image's frame_id, or camera_frame where that is set
                depth_header = type(header)(stamp=header.stamp, frame_id=camera_frame)
                self._publish_depth(depth_header, result, camera, p)
        self.events.add("published")

    def _publish_depth(self, header: Any, result: FrameResult, camera: Any, p: NodeParams) -> None:
        if result.depth_stamp is not None:  # a keyframe's depth, returned late (a thread made it)
            stamp = self._input_stamps.get(result.depth_stamp) or sec_to_stamp(result.depth_stamp)
            header = type(header)(stamp=stamp, frame_id=header.frame_id)
        if p.depth_upsampling == "none":
            depth, depth_camera = result.depth, result.depth_camera
        else:
            depth = upsample_depth(result.depth, result.depth_camera, camera, method=p.depth_upsampling)
            depth_camera = camera
        depth_msg, info_msg = depth_messages(depth, depth_camera, header)
        self.depth_pub.publish(depth_msg)
        self.depth_info_pub.publish(info_msg)
        if p.publish_points:
            with np.errstate(invalid="ignore"):
                clean = np.where(depth > 0, depth, np.nan)
            points = depth_to_points(clean, depth_camera, stride=p.points_stride)
            self.points_pub.publish(points_to_cloud(points, depth_msg.header))

    def _publish_status(self, item: CameraFrame, result: FrameResult) -> None:
        """~/status: one diagnostic_msgs/DiagnosticStatus per processed frame (docs/node.md)."""
        p = self.params
        name = f"{self.get_fully_qualified_name()}: tracking"
        stamp = stamp_to_sec(item.header.stamp)
        version = getattr(self.vo, "matcher_version", None)
        self.status_pub.publish(
            tracking_status(name, self._device_used(), result, stamp, p.odometry, p.model, version)
        )

    # -- diagnostics ---------------------------------------------------------------------------------
    def _device_used(self) -> str:
        """hardware_id: the device the model runs on ("cpu" where the parameter says "auto")."""
        return str(getattr(self.estimator, "device", self.params.device))

    def snapshot(self) -> dict[str, float]:
        """Counters since start and latency (what /diagnostics reports), for tests and banet-vo-run."""
        values: dict[str, float] = dict(self.events.as_dict())
        with self._lock:
            latency = np.array(self._latency) if self._latency else None
        for key in ("received", "processed", "published", "out_of_order", *PROBLEMS, REPEATED_IMAGE):
            values.setdefault(key, 0)
        stats = self.vo.stats
        values.update(
            resets=stats.resets,
            keyframes=stats.keyframes,
            lost=stats.lost,
            recovered=stats.recovered,
            init_restarts=stats.init_restarts,
            rebuild_predictions=stats.rebuild_predictions,
            reloc_refused=stats.reloc_refused,
            recovery_refused=stats.recovery_refused,
            landmarks_refused=stats.landmarks_refused,
            flow_tracked=stats.flow_tracked,
            keyframes_deferred=stats.keyframes_deferred,
            banet_skipped=stats.banet_skipped,
            window_ba_merged=stats.window_ba_merged,
            keyframes_mapped=stats.keyframes_mapped,
            mapping_dropped=stats.mapping_dropped,
            camera_changes=stats.camera_changes,
            matcher_swaps=stats.matcher_swaps,
            matcher_refused=stats.matcher_refused,
            matcher_rollbacks=stats.matcher_rollbacks,
            last_cost=stats.last_cost,
            last_inference_ms=1e3 * stats.last_inference_s,
            queued=len(self.worker),
        )
        if hasattr(self.vo, "matcher_version"):  # frontend xfeat: 0 = the weights it started with
            values["matcher_version"] = self.vo.matcher_version
        if latency is not None:
            values["latency_p50_ms"] = float(np.percentile(latency, 50) * 1e3)
            values["latency_p95_ms"] = float(np.percentile(latency, 95) * 1e3)
        return values

    def windowed(self, now: float | None = None) -> dict[str, float]:
        """Counter increases over the last `diagnostics_window` seconds (keys `recent_<counter>`) and the
        processing rate over it; records the current totals for later windows."""
        now = time.monotonic() if now is None else now
        keys = ("received", "processed", *PROBLEMS)
        return self._window.update(now, self.snapshot(), self.params.diagnostics_window, keys, "processed")

    def _state_text(self, recent: dict[str, float] | None = None) -> str:
        """What /diagnostics says the node is doing; `recent`: windowed() of this report."""
        if self.camera_input is None:
            return "inactive (not subscribed)"
        if waiting_for_clock(self) and self.events.get("processed") == 0:
            return WAITING_FOR_CLOCK
        return self.camera_input.input_state(self._state, recent, "processed", self.params.diagnostics_window)

    def _publish_diagnostics(self) -> None:
        recent = self.windowed()
        values = {**self.snapshot(), **recent}
        standing = self.camera_input.standing_problems(recent) if self.camera_input is not None else []
        values[IMAGES_STOPPED] = int(IMAGES_STOPPED in standing)
        problems = [*(f"recent_{k}" for k in PROBLEMS), *standing]
        state = self._state_text(recent)
        level = None
        extra = {"extrinsic": self.extrinsic.describe()}
        if self._extrinsic_error:  # every frame is dropped until a restart: the node does not work
            level = DiagnosticStatus.ERROR
        elif self.extrinsic.fallback is not None:  # works, but perhaps with the wrong mounting
            level = DiagnosticStatus.WARN
            state = f"{state}; extrinsic from the parameters: {self.extrinsic.fallback}"
        msg = diagnostics(
            self, "visual odometry", self._device_used(), state, values, problems, level=level, extra=extra
        )
        self.diag_pub.publish(msg)

    # -- helpers for in-process users ----------------------------------------------------------------
    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or running (True), or timeout (False)."""
        return self.worker.wait_idle(timeout)


class VONode(Node, VOShell):
    """banet_vo node. `estimator` may be given programmatically (tests, banet-vo-run); otherwise the
    `model` parameter is loaded. Raises ValueError at construction for bad parameters or model."""

    def __init__(self, *, estimator: PairEstimator | None = None, **node_kwargs: Any) -> None:
        super().__init__(node_kwargs.pop("node_name", NODE_NAME), **node_kwargs)
        self._built = False
        try:
            self._attach_log()  # what loading the model logs goes to /rosout and the log file too
            self.params: NodeParams = params_from_values(self._declare_parameters())
            self.extrinsic = ExtrinsicSource(self, self.params)
            self._check_parameter_extrinsic()
            if estimator is None:
                estimator = self._load_estimator(self.params)
            self._configure(estimator)  # builds the odometry before anything else
        except BaseException:
            if hasattr(self, "extrinsic"):
                self.extrinsic.close()
            self._detach_log()
            super().destroy_node()  # parameters, a tf listener, at most the odometry were made
            raise
        self._built = True
        self._open_input()

    def destroy_node(self) -> None:
        if self._built:  # rclpy's shutdown calls it again for a node whose construction failed
            self._built = False
            self._close_odometry(self.worker.stop(timeout=10.0))  # the background BA worker, if any
            self._detach_log()
        super().destroy_node()


HELP = NodeHelp(
    description="BA-Net visual odometry on a live image stream (docs/node.md). Subscribes image + "
    "camera_info; publishes ~/odometry, ~/path, ~/depth/image, ~/depth/camera_info, ~/points, ~/status, "
    "/diagnostics and (optionally) /tf; serves ~/reset; listens on ~/reset_to_pose.",
    usage="{prog} --ros-args -r image:=TOPIC [-r camera_info:=TOPIC] [-p model:=PATH] "
    "[-p name:=value ...] [--log-level debug]",
    table=PARAMS,
    unusable="a parameter or the model",
)


def main(argv: list[str] | None = None) -> int:
    """`ros2 run banet_vo vo_node --ros-args -r image:=... [-p model:=...]`."""
    return node_main(VONode, HELP, argv, executable="vo_node", prog="banet_vo", log_tag="banet_vo")


if __name__ == "__main__":
    sys.exit(main())
