"""The imatching ROS 2 node: online, label-free adaptation of the matcher on a live image stream.

A thin shell around imatching_online.online.StreamAdapter (docs/imatching-node.md). banet_vo's shared
CameraInput validates and converts: an image with the latest camera_info goes into a bounded latest-frame
queue, and one FrameWorker thread rectifies it (as banet_vo's node does: with its camera_info's
calibration, unless `rectify` is false, when the input is image_rect and P is its camera), selects
frames, keeps the sliding window and runs one adaptation step per full window (match -> robust BA ->
implicit-gradient step, or a counted skip when the BA fails). A slow step drops frames (counted), never
stalls the executor. /diagnostics reports steps, skips by reason, rollbacks, loss, BA inlier ratio, step
time and dropped frames. The adapted matcher is written to
`output_model` every `save_every_steps` steps, on `~/save` and at shutdown. A restarted node continues
from its own `output_model` when that holds an adaptation of the same base matcher (imatching_online.lineage;
`start_from:=matcher` starts over and says what it replaces). Each save is announced on the latched
~/matcher_updates (std_msgs/String, banet_vo.odometry.matcher_swap.MatcherUpdate JSON: path and version =
the weights' changes so far, optimiser steps and rollbacks of every session of the lineage), which
banet_vo's node takes without restarting (launch/vo_with_adaptation.launch.py). ~/save and ~/reset do not
wait for a running step; ~/rollback does (the executor is single-threaded, so it holds the callbacks).
Bad input is counted and warned about (throttled), never fatal; bad parameters or an unusable matcher
stop the node at start.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from banet_vo.geometry.rectify import Rectifier
from banet_vo.model.checkpoint import remove_stale_temps, unwritable_reason
from banet_vo.odometry import resolve_device
from banet_vo.odometry.matcher_swap import MatcherUpdate
from banet_vo.ros import log_bridge
from banet_vo.ros.camera_input import (
    IMAGES_STOPPED,
    REPEATED_IMAGE,
    STREAM_PROBLEMS,
    CameraFrame,
    CameraInput,
    EventCounters,
)
from banet_vo.ros.conversions import camera_info_to_input
from banet_vo.ros.frame_worker import DROPPED, ERRORS, FrameWorker
from banet_vo.ros.log_bridge import log_at
from banet_vo.ros.node_shell import (
    WAITING_FOR_CLOCK,
    NodeHelp,
    diagnostics,
    node_main,
    steady_timer,
    waiting_for_clock,
)
from banet_vo.ros.qos import latched_qos, reliable_qos
from banet_vo.ros.topics import MATCHER_UPDATES
from banet_vo.ros.vo_reporting import CounterWindow
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.logging import LoggingSeverity
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from imatching_online.adapt import NON_FINITE
from imatching_online.adapt_checkpoints import restore_resume_state, resume_state_path
from imatching_online.lineage import choose_start, lineage_meta, resolved_source, weights_version
from imatching_online.matcher.io import load_matcher
from imatching_online.online import (
    SKIPPED_GAP,
    SKIPPED_STATIC,
    STEPPED,
    WINDOW_RESTARTS,
    ResumeStateNotWritten,
    StreamAdapter,
)
from imatching_online.ros.params import PARAMS, NodeParams, declare_parameters

logger = logging.getLogger(__name__)

NODE_NAME = "imatching"
# Python loggers whose records the node forwards to its ROS logger.
LOGGERS = ("imatching_online", "banet_vo")
# Counters that mean something is wrong with the input or the node: /diagnostics says WARN while one grew
# within diagnostics_window. Not `dropped`: adaptation needs a window of frames, not every frame, and a
# node that adapts slower than its camera drops by design.
PROBLEMS = (*STREAM_PROBLEMS, ERRORS)


class ImatchingNode(Node):
    """imatching node; raises ValueError at construction for bad parameters or an unusable matcher."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(node_kwargs.pop("node_name", NODE_NAME), **node_kwargs)
        # Python logging of this package and of banet_vo's shared ROS code (QoS choice, camera input) goes
        # through the node's logger: /rosout, the log file, --log-level (first, so loading the matcher too).
        self._log_handlers = [(name, log_bridge.attach(self.get_logger(), name)) for name in LOGGERS]
        try:
            self.params: NodeParams = declare_parameters(self)
            self.stream = self._load(self.params)
            self._build()
        except BaseException:  # a node that did not start leaves no thread, handler or entity behind
            if getattr(self, "camera_input", None) is not None:
                self.camera_input.close()
            if getattr(self, "worker", None) is not None:
                self.worker.stop(timeout=10.0)
            self._detach_logs()
            super().destroy_node()
            raise

    def _build(self) -> None:
        """Everything after the parameters and the matcher: counters, publishers, services, the worker,
        the image input and the diagnostics timer."""
        p = self.params
        self.events = EventCounters(self.get_logger().warning)
        self._state = "waiting for images"
        self._last_skip = ""
        self._shutdown_saved = False
        self.shutdown_error: str | None = None  # run_node exits 1 with it (the last save failed)

        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", reliable_qos(depth=10))
        # Each saved version, for banet_vo's front end (latched: a node that starts later gets the last one).
        self.update_pub = self.create_publisher(String, "~/" + MATCHER_UPDATES, latched_qos(depth=1))
        self.published_version: int | None = None
        self._announce_lock = threading.Lock()
        if p.output_model and int(self.stream.source_meta.get("sessions", 1)) > 1:
            # Continued from output_model: announce the version the file holds (a listener that started
            # since, or that missed the last session's announcements, would keep older weights).
            self._announce(p.output_model, self.stream.weights_version)
        services = MutuallyExclusiveCallbackGroup()  # beside the images under a multi-threaded executor
        self.save_srv = self.create_service(Trigger, "~/save", self._on_save, callback_group=services)
        self.reset_srv = self.create_service(Trigger, "~/reset", self._on_reset, callback_group=services)
        self.rollback_srv = self.create_service(
            Trigger, "~/rollback", self._on_rollback, callback_group=services
        )
        self.worker = FrameWorker(
            self._process, self.events, p.queue_size, name="imatching_adapt", alive=self.context.ok
        )
        self.rectifier = Rectifier()
        # The camera from camera_info as banet_vo's node takes it (`rectify`): raw images are rectified here,
        # rectified ones (image_rect, rectify false) use P, so both nodes on one stream share the intrinsics.
        self.camera_input = CameraInput(
            self,
            p.image_qos,
            self.worker.put,
            self.events,
            transport=p.image_transport,
            camera_from_info=lambda msg: camera_info_to_input(msg, rectify=p.rectify),
            max_value_16bit=p.image_max_value_16bit,
        )
        self._window = CounterWindow(time.monotonic())  # starts with nothing counted
        self._diag_timer = steady_timer(self, p.diagnostics_period, self._publish_diagnostics)
        self.get_logger().info(
            f"ready: matcher {p.matcher} on {self.stream.device}, adapt={p.adapt.enabled}, window "
            f"{p.stream.window_size}, output {p.output_model or '(none: adapted weights are not saved)'}"
        )

    # -- start-up ------------------------------------------------------------------------------------
    def _load(self, p: NodeParams) -> StreamAdapter:
        if p.torch_threads > 0:
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
        if p.output_model:
            # Known now, not at the first save or at shutdown, where the adaptation would be lost.
            reason = unwritable_reason(p.output_model)
            if reason:
                raise ValueError(f"parameter output_model: cannot write {p.output_model}: {reason}")
            out = Path(p.output_model)  # temporaries of saves that a kill interrupted
            for stale in remove_stale_temps(out.parent, out.name):
                self.get_logger().warning(f"removed {stale}, left by a save that did not finish")
        try:
            choice = choose_start(matcher, base_meta, p.matcher, p.output_model, p.start_from, device)
        except ValueError as err:
            raise ValueError(f"parameter output_model: {err}") from err
        severity = LoggingSeverity.WARN if choice.replaces else LoggingSeverity.INFO
        log_at(self.get_logger(), severity, choice.message)
        source = {
            # resolved: a restart from another working directory must recognise its own output
            "adapted_from": resolved_source(p.matcher),
            "base_meta": base_meta,
            "source": p.source or self.resolve_topic_name("image"),
            **lineage_meta(choice),
        }
        stream = StreamAdapter(choice.matcher, p.stream, p.adapt, p.ba, device, source)
        if stream.adapter.anchor is not None:  # anchor_pull pulls towards the lineage's base, every session
            stream.adapter.anchor = [q.detach().clone() for q in choice.base_matcher.parameters()]
        if choice.resumed_meta is not None:
            self._restore_optimiser(stream, p.output_model, choice.resumed_meta)
        return stream

    def _restore_optimiser(self, stream: StreamAdapter, output: str, meta: dict) -> None:
        """Adam's moments and the rollback guard of the output continued from, when saved with it."""
        tag = {"lineage": meta.get("lineage"), "weights_version": weights_version(meta)}
        try:
            text = restore_resume_state(resume_state_path(output), stream.adapter, tag)
        except ValueError as err:
            self.get_logger().warning(f"{err}: Adam's moments and the rollback guard start anew")
            return
        self.get_logger().info(text)

    @property
    def image_sub(self) -> Any | None:
        """The image subscription, None while `auto` QoS waits for a publisher."""
        return self.camera_input.image_sub

    @property
    def info_sub(self) -> Any | None:
        return self.camera_input.info_sub

    # -- services --------------------------------------------------------------------------------------
    def _on_save(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        path = self.params.output_model
        if not path:
            response.success = False
            response.message = "output_model is empty: nothing to write to"
            return response
        response.success, response.message = self._save(path, "~/save")
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        queued = self.worker.clear()
        frames = self.stream.reset()
        self.events.add("resets")
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
        if response.success and self.params.output_model:  # announced now, as a guard's rollback is
            _, text = self._save(self.params.output_model, "~/rollback")
            response.message += f"; {text}"
        return response

    # -- worker thread -------------------------------------------------------------------------------
    def _save(self, path: str, why: str) -> tuple[bool, str]:
        try:
            meta = self.stream.save(path)
        except ResumeStateNotWritten as err:  # the matcher is written: announced, the rest said
            meta = err.meta
            self.events.warn("save_errors", f"{path} ({why}) written; {err}")
        except (OSError, ValueError, RuntimeError) as err:
            self.events.warn("save_errors", f"cannot write {path} ({why}): {type(err).__name__}: {err}")
            return False, f"cannot write {path}: {err}"
        self.events.add("saves")
        self._announce(path, int(meta["weights_version"]))
        text = f"wrote {path} ({why}): {meta['optimiser_steps']} steps, {meta['windows']} windows"
        if self.context.ok():
            self.get_logger().info(text)
        else:  # at shutdown after SIGINT the context is gone, and /rosout with it
            logger.info(text)
        return True, text

    def _announce(self, path: str, version: int) -> None:
        """Publish the saved matcher as a new version (its weights' change count) on ~/matcher_updates."""
        if not self.context.ok():
            return  # at shutdown there is nobody to tell
        update = MatcherUpdate(str(Path(path).resolve()), version, str(self.stream.source_meta["lineage"]))
        with self._announce_lock:
            # Saves run one at a time, their announcements after: a periodic save (worker thread) and a
            # ~/save (executor) could announce out of order, and the latched version would go back.
            if self.published_version is not None and version < self.published_version:
                return
            self.update_pub.publish(String(data=update.to_json()))
            self.published_version = version

    def _process(self, item: CameraFrame) -> None:
        image, camera = item.image, item.camera
        if item.calibration is not None:
            image, camera = self.rectifier.rectify(image, item.calibration)
        outcome = self.stream.add_frame(image, item.stamp, camera)
        if outcome.status in (SKIPPED_GAP, SKIPPED_STATIC):
            return
        if outcome.status != STEPPED:
            self._state = f"filling the window ({self.stream.window_length}/{self.params.stream.window_size})"
            return
        report = outcome.report
        if report.success:
            self._state = "adapting" if self.params.adapt.enabled else "monitoring (adapt=false)"
        elif report.reason == NON_FINITE:
            self._last_skip = report.reason
            self._state = "no step: a window's loss or gradient was not finite"
            self.get_logger().warning(
                "a window's loss or gradient was not finite: no step taken (weights and Adam unchanged)",
                throttle_duration_sec=10.0,
            )
        else:
            self._last_skip = report.reason
            self._state = "windows skipped by the BA"
            logger.info("window skipped: %s", report.reason)
        p = self.params
        if report.guard == "rollback":
            self.get_logger().warning("BA inlier ratio dropped: matcher rolled back to the last good weights")
            if p.output_model:  # announced now: a listener must not keep the weights the guard rejected
                self._save(p.output_model, "rolled back")
                return
        saved = self.stream.saved_at_step or 0
        if p.output_model and p.save_every_steps and self.stream.steps - saved >= p.save_every_steps:
            self._save(p.output_model, f"every {p.save_every_steps} steps")

    # -- diagnostics ---------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, float | int]:
        """Counters and figures (what /diagnostics reports), for tests and tools."""
        stream = self.stream
        values: dict[str, float | int] = dict(self.events.as_dict())
        for key in (*PROBLEMS, DROPPED, REPEATED_IMAGE, "received", "saves", "save_errors", "resets"):
            values.setdefault(key, 0)
        frames = dict(stream.counters)
        for key in (
            "frames",
            "kept",
            SKIPPED_GAP,
            SKIPPED_STATIC,
            WINDOW_RESTARTS,
            "camera_changes",
            "time_jumps",
            NON_FINITE,
        ):
            values[key] = frames.get(key, 0)
        values.update(stream.adapter.stats.as_dict())  # windows, successes, failed, one key per reason
        values["steps"] = stream.steps
        values["rollbacks"] = stream.adapter.guard.rollbacks
        values["manual_rollbacks"] = stream.manual_rollbacks
        values["window_length"] = stream.window_length
        values["queued"] = len(self.worker)
        if self.published_version is not None:
            values["published_version"] = self.published_version
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

    def windowed(self, now: float | None = None) -> dict[str, float]:
        """Counter increases over the last `diagnostics_window` seconds (keys `recent_<counter>`) and the
        rate of frames taken into the stream over it; records the current totals for later windows."""
        now = time.monotonic() if now is None else now
        keys = ("received", "frames", DROPPED, NON_FINITE, *PROBLEMS)
        return self._window.update(now, self.snapshot(), self.params.diagnostics_window, keys, "frames")

    def _state_text(self, recent: dict[str, float] | None = None) -> str:
        if waiting_for_clock(self) and self.events.get("received") == 0:
            return WAITING_FOR_CLOCK
        return self.camera_input.input_state(self._state, recent, "frames", self.params.diagnostics_window)

    def _publish_diagnostics(self) -> None:
        recent = self.windowed()
        values = {**self.snapshot(), **recent}
        standing = self.camera_input.standing_problems(recent)
        values[IMAGES_STOPPED] = int(IMAGES_STOPPED in standing)
        extra = {"adapt": str(self.params.adapt.enabled).lower()}
        if self._last_skip:
            extra["last_skip_reason"] = self._last_skip
        msg = diagnostics(
            self,
            "matcher adaptation",
            str(self.stream.device),
            self._state_text(recent),
            values,
            [*(f"recent_{k}" for k in (*PROBLEMS, NON_FINITE)), *standing, "save_errors"],
            level=DiagnosticStatus.ERROR if values.get("save_errors") else None,
            extra=extra,
        )
        self.diag_pub.publish(msg)

    # -- helpers for in-process users ----------------------------------------------------------------
    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or running (True), or timeout (False)."""
        return self.worker.wait_idle(timeout)

    def save_on_shutdown(self) -> None:
        """Write output_model unless the weights on disk are already the current ones."""
        if self._shutdown_saved or not self.params.output_model:
            return
        self._shutdown_saved = True
        saved = self.stream.saved_version
        if saved is None or self.stream.weights_version != saved:  # a rollback changes weights, not steps
            ok, message = self._save(self.params.output_model, "shutdown")
            if not ok:  # the adaptation since the last save is lost: the exit status says so
                self.shutdown_error = f"{message} (shutdown): the adaptation since the last save is lost"

    def destroy_node(self) -> None:
        self.worker.stop(timeout=60.0)  # a step in progress finishes
        self.save_on_shutdown()
        self._detach_logs()
        super().destroy_node()

    def _detach_logs(self) -> None:
        for name, handler in self._log_handlers:
            log_bridge.detach(handler, name)
        self._log_handlers = []


HELP = NodeHelp(
    description="Online, label-free matcher adaptation (iMatching) on a live image stream. Subscribes "
    "image + camera_info, publishes /diagnostics and ~/matcher_updates (each saved version), serves "
    "~/save, ~/reset, ~/rollback.",
    usage="{prog} --ros-args -p matcher:=PATH [-p output_model:=PATH] -r image:=TOPIC -r camera_info:=TOPIC",
    table=PARAMS,
    unusable="a parameter or the matcher",
)


def main(argv: list[str] | None = None) -> int:
    """`imatching_node --ros-args -p matcher:=PATH -r image:=TOPIC -r camera_info:=TOPIC`; 2 = bad start."""
    return node_main(
        ImatchingNode, HELP, argv, executable="imatching_node", prog="imatching_node", log_tag="imatching"
    )


if __name__ == "__main__":
    sys.exit(main())
