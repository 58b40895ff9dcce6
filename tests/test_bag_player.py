"""BagPlayer / banet-vo-play: every message, in order, with its stamps, to real rclpy subscribers."""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from banet_vo.data.bags import (
    CAMERA_INFO_TOPIC,
    IMAGE_TOPIC,
    ODOMETRY_TOPIC,
    TF_STATIC_TOPIC,
    BagReader,
    write_bag,
)
from banet_vo.data.sequence import Frame
from banet_vo.geometry import PinholeCamera

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
from banet_vo.ros.bag_player import BagPlayer, parse_remaps  # noqa: E402
from banet_vo.ros.executor_thread import ExecutorThread  # noqa: E402
from banet_vo.ros.qos import reliable_qos, sensor_qos  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

N_FRAMES = 12
DT = 0.1


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory) -> Path:
    """12 mono 32x24 frames at 10 Hz with poses (1.1 s of bag time), stamps starting at 5 s."""
    camera = PinholeCamera(30.0, 30.0, 15.5, 11.5, 32, 24)
    frames = []
    for i in range(N_FRAMES):
        T = np.eye(4)
        T[2, 3] = 0.5 * i
        frames.append(Frame(i, DT * i, np.full((24, 32), 10 * i, np.uint8), camera, None, T))
    out = tmp_path_factory.mktemp("player") / "bag"
    write_bag(frames, out, storage="mcap", start_time=5.0)
    return out


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class _Spinner:
    """A subscriber node spun by its own executor thread."""

    def __init__(self, context, name: str = "bag_player_test_sub", **node_kwargs) -> None:
        self.node = Node(name, context=context, **node_kwargs)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.received: list[tuple[str, object]] = []
        self._spinner: ExecutorThread | None = None

    def subscribe(self, msg_type, topic: str, qos, raw: bool = False) -> None:
        def callback(msg, topic=topic) -> None:
            with self.lock:
                self.received.append((topic, msg))

        self.node.create_subscription(msg_type, topic, callback, qos, raw=raw)

    def start(self) -> _Spinner:
        self._spinner = ExecutorThread(self.executor, "subscriber executor")
        return self

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return
            time.sleep(0.01)

    def messages(self, topic: str) -> list:
        with self.lock:
            return [m for t, m in self.received if t == topic]

    def close(self) -> None:
        if self._spinner is not None:
            self._spinner.close(timeout=5.0)
        else:
            self.executor.shutdown()
        self.node.destroy_node()


def test_player_delivers_every_message_in_order_with_stamps(rclpy_context, small_bag: Path) -> None:
    with BagReader(small_bag) as reader:
        expected = {t: list(reader.records([t])) for t in (IMAGE_TOPIC, CAMERA_INFO_TOPIC, ODOMETRY_TOPIC)}
    spinner = _Spinner(rclpy_context)
    spinner.subscribe(Image, "/image", reliable_qos(depth=50), raw=True)  # raw: compare CDR bytes exactly
    spinner.subscribe(CameraInfo, CAMERA_INFO_TOPIC, reliable_qos(depth=50))
    spinner.subscribe(Odometry, ODOMETRY_TOPIC, reliable_qos(depth=50))
    spinner.start()
    player = BagPlayer(rclpy_context, small_bag, rate=5.0, qos="reliable", remaps={IMAGE_TOPIC: "/image"})
    try:
        assert player.output_topics[IMAGE_TOPIC] == "/image"
        assert player.wait_for_subscribers([IMAGE_TOPIC, CAMERA_INFO_TOPIC, ODOMETRY_TOPIC], timeout=10.0)
        stats = player.play()
        spinner.wait_for(3 * N_FRAMES)
    finally:
        player.close()
        spinner.close()
    assert stats.messages == 3 * N_FRAMES and stats.passes == 1 and not stats.stopped
    assert stats.last_stamp_ns == 5_000_000_000 + (N_FRAMES - 1) * 100_000_000
    images = spinner.messages("/image")
    assert images == [r.data for r in expected[IMAGE_TOPIC]]  # every image, in order, byte for byte
    infos = spinner.messages(CAMERA_INFO_TOPIC)
    odoms = spinner.messages(ODOMETRY_TOPIC)
    stamps = [5_000_000_000 + k * 100_000_000 for k in range(N_FRAMES)]
    assert [_stamp(m) for m in infos] == stamps
    assert [_stamp(m) for m in odoms] == stamps
    assert [m.pose.pose.position.z for m in odoms] == [0.5 * k for k in range(N_FRAMES)]
    assert all(m.header.frame_id == "camera_optical" for m in infos)


def test_rate_sets_the_pace(rclpy_context, small_bag: Path) -> None:
    spinner = _Spinner(rclpy_context)
    arrivals: list[float] = []

    def on_image(_msg) -> None:
        arrivals.append(time.monotonic())

    spinner.node.create_subscription(Image, IMAGE_TOPIC, on_image, reliable_qos(depth=50))
    spinner.start()
    span_s = (N_FRAMES - 1) * DT
    walls = {}
    try:
        for rate in (2.0, 8.0):
            arrivals.clear()
            with BagPlayer(rclpy_context, small_bag, rate=rate, topics=[IMAGE_TOPIC]) as player:
                assert player.wait_for_subscribers(timeout=10.0)
                stats = player.play()
            deadline = time.monotonic() + 5.0
            while len(arrivals) < N_FRAMES and time.monotonic() < deadline:
                time.sleep(0.01)
            assert stats.messages == len(arrivals) == N_FRAMES
            walls[rate] = arrivals[-1] - arrivals[0]
            # The player never sends faster than the bag at this rate (monotonic clock, exact bound)...
            assert stats.wall_s >= span_s / rate
            # ...and subscribers see that pace, give or take delivery jitter on shared cores.
            assert walls[rate] >= span_s / rate - 0.03
            assert walls[rate] < span_s / rate + 0.35
    finally:
        spinner.close()
    assert walls[2.0] > walls[8.0]  # 0.55 s vs 0.14 s


def test_clock_carries_bag_time_to_a_sim_time_node(rclpy_context, small_bag: Path) -> None:
    spinner = _Spinner(
        rclpy_context, "sim_time_node", parameter_overrides=[Parameter("use_sim_time", value=True)]
    )
    # The QoS rclpy's own TimeSource uses for /clock.
    spinner.subscribe(Clock, "/clock", sensor_qos(depth=1000))
    spinner.start()
    try:
        with BagPlayer(
            rclpy_context, small_bag, rate=4.0, clock=True, clock_hz=200.0, topics=[IMAGE_TOPIC]
        ) as p:
            # Ours and the sim-time node's own TimeSource subscription.
            assert p.wait_for_subscribers(["/clock"], timeout=10.0, min_count=2)
            stats = p.play()
        time.sleep(0.3)
        now_ns = spinner.node.get_clock().now().nanoseconds
    finally:
        spinner.close()
    clocks = [m.clock.sec * 1_000_000_000 + m.clock.nanosec for m in spinner.messages("/clock")]
    first, last = 5_000_000_000, stats.last_stamp_ns
    # Sent before every message and at clock_hz in between: many more than the 12 messages.
    assert len(clocks) > 2 * N_FRAMES
    assert clocks == sorted(clocks) and first <= clocks[0] and clocks[-1] == last
    # The sim-time node's clock follows the bag, not the wall clock.
    assert now_ns == last


def test_loop_repeats_until_stopped(rclpy_context, small_bag: Path) -> None:
    spinner = _Spinner(rclpy_context)
    spinner.subscribe(Image, IMAGE_TOPIC, reliable_qos(depth=100))
    spinner.start()
    player = BagPlayer(rclpy_context, small_bag, rate=10.0, topics=[IMAGE_TOPIC], loop=True)
    try:
        assert player.wait_for_subscribers(timeout=10.0)
        stopper = threading.Thread(target=lambda: (spinner.wait_for(2 * N_FRAMES + 3), player.stop()))
        stopper.start()
        stats = player.play()
        stopper.join()
    finally:
        player.close()
        spinner.close()
    assert stats.stopped and stats.passes >= 3
    stamps = [_stamp(m) for m in spinner.messages(IMAGE_TOPIC)]
    one_pass = [5_000_000_000 + k * 100_000_000 for k in range(N_FRAMES)]
    assert stamps[: 2 * N_FRAMES] == one_pass + one_pass


HAS_TF2_MSGS = importlib.util.find_spec("tf2_msgs") is not None


@pytest.mark.skipif(HAS_TF2_MSGS, reason="tf2_msgs is installed: /tf_static is played (the test below)")
def test_tf_static_skipped_with_a_warning_without_tf2_msgs(rclpy_context, small_bag: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="banet_vo.ros.bag_player")
    with BagPlayer(rclpy_context, small_bag, rate=20.0) as player:
        assert TF_STATIC_TOPIC not in player.publishers
        assert [r.message for r in caplog.records if "tf2_msgs" in r.message] != []
        assert set(player.publishers) == {IMAGE_TOPIC, CAMERA_INFO_TOPIC, ODOMETRY_TOPIC}


@pytest.mark.skipif(
    not HAS_TF2_MSGS,
    reason="tf2_msgs is not installable from PyPI here (no ros-tf2-msgs wheel): a ROS distro has it",
)
def test_tf_static_is_played_latched(rclpy_context, small_bag: Path) -> None:
    from banet_vo.ros.qos import latched_qos
    from tf2_msgs.msg import TFMessage

    with BagPlayer(rclpy_context, small_bag, rate=20.0) as player:
        stats = player.play()
        assert stats.messages == 3 * N_FRAMES + 1
        late = _Spinner(rclpy_context, "late_tf_listener")  # subscribes after playback: latched
        late.subscribe(TFMessage, TF_STATIC_TOPIC, latched_qos())
        late.start()
        late.wait_for(1)
        late.close()
        [msg] = late.messages(TF_STATIC_TOPIC)
        assert msg.transforms[0].child_frame_id == "camera_optical"


def test_bad_arguments(rclpy_context, small_bag: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rate"):
        BagPlayer(rclpy_context, small_bag, rate=0.0)
    with pytest.raises(ValueError, match="qos"):
        BagPlayer(rclpy_context, small_bag, qos="fast")
    with pytest.raises(ValueError, match="remaps"):
        BagPlayer(rclpy_context, small_bag, remaps={"/nope": "/x"})
    with pytest.raises(ValueError, match="topics"):
        BagPlayer(rclpy_context, small_bag, topics=["/nope"])
    with pytest.raises(ValueError, match="bag"):
        BagPlayer(rclpy_context, tmp_path)
    assert parse_remaps(["camera/image_raw:=/image"]) == {"/camera/image_raw": "/image"}
    for bad in ("a", "a:=", ":=b", "a=b"):
        with pytest.raises(ValueError, match="remap"):
            parse_remaps([bad])


@pytest.mark.slow
def test_cli_stops_cleanly_on_ctrl_c(small_bag: Path) -> None:
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "banet_vo.ros.bag_player", str(small_bag), "--loop", "--rate", "2", "--clock"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        seen = ""
        deadline = time.monotonic() + 60.0
        while "pass 2" not in seen and time.monotonic() < deadline:
            chunk = proc.stderr.read(1)
            if not chunk:
                break
            seen += chunk
        assert "pass 2" in seen, seen  # progress line, and --loop started again
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=20)
        seen += proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, seen
    assert "stopped" in seen and "Traceback" not in seen
    assert "% " in seen or "%" in seen


def test_until_and_qos_choice(rclpy_context, small_bag: Path) -> None:
    from rclpy.qos import ReliabilityPolicy

    spinner = _Spinner(rclpy_context)
    spinner.subscribe(Image, IMAGE_TOPIC, sensor_qos(depth=50))  # best effort: matches either publisher
    spinner.start()
    try:
        with BagPlayer(rclpy_context, small_bag, rate=10.0, qos="sensor", topics=[IMAGE_TOPIC]) as player:
            assert player.publishers[IMAGE_TOPIC].qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
            assert player.wait_for_subscribers(timeout=10.0)
            stats = player.play(until=0.35)  # bag seconds after the first message
        spinner.wait_for(4, timeout=5.0)
        with BagPlayer(rclpy_context, small_bag, qos="auto") as player:
            # As recorded by write_bag: reliable, with the profile's depth unless one is given.
            assert player.publishers[IMAGE_TOPIC].qos_profile.reliability == ReliabilityPolicy.RELIABLE
            assert player.publishers[IMAGE_TOPIC].qos_profile.depth == 10
        with BagPlayer(rclpy_context, small_bag, qos="sensor", depth=100) as player:
            assert player.publishers[IMAGE_TOPIC].qos_profile.depth == 100
        with pytest.raises(ValueError, match="depth"):
            BagPlayer(rclpy_context, small_bag, depth=0)
    finally:
        spinner.close()
    assert stats.messages == 4 and stats.last_stamp_ns == 5_300_000_000
    assert [_stamp(m) for m in spinner.messages(IMAGE_TOPIC)] == [
        5_000_000_000 + k * 100_000_000 for k in range(4)
    ]


def test_cli_help_documents_every_option(capsys) -> None:
    from banet_vo.ros.bag_player import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--rate",
        "--clock",
        "--clock-hz",
        "--loop",
        "--remap",
        "--qos",
        "--topics",
        "--delay",
        "--until",
    ):
        assert option in text
    for choice in ("auto", "sensor", "reliable"):
        assert choice in text


def test_cli_plays_a_bag_in_process(rclpy_context, small_bag: Path, capsys) -> None:
    from banet_vo.ros.bag_player import main

    spinner = _Spinner(rclpy_context)
    spinner.subscribe(Image, "/cli_image", reliable_qos(depth=50))
    spinner.start()
    try:
        args = [
            str(small_bag),
            "--rate",
            "10",
            "--topics",
            IMAGE_TOPIC,
            "--remap",
            f"{IMAGE_TOPIC}:=/cli_image",
        ]
        rc = main([*args, "--delay", "1.0"])  # the delay lets our subscriber discover the CLI's publisher
        spinner.wait_for(N_FRAMES, timeout=5.0)
    finally:
        spinner.close()
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "publishing /cli_image (from /camera/image_raw)" in err and "100.0%" in err and "done: 12" in err
    assert [_stamp(m) for m in spinner.messages("/cli_image")] == [
        5_000_000_000 + k * 100_000_000 for k in range(12)
    ]
    assert main([str(small_bag), "--remap", "nonsense"]) == 2


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.parametrize("tty", [True, False])
def test_progress_rewrites_one_line_on_a_terminal_and_writes_a_line_per_tenth_elsewhere(
    rclpy_context, small_bag, tty
):
    """On a terminal the progress line is rewritten in place (\\r); in a log file or a pipe, the \\r
    updates made one unreadable line that log lines ran into: there it is a line per tenth of the bag."""
    stream = _Stream(tty)
    with BagPlayer(rclpy_context, small_bag, rate=20.0, topics=[IMAGE_TOPIC], progress=stream) as player:
        player.play()
    text = stream.getvalue()
    assert text.endswith("100.0%\n")
    if tty:
        assert text.count("\r") >= 2 and text.count("\n") == 1
    else:
        lines = text.splitlines()
        assert "\r" not in text and 2 <= len(lines) <= 12
        assert all(line.startswith("[banet-vo-play] pass 1") for line in lines)


def test_stop_from_inside_the_players_own_wait_returns_and_ends_the_wait(rclpy_context, small_bag: Path):
    """A SIGINT handler runs on the main thread between two bytecodes, possibly inside the player's wait.
    stop() called right there must return and end the wait (a threading.Event's set() took the lock its
    wait() held on that thread: the process hung until SIGKILL). The hook calls stop() on a line inside
    Condition.wait (the lock held) or inside the player's own sleep, whichever the code waits in."""
    player = BagPlayer(rclpy_context, small_bag, rate=1.0, topics=[IMAGE_TOPIC])
    outcome = []

    def hook(frame, event, arg):
        if event == "line" and not player.stopped:
            name = frame.f_code.co_qualname
            if name in ("Condition.wait", "BagPlayer._sleep"):
                player.stop()
        return hook

    def waiter():
        sys.settrace(hook)
        try:
            outcome.append(player._wait_until(time.monotonic() + 5.0, time.monotonic()))
        finally:
            sys.settrace(None)

    thread = threading.Thread(target=waiter, daemon=True)  # a hang must not hold the test run
    try:
        thread.start()
        thread.join(timeout=4.0)
        assert not thread.is_alive(), "stop() called inside the player's wait hung"
        assert outcome == [False] and player.stopped
    finally:
        player.close()
