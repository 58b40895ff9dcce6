"""banet-vo-run: bag → node → recorder → trajectory, depth maps, metrics and plots (one real rclpy graph).

With a ground-truth estimator the whole chain (player, node, recorder, TUM files, evaluation against the
bag's GT) must give zero trajectory and depth error; a real (randomly initialised) BA-Net checkpoint
must run through the same CLI.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from banet_vo.data.bags import write_bag
from banet_vo.data.sequence import Frame
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.rigid import invert
from banet_vo.odometry import PairEstimate, PreparedFrame

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy")
from banet_vo.ros import run  # noqa: E402

T0 = 3.0
N = 10


def _frames() -> list[Frame]:
    camera = PinholeCamera(50.0, 50.0, 31.5, 23.5, 64, 48)
    rng = np.random.default_rng(1)
    frames = []
    for i in range(N):
        T = np.eye(4)
        c, s = math.cos(0.02 * i), math.sin(0.02 * i)
        T[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
        T[:3, 3] = [0.02 * i * i, 0.01 * i, 0.6 * i]  # curved: alignment needs non-collinear points
        depth = np.full((48, 64), 4.0 + 0.5 * i, np.float32)
        image = rng.integers(0, 255, (48, 64), dtype=np.uint8)
        frames.append(Frame(i, 0.1 * i, image, camera, depth, T))
    return frames


class TruthEstimator:
    """Exact relative poses and GT depth (constant per frame) by stamp."""

    input_size = (32, 24)

    def __init__(self, frames: list[Frame]) -> None:
        self.frames = {round(T0 + f.timestamp, 6): f for f in frames}
        A = np.random.default_rng(0).normal(size=(30, 8))
        self.hessian = A.T @ A + np.eye(8)

    def estimate(self, reference: PreparedFrame, target: PreparedFrame, pose_init=None) -> PairEstimate:
        ref, tgt = self.frames[round(reference.stamp, 6)], self.frames[round(target.stamp, 6)]
        depth = np.full((12, 16), ref.depth[0, 0], np.float32)
        return PairEstimate(
            invert(tgt.pose) @ ref.pose, depth, reference.camera.resized(16, 12), self.hessian, 1e-3, 0.1
        )


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> tuple[Path, list[Frame]]:
    frames = _frames()
    out = tmp_path_factory.mktemp("run") / "bag"
    write_bag(frames, out, start_time=T0, include_depth=True)
    return out, frames


def _tum(path: Path) -> np.ndarray:
    return np.loadtxt(path, ndmin=2)


def test_run_with_a_perfect_estimator_has_zero_error(bag, tmp_path):
    bag_path, frames = bag
    out = tmp_path / "out"
    rc = run.main(
        # a scripted estimator: BA-Net alone (the feature front end needs real images)
        [str(bag_path), "--out", str(out), "--rate", "2", "--depth-every", "3", "--param", "frontend:=none"],
        estimator=TruthEstimator(frames),
    )
    assert rc == 0
    summary = json.loads((out / "metrics.json").read_text())
    published = summary["frames_published"]
    assert published == N and summary["node"]["dropped"] == 0
    # Rates over the same wall time: poses published and frames processed (a failed frame is processed).
    assert summary["frames_per_s"] == pytest.approx(published / summary["wall_s"])
    assert summary["processed_per_s"] == pytest.approx(summary["node"]["processed"] / summary["wall_s"])
    est = _tum(out / "trajectory.tum")
    assert est.shape == (published, 8)
    bag_stamps = {round(T0 + f.timestamp, 6) for f in frames}
    assert {round(t, 6) for t in est[:, 0]} <= bag_stamps
    np.testing.assert_allclose(est[0, 1:4], 0.0, atol=1e-12)  # odom = base_link at the first frame
    assert np.all(np.diff(est[:, 1]) > 0)  # base x forward: the camera moves along optical z
    for align in ("se3", "sim3"):
        m = summary["trajectory"][align]
        assert m["ate_rmse_m"] < 1e-6 and m["rpe_trans_rmse_m"] < 1e-6 and m["rpe_rot_rmse_deg"] < 1e-4
    assert summary["trajectory"]["sim3"]["scale"] == pytest.approx(1.0, abs=1e-6)
    assert summary["depth"]["abs_rel"] < 1e-6 and summary["depth"]["frames"] >= 2
    assert len(_tum(out / "gt.tum")) == N
    saved = sorted((out / "depth").glob("*.npy"))
    assert len(saved) == summary["depth"]["frames"] and len(saved) == math.ceil((published - 1) / 3)
    assert np.load(saved[0]).shape == (48, 64)  # depth/image comes at the input resolution
    for name in ("trajectory_se3.png", "trajectory_sim3.png", "ate_se3.png", "trajectory_camera.tum"):
        assert (out / name).is_file(), name
    assert len(list((out / "depth").glob("*.png"))) == len(saved)


def _run_scripted(bag_path: Path, out: Path, frames: list[Frame]) -> int:
    """banet-vo-run on a bag at rate 2, no plots, BA-Net alone with the exact estimator of `frames`."""
    args = [str(bag_path), "--out", str(out), "--rate", "2", "--no-plots", "--param", "frontend:=none"]
    return run.main(args, estimator=TruthEstimator(frames))


def test_a_replay_summary_names_the_inputs_problems(bag, tmp_path, capsys):
    """A bag recorded from a camera that froze for a while: the node keeps holding still, and the summary
    (read after the scroll) says how many images repeated the one before them."""
    frames = _frames()
    frozen = [replace(f, image=frames[3].image) if 3 <= f.index <= 7 else f for f in frames]
    bag_path = tmp_path / "frozen_bag"
    write_bag(frozen, bag_path, start_time=T0, include_depth=True)
    out = tmp_path / "out"
    assert _run_scripted(bag_path, out, frames) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["node"]["repeated_image"] == 4 and summary["frames_published"] == N
    err = capsys.readouterr().err
    assert "warning: the input had problems: repeated_image 4 (docs/node.md, Diagnostics)" in err
    assert _run_scripted(bag[0], tmp_path / "clean", frames) == 0
    assert "the input had problems" not in capsys.readouterr().err  # the same frames, none repeated


def test_ctrl_c_stops_the_replay_writes_what_was_processed_and_exits_130(tmp_path, capsys, monkeypatch):
    """SIGINT while the bag plays: playback stops, the frames already sent are processed, the outputs are
    written and marked interrupted, and the status is 130 (it went on silently and exited 0)."""
    import os
    import signal
    import threading

    timers = []

    class InterruptedPlayer(run.BagPlayer):
        def play(self, *args, **kwargs):  # Ctrl-C 1.5 s into the playback (4 s at this rate)
            timers.append(threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT)))
            timers[-1].start()
            return super().play(*args, **kwargs)

    monkeypatch.setattr(run, "BagPlayer", InterruptedPlayer)
    frames = _frames()
    bag_path = tmp_path / "bag"
    write_bag(frames, bag_path, start_time=T0)
    out = tmp_path / "out"
    args = [str(bag_path), "--out", str(out), "--rate", "0.25", "--no-plots", "--param", "frontend:=none"]
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the tests run in a background job
    try:
        status = run.main(args, estimator=TruthEstimator(frames))
    finally:
        for timer in timers:
            timer.cancel()
    assert status == run.INTERRUPTED_STATUS
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["interrupted"] is True
    assert 0 < summary["frames_published"] < N
    assert len(_tum(out / "trajectory.tum")) == summary["frames_published"]
    err = capsys.readouterr().err
    assert (
        "interrupted: playback stopped" in err
        and "interrupted (Ctrl-C): the outputs cover the" in err
        and "received" in err
    )
    assert signal.getsignal(signal.SIGINT) == before  # restored after the run


def test_run_finds_and_decodes_a_compressed_image_topic(tmp_path):
    # A robot's bag holds image_raw/compressed: banet-vo-run finds it from the default --image-topic, the
    # node subscribes the compressed transport, and (PNG is lossless) the result is exact.
    frames = _frames()
    bag_path = tmp_path / "bag"
    write_bag(frames, bag_path, start_time=T0, image_codec="png")
    out = tmp_path / "out"
    assert _run_scripted(bag_path, out, frames) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["frames_published"] == N and summary["node"]["bad_image"] == 0
    assert summary["trajectory"]["se3"]["ate_rmse_m"] < 1e-6


def _ros1_bag(path: Path, frames: list[Frame]) -> None:
    """A ROS 1 bag (EuRoC, TUM RGB-D and older robots record them): the frames' images and camera_info."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    types = ts.types
    with Writer(path) as writer:
        images = writer.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        infos = writer.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts)
        for i, frame in enumerate(frames):
            ns = round((T0 + frame.timestamp) * 1e9)
            stamp = types["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)
            header = types["std_msgs/msg/Header"](seq=i, stamp=stamp, frame_id="cam")
            c = frame.camera
            K = np.array([c.fx, 0.0, c.cx, 0.0, c.fy, c.cy, 0.0, 0.0, 1.0])
            info = types["sensor_msgs/msg/CameraInfo"](
                header=header,
                height=c.height,
                width=c.width,
                distortion_model="plumb_bob",
                D=np.zeros(5),
                K=K,
                R=np.eye(3).ravel(),
                P=np.c_[K.reshape(3, 3), np.zeros(3)].ravel(),
                binning_x=0,
                binning_y=0,
                roi=types["sensor_msgs/msg/RegionOfInterest"](
                    x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
                ),
            )
            writer.write(infos, ns, ts.serialize_ros1(info, "sensor_msgs/msg/CameraInfo"))
            image = types["sensor_msgs/msg/Image"](
                header=header,
                height=c.height,
                width=c.width,
                encoding="mono8",
                is_bigendian=0,
                step=c.width,
                data=frame.image.reshape(-1),
            )
            writer.write(images, ns, ts.serialize_ros1(image, "sensor_msgs/msg/Image"))


def test_a_ros1_bag_is_refused_with_the_conversion_that_then_plays(tmp_path, capsys):
    import subprocess
    import sys

    frames = _frames()
    ros1 = tmp_path / "robot.bag"
    _ros1_bag(ros1, frames)
    assert run.main([str(ros1), "--out", str(tmp_path / "o")], estimator=TruthEstimator(frames)) == 2
    err = capsys.readouterr().err
    assert "ROS 1 bag: convert it with `rosbags-convert --src" in err
    convert = Path(sys.executable).parent / "rosbags-convert"  # installed with rosbags, a pinned dependency
    dst = tmp_path / "robot_ros2"
    subprocess.run(
        [str(convert), "--src", str(ros1), "--dst", str(dst), "--dst-typestore", "ros2_kilted"], check=True
    )
    out = tmp_path / "out"
    argv = [str(dst), "--out", str(out), "--image-topic", "/cam/image_raw", "--no-plots"]
    assert run.main([*argv, "--param", "frontend:=none"], estimator=TruthEstimator(frames)) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["frames_published"] == N and summary["node"]["no_camera_info"] == 0  # /cam/camera_info


def test_a_sequence_folder_is_refused_with_the_command_that_makes_it_a_bag(tmp_path, capsys):
    from banet_vo.data import write_sequence
    from banet_vo.data.bags_cli import main as bag_main

    seq = write_sequence(_frames(), tmp_path / "seq")
    assert run.main([str(seq), "--out", str(tmp_path / "o")], estimator=TruthEstimator(_frames())) == 2
    err = capsys.readouterr().err
    command = f"banet-vo-bag {seq} {seq}_bag"
    assert "it is a sequence folder (banet layout)" in err and command in err
    assert bag_main([*command.split()[1:], "--start-time", str(T0)]) == 0  # the estimator's stamps
    out = tmp_path / "out"
    argv = [f"{seq}_bag", "--out", str(out), "--no-plots", "--param", "frontend:=none"]
    assert run.main(argv, estimator=TruthEstimator(_frames())) == 0
    assert json.loads((out / "metrics.json").read_text())["frames_published"] == N


def test_run_errors_are_clear(bag, tmp_path, capsys):
    bag_path, _ = bag
    assert run.main([str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert f"bag: {tmp_path / 'nope'} not found" in capsys.readouterr().err
    (tmp_path / "folder").mkdir()
    assert run.main([str(tmp_path / "folder"), "--out", str(tmp_path / "o")]) == 2
    assert "no metadata.yaml" in capsys.readouterr().err
    assert (
        run.main([str(bag_path), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "m.safetensors")])
        == 2
    )
    assert "--model" in capsys.readouterr().err
    with pytest.MonkeyPatch.context() as patch:  # an install without its share/banet_vo/models

        def nowhere():
            raise FileNotFoundError("the shipped model banet_small_synthetic.safetensors is in none of: /x")

        patch.setattr(run, "shipped_model", nowhere)
        assert run.main([str(bag_path), "--out", str(tmp_path / "o")]) == 2
        assert "--model not given, and the shipped model" in capsys.readouterr().err
    assert run.main([str(bag_path), "--out", str(tmp_path / "o"), "--image-topic", "/cam/other"]) == 2
    err = capsys.readouterr().err
    assert "no image topic /cam/other or /cam/other/compressed" in err
    assert "its image topics: /camera/depth/image, /camera/image_raw" in err
    with pytest.raises(SystemExit):
        run.main(["--help"])
    help_text = capsys.readouterr().out
    for option in (
        "--out",
        "--model",
        "--rate",
        "--device",
        "--params-file",
        "--param",
        "--depth-every",
        "--timeout",
    ):
        assert option in help_text


def test_run_with_a_real_banet_checkpoint(bag, tmp_path, capsys):
    from banet_vo.model import BANet, BANetConfig, checkpoint

    config = BANetConfig.preset("small", iterations=(1, 1, 1))
    path = tmp_path / "random_small.safetensors"
    checkpoint.save_checkpoint(
        path, BANet(config).state_dict(), "banet", config.to_dict(), {"data": "random"}
    )
    bag_path, _ = bag
    out = tmp_path / "out"
    rc = run.main(
        [
            str(bag_path),
            "--out",
            str(out),
            "--model",
            str(path),
            "--device",
            "cpu",
            "--rate",
            "2",
            "--param",
            "keyframe_mode:=consecutive",
            "--no-plots",
            "--profile",
        ]
    )
    assert rc == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["node"]["processed"] == N and summary["node"]["errors"] == 0, summary["node"]
    est = _tum(out / "trajectory.tum")
    assert len(est) == summary["frames_published"] and np.all(np.isfinite(est))
    # --profile: every frame timed on the node's inference thread, XFeat inside each (between_keyframes
    # match); BA-Net's row holds at least the model's warm-up pass
    stages = {(s["stage"], s["thread"]): s for s in summary["stages"]}
    whole = stages[("one frame in all (process)", "banet_vo_inference")]
    xfeat = stages[("XFeat extraction", "banet_vo_inference")]
    assert whole["calls"] == N and xfeat["calls"] == N
    assert 0 < xfeat["total_s"] < whole["total_s"]
    assert stages[("BA-Net on keyframe pairs", "banet_vo_inference")]["calls"] >= 1
    assert "where the time went" in capsys.readouterr().err


def test_test_runs_keep_the_users_ros_domain_id_unless_told_otherwise():
    from conftest import _pick_domain_id, _test_domain_id

    assert _test_domain_id({"ROS_DOMAIN_ID": "42"}) == "42"  # the user's domain is kept
    assert _test_domain_id({"ROS_DOMAIN_ID": "42", "BANET_VO_TEST_DOMAIN_ID": "7"}) == "7"
    own = str(_pick_domain_id())
    assert _test_domain_id({"ROS_DOMAIN_ID": "42", "BANET_VO_TEST_DOMAIN_ID": "auto"}) == own
    assert _test_domain_id({}) == own


def test_each_xdist_worker_owns_a_ros_domain_of_its_own(ros_domain_id):
    """`make test` runs two xdist workers: each adds its index to the run's domain (kept in 1..100), so
    two workers' nodes never hear each other."""
    import os

    from conftest import _worker_domain_id

    assert _worker_domain_id("42", "") == "42"  # not under xdist
    assert [_worker_domain_id("42", w) for w in ("gw0", "gw1", "gw2")] == ["42", "43", "44"]
    assert _worker_domain_id("100", "gw1") == "1" and _worker_domain_id("99", "gw1") == "100"
    with pytest.raises(ValueError, match="gw<number>"):
        _worker_domain_id("42", "worker1")
    run = os.environ["BANET_VO_TEST_DOMAIN_ID"]
    assert str(ros_domain_id) == _worker_domain_id(run, os.environ.get("PYTEST_XDIST_WORKER", ""))


def _tf(types, parent: str, child: str, T: np.ndarray):
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(T[:3, :3]).as_quat()
    return types["geometry_msgs/msg/TransformStamped"](
        header=types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=3, nanosec=0), frame_id=parent
        ),
        child_frame_id=child,
        transform=types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](x=T[0, 3], y=T[1, 3], z=T[2, 3]),
            rotation=types["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
        ),
    )


@pytest.fixture(scope="module")
def robot_bag(tmp_path_factory) -> Path:
    """A robot's bag: images in camera_optical, and robot_state_publisher's /tf_static tree base_footprint →
    base_link (0.1 m up) → camera_link (0.3 m ahead, 1.1 m up, pitched down 0.1 rad) → camera_optical."""
    from banet_vo.data.bags import IMAGE_TOPIC, TF_STATIC_TOPIC, TYPESTORE, image_message
    from banet_vo.geometry.frames import R_BODY_OPTICAL
    from rosbags.rosbag2 import StoragePlugin, Writer
    from scipy.spatial.transform import Rotation

    types = TYPESTORE.types
    up = np.eye(4)
    up[2, 3] = 0.1
    mount = np.eye(4)
    mount[:3, :3] = Rotation.from_euler("xyz", [0.0, 0.1, 0.0]).as_matrix()
    mount[:3, 3] = [0.3, 0.0, 1.1]
    optical = np.eye(4)
    optical[:3, :3] = R_BODY_OPTICAL
    tf = types["tf2_msgs/msg/TFMessage"](
        transforms=[
            _tf(types, "base_footprint", "base_link", up),
            _tf(types, "base_link", "camera_link", mount),
            _tf(types, "camera_link", "camera_optical", optical),
        ]
    )
    out = tmp_path_factory.mktemp("robot") / "bag"
    with Writer(out, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        tf_conn = writer.add_connection(TF_STATIC_TOPIC, "tf2_msgs/msg/TFMessage", typestore=TYPESTORE)
        img_conn = writer.add_connection(IMAGE_TOPIC, "sensor_msgs/msg/Image", typestore=TYPESTORE)
        writer.write(tf_conn, 3_000_000_000, bytes(TYPESTORE.serialize_cdr(tf, "tf2_msgs/msg/TFMessage")))
        for i in range(2):
            t_ns = 3_000_000_000 + i * 100_000_000
            msg = image_message(np.zeros((48, 64), np.uint8), t_ns, "camera_optical")
            writer.write(img_conn, t_ns, bytes(TYPESTORE.serialize_cdr(msg, "sensor_msgs/msg/Image")))
    return out


def _validated(bag: Path, tmp_path: Path, *params: str):
    # intrinsics: the robot's bag has no camera_info, which banet-vo-run refuses without them
    intrinsics = ("--param", "intrinsics:=[30.0, 30.0, 31.5, 23.5, 64, 48]")
    args = run._parser().parse_args([str(bag), "--out", str(tmp_path / "out"), *intrinsics, *params])
    run._validate(args, check_model=False)
    return {item.partition(":=")[0]: item.partition(":=")[2] for item in args.param}


def test_the_camera_mounting_comes_from_the_bags_tf_static(robot_bag, tmp_path, capsys):
    """base_frame → the images' frame_id through the recorded tree becomes base_camera_xyz/rpy (and the node
    is told not to wait for tf): base_footprint puts the camera 1.2 m up, 0.3 m ahead, pitched 0.1 rad."""
    import yaml
    from banet_vo.ros.params import base_camera_transform

    got = _validated(robot_bag, tmp_path, "--param", "base_frame:=base_footprint")
    xyz, rpy = yaml.safe_load(got["base_camera_xyz"]), yaml.safe_load(got["base_camera_rpy"])
    np.testing.assert_allclose(xyz, [0.3, 0.0, 1.2], atol=1e-9)
    np.testing.assert_allclose(rpy, [0.0, 0.1, 0.0], atol=1e-9)
    assert got["camera_extrinsic_source"] == "parameters"
    assert (
        "camera extrinsic base_footprint → camera_optical from the bag's /tf_static"
        in capsys.readouterr().err
    )
    # the default base_link: 0.1 m lower in the tree
    xyz = yaml.safe_load(_validated(robot_bag, tmp_path)["base_camera_xyz"])
    np.testing.assert_allclose(xyz, [0.3, 0.0, 1.1], atol=1e-9)
    # given base_camera_* win; a base frame the tree does not hold changes nothing, and says so
    assert _validated(robot_bag, tmp_path, "--param", "base_camera_xyz:=[0.0, 0.0, 2.0]")[
        "base_camera_xyz"
    ] == ("[0.0, 0.0, 2.0]")
    assert "base_camera_xyz" not in _validated(robot_bag, tmp_path, "--param", "base_frame:=chassis")
    assert "does not connect chassis and camera_optical" in capsys.readouterr().err
    # and the parameters reproduce the recorded transform
    T = base_camera_transform(*[yaml.safe_load(v) for v in (got["base_camera_xyz"], got["base_camera_rpy"])])
    assert T[2, 3] == pytest.approx(1.2) and T[:3, 2] @ [1.0, 0.0, 0.0] == pytest.approx(np.cos(0.1))


def test_the_mounting_follows_the_params_file_and_param_overrides_it(robot_bag, tmp_path):
    """--params-file counts as --param does, with --param over it (as ROS applies them), and what the user
    set explicitly (base_camera_*, camera_extrinsic_source) is never overridden by the bag's tree."""
    import yaml

    def params_file(**values) -> str:
        path = tmp_path / "params.yaml"
        # entries for every node and for banet_vo: the later one wins, as rclpy merges them
        path.write_text(
            yaml.safe_dump(
                {"/**": {"ros__parameters": {"base_frame": "chassis", **values}}},
                sort_keys=False,
            )
            + yaml.safe_dump({"banet_vo": {"ros__parameters": {"base_frame": "base_footprint"}}})
        )
        return str(path)

    got = _validated(robot_bag, tmp_path, "--params-file", params_file())
    np.testing.assert_allclose(yaml.safe_load(got["base_camera_xyz"]), [0.3, 0.0, 1.2], atol=1e-9)
    assert got["camera_extrinsic_source"] == "parameters"
    got = _validated(robot_bag, tmp_path, "--params-file", params_file(), "--param", "base_frame:=base_link")
    np.testing.assert_allclose(yaml.safe_load(got["base_camera_xyz"]), [0.3, 0.0, 1.1], atol=1e-9)
    # the user's extrinsic source and mounting in the file win over what the tree would give
    got = _validated(robot_bag, tmp_path, "--params-file", params_file(camera_extrinsic_source="tf"))
    assert "camera_extrinsic_source" not in got and "base_camera_xyz" in got
    got = _validated(robot_bag, tmp_path, "--params-file", params_file(base_camera_rpy=[0.0, 0.2, 0.0]))
    assert not got.keys() & {"base_camera_xyz", "base_camera_rpy"}
    assert got["camera_extrinsic_source"] == "parameters"  # the player plays no tf to wait for


def test_a_copy_of_the_shipped_params_file_says_it_overrides_the_bags_mounting(robot_bag, tmp_path, capsys):
    """config/banet_vo.yaml lists every parameter at its default, base_camera_xyz/rpy [0, 0, 0] too: a
    user's copy of it wins over the bag's /tf_static, which changed the trajectory without a word. Now a
    warning says so; a file that matches the tree says nothing."""
    import shutil

    import yaml

    shipped = Path(__file__).resolve().parents[1] / "ros2_ws/src/banet_vo/config/banet_vo.yaml"
    copy = tmp_path / "mine.yaml"
    shutil.copy(shipped, copy)
    got = _validated(robot_bag, tmp_path, "--params-file", str(copy))
    assert "base_camera_xyz" not in got  # the file's values stand
    err = capsys.readouterr().err
    assert "warning: the bag's /tf_static has base_link → camera_optical at xyz [0.3, 0.0, 1.1]" in err
    assert "leave them out to use the bag's" in err
    values = yaml.safe_load(copy.read_text())
    values["/**"]["ros__parameters"].update(base_camera_xyz=[0.3, 0.0, 1.1], base_camera_rpy=[0.0, 0.1, 0.0])
    copy.write_text(yaml.safe_dump(values))
    _validated(robot_bag, tmp_path, "--params-file", str(copy))
    assert "/tf_static has" not in capsys.readouterr().err


def test_the_node_never_waits_for_tf_the_player_does_not_play(bag, tmp_path):
    """Without /tf_static in the bag, or with a tree that does not reach the camera, the extrinsic is
    still the parameters': on a distro (tf2_ros importable) auto held the first extrinsic_timeout seconds
    of frames (a 40-frame bag: 19 processed, no_extrinsic 21), which the summary did not name."""
    from banet_vo.ros.vo_node import NO_EXTRINSIC

    assert _validated(bag[0], tmp_path, "--param", "base_frame:=chassis")["camera_extrinsic_source"] == (
        "parameters"
    )
    assert NO_EXTRINSIC in run.INPUT_PROBLEM_COUNTERS


def test_our_own_bags_mounting_is_the_parameters_default(bag, tmp_path):
    """banet-vo-bag writes base_link → camera_optical with the optical rotation at the origin: the same
    extrinsic as the parameters' defaults, so a replay of our bags is unchanged."""
    got = _validated(bag[0], tmp_path)
    assert got["base_camera_xyz"] == "[0.0, 0.0, 0.0]" and got["base_camera_rpy"] == "[0.0, 0.0, 0.0]"


def test_without_model_it_runs_the_shipped_default_from_any_directory(bag, tmp_path, monkeypatch):
    from banet_vo.model.shipped import DEFAULT_MODEL_NAME

    monkeypatch.chdir(tmp_path)  # not the repository: no models/ here
    bag_path, _ = bag
    argv = [str(bag_path), "--out", "out", "--device", "cpu", "--param", "frontend:=none", "--no-plots"]
    assert run.main(argv) == 0
    summary = json.loads((tmp_path / "out" / "metrics.json").read_text())
    model = Path(summary["model"])
    assert model.is_absolute() and model.name == DEFAULT_MODEL_NAME and model.is_file()
    assert summary["node"]["processed"] == N and summary["node"]["errors"] == 0, summary["node"]


def test_depth_pixels_published_invalid_are_left_out_and_counted_by_coverage():
    """NaN (REP-118 invalid) was turned into 0, clipped up to 0.1 m and scored as a prediction: a map right
    wherever it has a depth read abs rel 0.475 with coverage 1."""
    depth = np.array([[np.nan, 2.0], [2.0, 2.0]], np.float32)
    got = run._depth_metrics({5: depth}, {5: np.full((2, 2), 2.0, np.float32)})
    assert got["abs_rel"] == 0.0 and got["coverage"] == 0.75 and got["frames"] == 1
    # A map with no depth at all (a keyframe the depth bounds blanked) is counted, not a crash at the end
    # of a replay; alone, it leaves no metrics but its count.
    blank = np.full((2, 2), np.nan, np.float32)
    truth = {5: np.full((2, 2), 2.0, np.float32), 6: np.full((2, 2), 2.0, np.float32)}
    got = run._depth_metrics({5: depth, 6: blank}, truth)
    assert got["frames"] == 1 and got["maps_without_depth"] == 1 and got["abs_rel"] == 0.0
    assert run._depth_metrics({6: blank}, truth) == {"frames": 0, "maps_without_depth": 1}


def _refuse_constant(name: str):
    raise ValueError(f"not strict JSON: {name}")


def test_metrics_are_strict_json_when_a_figure_is_not_a_number(tmp_path):
    """One frame: no pair was estimated, so the BA cost is NaN and no trajectory can be aligned. The files
    must still parse as strict JSON (JavaScript, jq): NaN written as null, not as a bare NaN token."""
    frames = _frames()[:1]
    bag_path = tmp_path / "bag"
    write_bag(frames, bag_path, start_time=T0)
    out = tmp_path / "out"
    argv = [str(bag_path), "--out", str(out), "--param", "frontend:=none", "--no-plots"]
    assert run.main(argv, estimator=TruthEstimator(frames)) == 0
    summary = json.loads((out / "metrics.json").read_text(), parse_constant=_refuse_constant)
    assert summary["node"]["last_cost"] is None  # NaN: nothing estimated yet
    for path in out.glob("*.json"):
        json.loads(path.read_text(), parse_constant=_refuse_constant)


def test_a_bag_whose_images_name_no_frame_is_refused_up_front_with_the_fix(tmp_path, monkeypatch):
    """The node refuses images with an empty frame_id unless camera_frame names it: banet-vo-run says so
    before playing (exit 2) instead of ending with no odometry, and runs once camera_frame is given."""
    from banet_vo.data import bags

    image_message = bags.image_message
    # a recorder that left header.frame_id empty (write_bag itself refuses an empty frame name)
    monkeypatch.setattr(bags, "image_message", lambda image, t_ns, frame_id: image_message(image, t_ns, ""))
    frames = _frames()[:4]
    bag_path = tmp_path / "bag"
    write_bag(frames, bag_path, start_time=T0)
    monkeypatch.undo()
    out = tmp_path / "out"
    argv = [str(bag_path), "--out", str(out), "--param", "frontend:=none", "--no-plots"]
    assert run.main(argv, estimator=TruthEstimator(frames)) == 2
    assert not out.exists()
    argv += ["--param", "camera_frame:=cam_optical"]
    assert run.main(argv, estimator=TruthEstimator(frames)) == 0
    assert json.loads((out / "metrics.json").read_text())["frames_published"] == 4


class InterruptingTruthEstimator(TruthEstimator):
    """TruthEstimator taking 0.3 s a pair that sends this process a SIGINT (as Ctrl-C does) as it starts the
    pairs numbered in `sigint_on` (1 = the first; a number twice: two at once): frames queue up behind it,
    and each Ctrl-C comes at a known point of the work whatever the machine's load."""

    def __init__(self, frames, sigint_on: list[int]) -> None:
        super().__init__(frames)
        self.sigint_on = list(sigint_on)
        self.calls = 0

    def estimate(self, reference, target, pose_init=None):
        import os
        import signal
        import time

        self.calls += 1
        for _ in range(self.sigint_on.count(self.calls)):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # handled one at a time
        time.sleep(0.3)
        return super().estimate(reference, target, pose_init)


def _interrupted_run(tmp_path, sigint_on: list[int]) -> tuple[int, Path]:
    """banet-vo-run on the 10-frame bag at 4x its rate (every frame queued before the second pair is done),
    the node's BA-Net sending a SIGINT at the pairs `sigint_on`."""
    frames = _frames()
    bag_path = tmp_path / "bag"
    write_bag(frames, bag_path, start_time=T0)
    out = tmp_path / "out"
    args = [str(bag_path), "--out", str(out), "--rate", "4", "--no-plots", "--param", "frontend:=none"]
    return run.main(args, estimator=InterruptingTruthEstimator(frames, sigint_on)), out


def test_a_second_ctrl_c_drops_the_queued_frames_and_still_writes_the_outputs(tmp_path, capsys):
    import signal

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the tests run in a background job
    status, out = _interrupted_run(tmp_path, [2, 3])
    assert status == run.INTERRUPTED_STATUS
    err = capsys.readouterr().err
    assert "interrupted: playback stopped" in err
    dropped = [line for line in err.splitlines() if "interrupted again:" in line]
    assert len(dropped) == 1 and int(dropped[0].split("interrupted again: ")[1].split()[0]) > 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["interrupted"] is True and 0 < summary["frames_published"] < N
    assert signal.getsignal(signal.SIGINT) == before  # restored after the run


def test_a_third_ctrl_c_stops_without_outputs_and_says_so(tmp_path, capsys):
    status, out = _interrupted_run(tmp_path, [2, 3, 3])  # the second drops what the third would wait for
    assert status == run.INTERRUPTED_STATUS
    err = capsys.readouterr().err
    assert f"interrupted: the outputs in {out} are missing or incomplete" in err
    assert not (out / "metrics.json").exists()


def test_ctrl_c_while_the_outputs_are_written_does_not_stop_the_writing(tmp_path, capsys, monkeypatch):
    """The first two Ctrl-Cs keep the outputs (docs/node.md): also when they come as they are written."""
    import os
    import signal

    write_outputs = run.write_outputs

    def interrupted_writing(args, graph):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        return write_outputs(args, graph)

    monkeypatch.setattr(run, "write_outputs", interrupted_writing)
    status, out = _interrupted_run(tmp_path, [])
    assert status == 0  # the replay itself was whole
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["interrupted"] is False and summary["frames_published"] == N
