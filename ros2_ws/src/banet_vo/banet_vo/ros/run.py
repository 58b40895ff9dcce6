"""`banet-vo-run BAG --out DIR`: the node and the bag player as one real rclpy graph, outputs recorded.

One process: the banet_vo node, the BagPlayer and a recorder node on one SingleThreadedExecutor (over
loopback DDS, exactly what `ros2 bag play` + `ros2 run` would do). When the bag has been played and the
node has processed its last frame (or --timeout passed), it writes to DIR:

- trajectory.tum: odom → base_link, as published on ~/odometry (TUM: stamp x y z qx qy qz qw), input stamps
- trajectory_camera.tum: the optical camera poses (odom → base_link → camera), comparable to the GT
- depth/<stamp>.npy (float32 metres, NaN invalid) and depth/<stamp>.png colour maps (not with --no-plots),
  every --depth-every
- metrics.json, always: counters of the node (processed, dropped, failed, …), frames processed and poses
  published per second; with trajectory metrics (ATE, RPE) when the bag has /ground_truth/odometry (and
  "trajectory_errors", the reason per alignment, when they cannot be computed: stamps that do not match) and
  depth metrics (abs rel …) when it has /camera/depth/image; with --profile, the wall time of each
  odometry stage by thread ("stages": XFeat, matching, PnP, optical flow, window BA, BA-Net)
- gt.tum and plots (trajectory top view, ATE over time) when the bag has /ground_truth/odometry

Ctrl-C stops the playback: the frames already sent are processed and the outputs written ("interrupted" in
metrics.json), and the exit status is 130; a second Ctrl-C drops the queued frames, a third stops at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import yaml
from evo.core.geometry import GeometryException
from nav_msgs.msg import Odometry
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, Image

from banet_vo.data import compressed_image
from banet_vo.data.bag_tf import static_transforms, transform_between
from banet_vo.data.bags import (
    CAMERA_INFO_TOPIC,
    DEPTH_TOPIC,
    IMAGE_TOPIC,
    ODOMETRY_TOPIC,
    TF_STATIC_TOPIC,
    BagReader,
    depth_from_message,
    find_image_topic,
    pose_from_message,
    stamp_ns,
)
from banet_vo.evaluation import (
    evaluate_trajectory,
    trajectory_from_poses,
    write_tum,
)
from banet_vo.evaluation.depth import published_depth_metrics
from banet_vo.evaluation.report import write_json
from banet_vo.evaluation.stage_times import StageTimes, format_summary, timed_stages
from banet_vo.geometry.rigid import pose_matrix
from banet_vo.model.shipped import DEFAULT_MODEL_NAME, ament_model_dirs, shipped_copy
from banet_vo.ros import topics
from banet_vo.ros.bag_player import PLAYER_QOS, BagPlayer
from banet_vo.ros.camera_input import REPEATED_IMAGE, STREAM_PROBLEMS
from banet_vo.ros.conversions import image_to_numpy, stamp_to_ns
from banet_vo.ros.entry import INTERRUPTED_STATUS
from banet_vo.ros.executor_thread import ExecutorThread
from banet_vo.ros.params import PARAMS, base_camera_transform, mount_parameters, shipped_model
from banet_vo.ros.qos import reliable_qos
from banet_vo.ros.vo_node import BAD_EXTRINSIC, NO_EXTRINSIC, VONode

logger = logging.getLogger(__name__)

# Offline every frame counts: the player keeps this many samples per topic for DDS to retransmit, and the
# node pairs an image with a camera_info that far apart (a stalled delivery on loopback held images or
# camera_infos back by up to ~3 s, which the defaults of 10 turned into lost frames).
REPLAY_DEPTH = 100
_NS = 1_000_000_000


def _log(text: str) -> None:
    print(f"[banet-vo-run] {text}", file=sys.stderr, flush=True)


@dataclass
class Recording:
    """What the recorder node received from the VO node."""

    odometry: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)  # (ns, T 4x4, cov 6x6)
    depth: dict[int, np.ndarray] = field(default_factory=dict)  # ns → float32 depth (NaN invalid)
    depth_info: dict[int, Any] = field(default_factory=dict)
    depth_seen: int = 0


class Recorder(Node):
    """Subscribes to the node's outputs; keeps every odometry and every `depth_every`-th depth map."""

    def __init__(self, context: Context, vo_namespace: str, depth_every: int) -> None:
        super().__init__("banet_vo_run_recorder", context=context)
        self.lock = threading.Lock()
        self.data = Recording()
        self.depth_every = depth_every
        qos = reliable_qos(depth=1000)
        odometry, depth, info = (
            topics.output_topic(name, vo_namespace)
            for name in (topics.ODOMETRY, topics.DEPTH_IMAGE, topics.DEPTH_CAMERA_INFO)
        )
        self.create_subscription(Odometry, odometry, self._on_odometry, qos)
        self.create_subscription(Image, depth, self._on_depth, qos)
        self.create_subscription(CameraInfo, info, self._on_info, qos)

    def _on_odometry(self, msg: Odometry) -> None:
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        T = pose_matrix([p.x, p.y, p.z], [q.x, q.y, q.z, q.w])
        with self.lock:
            self.data.odometry.append(
                (stamp_to_ns(msg.header.stamp), T, np.reshape(msg.pose.covariance, (6, 6)))
            )

    def _on_depth(self, msg: Image) -> None:
        with self.lock:
            keep = self.data.depth_seen % self.depth_every == 0
            self.data.depth_seen += 1
        if keep:
            depth = image_to_numpy(msg)
            with self.lock:
                self.data.depth[stamp_to_ns(msg.header.stamp)] = depth

    def _on_info(self, msg: CameraInfo) -> None:
        with self.lock:
            self.data.depth_info[stamp_to_ns(msg.header.stamp)] = msg

    def count(self) -> int:
        with self.lock:
            return len(self.data.odometry)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="banet-vo-run",
        description="Run the banet_vo node on a ROS 2 bag (in-process rclpy graph) and write the trajectory, "
        "depth maps, metrics against ground truth (when the bag has it) and plots.",
    )
    parser.add_argument("bag", type=Path, help="rosbag2 directory (banet-vo-bag layout: /camera/image_raw …)")
    parser.add_argument(
        "--out", type=Path, required=True, help="output directory (created; files overwritten)"
    )
    parser.add_argument(
        "--model",
        default=None,
        help=f"BA-Net checkpoint (default: the shipped {DEFAULT_MODEL_NAME}, installed with the package)",
    )
    device = PARAMS["device"]  # the node's parameter: one default, one list of choices
    parser.add_argument(
        "--device",
        default=device.default,
        choices=device.choices,
        help=f"{device.description} (default: {device.default})",
    )
    parser.add_argument("--rate", type=float, default=1.0, help="bag playback speed factor (default: 1.0)")
    parser.add_argument(
        "--params-file",
        type=Path,
        default=None,
        help="node parameters YAML (rcl's format; the entries you change from "
        "ros2_ws/src/banet_vo/config/banet_vo.yaml, which lists them all: vo_node --help)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="node parameter override (repeatable), e.g. --param keyframe_mode:=consecutive",
    )
    parser.add_argument(
        "--queue-size",
        type=int,
        default=100,
        help="node frame queue (large: process every frame; default 100)",
    )
    parser.add_argument(
        "--image-topic",
        default=IMAGE_TOPIC,
        help=f"image topic in the bag (default {IMAGE_TOPIC}); sensor_msgs/Image, or CompressedImage on "
        "TOPIC/compressed (found by itself when TOPIC is not in the bag)",
    )
    parser.add_argument(
        "--camera-info-topic",
        default=None,
        help="camera_info topic (default: camera_info beside the image topic, as image_transport pairs them: "
        f"{CAMERA_INFO_TOPIC} for {IMAGE_TOPIC})",
    )
    parser.add_argument(
        "--qos",
        choices=PLAYER_QOS,
        default="auto",
        help="the player's publisher reliability: auto (default) as the bag recorded it, sensor best effort, "
        "reliable",
    )
    parser.add_argument("--depth-every", type=int, default=10, help="save every N-th depth map (default 10)")
    parser.add_argument("--until", type=float, default=None, help="play only the first SECONDS of the bag")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait for the node after the bag ends (default 600)",
    )
    parser.add_argument(
        "--no-plots",
        action="store_true",
        help="skip the matplotlib figures (trajectory, ATE and the depth .png maps; the .npy depth stays)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="time the odometry's stages (XFeat, matching, PnP, optical flow, window BA, BA-Net) per thread "
        "and report where the time per frame goes (printed and in metrics.json 'stages')",
    )
    return parser


# PyYAML reads YAML 1.1, where a float needs a "." and a signed exponent: "5e-05" and "1e3" come back as
# strings. rcl reads them as doubles, so --param (and our reading of --params-file) does too.
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _param_value(value: Any) -> Any:
    """A YAML-read parameter value as the node must get it: scientific notation is a float, and a list of
    ints and floats (intrinsics:=[707.1, 707.1, 601.9, 183.1, 1226, 370]) a list of floats, since rclpy
    refuses a list of mixed types."""
    if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value):
        return float(value)
    if isinstance(value, list):
        items = [_param_value(v) for v in value]
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in items)
        if numbers and any(isinstance(v, float) for v in items):
            return [float(v) for v in items]
        return items
    return value


def _parse_param(item: str) -> Parameter:
    name, sep, text = item.partition(":=")
    if not sep or not name:
        raise ValueError(f"--param must look like NAME:=VALUE, got {item!r}")

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"--param {name}: cannot parse {text!r}: {err}") from err
    try:
        return Parameter(name, value=_param_value(value))
    except TypeError as err:  # a type no ROS parameter has (a mapping, a list of strings and numbers …)
        raise ValueError(f"--param {name}: {err}") from err


def _yaml_floats(values: list[float]) -> str:
    """A list of floats as --param text that YAML reads back as floats (positional: no "5e-05")."""
    return "[" + ", ".join(np.format_float_positional(float(v), trim="0") for v in values) + "]"


def _validate(args: argparse.Namespace, check_model: bool = True) -> None:
    """ValueError for bad arguments; sets the topics the bag is played on (bag_image_topic, its
    image_transport, image_base_topic for the node's remapping, camera_info_topic when not given, and
    play_topics, those of them the bag has and the node subscribes)."""
    reader = BagReader(args.bag)  # refuses what no reader can read (no metadata.yaml and no storage file)
    if check_model and args.model is None:
        try:
            args.model = str(shipped_model())
        except FileNotFoundError as err:
            raise ValueError(f"--model not given, and {err}") from err
    if check_model and not Path(args.model).is_file():
        # models/NAME (the README's spelling) from outside the checkout: the installed copy, as the node does
        installed = shipped_copy(args.model, ament_model_dirs())
        if installed is not None:
            args.model = str(installed)
    if check_model and not Path(args.model).is_file():
        raise ValueError(
            f"--model: {args.model} does not exist (train one with banet-vo-train, or pass --model PATH)"
        )
    if not args.rate > 0:
        raise ValueError(f"--rate must be > 0, got {args.rate}")
    if args.depth_every < 1:
        raise ValueError(f"--depth-every must be >= 1, got {args.depth_every}")
    if args.params_file is not None and not args.params_file.is_file():
        raise ValueError(f"--params-file: {args.params_file} does not exist")
    given = _given_params(args)
    with reader:
        # The topic the images are played on, and the node's image_transport for it.
        args.bag_image_topic, args.image_transport = find_image_topic(reader.topics, args.image_topic)
        # image_transport's naming: the node is given the base topic and appends "/compressed" itself.
        args.image_base_topic = args.bag_image_topic
        if args.image_transport == compressed_image.TRANSPORT:
            args.image_base_topic = compressed_image.base_topic(args.bag_image_topic)
        if args.camera_info_topic is None:
            args.camera_info_topic = topics.camera_info_beside(args.image_base_topic)
        elif not args.camera_info_topic.startswith("/"):
            args.camera_info_topic = "/" + args.camera_info_topic
        args.play_topics = [args.bag_image_topic]
        if _has_intrinsics(given):
            pass  # with intrinsics the node subscribes no camera_info: the player would wait for a subscriber
        elif args.camera_info_topic not in reader.topics:
            infos = sorted(t.name for t in reader.topics.values() if t.msgtype.endswith("/CameraInfo"))
            raise ValueError(
                f"the bag has no {args.camera_info_topic}, and nothing else would publish camera_info: "
                + (f"--camera-info-topic one of {', '.join(infos)}, or " if infos else "")
                + "--param intrinsics:=[fx, fy, cx, cy, width, height] for rectified images"
            )
        else:
            args.play_topics.append(args.camera_info_topic)
        first = next(reader.messages([args.bag_image_topic]), None)
        if first is not None and not first[1].header.frame_id and not given.get("camera_frame"):
            # the node would refuse every image (depth, points and tf would name no frame)
            raise ValueError(
                f"the images on {args.bag_image_topic} have no header.frame_id: pass --param "
                "camera_frame:=<the camera's optical frame>"
            )
        if TF_STATIC_TOPIC in reader.topics and first is not None:
            _extrinsic_from_bag(args, reader, given, first[1])
    # The player plays neither /tf nor /tf_static: where tf2_ros is importable (a distro), auto would hold
    # the first extrinsic_timeout seconds of frames waiting for a transform that never comes. (An explicit
    # tf stays: a robot_state_publisher run beside the replay can serve it.)
    if "camera_extrinsic_source" not in given:
        args.param.append("camera_extrinsic_source:=parameters")


def _has_intrinsics(given: dict[str, Any]) -> bool:
    intrinsics = given.get("intrinsics")
    return isinstance(intrinsics, list) and any(intrinsics)


def _params_file_values(path: Path) -> dict[str, Any]:
    """{name: value} the node takes from a params file (rcl's format: node name → ros__parameters): the
    entries for every node ("/**", "/*") or for banet_vo, a later one over an earlier, as rclpy merges."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"--params-file {path}: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"--params-file {path}: expected node names mapping to ros__parameters")
    values: dict[str, Any] = {}
    for key, entry in data.items():
        params = entry.get("ros__parameters") if isinstance(entry, dict) else None
        if str(key).lstrip("/") in ("**", "*", topics.NODE_NAME) and isinstance(params, dict):
            values.update(_flatten(params))
    return {name: _param_value(value) for name, value in values.items()}


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML mappings as the dotted parameter names rcl gives them."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _given_params(args: argparse.Namespace) -> dict[str, Any]:
    """{name: value} the user set for the node: --params-file's, with the --param items over them (the last
    one of a name wins), the order in which the node applies them."""
    given = _params_file_values(args.params_file) if args.params_file is not None else {}
    given.update({p.name: p.value for p in map(_parse_param, args.param)})
    return given


def _extrinsic_from_bag(
    args: argparse.Namespace, reader: BagReader, given: dict[str, Any], first_image: Any
) -> None:
    """The camera's mounting from the bag's /tf_static (robot_state_publisher's tree): base_frame → the
    images' frame_id, passed on as --param base_camera_xyz/rpy (there is no tf2_ros buffer to ask here).
    Nothing is added when the tree does not connect the two frames, or when --params-file or --param set
    base_camera_* (theirs win; a warning when they differ from the tree's). `first_image`: the bag's first
    image message."""
    camera = given.get("camera_frame", PARAMS["camera_frame"].default)
    camera = camera or first_image.header.frame_id.lstrip("/")
    base = given.get("base_frame", PARAMS["base_frame"].default)
    tree = static_transforms(msg for _, msg in reader.messages([TF_STATIC_TOPIC]))
    T = transform_between(tree, base, camera)
    if T is None:
        _log(
            f"the bag's {TF_STATIC_TOPIC} does not connect {base} and {camera}: the camera extrinsic is "
            "base_camera_xyz/rpy's (pass them, or --param base_frame:=... a frame of the tree)"
        )
        return
    xyz, rpy = mount_parameters(T)
    set_by_user = [name for name in ("base_camera_xyz", "base_camera_rpy") if name in given]
    if set_by_user:
        mine = [given.get(name, PARAMS[name].default) for name in ("base_camera_xyz", "base_camera_rpy")]
        if not np.allclose(base_camera_transform(*mine), T, atol=1e-6):
            # e.g. a copy of config/banet_vo.yaml, which lists every parameter at its default
            _log(
                f"warning: the bag's {TF_STATIC_TOPIC} has {base} → {camera} at xyz {xyz} m, rpy {rpy} rad, "
                f"but {' and '.join(set_by_user)} from --params-file or --param win (xyz {mine[0]}, rpy "
                f"{mine[1]}); leave them out to use the bag's"
            )
        return
    # Passed as --param, these beat the user's --params-file: so they are only derived when neither it nor
    # --param sets base_camera_*, and the extrinsic source is left to an explicit choice.
    args.param += [f"base_camera_xyz:={_yaml_floats(xyz)}", f"base_camera_rpy:={_yaml_floats(rpy)}"]
    _log(f"camera extrinsic {base} → {camera} from the bag's {TF_STATIC_TOPIC}: xyz {xyz} m, rpy {rpy} rad")


@dataclass
class GraphRun:
    recording: Recording
    counters: dict[str, Any]
    wall_s: float  # from the first message played to the node going idle
    T_base_camera: np.ndarray
    stages: list[dict] | None = None  # --profile: stage_times.StageTimes.summary()
    interrupts: int = 0  # Ctrl-Cs during the replay (the first stopped the playback)

    @property
    def interrupted(self) -> bool:
        """Ctrl-C stopped the playback: the outputs cover the frames sent before it."""
        return self.interrupts > 0


def run_graph(args: argparse.Namespace, context: Context, estimator: Any = None) -> GraphRun:
    """Play the bag through the node and record what it publishes (estimator: instead of --model). Its
    Ctrl-C handler stays installed after it returns, so that the outputs are written under the same count
    of interrupts: the caller restores the previous handler."""

    cli_args = [
        "--ros-args",
        "-r",
        f"image:={args.image_base_topic}",
        "-r",
        f"camera_info:={args.camera_info_topic}",
    ]
    if args.params_file is not None:
        cli_args += ["--params-file", str(args.params_file)]
    overrides = [
        # no model with a programmatic estimator: the node does not load one
        *([Parameter("model", value=str(args.model))] if args.model is not None else []),
        Parameter("device", value=args.device),
        Parameter("queue_size", value=args.queue_size),
        Parameter("image_transport", value=args.image_transport),
        Parameter("sync_queue_size", value=REPLAY_DEPTH),
        *(_parse_param(p) for p in args.param),
    ]
    node = VONode(estimator=estimator, context=context, cli_args=cli_args, parameter_overrides=overrides)
    recorder = Recorder(context, "/", args.depth_every)
    player = None
    executor = SingleThreadedExecutor(context=context)  # as the node's own main (node_shell.run_node)
    spinner = None
    try:
        executor.add_node(node)
        executor.add_node(recorder)
        spinner = ExecutorThread(executor, "banet-vo-run executor")
        player = BagPlayer(
            context,
            args.bag,
            rate=args.rate,
            qos=args.qos,
            topics=args.play_topics,
            progress=sys.stderr,
            depth=REPLAY_DEPTH,
        )
        # Both ends must have matched, or the first frames are lost (volatile durability).
        if not (player.wait_for_subscribers(timeout=10.0) and node.camera_input.wait_for_publishers(10.0)):
            raise RuntimeError("the node did not subscribe to the bag's image and camera_info within 10 s")
        started = time.monotonic()
        interrupts: list[float] = []

        def on_sigint(*_) -> None:
            # 1st: stop playing, finish what was sent, write the outputs; 2nd: drop the queued frames too;
            # 3rd: KeyboardInterrupt, no outputs. Only a list append and the player's lock-free stop here:
            # a handler runs between two bytecodes of the main thread, which may be holding the very lock
            # (the worker's queue) or stream (stderr) the rest would take; the main thread does that
            # (heed_interrupts).
            interrupts.append(time.monotonic())
            player.stop()
            if len(interrupts) >= 3:
                raise KeyboardInterrupt

        heeded = 0

        def heed_interrupts() -> None:
            nonlocal heeded
            while heeded < len(interrupts):
                heeded += 1
                if heeded == 1:
                    print(file=sys.stderr)  # past the player's progress line
                    _log(
                        "interrupted: playback stopped; the frames already sent are processed and the "
                        "outputs written (Ctrl-C again drops the queued frames)"
                    )
                else:
                    dropped = node.worker.clear()
                    _log(f"interrupted again: {dropped} queued frames dropped (again: stop without outputs)")

        signal.signal(signal.SIGINT, on_sigint)
        stats = player.play(until=args.until, delay=0.3)
        images = stats.per_topic.get(args.bag_image_topic, 0)
        if not node.camera_input.wait_received(images, timeout=10.0):
            _log(f"warning: the node received {node.snapshot()['received']:.0f} of {images} images")
        if not node.camera_input.wait_paired(timeout=10.0):
            _log(f"warning: {node.camera_input.waiting()} images never got their camera_info")
        idle_by = time.monotonic() + args.timeout
        while not node.wait_idle(min(0.2, max(idle_by - time.monotonic(), 0.0))):
            heed_interrupts()
            if time.monotonic() >= idle_by:
                _log(f"warning: the node was still busy after --timeout {args.timeout} s")
                break
        heed_interrupts()
        wall = time.monotonic() - started
        published = int(node.snapshot()["published"])
        deadline = time.monotonic() + 10.0
        while recorder.count() < published and time.monotonic() < deadline:
            time.sleep(0.02)
        return GraphRun(
            recorder.data, node.snapshot(), wall, node.vo.config.T_base_camera, interrupts=len(interrupts)
        )
    finally:
        if player is not None:
            player.close()
        if spinner is not None:
            spinner.close(timeout=5.0)
        else:
            executor.shutdown(timeout_sec=5.0)
        node.destroy_node()
        recorder.destroy_node()


def _ground_truth(bag: Path) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """GT camera poses and depth maps by stamp, straight from the bag (empty when it has none)."""

    poses: dict[int, np.ndarray] = {}
    depths: dict[int, np.ndarray] = {}
    with BagReader(bag) as reader:
        topics = reader.topics
        wanted = [t for t in (ODOMETRY_TOPIC, DEPTH_TOPIC) if t in topics]
        for record, msg in reader.messages(wanted) if wanted else []:
            if record.topic == ODOMETRY_TOPIC:
                poses[stamp_ns(msg.header)] = pose_from_message(msg.pose.pose)
            else:
                depths[stamp_ns(msg.header)] = depth_from_message(msg)
    return poses, depths


def write_outputs(args: argparse.Namespace, run: GraphRun) -> dict:
    """Write trajectories, depth maps, metrics and plots to args.out; returns the summary dict."""

    data, counters, wall = run.recording, run.counters, run.wall_s
    out: Path = args.out
    (out / "depth").mkdir(parents=True, exist_ok=True)
    odometry = sorted(data.odometry, key=lambda item: item[0])
    summary: dict[str, Any] = {
        "bag": str(args.bag),
        "model": str(args.model) if args.model is not None else "(estimator given programmatically)",
        "frames_published": len(odometry),
        "wall_s": wall,
        "frames_per_s": len(odometry) / wall if wall > 0 else 0.0,  # poses published per second
        "processed_per_s": counters.get("processed", 0) / wall if wall > 0 else 0.0,
        "node": counters,
        "interrupted": run.interrupted,
    }
    if run.stages is not None:
        summary["stages"] = run.stages
    if not odometry:
        raise RuntimeError("the node published no odometry (see the warnings above)")
    stamps = np.array([ns for ns, _, _ in odometry], dtype=np.int64)
    seconds = stamps / _NS
    T_base = np.stack([T for _, T, _ in odometry])
    T_cam = T_base @ run.T_base_camera
    write_tum(out / "trajectory.tum", trajectory_from_poses(seconds, T_base))
    write_tum(out / "trajectory_camera.tum", trajectory_from_poses(seconds, T_cam))

    for ns, depth in sorted(data.depth.items()):
        np.save(out / "depth" / f"{ns}.npy", depth.astype(np.float32))
    gt_poses, gt_depths = _ground_truth(args.bag)

    plots = not args.no_plots
    if plots:
        # matplotlib only when plots are asked for (evaluation/__init__ keeps plots out for this reason)
        from banet_vo.evaluation.plots import plot_depth

        for ns, depth in sorted(data.depth.items()):
            plot_depth(depth, out / "depth" / f"{ns}.png", title=f"depth {ns / _NS:.3f} s")

    if gt_poses:
        gt_ns = np.array(sorted(gt_poses), dtype=np.int64)
        gt = trajectory_from_poses(gt_ns / _NS, np.stack([gt_poses[n] for n in gt_ns]))
        write_tum(out / "gt.tum", gt)
        est = trajectory_from_poses(seconds, T_cam)
        metrics: dict[str, Any] = {}
        for align in ("se3", "sim3"):
            if len(odometry) < 3:
                metrics[align] = {"error": f"{len(odometry)} poses: too few to align"}
                continue
            try:
                report = evaluate_trajectory(est, gt, align=align, max_diff=1e-3)
            # GeometryException: e.g. a straight-line trajectory, Umeyama is degenerate; ValueError: no
            # pose's stamp matches a ground-truth stamp (GT from another clock): metrics.json still follows
            except (GeometryException, ValueError) as err:
                _log(f"warning: {align} trajectory evaluation failed: {err}")
                metrics[align] = {"error": str(err)}
                continue
            metrics[align] = report.as_dict()
            metrics[align].pop("timestamps", None)
            if plots:
                from banet_vo.evaluation.plots import plot_error_over_time, plot_trajectory_top_view

                plot_trajectory_top_view(
                    report.gt_xyz,
                    report.est_xyz,
                    out / f"trajectory_{align}.png",
                    title=f"banet_vo vs ground truth ({align} aligned)",
                )
                plot_error_over_time(
                    report.timestamps, report.ate_errors, out / f"ate_{align}.png", title=f"ATE ({align})"
                )
        summary["trajectory"] = {
            a: {
                "ate_rmse_m": m["ate_m"]["rmse"],
                "rpe_trans_rmse_m": m["rpe_translation_m"]["rmse"],
                "rpe_rot_rmse_deg": m["rpe_rotation_deg"]["rmse"],
                "scale": m["scale"],
            }
            for a, m in metrics.items()
            if "error" not in m
        }
        failed = {a: m["error"] for a, m in metrics.items() if "error" in m}
        if failed:
            summary["trajectory_errors"] = failed
        write_json(out / "metrics_trajectory.json", metrics)
    if gt_depths and data.depth:
        summary["depth"] = _depth_metrics(data.depth, gt_depths)
    write_json(out / "metrics.json", summary)  # strict JSON: a NaN (no BA cost yet) is null
    return summary


def _depth_metrics(pred: dict[int, np.ndarray], gt: dict[int, np.ndarray]) -> dict[str, Any]:
    """Mean depth metrics over the saved maps that have GT (evaluation.depth.published_depth_metrics: a
    pixel the node published invalid is left out and counted by coverage; a map with none where the truth
    has depth is counted in `maps_without_depth`)."""
    pairs = [(depth, gt[ns]) for ns, depth in sorted(pred.items()) if ns in gt]
    metrics, empty = published_depth_metrics(pairs)
    if metrics is None and not empty:
        return {}
    out = metrics.as_dict() if metrics is not None else {}
    out["frames"] = len(pairs) - empty
    out["maps_without_depth"] = empty
    return out


# The counters of input a replay's summary names when they are not 0: the camera input's, and frames
# dropped for want of a usable camera extrinsic.
INPUT_PROBLEM_COUNTERS = (*STREAM_PROBLEMS, REPEATED_IMAGE, NO_EXTRINSIC, BAD_EXTRINSIC)


def _print_summary(summary: dict[str, Any]) -> None:
    node = summary["node"]
    _log(
        f"{summary['frames_published']} poses in {summary['wall_s']:.1f} s "
        f"({summary['frames_per_s']:.2f} poses/s); processed {int(node['processed'])} "
        f"({summary['processed_per_s']:.2f} frames/s), dropped {int(node['dropped'])}, "
        f"failed {int(node['failed'])}"
    )
    if summary.get("interrupted"):
        _log(
            f"interrupted (Ctrl-C): the outputs cover the {int(node['processed'])} frames processed of the "
            f"{int(node['received'])} received"
        )
    problems = [f"{key} {int(node[key])}" for key in INPUT_PROBLEM_COUNTERS if node.get(key)]
    if problems:  # the node warned as they came; a replay's summary is read after the scroll
        _log(f"warning: the input had problems: {', '.join(problems)} (docs/node.md, Diagnostics)")
    for align, m in summary.get("trajectory", {}).items():
        _log(
            f"ATE ({align}) {m['ate_rmse_m']:.3f} m   RPE {m['rpe_trans_rmse_m']:.3f} m / "
            f"{m['rpe_rot_rmse_deg']:.3f} deg per frame   scale {m['scale']:.3f}"
        )
    if summary.get("stages") is not None:
        _log("where the time went (wall clock per call, by thread; --profile):")
        for line in format_summary(summary["stages"], int(node["processed"])):
            _log(line)
    d = summary.get("depth") or {}
    if "abs_rel" in d:
        _log(
            f"depth abs rel {d['abs_rel']:.3f}  RMSE {d['rmse']:.3f} m  δ<1.25 {d['delta_1']:.3f} "
            f"({d['frames']} maps, {d['coverage']:.0%} of the ground truth's pixels with a depth)"
        )
    if d.get("maps_without_depth"):
        _log(f"depth: {d['maps_without_depth']} map(s) had no depth where the ground truth has one")


def main(argv: list[str] | None = None, estimator: Any = None) -> int:
    """CLI entry point; `estimator` (programmatic use) replaces the model loaded from --model."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="[banet-vo-run] %(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        _validate(args, check_model=estimator is None)
    except ValueError as err:
        print(f"banet-vo-run: error: {err}", file=sys.stderr)
        return 2
    context = Context()
    rclpy.init(args=["banet-vo-run"], context=context, signal_handler_options=SignalHandlerOptions.NO)
    previous_sigint = signal.getsignal(signal.SIGINT)
    try:
        _log(
            f"playing {args.bag} ({args.bag_image_topic}, {args.image_transport}) at rate {args.rate} "
            f"through banet_vo (model {args.model or 'given programmatically'})"
        )
        if args.profile:
            with timed_stages(StageTimes(), frame=True) as times:
                run = run_graph(args, context, estimator)
            run.stages = times.summary()
        else:
            run = run_graph(args, context, estimator)
        summary = write_outputs(args, run)
    except (ValueError, RuntimeError) as err:
        print(f"banet-vo-run: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # before the playback began (loading, matching), or a third Ctrl-C: a script must not take it as done
        out = os.fspath(args.out)
        print(f"banet-vo-run: interrupted: the outputs in {out} are missing or incomplete", file=sys.stderr)
        return INTERRUPTED_STATUS
    finally:
        signal.signal(signal.SIGINT, previous_sigint)
        if context.ok():
            rclpy.shutdown(context=context)
    _print_summary(summary)
    _log(f"outputs in {os.fspath(args.out)}")
    return INTERRUPTED_STATUS if run.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
