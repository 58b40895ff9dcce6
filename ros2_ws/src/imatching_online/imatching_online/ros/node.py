"""The imatching ROS 2 node: online, label-free adaptation of the matcher on a live image stream.

A thin shell around imatching_online.online.StreamAdapter (docs/imatching-node.md). Callbacks only
validate and convert: an image with the latest camera_info goes into a bounded latest-frame queue
(banet_vo's), and one worker thread selects frames, keeps the sliding window and runs one adaptation
step per full window (match -> robust BA -> implicit-gradient step, or a counted skip when the BA fails).
A slow step drops frames (counted), never stalls the executor. /diagnostics reports steps, skips by
reason, rollbacks, loss, BA inlier ratio, step time and dropped frames. The adapted matcher is written to
`output_model` every `save_every_steps` steps, on `~/save` and at shutdown. Bad input is counted and
warned about (throttled), never fatal; bad parameters or an unusable matcher stop the node at start.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
import rclpy.executors
from banet_vo.geometry import PinholeCamera
from banet_vo.odometry import resolve_device
from banet_vo.ros.conversions import camera_info_to_camera, image_to_model_input, stamp_to_sec
from banet_vo.ros.qos import qos_from_name, reliable_qos, resolve_auto_qos
from banet_vo.ros.vo_node import LatestFrameQueue
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from imatching_online.online import SKIPPED_GAP, SKIPPED_STATIC, STEPPED, StreamAdapter
from imatching_online.ros.params import PARAMS, NodeParams, declare_parameters

logger = logging.getLogger(__name__)

NODE_NAME = "imatching"
WARN_PERIOD_S = 5.0
# Counters that mean something is wrong with the input or the node (diagnostics level WARN).
PROBLEMS = ("dropped", "bad_image", "bad_camera_info", "no_camera_info", "size_mismatch", "errors")


@dataclass
class _Input:
    stamp: float
    image: np.ndarray
    camera: PinholeCamera | None  # set when queued


class ImatchingNode(Node):
    """imatching node; raises ValueError at construction for bad parameters or an unusable matcher."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(node_kwargs.pop("node_name", NODE_NAME), **node_kwargs)
        try:
            self.params: NodeParams = declare_parameters(self)
            self.stream = self._load(self.params)
        except BaseException:
            super().destroy_node()  # nothing else was created yet
            raise
        p = self.params
        self.counters: Counter[str] = Counter()
        self._last_warn: dict[str, float] = {}
        self._lock = threading.Lock()
        self._camera: PinholeCamera | None = None
        self._pending: _Input | None = None  # newest image received before any valid camera_info
        self._busy = threading.Event()
        self._state = "waiting for images"
        self._last_skip = ""
        self._shutdown_saved = False

        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", reliable_qos(depth=10))
        # Services in their own group: ~/save waits for a running step, image callbacks must not wait.
        services = MutuallyExclusiveCallbackGroup()
        self.save_srv = self.create_service(Trigger, "~/save", self._on_save, callback_group=services)
        self.reset_srv = self.create_service(Trigger, "~/reset", self._on_reset, callback_group=services)
        self.rollback_srv = self.create_service(
            Trigger, "~/rollback", self._on_rollback, callback_group=services
        )
        self.image_sub = None
        self.info_sub = None
        self._subscribe_timer = self.create_timer(0.2, self._try_subscribe)
        self._try_subscribe()
        self._diag_timer = self.create_timer(p.diagnostics_period, self._publish_diagnostics)

        self._queue = LatestFrameQueue(p.queue_size)
        self._running = True
        self._worker = threading.Thread(target=self._work, name="imatching_adapt", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: matcher {p.matcher} on {self.stream.device}, adapt={p.stream.adapt}, window "
            f"{p.stream.window_size}, output {p.output_model or '(none: adapted weights are not saved)'}"
        )

    # -- start-up ------------------------------------------------------------------------------------
    def _load(self, p: NodeParams) -> StreamAdapter:
        from imatching_online.matcher.io import load_matcher

        if p.torch_threads > 0:
            import torch

            torch.set_num_threads(p.torch_threads)
        try:
            device = resolve_device(p.device)
        except ValueError as err:
            raise ValueError(f"parameter device: {err}") from err
        try:
            matcher, base_meta = load_matcher(p.matcher, device=device)
        except ValueError as err:
            raise ValueError(f"parameter matcher: cannot use {p.matcher}: {err}") from err
        except (OSError, RuntimeError, KeyError) as err:  # unreadable file, torch refusing the weights
            raise ValueError(
                f"parameter matcher: cannot load {p.matcher}: {type(err).__name__}: {err}"
            ) from err
        source = {
            "adapted_from": p.matcher,
            "base_meta": base_meta,
            "source": p.source or self.resolve_topic_name("image"),
        }
        return StreamAdapter(matcher, p.stream, p.adapt, p.ba, device, source)

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
        """Subscribe once the QoS is known (auto waits for a publisher, as rosbag2 does)."""
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
        with self._lock:
            self.counters["received"] += 1
            camera = self._camera
        try:
            stamp = stamp_to_sec(msg.header.stamp)
            image = image_to_model_input(msg)
        except ValueError as err:
            self._warn("bad_image", f"image dropped: {err}")
            return
        item = _Input(stamp, image, None)
        if camera is None:
            # The first image can beat the first camera_info: keep the newest until one comes.
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

    def _on_save(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        path = self.params.output_model
        if not path:
            response.success = False
            response.message = "output_model is empty: nothing to write to"
            return response
        response.success, response.message = self._save(path, "~/save")
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        queued = self._queue.clear()
        frames = self.stream.reset()
        with self._lock:
            self.counters["resets"] += 1
        response.success = True
        response.message = f"window cleared ({frames} window frames, {queued} queued frames discarded)"
        self.get_logger().info(response.message)
        return response

    def _on_rollback(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success = self.stream.rollback()
        response.message = (
            "matcher restored to the rollback guard's last good weights"
            if response.success
            else "no good weights recorded yet (the rollback guard has not closed its first block)"
        )
        self.get_logger().info(response.message)
        return response

    # -- worker thread -------------------------------------------------------------------------------
    def _save(self, path: str, why: str) -> tuple[bool, str]:
        try:
            meta = self.stream.save(path)
        except (OSError, ValueError, RuntimeError) as err:
            self._warn("save_errors", f"cannot write {path} ({why}): {type(err).__name__}: {err}")
            return False, f"cannot write {path}: {err}"
        with self._lock:
            self.counters["saves"] += 1
        text = f"wrote {path} ({why}): {meta['optimiser_steps']} steps, {meta['windows']} windows"
        if self.context.ok():
            self.get_logger().info(text)
        else:  # at shutdown after SIGINT the context is gone, and /rosout with it
            logger.info(text)
        return True, text

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
        outcome = self.stream.add_frame(item.image, item.stamp, item.camera)
        if outcome.status in (SKIPPED_GAP, SKIPPED_STATIC):
            return
        if outcome.status != STEPPED:
            self._state = f"filling the window ({self.stream.window_length}/{self.params.stream.window_size})"
            return
        report = outcome.report
        if report.success:
            self._state = "adapting" if self.params.stream.adapt else "monitoring (adapt=false)"
        else:
            self._last_skip = report.reason
            self._state = "windows skipped by the BA"
            logger.info("window skipped: %s", report.reason)
        if report.guard == "rollback":
            self.get_logger().warning("BA inlier ratio dropped: matcher rolled back to the last good weights")
        p = self.params
        saved = self.stream.saved_at_step or 0
        if p.output_model and p.save_every_steps and self.stream.steps - saved >= p.save_every_steps:
            self._save(p.output_model, f"every {p.save_every_steps} steps")

    # -- diagnostics ---------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, float | int]:
        """Counters and figures (what /diagnostics reports), for tests and tools."""
        stream = self.stream
        with self._lock:
            values: dict[str, float | int] = dict(self.counters)
        for key in (*PROBLEMS, "received", "saves", "save_errors", "resets"):
            values.setdefault(key, 0)
        frames = dict(stream.counters)
        for key in ("frames", "kept", SKIPPED_GAP, SKIPPED_STATIC, "camera_changes", "time_jumps"):
            values[key] = frames.get(key, 0)
        values.update(stream.adapter.stats.as_dict())  # windows, successes, failed, one key per reason
        values["steps"] = stream.steps
        values["rollbacks"] = stream.adapter.guard.rollbacks
        values["manual_rollbacks"] = stream.manual_rollbacks
        values["window_length"] = stream.window_length
        values["queued"] = len(self._queue)
        times = list(stream.step_times)
        if times:
            values["mean_step_ms"] = float(np.mean(times) * 1e3)
        report = stream.last_report
        if report is not None:
            values["last_step_ms"] = 1e3 * report.step_s
            values["last_ba_ms"] = 1e3 * report.ba_s
            if report.success:
                values["last_loss"] = report.loss
                values["last_inlier_ratio"] = report.inlier_ratio
                values["last_rms_px"] = report.rms_px
        return values

    def _publish_diagnostics(self) -> None:
        values = self.snapshot()
        status = DiagnosticStatus(
            name=f"{self.get_name()}: matcher adaptation", hardware_id=str(self.stream.device)
        )
        problems = [k for k in PROBLEMS if values.get(k)]
        if values.get("save_errors"):
            status.level = DiagnosticStatus.ERROR
            problems.append("save_errors")
        else:
            status.level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        status.message = self._state + (f"; counted: {', '.join(problems)}" if problems else "")
        status.values = [
            KeyValue(key=k, value=f"{v:.6g}" if isinstance(v, float) else str(v))
            for k, v in sorted(values.items())
        ]
        status.values.append(KeyValue(key="state", value=self._state))
        status.values.append(KeyValue(key="adapt", value=str(self.params.stream.adapt).lower()))
        if self._last_skip:
            status.values.append(KeyValue(key="last_skip_reason", value=self._last_skip))
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

    def save_on_shutdown(self) -> None:
        """Write output_model unless the weights on disk are already the current ones."""
        if self._shutdown_saved or not self.params.output_model:
            return
        self._shutdown_saved = True
        if self.stream.saved_at_step is None or self.stream.steps > self.stream.saved_at_step:
            self._save(self.params.output_model, "shutdown")

    def destroy_node(self) -> None:
        self._running = False
        self._queue.close()
        if self._worker.is_alive():
            self._worker.join(timeout=60.0)  # a step in progress finishes
        self.save_on_shutdown()
        super().destroy_node()


def build_parser() -> argparse.ArgumentParser:
    """Only --help: the node is configured with ROS parameters (`--ros-args -p name:=value`)."""
    lines = []
    for spec in PARAMS:
        extra = f" (one of: {', '.join(spec.choices)})" if spec.choices else ""
        extra += f" [range {spec.range[0]} .. {spec.range[1]}]" if spec.range else ""
        lines.append(f"  {spec.name} (default {spec.default!r}): {spec.description}{extra}")
    return argparse.ArgumentParser(
        prog="imatching_node",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Online, label-free matcher adaptation (iMatching) on a live image stream. "
        "Subscribes image + camera_info, publishes /diagnostics, serves ~/save, ~/reset, ~/rollback.",
        epilog="usage: imatching_node --ros-args -p matcher:=PATH [-p output_model:=PATH] "
        "-r image:=TOPIC -r camera_info:=TOPIC\n\nROS parameters:\n"
        + "\n".join(lines)
        + "\n\nExit status: 0 after a clean shutdown, 2 when a parameter or the matcher is unusable.",
    )


def main(argv: list[str] | None = None) -> int:
    """`imatching_node --ros-args -p matcher:=PATH -r image:=TOPIC -r camera_info:=TOPIC`; 2 = bad start."""
    args = sys.argv if argv is None else ["imatching_node", *argv]
    own = args[1 : args.index("--ros-args")] if "--ros-args" in args else args[1:]
    build_parser().parse_args(own)  # --help exits here; anything else outside --ros-args is an error
    logging.basicConfig(level=logging.INFO, format="[imatching] %(levelname)s %(message)s", stream=sys.stderr)
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = ImatchingNode()
        except ValueError as err:
            print(f"imatching_node: cannot start: {err}", file=sys.stderr)
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
