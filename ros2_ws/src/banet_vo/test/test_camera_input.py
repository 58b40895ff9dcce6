"""banet_vo.ros.camera_input: counted, throttled warnings (fake clock); the camera that fits an image;
CameraInput on a real rclpy node: subscription QoS per mode (auto waits for a publisher), the
pending-image rule, bad input of each kind counted, resized cameras, the frames handed on, and the
compressed transport (topic naming after remapping, exact PNG pixels over DDS, refusals)."""

from __future__ import annotations

import array
import time

import numpy as np
import pytest
from banet_vo.data import compressed_image
from banet_vo.geometry import PinholeCamera

pytestmark = pytest.mark.ros

pytest.importorskip("rclpy")
from banet_vo.ros.camera_input import (  # noqa: E402
    INCOMPATIBLE_QOS,
    NO_CAMERA_INFO,
    RECEIVED,
    REPEATED_IMAGE,
    SIZE_MISMATCH,
    CameraFrame,
    CameraInput,
    EventCounters,
    camera_for_image,
)
from banet_vo.ros.conversions import camera_to_camera_info, numpy_to_image, sec_to_stamp  # noqa: E402
from banet_vo.ros.qos import sensor_qos  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

CAMERA = PinholeCamera(50.0, 50.0, 31.5, 23.5, 64, 48)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_warn_counts_every_time_but_logs_once_per_period_per_key():
    logged: list[str] = []
    clock = FakeClock()
    events = EventCounters(logged.append, period_s=5.0, clock=clock)
    assert events.warn("bad_image", "image dropped: a") is True
    for _ in range(4):
        clock.now += 1.0
        assert events.warn("bad_image", "image dropped: b") is False
    assert events.get("bad_image") == 5 and logged == ["image dropped: a [bad_image: 1 so far]"]
    assert events.warn("size_mismatch", "image dropped: c") is True  # another key has its own period
    clock.now += 1.0  # 5 s after the first log of bad_image
    assert events.warn("bad_image", "image dropped: d") is True
    assert logged[1:] == [
        "image dropped: c [size_mismatch: 1 so far]",
        "image dropped: d [bad_image: 6 so far]",
    ]
    assert events.add("received", 3) == 3 and events.add("received") == 4
    assert events.as_dict() == {"bad_image": 6, "size_mismatch": 1, "received": 4}
    assert events.get("never") == 0


def test_zero_period_logs_every_warning_and_bad_periods_are_refused():
    logged: list[str] = []
    events = EventCounters(logged.append, period_s=0.0, clock=FakeClock())
    events.warn("k", "x")
    events.warn("k", "x")
    assert len(logged) == 2
    for bad in (-1.0, float("nan"), "5"):
        with pytest.raises(ValueError, match="period_s"):
            EventCounters(logged.append, period_s=bad)


def test_camera_for_image_keeps_resizes_or_refuses():
    assert camera_for_image(CAMERA, 64, 48) is CAMERA
    half = camera_for_image(CAMERA, 32, 24)
    # resizing by s: f' = s f, c' = s (c + 0.5) - 0.5 (docs/CONVENTIONS.md)
    assert (half.fx, half.fy, half.cx, half.cy, half.width, half.height) == (25.0, 25.0, 15.5, 11.5, 32, 24)
    assert camera_for_image(CAMERA, 640, 479) is not None  # aspect 0.2 % off: the same camera
    assert camera_for_image(CAMERA, 64, 47) is None  # aspect 2 % off
    assert camera_for_image(CAMERA, 64, 30) is None


class Harness:
    """A node with a CameraInput; frames handed on are collected; the executor is spun on demand."""

    def __init__(self, context, qos_mode: str) -> None:
        self.node = Node("camera_input_test", context=context)
        self.logged: list[str] = []
        self.events = EventCounters(self.logged.append)
        self.frames: list[CameraFrame] = []
        self.input = CameraInput(self.node, qos_mode, self.frames.append, self.events, retry_period_s=0.05)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def spin_until(self, condition, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture
def harness(rclpy_context):
    h = Harness(rclpy_context, "reliable")
    yield h
    h.close()


def _image(t: float, shape=(48, 64), encoding: str = "mono8") -> Image:
    pixels = np.full(shape, int(t) % 256, np.uint8)
    return numpy_to_image(pixels, encoding, Header(stamp=sec_to_stamp(t), frame_id="cam"))


def _info(camera: PinholeCamera = CAMERA) -> CameraInfo:
    return camera_to_camera_info(camera, Header(stamp=sec_to_stamp(0.0), frame_id="cam"))


def test_fixed_qos_modes_subscribe_at_once(rclpy_context, harness):
    assert harness.input.subscribed
    assert harness.input.image_sub.qos_profile.reliability.name == "RELIABLE"
    sensor = Harness(rclpy_context, "sensor_data")
    try:
        assert sensor.input.image_sub.qos_profile.reliability.name == "BEST_EFFORT"
        assert sensor.input.info_sub.qos_profile.reliability.name == "BEST_EFFORT"
    finally:
        sensor.close()


def test_auto_qos_waits_for_a_publisher_and_takes_its_reliability(rclpy_context):
    h = Harness(rclpy_context, "auto")
    pub_node = Node("camera_input_publisher", context=rclpy_context)
    try:
        assert not h.input.subscribed and h.input.image_sub is None
        pub_node.create_publisher(Image, "image", sensor_qos())
        assert h.spin_until(lambda: h.input.image_sub is not None)
        assert h.input.image_sub.qos_profile.reliability.name == "BEST_EFFORT"
        assert h.input.info_sub is None  # no camera_info publisher yet
        pub_node.create_publisher(CameraInfo, "camera_info", sensor_qos())
        assert h.spin_until(lambda: h.input.subscribed)
    finally:
        pub_node.destroy_node()
        h.close()


def test_bad_qos_mode_is_refused(rclpy_context):
    node = Node("camera_input_test", context=rclpy_context)
    try:
        with pytest.raises(ValueError, match="qos_mode must be one of"):
            CameraInput(node, "best", lambda frame: None, EventCounters(print))
    finally:
        node.destroy_node()


def test_newest_image_before_the_first_camera_info_waits_for_it(harness):
    h = harness
    h.input.on_image(_image(1.0))
    assert h.frames == [] and h.events.get("no_camera_info") == 0  # parked, nothing lost yet
    h.input.on_image(_image(2.0))  # replaces the parked one: that one is lost and counted
    assert h.events.get("no_camera_info") == 1 and h.frames == []
    bad = _info()
    bad.k, bad.p = [0.0] * 9, [0.0] * 12
    h.input.on_camera_info(bad)  # an unusable camera_info releases nothing
    assert h.events.get("bad_camera_info") == 1 and h.frames == [] and h.input.camera is None
    h.input.on_camera_info(_info())
    assert len(h.frames) == 1  # the newest parked image, with the camera that just came
    frame = h.frames[0]
    assert frame.stamp == 2.0 and frame.header.frame_id == "cam" and frame.camera == CAMERA
    assert frame.image.shape == (48, 64) and frame.image[0, 0] == 2
    h.input.on_camera_info(_info())  # nothing parked any more: nothing handed on twice
    assert len(h.frames) == 1
    h.input.on_image(_image(3.0))  # with a camera, images go straight through
    assert [f.stamp for f in h.frames] == [2.0, 3.0] and h.frames[1].received >= frame.received
    assert h.events.get("received") == 3


def test_bad_images_are_counted_and_resized_images_get_a_resized_camera(harness):
    h = harness
    h.input.on_camera_info(_info())
    unsupported = _image(1.0)
    unsupported.encoding = "nv21"
    h.input.on_image(unsupported)
    h.input.on_image(Image())  # an empty message: zero size, no encoding
    assert h.events.get("bad_image") == 2 and h.frames == []
    h.input.on_image(_image(2.0, shape=(30, 64)))  # aspect does not fit the camera
    assert h.events.get("size_mismatch") == 1 and h.frames == []
    said: list[str] = []
    logger = h.node.get_logger()
    h.node.get_logger = lambda: type("L", (), {"info": said.append, "warning": logger.warning})()
    h.input.on_image(_image(3.0, shape=(24, 32, 3), encoding="rgb8"))  # binned 2x2
    assert len(h.frames) == 1 and h.frames[0].camera == camera_for_image(CAMERA, 32, 24)
    assert h.frames[0].image.shape == (24, 32, 3)
    assert h.events.get("received") == 4
    h.input.on_image(_image(4.0, shape=(24, 32, 3), encoding="rgb8"))
    # said once (a camera_info of the wrong resolution looks the same as a binning driver)
    assert said == [
        "images are 32x24, camera_info 64x48 (same aspect): its intrinsics are scaled to the images"
    ]
    assert h.logged[0].startswith("image dropped: ") and h.logged[0].endswith("[bad_image: 1 so far]")


def _info_at(t: float, camera: PinholeCamera = CAMERA) -> CameraInfo:
    return camera_to_camera_info(camera, Header(stamp=sec_to_stamp(t), frame_id="cam"))


def test_exact_sync_pairs_by_stamp_in_either_order_and_drops_the_oldest(rclpy_context):
    node = Node("camera_input_exact", context=rclpy_context)
    logged: list[str] = []
    events = EventCounters(logged.append, period_s=0.0)
    frames: list[CameraFrame] = []
    other = PinholeCamera(40.0, 40.0, 31.5, 23.5, 64, 48)
    try:
        ci = CameraInput(node, "reliable", frames.append, events, sync="exact", sync_queue_size=2)
        ci.on_camera_info(_info_at(1.0, other))  # info first
        ci.on_camera_info(_info_at(9.0))  # a camera_info for a later stamp must not pair with 2.0
        ci.on_image(_image(1.0))
        assert [(f.stamp, f.camera.fx) for f in frames] == [(1.0, 40.0)]
        ci.on_image(_image(2.0))  # image first: waits
        assert len(frames) == 1 and ci.waiting() == 1
        ci.on_camera_info(_info_at(2.0))
        assert [f.stamp for f in frames] == [1.0, 2.0] and ci.waiting() == 0
        for t in (3.0, 4.0, 5.0):  # no camera_info for these: the queue of 2 drops 3.0
            ci.on_image(_image(t))
        assert events.get("no_camera_info") == 1 and ci.waiting() == 2
        assert "image at 3.000000 s dropped: no camera_info with its stamp" in logged[-1]
        assert "+6.000 s from it" in logged[-1]  # the newest camera_info (9.0) is 6 s later
        ci.on_camera_info(_info_at(5.0))
        assert [f.stamp for f in frames] == [1.0, 2.0, 5.0] and ci.wait_paired(0.01) is False
    finally:
        node.destroy_node()


@pytest.mark.parametrize("sync", ["exact", "latest"])
def test_frames_are_handed_on_in_the_order_they_were_paired(rclpy_context, sync):
    """A camera_info that releases a waiting image (thread A) and the next image, paired at once (thread
    B), hand their frames on from two threads: B's newer frame must not overtake A's older one."""
    import threading

    node = Node(f"camera_input_order_{sync}", context=rclpy_context)
    frames: list[float] = []
    try:
        ci = CameraInput(node, "reliable", lambda f: frames.append(f.stamp), EventCounters(print), sync=sync)
        deliver = ci._deliver
        in_slow_hand_on = threading.Event()

        def slow_for_the_first(item, camera, calibration=None):
            if item.stamp == 1.0:  # A is between its pairing and its hand-on while B pairs 2.0
                in_slow_hand_on.set()
                time.sleep(0.3)
            deliver(item, camera, calibration)

        ci._deliver = slow_for_the_first
        if sync == "exact":
            ci.on_camera_info(_info_at(2.0))
        ci.on_image(_image(1.0))  # waits for its camera_info
        a = threading.Thread(target=ci.on_camera_info, args=(_info_at(1.0),))
        a.start()
        assert in_slow_hand_on.wait(5.0)
        b = threading.Thread(target=ci.on_image, args=(_image(2.0),))  # its camera is already known
        b.start()
        a.join(5.0)
        b.join(5.0)
        assert frames == [1.0, 2.0]
    finally:
        node.destroy_node()


def test_size_limits_fixed_camera_and_frame_id_lock(rclpy_context):
    node = Node("camera_input_limits", context=rclpy_context)
    events = EventCounters(lambda text: None)
    frames: list[CameraFrame] = []
    try:
        ci = CameraInput(
            node,
            "reliable",
            frames.append,
            events,
            fixed_camera=CAMERA,
            min_image_side=8,
            max_image_pixels=64 * 48,
            lock_frame_id=True,
        )
        assert ci.info_sub is None and ci.subscribed  # no camera_info with a fixed camera
        ci.on_image(_image(1.0))
        assert len(frames) == 1 and frames[0].camera == CAMERA
        ci.on_image(_image(2.0, shape=(4, 64)))  # a side below 8
        ci.on_image(_image(3.0, shape=(96, 128)))  # more pixels than allowed
        assert events.get("bad_image") == 2 and len(frames) == 1
        moved = _image(4.0)
        moved.header.frame_id = "cam2"
        ci.on_image(moved)
        assert events.get("frame_id_changed") == 1 and len(frames) == 1
        ci.unlock_frame_id()  # after a reset the new camera is accepted
        ci.on_image(moved)
        assert len(frames) == 2 and frames[1].header.frame_id == "cam2"
    finally:
        node.destroy_node()


def _compressed(t: float, pixels: np.ndarray, codec: str = "png") -> CompressedImage:
    fmt, data = compressed_image.encode(pixels, codec)
    msg = CompressedImage(header=Header(stamp=sec_to_stamp(t), frame_id="cam"), format=fmt)
    msg.data = array.array("B", data)
    return msg


def test_compressed_transport_follows_the_remapped_base_topic_and_delivers_exact_pixels(rclpy_context):
    # As image_transport: image:=/cam/image_raw with the compressed transport reads /cam/image_raw/compressed.
    node = Node(
        "camera_input_compressed",
        context=rclpy_context,
        cli_args=["--ros-args", "-r", "image:=/cam/image_raw"],
    )
    pub_node = Node("camera_input_compressed_pub", context=rclpy_context)
    events = EventCounters(lambda text: None)
    frames: list[CameraFrame] = []
    executor = SingleThreadedExecutor(context=rclpy_context)
    try:
        ci = CameraInput(node, "reliable", frames.append, events, transport="compressed")
        assert ci.image_sub.topic_name == "/cam/image_raw/compressed"
        assert ci.image_sub.msg_type is CompressedImage
        assert ci.info_sub.topic_name == "/cam/camera_info"  # beside the image, as image_transport's
        executor.add_node(node)
        images = pub_node.create_publisher(CompressedImage, "/cam/image_raw/compressed", 10)
        infos = pub_node.create_publisher(CameraInfo, "/cam/camera_info", 10)
        deadline = time.monotonic() + 5.0
        while not (images.get_subscription_count() and infos.get_subscription_count()):
            assert time.monotonic() < deadline, "no subscription matched"
            time.sleep(0.01)
        rgb = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        infos.publish(_info())
        while ci.camera is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        images.publish(_compressed(1.5, rgb))
        while not frames and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert len(frames) == 1, events.as_dict()
        assert frames[0].stamp == 1.5 and frames[0].camera == CAMERA
        np.testing.assert_array_equal(frames[0].image, rgb)  # PNG is lossless, RGB as the raw path gives it
    finally:
        executor.shutdown()
        pub_node.destroy_node()
        node.destroy_node()


@pytest.mark.parametrize(
    ("namespace", "remaps", "image", "info"),
    [
        ("/", [], "/image", "/camera_info"),
        ("/robot", [], "/robot/image", "/robot/camera_info"),
        ("/", ["image:=/zed/left/image_rect_color"], "/zed/left/image_rect_color", "/zed/left/camera_info"),
        ("/", ["image:=/cam/image_raw", "camera_info:=/calib/info"], "/cam/image_raw", "/calib/info"),
        ("/", ["camera_info:=/calib/info"], "/image", "/calib/info"),
    ],
)
def test_camera_info_is_taken_beside_the_image_unless_remapped(rclpy_context, namespace, remaps, image, info):
    cli_args = ["--ros-args", *[arg for remap in remaps for arg in ("-r", remap)]]
    node = Node("camera_input_names", namespace=namespace, context=rclpy_context, cli_args=cli_args)
    try:
        ci = CameraInput(node, "reliable", lambda frame: None, EventCounters(print))
        assert (ci.image_sub.topic_name, ci.info_sub.topic_name) == (image, info)
    finally:
        node.destroy_node()


def test_compressed_images_are_refused_by_their_header_size_and_when_undecodable(rclpy_context):
    node = Node("camera_input_compressed_limits", context=rclpy_context)
    logged: list[str] = []
    events = EventCounters(logged.append, period_s=0.0)
    frames: list[CameraFrame] = []
    try:
        ci = CameraInput(
            node,
            "reliable",
            frames.append,
            events,
            transport="compressed",
            fixed_camera=CAMERA,
            max_image_pixels=64 * 48,
        )
        grey = np.random.default_rng(4).integers(0, 256, (48, 64), dtype=np.uint8)
        ci.on_image(_compressed(1.0, grey, "jpeg"))
        assert len(frames) == 1 and frames[0].image.shape == (48, 64)
        assert np.abs(frames[0].image.astype(int) - grey).mean() < 40  # JPEG of noise: lossy, same image
        ci.on_image(_compressed(2.0, np.zeros((96, 128), np.uint8)))  # over the pixel limit
        assert "128x96 has more than" in logged[-1]
        broken = _compressed(3.0, grey)
        broken.data = array.array("B", b"\x89PNG\r\n\x1a\n")
        ci.on_image(broken)
        assert "CompressedImage.data is not an image" in logged[-1]
        depth = _compressed(4.0, grey)
        depth.format = "16UC1; compressedDepth png"
        ci.on_image(depth)
        assert "compressedDepth" in logged[-1]
        assert events.get("bad_image") == 3 and len(frames) == 1 and events.get("received") == 4
        with pytest.raises(ValueError, match="transport must be one of"):
            CameraInput(node, "reliable", frames.append, events, transport="theora")
    finally:
        node.destroy_node()


def test_camera_info_is_taken_while_an_image_callback_is_still_running(rclpy_context):
    # A slow image callback (a large JPEG to decode, a busy frame handler) must not hold back camera_info:
    # on a multi-threaded executor the two inputs run in callback groups of their own.
    import threading

    from banet_vo.ros.executor_thread import ExecutorThread
    from rclpy.executors import MultiThreadedExecutor

    node = Node("camera_input_groups", context=rclpy_context)
    pub_node = Node("camera_input_groups_pub", context=rclpy_context)
    release, entered = threading.Event(), threading.Event()

    def slow_frame(frame: CameraFrame) -> None:
        entered.set()
        release.wait(5.0)

    executor = MultiThreadedExecutor(num_threads=2, context=rclpy_context)
    spinner = None
    try:
        ci = CameraInput(node, "reliable", slow_frame, EventCounters(print))
        assert ci.image_sub.callback_group is not ci.info_sub.callback_group
        images = pub_node.create_publisher(Image, "image", 10)
        infos = pub_node.create_publisher(CameraInfo, "camera_info", 10)
        executor.add_node(node)
        spinner = ExecutorThread(executor, "camera input test executor")
        deadline = time.monotonic() + 5.0
        while not (images.get_subscription_count() and infos.get_subscription_count()):
            assert time.monotonic() < deadline, "no subscription matched"
            time.sleep(0.01)
        infos.publish(_info())
        while ci.camera is None:
            assert time.monotonic() < deadline, "first camera_info not taken"
            time.sleep(0.01)
        images.publish(_image(1.0))
        assert entered.wait(5.0), "the image never reached the frame callback"
        other = PinholeCamera(45.0, 45.0, 31.5, 23.5, 64, 48)
        infos.publish(_info(other))  # while the image callback is still inside slow_frame
        while ci.camera != other:
            assert time.monotonic() < deadline, "camera_info waited for the image callback"
            time.sleep(0.01)
        assert not release.is_set()
    finally:
        release.set()
        if spinner is not None:
            spinner.close(timeout=5.0)
        else:
            executor.shutdown()
        pub_node.destroy_node()
        node.destroy_node()


@pytest.mark.parametrize(
    ("transport", "remap", "pub_type", "pub_topic", "expected"),
    [
        # a camera's compressed topic remapped straight onto a raw input: another type on the topic
        (
            "raw",
            "image:=/cam/image_raw/compressed",
            CompressedImage,
            "/cam/image_raw/compressed",
            "/cam/image_raw/compressed carries sensor_msgs/msg/CompressedImage, not sensor_msgs/msg/Image: "
            "set image_transport:=compressed",
        ),
        # the raw topic is silent, its compressed sibling publishes
        (
            "raw",
            "image:=/cam/image_raw",
            CompressedImage,
            "/cam/image_raw/compressed",
            "nothing is published on /cam/image_raw, but /cam/image_raw/compressed has "
            "sensor_msgs/msg/CompressedImage: set image_transport:=compressed",
        ),
        # compressed asked for, only raw images published
        (
            "compressed",
            "image:=/cam/image_raw",
            Image,
            "/cam/image_raw",
            "nothing is published on /cam/image_raw/compressed, but /cam/image_raw has "
            "sensor_msgs/msg/Image: set image_transport:=raw",
        ),
        # no remap at all (the node's own `image`): the camera's topic is elsewhere in the graph
        (
            "raw",
            "image:=/image",
            Image,
            "/camera/image_raw",
            "nothing is published on /image; sensor_msgs/msg/Image is on /camera/image_raw: remap the input "
            "(-r image:=/camera/image_raw, or vo.launch.py image:=/camera/image_raw)",
        ),
    ],
)
def test_a_transport_mismatch_is_named_with_its_fix(
    rclpy_context, transport, remap, pub_type, pub_topic, expected
):
    import rclpy

    node = Node("camera_input_hint", context=rclpy_context, cli_args=["--ros-args", "-r", remap])
    # The camera in a process of its own: one participant refuses two types on one topic, the graph does not.
    camera = rclpy.Context()
    rclpy.init(context=camera)
    pub_node = Node("camera_input_hint_pub", context=camera)
    try:
        ci = CameraInput(node, "reliable", lambda frame: None, EventCounters(print), transport=transport)
        assert ci.transport_hint() is None  # nothing published anywhere yet
        pub_node.create_publisher(pub_type, pub_topic, 10)
        deadline = time.monotonic() + 5.0
        while ci.transport_hint() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ci.transport_hint() == expected
    finally:
        pub_node.destroy_node()
        rclpy.shutdown(context=camera)
        node.destroy_node()


def test_a_remap_onto_the_compressed_topic_itself_is_taken_as_meant(rclpy_context):
    remap = ["--ros-args", "-r", "image:=/cam/image_raw/compressed"]
    node = Node("camera_input_compressed_remap", context=rclpy_context, cli_args=remap)
    try:
        ci = CameraInput(node, "reliable", lambda frame: None, EventCounters(print), transport="compressed")
        assert ci.image_sub.topic_name == "/cam/image_raw/compressed"
        assert ci.info_sub.topic_name == "/cam/camera_info"
    finally:
        node.destroy_node()


def test_a_12_bit_camera_is_read_at_its_own_range(rclpy_context):
    """mono16 from a 12-bit sensor (values 0-4095): with image_max_value_16bit 4095 its brightest value is
    255; at 65535 the whole image would lie in 0-16."""
    node = Node("camera_input_12_bit", context=rclpy_context)
    frames: list[CameraFrame] = []
    try:
        ci = CameraInput(
            node, "reliable", frames.append, EventCounters(print), fixed_camera=CAMERA, max_value_16bit=4095
        )
        twelve = np.linspace(0, 4095, 64 * 48).reshape(48, 64).astype(np.uint16)
        ci.on_image(numpy_to_image(twelve, "mono16", Header(stamp=sec_to_stamp(1.0), frame_id="cam")))
        (frame,) = frames
        assert frame.image.dtype == np.uint8 and (frame.image.min(), frame.image.max()) == (0, 255)
        np.testing.assert_array_equal(frame.image, np.round(twelve * (255 / 4095)).astype(np.uint8))
    finally:
        node.destroy_node()


def test_a_publisher_with_an_incompatible_qos_is_counted_and_named(rclpy_context, harness):
    """image_qos reliable against a best-effort camera: the middleware matches nothing, and only logged it
    (black-box run of imatching_node, 2026-12-07: /diagnostics said OK, "waiting for images"). The event
    is counted and the hint names the fix."""
    pub_node = Node("camera_input_best_effort", context=rclpy_context)
    try:
        pub_node.create_publisher(Image, "image", sensor_qos())
        assert harness.spin_until(lambda: harness.events.get(INCOMPATIBLE_QOS) >= 1)
        hint = harness.input.transport_hint()
        assert hint is not None and "/image" in hint and "(reliability)" in hint and "image_qos:=auto" in hint
        state = harness.input.input_state("adapting", {"recent_received": 0}, "frames", 10.0)
        assert state == f"waiting for images ({hint})"
        # WARN for as long as nothing arrives (the middleware reports the publisher once)
        assert harness.input.standing_problems() == [INCOMPATIBLE_QOS]
        harness.events.add(RECEIVED)
        assert harness.input.standing_problems() == []
    finally:
        pub_node.destroy_node()


def test_input_state_says_what_the_input_explains_before_the_nodes_state(harness):
    ci, events = harness.input, harness.events
    assert ci.input_state("adapting", None, "frames", 10.0) == "waiting for images"
    events.add(RECEIVED)
    assert ci.input_state("adapting", None, "frames", 10.0).startswith("waiting for camera_info")
    harness.input.on_camera_info(_info())
    assert ci.input_state("adapting", None, "frames", 10.0) == "adapting"
    busy = {"recent_received": 5, "recent_frames": 2}
    assert ci.input_state("adapting", busy, "frames", 10.0) == "adapting"
    wrong_size = {"recent_received": 5, "recent_frames": 0, f"recent_{SIZE_MISMATCH}": 5}
    assert ci.input_state("adapting", wrong_size, "frames", 10.0) == (
        "images arrive, none usable in the last 10 s (size_mismatch)"
    )
    no_info = {"recent_received": 5, "recent_frames": 0, f"recent_{NO_CAMERA_INFO}": 5}
    assert "without one of their stamp" in ci.input_state("adapting", no_info, "frames", 10.0)
    stopped = {"recent_received": 0, "recent_frames": 0}
    assert ci.input_state("adapting", stopped, "frames", 2.5) == (
        "no image in the last 2.5 s: has the camera stopped? (before: adapting)"
    )


def _noisy(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 64), dtype=np.uint8)


def test_a_frozen_camera_is_told_apart_from_a_still_one(rclpy_context, monkeypatch):
    """A real sensor's noise makes every frame differ: images byte for byte equal to the one before them
    are counted, and once such a run spans REPEAT_WARN_S the input WARNs (standing) and says so, until an
    image differs. A still camera's noisy frames never count."""
    import banet_vo.ros.camera_input as camera_input

    monkeypatch.setattr(camera_input, "REPEAT_WARN_S", 0.3)
    node = Node("camera_input_frozen", context=rclpy_context)
    frames: list[CameraFrame] = []
    logged: list[str] = []
    events = EventCounters(logged.append)
    try:
        ci = CameraInput(node, "reliable", frames.append, events, fixed_camera=CAMERA)
        header = lambda t: Header(stamp=sec_to_stamp(t), frame_id="cam")  # noqa: E731
        for k in range(5):  # a camera standing still: the same scene, new noise each frame
            ci.on_image(numpy_to_image(_noisy(seed=k), "mono8", header(1.0 + 0.1 * k)))
        assert events.get(REPEATED_IMAGE) == 0 and ci.standing_problems() == []
        frozen = _noisy(seed=99)
        t = 2.0
        ci.on_image(numpy_to_image(frozen, "mono8", header(t)))
        ci.on_image(numpy_to_image(frozen, "mono8", header(t + 0.1)))
        assert events.get(REPEATED_IMAGE) == 1 and logged == []
        assert ci.standing_problems() == []  # one resent frame is not a frozen driver
        assert ci.input_state("tracking", None, "processed", 10.0) == "tracking"
        deadline = time.monotonic() + 5.0
        while not ci.standing_problems() and time.monotonic() < deadline:  # until the run spans 0.3 s
            t += 0.1
            ci.on_image(numpy_to_image(frozen.copy(), "mono8", header(t)))  # another buffer, same bytes
            time.sleep(0.05)
        repeats = events.get(REPEATED_IMAGE)
        assert repeats >= 5 and len(frames) == 7 + repeats - 1  # still handed on: the odometry holds still
        assert ci.standing_problems() == [REPEATED_IMAGE]
        # logged once the run spans REPEAT_WARN_S (then at most every 5 s), for whoever reads the console
        assert len(logged) == 1 and "the camera has sent the same image" in logged[0], logged
        assert f"[{REPEATED_IMAGE}: " in logged[0]
        state = ci.input_state("tracking", {"recent_received": 3, "recent_processed": 3}, "processed", 10.0)
        assert state.startswith(f"the camera repeats one image ({repeats + 1} identical images over 0.")
        assert "a frozen driver or a covered lens?" in state and state.endswith("before: tracking)")
        # a camera that stopped after a frozen run: no longer "repeating" once no repeat came for 0.3 s
        time.sleep(0.35)
        assert ci.standing_problems() == []
        assert ci.input_state("tracking", {"recent_received": 0}, "processed", 10.0).startswith("no image")
        ci.on_image(numpy_to_image(frozen, "mono8", header(t + 0.05)))  # it repeats again: WARN at once
        assert ci.standing_problems() == [REPEATED_IMAGE]
        repeats += 1
        # the same bytes at another size or encoding are another image
        ci.on_image(numpy_to_image(frozen[:, :32].copy(), "mono8", header(t + 0.1)))
        assert ci.standing_problems() == [] and events.get(REPEATED_IMAGE) == repeats
        ci.on_image(numpy_to_image(frozen, "mono8", header(t + 0.2)))
        ci.on_image(numpy_to_image(_noisy(seed=7), "mono8", header(t + 0.3)))
        assert ci.standing_problems() == []
        assert ci.input_state("tracking", None, "processed", 10.0) == "tracking"
        # a compressed stream that resends one JPEG/PNG is the same thing
        png = _compressed(t + 0.4, frozen)
        ci._compressed = True  # decode path only; the subscription is not used here
        for k in range(3):
            png.header.stamp = sec_to_stamp(t + 0.4 + 0.1 * k)
            ci.on_image(png)
        assert events.get(REPEATED_IMAGE) == repeats + 2
    finally:
        node.destroy_node()
