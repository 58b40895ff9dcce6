"""banet-vo-run's inputs: bags without camera_info or metadata.yaml, --param values as YAML reads them,
16-bit ground-truth depth, and ground truth that does not line up in time with the poses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from banet_vo.data.bags import (
    CAMERA_INFO_TOPIC,
    DEPTH_TOPIC,
    IMAGE_TOPIC,
    TF_STATIC_TOPIC,
    TYPESTORE,
    BagReader,
    _header,
    image_message,
    write_bag,
)
from banet_vo.data.sequence import Frame
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.frames import R_BODY_OPTICAL
from banet_vo.geometry.rigid import rotation_to_quaternion
from rosbags.rosbag2 import Writer

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy")
from banet_vo.ros import run  # noqa: E402

T0 = 3.0
N = 6
CAMERA = PinholeCamera(50.0, 50.0, 31.5, 23.5, 64, 48)
# The camera above as --param intrinsics, written the way people type it: whole numbers without ".0".
INTRINSICS = "intrinsics:=[50.0, 50, 31.5, 23.5, 64, 48]"


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    rng = np.random.default_rng(1)
    frames = []
    for i in range(N):
        T = np.eye(4)
        T[:3, 3] = [0.03 * i * i, 0.01 * i, 0.5 * i]
        image = rng.integers(0, 255, (48, 64), dtype=np.uint8)
        frames.append(Frame(i, 0.1 * i, image, CAMERA, np.full((48, 64), 4.0, np.float32), T))
    out = tmp_path_factory.mktemp("inputs") / "bag"
    write_bag(frames, out, start_time=T0, include_depth=True)
    return out


def _rewrite(src: Path, dst: Path, topics: list[str], renames: dict[str, str] | None = None) -> Path:
    """A copy of the bag `src` holding only `topics` (some under new names: `renames`)."""
    renames = renames or {}
    with BagReader(src) as reader, Writer(dst, version=8) as writer:
        connections = {}
        for record in reader.records(topics):
            if record.topic not in connections:
                connections[record.topic] = writer.add_connection(
                    renames.get(record.topic, record.topic), record.msgtype, typestore=TYPESTORE
                )
            writer.write(connections[record.topic], record.timestamp_ns, record.data)
    return dst


def _run(estimator, bag: Path, out: Path, *params: str) -> dict:
    argv = [str(bag), "--out", str(out), "--no-plots", "--rate", "2", "--param", "frontend:=none"]
    for item in params:
        argv += ["--param", item]
    assert run.main(argv, estimator=estimator) == 0
    return json.loads((out / "metrics.json").read_text())


def _args(bag: Path, tmp_path: Path, *params: str):
    args = run._parser().parse_args([str(bag), "--out", str(tmp_path / "out"), *params])
    run._validate(args, check_model=False)
    return args


def test_a_bag_without_camera_info_runs_on_intrinsics_given_as_a_parameter(
    bag, tmp_path, capsys, still_estimator
):
    """docs/bags.md, ROS 1 bags: a bag with images only runs with --param intrinsics:=[...], and without
    them stops at once saying what to give (it played the bag and failed 10 s later, on a subscription
    that never came)."""
    images_only = _rewrite(bag, tmp_path / "images_only", [IMAGE_TOPIC])
    summary = _run(still_estimator, images_only, tmp_path / "out", INTRINSICS)
    assert summary["frames_published"] == N and summary["node"]["processed"] == N
    assert "no /camera/camera_info" not in capsys.readouterr().err
    args = [str(images_only), "--out", str(tmp_path / "o")]
    assert run.main(args, estimator=still_estimator) == 2
    err = capsys.readouterr().err
    assert f"error: the bag has no {CAMERA_INFO_TOPIC}, and nothing else would publish camera_info" in err
    assert "--param intrinsics:=[fx, fy, cx, cy, width, height]" in err
    # a camera_info under another name is offered
    renamed = _rewrite(
        bag, tmp_path / "renamed", [IMAGE_TOPIC, CAMERA_INFO_TOPIC], {CAMERA_INFO_TOPIC: "/cam/info"}
    )
    assert run.main([str(renamed), "--out", str(tmp_path / "o2")], estimator=still_estimator) == 2
    assert "--camera-info-topic one of /cam/info" in capsys.readouterr().err


def test_the_player_plays_camera_info_only_when_the_bag_has_it_and_the_node_reads_it(bag, tmp_path):
    images_only = _rewrite(bag, tmp_path / "images_only", [IMAGE_TOPIC])
    assert _args(images_only, tmp_path, "--param", INTRINSICS).play_topics == [IMAGE_TOPIC]
    assert _args(bag, tmp_path).play_topics == [IMAGE_TOPIC, CAMERA_INFO_TOPIC]
    # with intrinsics the node subscribes no camera_info: the player would wait for a subscriber
    assert _args(bag, tmp_path, "--param", INTRINSICS).play_topics == [IMAGE_TOPIC]


def test_a_bag_without_metadata_yaml_runs_as_banet_vo_play_reads_it(bag, tmp_path, still_estimator):
    """A recorder that was killed writes no metadata.yaml: BagReader reads the storage files."""
    unclosed = tmp_path / "unclosed"
    shutil.copytree(bag, unclosed)
    (unclosed / "metadata.yaml").unlink()
    summary = _run(still_estimator, unclosed, tmp_path / "out")
    assert summary["frames_published"] == N
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run.main([str(empty), "--out", str(tmp_path / "o")], estimator=still_estimator) == 2


def test_param_values_are_read_as_ros_reads_them():
    # ints among floats: a float list (rclpy refuses mixed lists)
    param = run._parse_param("intrinsics:=[707.09, 707.09, 601.89, 183.11, 1226, 370]")
    assert param.value == [707.09, 707.09, 601.89, 183.11, 1226.0, 370.0]
    assert all(type(v) is float for v in param.value)
    # scientific notation without a decimal point, which YAML 1.1 reads as a string
    assert run._parse_param("max_cost:=5e-05").value == 5e-05
    assert run._parse_param("base_camera_xyz:=[0.1, 5e-05, 0.3]").value == [0.1, 5e-05, 0.3]
    assert run._parse_param("camera_height:=1e0").value == 1.0
    # what needs no change stays as it was
    assert run._parse_param("queue_size:=[1, 2]").value == [1, 2]
    assert run._parse_param("camera_frame:=cam_1e5x").value == "cam_1e5x"
    assert run._parse_param("rectify:=true").value is True
    for item in ("bad:={a: 1}", "bad:=[1, a]"):
        with pytest.raises(ValueError, match=r"--param bad: "):
            run._parse_param(item)


@pytest.mark.parametrize("item", ["intrinsics:=[1.0, a, 2]", "queue_size:={a: 1}"])
def test_a_value_rclpy_refuses_is_a_clean_error(bag, tmp_path, capsys, item, still_estimator):
    argv = [str(bag), "--out", str(tmp_path / "o"), "--param", item]
    assert run.main(argv, estimator=still_estimator) == 2
    assert f"banet-vo-run: error: --param {item.partition(':=')[0]}" in capsys.readouterr().err


def _mount_bag(path: Path, xyz: list[float]) -> Path:
    """Images in camera_optical and a /tf_static base_link → camera_optical at `xyz`."""
    types = TYPESTORE.types
    q = rotation_to_quaternion(R_BODY_OPTICAL)
    transform = types["geometry_msgs/msg/TransformStamped"](
        header=_header(int(T0 * 1e9), "base_link", "tf"),
        child_frame_id="camera_optical",
        transform=types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](x=xyz[0], y=xyz[1], z=xyz[2]),
            rotation=types["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
        ),
    )
    tf = types["tf2_msgs/msg/TFMessage"](transforms=[transform])
    with Writer(path, version=8) as writer:
        tf_conn = writer.add_connection(TF_STATIC_TOPIC, "tf2_msgs/msg/TFMessage", typestore=TYPESTORE)
        img_conn = writer.add_connection(IMAGE_TOPIC, "sensor_msgs/msg/Image", typestore=TYPESTORE)
        t_ns = int(T0 * 1e9)
        writer.write(tf_conn, t_ns, bytes(TYPESTORE.serialize_cdr(tf, "tf2_msgs/msg/TFMessage")))
        msg = image_message(np.zeros((48, 64), np.uint8), t_ns, "camera_optical")
        writer.write(img_conn, t_ns, bytes(TYPESTORE.serialize_cdr(msg, "sensor_msgs/msg/Image")))
    return path


def test_the_mounting_taken_from_the_bag_reads_back_as_floats(tmp_path):
    """A camera 5e-05 m to the side: Python writes 5e-05, which YAML would read back as a string."""
    args = _args(_mount_bag(tmp_path / "bag", [0.1, 5e-05, 0.3]), tmp_path, "--param", INTRINSICS)
    given = dict(item.split(":=") for item in args.param)
    xyz = yaml.safe_load(given["base_camera_xyz"])
    assert all(type(v) is float for v in xyz) and xyz == [0.1, 5e-05, 0.3]
    assert all(type(v) is float for v in yaml.safe_load(given["base_camera_rpy"]))
    assert run._yaml_floats([1e20, -3e-09, 0.0]) == "[100000000000000000000.0, -0.000000003, 0.0]"


def test_ground_truth_depth_in_16uc1_millimetres_is_metres(tmp_path):
    """REP-118: a 16UC1 depth image (as RealSense drivers record it) holds millimetres, 0 = no reading."""
    mm = np.array([[0, 1500, 4000], [65535, 250, 0]], dtype=np.uint16)
    msg = TYPESTORE.types["sensor_msgs/msg/Image"](
        header=_header(int(T0 * 1e9), "camera_optical", "depth"),
        height=2,
        width=3,
        encoding="16UC1",
        is_bigendian=0,
        step=3 * 2 + 2,  # rows padded to 8 bytes
        data=np.c_[mm.view(np.uint8).reshape(2, 6), np.zeros((2, 2), np.uint8)].reshape(-1),
    )
    path = tmp_path / "bag"
    with Writer(path, version=8) as writer:
        conn = writer.add_connection(DEPTH_TOPIC, "sensor_msgs/msg/Image", typestore=TYPESTORE)
        writer.write(conn, int(T0 * 1e9), bytes(TYPESTORE.serialize_cdr(msg, "sensor_msgs/msg/Image")))
    poses, depths = run._ground_truth(path)
    assert poses == {} and list(depths) == [int(T0 * 1e9)]
    expected = np.array([[np.nan, 1.5, 4.0], [65.535, 0.25, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(depths[int(T0 * 1e9)], expected)


def test_metrics_json_is_written_when_ground_truth_does_not_line_up(bag, tmp_path, capsys):
    """Poses 5 ms off the GT stamps (GT on another clock): no trajectory metrics, but metrics.json with the
    node's counters and the reason, as the module promises."""
    from banet_vo.data.bags import ODOMETRY_TOPIC, pose_from_message

    with BagReader(bag) as reader:
        odometry = [
            (record.timestamp_ns + 5_000_000, pose_from_message(msg.pose.pose), np.eye(6))
            for record, msg in reader.messages([ODOMETRY_TOPIC])
        ]
    counters = {"processed": N, "dropped": 0, "failed": 0, "published": N}
    graph = run.GraphRun(run.Recording(odometry=odometry), counters, 1.0, np.eye(4))
    out = tmp_path / "out"
    args = run._parser().parse_args([str(bag), "--out", str(out), "--no-plots"])
    summary = run.write_outputs(args, graph)
    written = json.loads((out / "metrics.json").read_text())
    assert written["node"] == counters and written["frames_published"] == N
    assert set(written["trajectory_errors"]) == {"se3", "sim3"} and written["trajectory"] == {}
    assert all("do not associate" in reason for reason in written["trajectory_errors"].values())
    assert summary["trajectory_errors"] == written["trajectory_errors"]
    assert "trajectory evaluation failed" in capsys.readouterr().err


def test_a_models_path_given_outside_the_checkout_is_the_installed_copy(bag, tmp_path, monkeypatch):
    """--model models/NAME (the README's spelling) from outside the checkout is the installed copy, as the
    node's model:= is; a missing name stays an error in the user's words."""
    from banet_vo.model import shipped

    installed = tmp_path / "install/share/banet_vo/models"
    installed.mkdir(parents=True)
    (installed / "banet_small_xfeat.safetensors").write_bytes(b"stand-in")
    monkeypatch.setattr(shipped, "_ROOT", tmp_path / "install")
    monkeypatch.setattr(run, "ament_model_dirs", lambda: [])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    args = run._parser().parse_args(
        [str(bag), "--out", str(tmp_path / "o"), "--model", "models/banet_small_xfeat.safetensors"]
    )
    run._validate(args)
    assert args.model == str(installed / "banet_small_xfeat.safetensors")
    args = run._parser().parse_args(
        [str(bag), "--out", str(tmp_path / "o"), "--model", "models/nothing.safetensors"]
    )
    with pytest.raises(ValueError, match=r"models/nothing\.safetensors does not exist"):
        run._validate(args)
