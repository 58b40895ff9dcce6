"""Launch files: the declared arguments (checked from the source, always) and a real launch_pytest run of
vo.launch.py (only where launch_ros and launch_pytest are installed: a ROS 2 distro, not the pip venv)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VO_LAUNCH = ROOT / "ros2_ws/src/banet_vo/launch/vo.launch.py"
REPLAY_LAUNCH = ROOT / "launch/kitti_replay.launch.py"
HAVE_LAUNCH_ROS = all(importlib.util.find_spec(m) is not None for m in ("launch_ros", "launch_pytest"))


def _declared_arguments(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument":
            first = node.args[0]
            assert isinstance(first, ast.Constant), f"{path.name}: argument names must be literals"
            names.add(first.value)
    return names


def test_vo_launch_declares_the_documented_arguments():
    expected = {
        "image",
        "camera_info",
        "params_file",
        "model",
        "device",
        "use_sim_time",
        "publish_tf",
        "namespace",
    }
    assert _declared_arguments(VO_LAUNCH) == expected
    assert "generate_launch_description" in VO_LAUNCH.read_text()


def test_replay_launch_plays_with_clock_and_ships_an_rviz_config():
    assert {"bag", "model", "device", "rate", "rviz"} <= _declared_arguments(REPLAY_LAUNCH)
    text = REPLAY_LAUNCH.read_text()
    assert '"--clock"' in text and '"use_sim_time": "true"' in text
    rviz = ROOT / "launch/banet_vo.rviz"
    import yaml

    config = yaml.safe_load(rviz.read_text())
    topics = {d.get("Topic", {}).get("Value") for d in config["Visualization Manager"]["Displays"]}
    assert {"/banet_vo/path", "/banet_vo/odometry", "/banet_vo/depth"} <= topics
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == "odom"


@pytest.mark.ros
@pytest.mark.skipif(
    not HAVE_LAUNCH_ROS,
    reason="launch_ros / launch_pytest are not installed (they are not on PyPI; run this in a ROS 2 distro); "
    "the same node graph is tested with rclpy executors in tests/test_vo_node.py",
)
def test_vo_launch_starts_the_node_and_stops_on_a_missing_model(tmp_path):
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription, RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    # A missing model must stop the node at start: vo_node exits with status 2 and says why.
    codes: list[int] = []
    description = LaunchDescription(
        [
            RegisterEventHandler(
                OnProcessExit(on_exit=lambda event, _context: codes.append(event.returncode))
            ),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(str(VO_LAUNCH)),
                launch_arguments={"model": str(tmp_path / "missing.safetensors"), "device": "cpu"}.items(),
            ),
        ]
    )
    service = LaunchService()
    service.include_launch_description(description)
    service.run()
    assert codes == [2]
