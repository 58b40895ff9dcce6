"""Bag writer and reader helper: KITTI 06 round trip, both storages, stamps, intrinsics, GT, tf_static."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from banet_vo.data import compressed_image
from banet_vo.data.bags import (
    CAMERA_INFO_TOPIC,
    COMPRESSED_IMAGE_TOPIC,
    DEPTH_TOPIC,
    IMAGE_TOPIC,
    ODOMETRY_TOPIC,
    STORAGES,
    TF_STATIC_TOPIC,
    BagReader,
    BagTopic,
    camera_from_info,
    find_image_topic,
    image_from_message,
    pose_from_message,
    seconds_to_ns,
    stamp_ns,
    write_bag,
)
from banet_vo.data.bags_cli import main
from banet_vo.data.readers import open_sequence
from banet_vo.data.sequence import Frame, InMemorySequence
from banet_vo.geometry import PinholeCamera
from scipy.spatial.transform import Rotation


def _kitti_calib_p0(kitti_dir: Path) -> np.ndarray:
    # Parsed here independently of the reader under test: the first line is P0 (with or without "P0:").
    first = (kitti_dir / "calib.txt").read_text().splitlines()[0]
    return np.array(first.split(":")[-1].split(), dtype=np.float64).reshape(3, 4)


def _kitti_poses(kitti_dir: Path) -> np.ndarray:
    rows = np.loadtxt(kitti_dir / "poses.txt", dtype=np.float64).reshape(-1, 3, 4)
    bottom = np.broadcast_to([0.0, 0.0, 0.0, 1.0], (len(rows), 1, 4))
    return np.concatenate([rows, bottom], axis=1)


@pytest.fixture(scope="module", params=STORAGES)
def kitti_bag(request, kitti06_dir: Path, tmp_path_factory) -> tuple[Path, str]:
    storage = request.param
    out = tmp_path_factory.mktemp(f"kitti_{storage}") / "bag"
    summary = write_bag(open_sequence(kitti06_dir), out, storage=storage)
    assert summary.frames == 51
    return out, storage


def test_kitti_bag_round_trip(kitti_bag, kitti06_dir: Path) -> None:
    bag, storage = kitti_bag
    sequence = open_sequence(kitti06_dir)
    P0 = _kitti_calib_p0(kitti06_dir)
    poses = _kitti_poses(kitti06_dir)
    with BagReader(bag) as reader:
        topics = reader.topics
        assert {t: topics[t].count for t in topics} == {
            IMAGE_TOPIC: 51,
            CAMERA_INFO_TOPIC: 51,
            ODOMETRY_TOPIC: 51,
            TF_STATIC_TOPIC: 1,
        }
        assert topics[TF_STATIC_TOPIC].latched and not topics[IMAGE_TOPIC].latched
        assert all(t.reliable for t in topics.values())
        images, infos, odoms = [], [], []
        for record, msg in reader.messages():
            if record.topic != TF_STATIC_TOPIC:
                # Bag timestamps are the header stamps.
                assert stamp_ns(msg.header) == record.timestamp_ns
            {IMAGE_TOPIC: images, CAMERA_INFO_TOPIC: infos, ODOMETRY_TOPIC: odoms}.get(
                record.topic, []
            ).append((record.timestamp_ns, msg))
    assert len(images) == len(infos) == len(odoms) == 51
    # Stamps exactly 0.1 s apart in integer nanoseconds (no float drift).
    assert [t for t, _ in images] == [i * 100_000_000 for i in range(51)]
    assert [t for t, _ in infos] == [t for t, _ in images] == [t for t, _ in odoms]
    for i in (0, 25, 50):
        msg = images[i][1]
        assert (msg.encoding, msg.width, msg.height, msg.step) == ("mono8", 1226, 370, 1226)
        assert msg.header.frame_id == "camera_optical"
        np.testing.assert_array_equal(image_from_message(msg), sequence[i].image)
    for _, info in infos:
        assert info.header.frame_id == "camera_optical"
        assert (info.width, info.height) == (1226, 370)
        np.testing.assert_allclose(np.asarray(info.p).reshape(3, 4), P0, rtol=0, atol=1e-9)
        np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), P0[:, :3], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(np.asarray(info.r).reshape(3, 3), np.eye(3))
    camera = camera_from_info(infos[0][1])
    assert camera == PinholeCamera(707.0912, 707.0912, 601.8873, 183.1104, 1226, 370)
    for i, (_, odom) in enumerate(odoms):
        assert (odom.header.frame_id, odom.child_frame_id) == ("world", "camera_optical")
        T = pose_from_message(odom.pose.pose)
        np.testing.assert_array_equal(T[:3, 3], poses[i][:3, 3])  # float64 in, float64 out
        # Rotations: KITTI text has ~7 digits, the quaternion is of the nearest true rotation.
        np.testing.assert_allclose(T[:3, :3], poses[i][:3, :3], atol=2e-6)
    # Moving ~1.2 m per frame along optical z (KITTI 06 is a straight road).
    assert 55.0 < np.linalg.norm(pose_from_message(odoms[-1][1].pose.pose)[:3, 3]) < 65.0

    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == storage
    assert meta["version"] == 8
    assert meta["message_count"] == 51 * 3 + 1
    assert meta["duration"]["nanoseconds"] == 5_000_000_000
    assert meta["starting_time"]["nanoseconds_since_epoch"] == 0
    for rel in meta["relative_file_paths"]:
        assert (bag / rel).is_file()
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]}
    assert counts[IMAGE_TOPIC] == 51
    assert all(
        t["topic_metadata"]["type_description_hash"].startswith("RIHS01_")
        for t in meta["topics_with_message_count"]
    )


def test_tf_static_is_the_rep103_optical_rotation(kitti_bag) -> None:
    bag, _ = kitti_bag
    with BagReader(bag) as reader:
        [(record, msg)] = list(reader.messages([TF_STATIC_TOPIC]))
    assert record.timestamp_ns == 0
    [tf] = msg.transforms
    assert (tf.header.frame_id, tf.child_frame_id) == ("base_link", "camera_optical")
    assert (tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z) == (0, 0, 0)
    q = tf.transform.rotation
    assert (q.x, q.y, q.z, q.w) == pytest.approx((-0.5, 0.5, -0.5, 0.5), abs=1e-12)  # as documented
    R = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    # Body axes of the optical axes: z forward → body x, x right → body −y, y down → body −z.
    np.testing.assert_allclose(R @ [0, 0, 1], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(R @ [1, 0, 0], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(R @ [0, 1, 0], [0, 0, -1], atol=1e-12)


def _rgb_frames(
    n: int, depth: bool = True, pose: bool = True, dt: float = 0.05, t0: float = 0.0
) -> list[Frame]:
    rng = np.random.default_rng(3)
    camera = PinholeCamera(40.0, 41.0, 15.5, 11.5, 32, 24)
    frames = []
    for i in range(n):
        d = rng.uniform(0.5, 5.0, (24, 32)).astype(np.float32)
        d[::5, ::3] = 0.0  # invalid pixels
        T = np.eye(4)
        T[:3, 3] = [0.1 * i, 0.0, 0.3 * i]
        frames.append(
            Frame(
                i,
                t0 + dt * i,
                rng.integers(0, 256, (24, 32, 3), dtype=np.uint8),
                camera,
                d if depth else None,
                T if pose else None,
            )
        )
    return frames


def test_rgb_and_depth_round_trip(tmp_path: Path) -> None:
    frames = _rgb_frames(4)
    summary = write_bag(InMemorySequence(frames), tmp_path / "bag", storage="sqlite3", include_depth=True)
    assert summary.message_counts[DEPTH_TOPIC] == 4
    with BagReader(summary.path) as reader:
        images = [m for _, m in reader.messages([IMAGE_TOPIC])]
        depths = [m for _, m in reader.messages([DEPTH_TOPIC])]
    for frame, img, dep in zip(frames, images, depths, strict=True):
        assert img.encoding == "rgb8" and img.step == 32 * 3
        np.testing.assert_array_equal(image_from_message(img), frame.image)
        assert dep.encoding == "32FC1" and dep.step == 32 * 4
        got = image_from_message(dep)
        valid = frame.depth > 0
        np.testing.assert_array_equal(got[valid], frame.depth[valid])
        assert np.all(np.isnan(got[~valid]))  # REP-118: NaN where invalid


@pytest.mark.parametrize("codec", ["png", "jpeg"])
def test_compressed_images_are_written_as_image_transport_records_them(tmp_path: Path, codec: str) -> None:
    frames = _rgb_frames(3, depth=False)
    summary = write_bag(frames, tmp_path / "bag", image_codec=codec)
    assert IMAGE_TOPIC not in summary.message_counts and summary.message_counts[COMPRESSED_IMAGE_TOPIC] == 3
    with BagReader(summary.path) as reader:
        assert reader.topics[COMPRESSED_IMAGE_TOPIC].msgtype == "sensor_msgs/msg/CompressedImage"
        assert find_image_topic(reader.topics, IMAGE_TOPIC) == (COMPRESSED_IMAGE_TOPIC, "compressed")
        messages = [m for _, m in reader.messages([COMPRESSED_IMAGE_TOPIC])]
    for frame, msg in zip(frames, messages, strict=True):
        assert msg.format == f"rgb8; {codec} compressed bgr8" and msg.header.frame_id == "camera_optical"
        pixels, encoding = compressed_image.decode(compressed_image.parse_format(msg.format), msg.data)
        assert encoding == "bgr8"
        decoded = pixels[:, :, ::-1].astype(float)
        if codec == "png":
            np.testing.assert_array_equal(decoded, frame.image)
        else:  # JPEG of noise (these frames) loses much, but it is still this frame
            assert np.corrcoef(decoded.ravel(), frame.image.ravel())[0, 1] > 0.4  # another frame: ~0
    with pytest.raises(ValueError, match="image_codec"):
        write_bag(frames, tmp_path / "other", image_codec="webp")


def _topic(name: str, msgtype: str) -> BagTopic:
    return BagTopic(name, msgtype, 1, True, False)


def test_find_image_topic_takes_raw_or_compressed_and_says_what_the_bag_has() -> None:
    raw, packed = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"
    both = {t.name: t for t in (_topic("/cam/image", raw), _topic("/cam/image/compressed", packed))}
    assert find_image_topic(both, "/cam/image") == ("/cam/image", "raw")  # the raw one when asked for it
    assert find_image_topic(both, "cam/image") == ("/cam/image", "raw")
    assert find_image_topic(both, "/cam/image/compressed") == ("/cam/image/compressed", "compressed")
    only = {"/cam/image/compressed": both["/cam/image/compressed"]}
    assert find_image_topic(only, "/cam/image") == ("/cam/image/compressed", "compressed")
    with pytest.raises(
        ValueError, match=r"no image topic /other or /other/compressed.*/cam/image/compressed"
    ):
        find_image_topic(only, "/other")
    odd = {"/cam/jpeg": _topic("/cam/jpeg", packed), "/imu": _topic("/imu", "sensor_msgs/msg/Imu")}
    with pytest.raises(ValueError, match="does not end in '/compressed'"):
        find_image_topic(odd, "/cam/jpeg")
    with pytest.raises(ValueError, match="holds sensor_msgs/msg/Imu"):
        find_image_topic(odd, "/imu")


def test_no_odometry_without_poses_and_start_time_offset(tmp_path: Path) -> None:
    frames = _rgb_frames(3, depth=False, pose=False, dt=0.1)
    summary = write_bag(frames, tmp_path / "bag", start_time=1_700_000_000.25)
    assert ODOMETRY_TOPIC not in summary.message_counts
    with BagReader(summary.path) as reader:
        assert ODOMETRY_TOPIC not in reader.topics
        stamps = [r.timestamp_ns for r in reader.records([IMAGE_TOPIC])]
        assert list(reader.records([])) == []  # an empty selection is empty, not "everything"
    assert stamps == [1_700_000_000_250_000_000 + k * 100_000_000 for k in range(3)]


def test_a_start_time_as_written_is_exact_to_the_nanosecond(tmp_path: Path, kitti06_dir: Path) -> None:
    """--start-time 1700000000.1 went through a float: the first stamp was ...099999905 (95 ns off), while
    the docs promise exact integer nanoseconds. Text (the CLI's) and Decimal are now exact."""
    from banet_vo.data.bags import start_time_ns

    assert start_time_ns("1700000000.1") == 1_700_000_000_100_000_000
    assert start_time_ns("1700000000.123456789") == 1_700_000_000_123_456_789
    assert start_time_ns(2.5) == 2_500_000_000
    with pytest.raises(ValueError, match="start time must be a number of seconds"):
        start_time_ns("soon")
    out = tmp_path / "bag"
    assert (
        main([str(kitti06_dir), str(out), "--max-frames", "2", "--start-time", "1700000000.123456789"]) == 0
    )
    with BagReader(out) as reader:
        first = next(r.timestamp_ns for r in reader.records([IMAGE_TOPIC]))
    assert first == 1_700_000_000_123_456_789
    with pytest.raises(SystemExit) as exited:  # argparse's usage error
        main([str(kitti06_dir), str(tmp_path / "bad"), "--start-time", "soon"])
    assert exited.value.code == 2


def test_seconds_to_ns_is_exact_on_decimal_times() -> None:
    assert [seconds_to_ns(0.1 * i) for i in range(1000)] == [i * 100_000_000 for i in range(1000)]
    assert seconds_to_ns(1_700_000_000.5) == 1_700_000_000_500_000_000
    assert seconds_to_ns(-0.25) == -250_000_000
    with pytest.raises(ValueError, match="finite"):
        seconds_to_ns(float("nan"))


def test_bad_input_raises_and_leaves_no_partial_bag(tmp_path: Path) -> None:
    frames = _rgb_frames(3, depth=False)
    with pytest.raises(ValueError, match="storage"):
        write_bag(frames, tmp_path / "a", storage="rosbag1")
    with pytest.raises(ValueError, match="camera_frame"):
        write_bag(frames, tmp_path / "a", camera_frame="/cam")
    with pytest.raises(ValueError, match="max_frames"):
        write_bag(frames, tmp_path / "a", max_frames=0)
    with pytest.raises(ValueError, match="negative"):
        write_bag(frames, tmp_path / "a", start_time=-1.0)
    assert not (tmp_path / "a").exists()
    # Non-increasing stamps fail mid-write: the partial bag is removed.
    repeated = [frames[0], frames[1], Frame(2, frames[1].timestamp, frames[2].image, frames[2].camera)]
    with pytest.raises(ValueError, match="strictly increasing"):
        write_bag(repeated, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match="include_depth"):
        write_bag(frames, tmp_path / "c", include_depth=True)
    assert not (tmp_path / "c").exists()
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match=r"out: .* already exists"):
        write_bag(frames, tmp_path / "d")
    with pytest.raises(ValueError, match=r"bag: .* not a rosbag2"):
        BagReader(tmp_path / "d")


def test_cli_writes_a_subset(kitti06_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bag"
    rc = main([str(kitti06_dir), str(out), "--storage", "sqlite3", "--max-frames", "5", "--format", "kitti"])
    assert rc == 0
    # Not a terminal: one progress line per tenth of the frames (each frame of 5), no carriage returns.
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines() == [f"[banet-vo-bag] {k}/5 frames" for k in range(1, 6)] + [err.splitlines()[-1]]
    assert err.splitlines()[-1].startswith(f"[banet-vo-bag] wrote {out}")
    with BagReader(out) as reader:
        assert reader.topics[IMAGE_TOPIC].count == 5
        assert reader.end_ns - reader.start_ns == 400_000_000
    assert (out / "metadata.yaml").is_file()
    assert (
        yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"][
            "storage_identifier"
        ]
        == "sqlite3"
    )
    # An existing output is an error, not an overwrite.
    assert main([str(kitti06_dir), str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_help_documents_every_option(cli_help) -> None:
    text = cli_help(main)
    for option in (
        "--format",
        "--storage",
        "--bag-version",
        "--camera-frame",
        "--body-frame",
        "--world-frame",
        "--start-time",
        "--max-frames",
        "--depth",
        "--image-codec",
        "mcap",
        "sqlite3",
    ):
        assert option in text


def _rosbags_image(pixels: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False):
    """A rosbags sensor_msgs/Image of `pixels` with `pad` bytes of 0xAB after each row (as drivers that
    align rows write it), in either byte order."""
    from banet_vo.data.bags import TYPESTORE, _header

    height = pixels.shape[0]
    wire = pixels.astype(pixels.dtype.newbyteorder(">" if big_endian else "<"))
    rows = wire.reshape(height, -1).view(np.uint8).reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, pad), 0xAB, np.uint8)], axis=1)
    return TYPESTORE.types["sensor_msgs/msg/Image"](
        header=_header(0, "camera_optical", "test"),
        height=height,
        width=pixels.shape[1],
        encoding=encoding,
        is_bigendian=int(big_endian),
        step=padded.shape[1],
        data=padded.reshape(-1),
    )


@pytest.mark.parametrize("big_endian", [False, True], ids=["little", "big"])
def test_image_from_message_honours_row_padding_and_byte_order(big_endian: bool) -> None:
    rng = np.random.default_rng(4)
    depth = rng.uniform(0.5, 9.0, (3, 5)).astype(np.float32)
    rgb = rng.integers(0, 256, (4, 7, 3), dtype=np.uint8)
    for pad in (0, 8):
        np.testing.assert_array_equal(
            image_from_message(_rosbags_image(depth, "32FC1", pad, big_endian)), depth
        )
        np.testing.assert_array_equal(image_from_message(_rosbags_image(rgb, "rgb8", pad + 1)), rgb)
        # colour orders other than RGB come back as RGB
        bgra = np.concatenate([rgb[:, :, ::-1], np.full((4, 7, 1), 9, np.uint8)], axis=2)
        np.testing.assert_array_equal(image_from_message(_rosbags_image(bgra, "bgra8", pad)), rgb)
    with pytest.raises(ValueError, match=r"Image\.step"):  # 5 bytes a row cannot hold 5 uint16
        image_from_message(_rosbags_image(np.zeros((3, 5), np.uint8), "16UC1"))


def test_depth_from_message_is_metres_with_nan_where_invalid() -> None:
    """REP-118: 16UC1 (and mono16) depth is millimetres with 0 = no reading; 32FC1 metres."""
    from banet_vo.data.bags import depth_from_message

    mm = np.array([[0, 1, 1500], [65535, 2000, 0]], dtype=np.uint16)
    expected = np.array([[np.nan, 0.001, 1.5], [65.535, 2.0, np.nan]], dtype=np.float32)
    for encoding in ("16UC1", "mono16"):
        for pad, big in ((0, False), (6, True)):
            got = depth_from_message(_rosbags_image(mm, encoding, pad, big))
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, expected)  # NaN where NaN expected, values exact
    metres = np.array([[np.nan, 0.0, -1.0], [np.inf, 2.5, 0.25]], dtype=np.float32)
    got = depth_from_message(_rosbags_image(metres, "32FC1", 4))
    np.testing.assert_array_equal(got, [[np.nan, np.nan, np.nan], [np.nan, 2.5, 0.25]])
    with pytest.raises(ValueError, match=r"depth Image\.encoding"):
        depth_from_message(_rosbags_image(np.zeros((2, 2), np.uint8), "mono8"))


def _euroc_pinhole(root: Path, stamps_ns: list[int]) -> None:
    """A minimal EuRoC folder: an undistorted 32×24 cam0 with the given data.csv stamps."""
    import cv2

    cam = root / "mav0" / "cam0"
    (cam / "data").mkdir(parents=True)
    rng = np.random.default_rng(8)
    lines = ["#timestamp [ns],filename"]
    for t in stamps_ns:
        assert cv2.imwrite(str(cam / "data" / f"{t}.png"), rng.integers(0, 256, (24, 32), np.uint8))
        lines.append(f"{t},{t}.png")
    (cam / "data.csv").write_text("\n".join(lines) + "\n")
    sensor = {
        "sensor_type": "camera",
        "T_BS": {"cols": 4, "rows": 4, "data": np.eye(4).ravel().tolist()},
        "rate_hz": 20,
        "resolution": [32, 24],
        "camera_model": "pinhole",
        "intrinsics": [40.0, 40.0, 15.5, 11.5],
        "distortion_model": "radial-tangential",
        "distortion_coefficients": [0.0, 0.0, 0.0, 0.0],
    }
    (cam / "sensor.yaml").write_text(yaml.safe_dump(sensor))


def test_euroc_stamps_reach_the_bag_exactly_as_in_data_csv(tmp_path: Path) -> None:
    """EuRoC stamps are Unix times in ns; through float seconds (~240 ns apart at 1.4e9 s) they would move."""
    stamps = [1403636579763555584 + k * 50_000_000 + 37 * k + 3 for k in range(6)]
    _euroc_pinhole(tmp_path / "seq", stamps)
    sequence = open_sequence(tmp_path / "seq")
    summary = write_bag(sequence, tmp_path / "bag")
    assert (summary.start_ns, summary.end_ns) == (stamps[0], stamps[-1])
    with BagReader(summary.path) as reader:
        records = list(reader.messages([IMAGE_TOPIC]))
    assert [r.timestamp_ns for r, _ in records] == stamps
    assert [stamp_ns(m.header) for _, m in records] == stamps
    # a start_time shift is added to the exact stamps
    shifted = write_bag(sequence, tmp_path / "bag2", start_time=2.5, max_frames=2)
    assert (shifted.start_ns, shifted.end_ns) == (stamps[0] + 2_500_000_000, stamps[1] + 2_500_000_000)


def test_tum_stamps_reach_the_bag_exactly_as_in_rgb_txt(tmp_path: Path) -> None:
    """TUM's rgb.txt gives Unix seconds to the microsecond: as float seconds they would come out 64 ns off."""
    root = tmp_path / "tum"
    (root / "rgb").mkdir(parents=True)
    texts = ["1305031102.175304", "1305031102.211214", "1305031102.243211"]
    for t in texts:
        assert cv2.imwrite(str(root / "rgb" / f"{t}.png"), np.zeros((24, 32, 3), np.uint8))
    (root / "rgb.txt").write_text("# timestamp filename\n" + "".join(f"{t} rgb/{t}.png\n" for t in texts))
    np.savetxt(root / "K.txt", [[30, 0, 15.5], [0, 30, 11.5], [0, 0, 1]])
    expected = [int(t.replace(".", "")) * 1000 for t in texts]
    sequence = open_sequence(root)
    np.testing.assert_array_equal(sequence.timestamps_ns, expected)
    with BagReader(write_bag(sequence, tmp_path / "bag").path) as reader:
        assert [stamp_ns(m.header) for _, m in reader.messages([IMAGE_TOPIC])] == expected
