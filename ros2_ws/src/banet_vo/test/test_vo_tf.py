"""banet_vo.ros.vo_tf: transforms to and from messages, and where the camera extrinsic comes from.

tf2_ros is not on PyPI, so the tf branch of ExtrinsicSource is driven here through a stand-in `tf2_ros`
module (a Buffer whose lookup fails until a transform is "received"); in a ROS 2 distro the real one is
used. The parameter branch and the refusal without tf2_ros run against the real environment."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy")
from banet_vo.ros.vo_tf import ExtrinsicSource, transform_msg, transform_to_matrix  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

T_PARAMS = np.eye(4)
T_TF = np.eye(4)
T_TF[:3, :3] = Rotation.from_euler("xyz", [0.1, -0.2, 0.3]).as_matrix()
T_TF[:3, 3] = [0.5, -0.1, 1.2]


@dataclass
class Params:
    camera_extrinsic_source: str
    extrinsic_timeout: float = 0.0
    T_base_camera: np.ndarray = field(default_factory=lambda: T_PARAMS)


class FakeLogger:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    warning = info


class FakeNode:
    executor = None  # as an rclpy Node not added to an executor: a resolved source unsubscribes at once

    def __init__(self) -> None:
        self.logger = FakeLogger()

    def get_logger(self) -> FakeLogger:
        return self.logger


def _fake_tf2(monkeypatch, available: list[bool]) -> list[tuple]:
    lookups: list[tuple] = []

    class Buffer:
        def lookup_transform(self, target, source, time):
            lookups.append((target, source))
            if not available[0]:
                raise LookupError(f"{source} does not exist")
            return types.SimpleNamespace(transform=transform_msg(Header(), source, T_TF).transform)

    module = types.SimpleNamespace(Buffer=Buffer, TransformListener=lambda buffer, node: None)
    monkeypatch.setitem(sys.modules, "tf2_ros", module)
    return lookups


def test_transform_round_trip():
    np.testing.assert_allclose(
        transform_to_matrix(transform_msg(Header(), "c", T_TF).transform), T_TF, atol=1e-12
    )


def test_tf_source_waits_for_the_transform_and_then_reads_it(monkeypatch):
    available = [False]
    lookups = _fake_tf2(monkeypatch, available)
    source = ExtrinsicSource(FakeNode(), Params("tf"))
    assert not source.ready and source.describe() == "tf"
    assert source.resolve("camera_optical", "base_link") is None  # not on tf yet: the frame waits
    available[0] = True
    np.testing.assert_allclose(source.resolve("camera_optical", "base_link"), T_TF, atol=1e-12)
    assert source.ready and lookups[-1] == ("base_link", "camera_optical")


def test_auto_falls_back_to_the_parameters_after_the_timeout(monkeypatch):
    _fake_tf2(monkeypatch, [False])
    node = FakeNode()
    source = ExtrinsicSource(node, Params("auto", extrinsic_timeout=0.0))
    np.testing.assert_array_equal(source.resolve("camera_optical", "base_link"), T_PARAMS)
    assert source.ready and "using base_camera_xyz/rpy" in node.logger.lines[-1]


def test_without_tf2_ros_auto_uses_parameters_and_tf_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2_ros", None)  # import fails as on the pip install
    source = ExtrinsicSource(FakeNode(), Params("auto"))
    assert source.ready and source.describe().startswith("parameters")
    with pytest.raises(ValueError, match="camera_extrinsic_source: tf needs tf2_ros"):
        ExtrinsicSource(FakeNode(), Params("tf"))
