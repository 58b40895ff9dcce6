"""Replay a bag with /clock, run banet_vo on it, and optionally RViz:

    ros2 launch banet_vo replay.launch.py bag:=/path/to/kitti06_bag

Arguments: bag (rosbag2 directory, e.g. written by `banet-vo-bag`), model (default: the shipped one),
device, rate (playback speed), play_delay (seconds the bag waits for the node, 10),
image_transport (compressed for a bag of /camera/image_raw/compressed),
rviz (auto, true or false: RViz with the package's rviz/banet_vo.rviz),
params_file (optional node parameters YAML); model and device left empty are the params file's or the
node's. The node runs with use_sim_time so its clock follows the bag. Without a ROS 2 distro,
`banet-vo-run BAG --out DIR` runs the same graph in one process.

rviz2 is not a dependency of the package (a ros-base install, a robot, has none): rviz:=auto, the
default, starts RViz when the rviz2 package is installed and otherwise says so and replays without it;
rviz:=true insists (the launch stops, naming the package to install, when rviz2 is missing); rviz:=false
never starts it.
"""

from __future__ import annotations

import os

from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

RVIZ_CHOICES = ("auto", "true", "false", "1", "0")  # true and false as launch's conditions spell them


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("banet_vo")
    arguments = [
        DeclareLaunchArgument(
            "bag", description="rosbag2 directory with /camera/image_raw and /camera/camera_info"
        ),
        DeclareLaunchArgument(
            "model", default_value="", description="BA-Net checkpoint (.safetensors; empty: the shipped one)"
        ),
        DeclareLaunchArgument("device", default_value="", description="auto, cuda or cpu (empty: auto)"),
        DeclareLaunchArgument("rate", default_value="1.0", description="bag playback speed factor"),
        DeclareLaunchArgument(
            "play_delay",
            default_value="10.0",
            description="seconds ros2 bag play waits, its publishers made, before the first message: the "
            "node loads and warms up its model (seconds; longer on a first CUDA start) and subscribes once "
            "it sees the publishers, and images played before that are lost",
        ),
        DeclareLaunchArgument(
            "image_transport",
            default_value="",
            description="compressed for a bag of /camera/image_raw/compressed (banet-vo-bag --image-codec "
            "png or jpeg, a robot's recording); empty: the params file's, else raw",
        ),
        DeclareLaunchArgument(
            "rviz",
            default_value="auto",
            description="start RViz with the package's rviz/banet_vo.rviz: auto (when rviz2 is installed; "
            "without it the replay runs alone and says so), true or false",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=os.path.join(share, "config", "banet_vo.yaml"),
            description="node parameters",
        ),
    ]
    play = ExecuteProcess(
        cmd=[
            "ros2",
            "bag",
            "play",
            LaunchConfiguration("bag"),
            "--clock",
            "--rate",
            LaunchConfiguration("rate"),
            "--delay",
            LaunchConfiguration("play_delay"),
        ],
        output="screen",
    )
    vo = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, "launch", "vo.launch.py")),
        launch_arguments={
            "model": LaunchConfiguration("model"),
            "device": LaunchConfiguration("device"),
            "params_file": LaunchConfiguration("params_file"),
            "use_sim_time": "true",
            "image": "/camera/image_raw",
            "image_transport": LaunchConfiguration("image_transport"),
            "camera_info": "/camera/camera_info",
        }.items(),
    )
    return LaunchDescription([*arguments, vo, play, OpaqueFunction(function=_rviz)])


def start_rviz(choice: str, installed: bool) -> tuple[bool, str | None]:
    """(whether to start RViz, what to log) for the rviz argument's text and whether the rviz2 package is
    installed; ValueError for a choice that is none of RVIZ_CHOICES, or true without rviz2."""
    choice = choice.strip().lower()
    if choice not in RVIZ_CHOICES:
        raise ValueError(f"launch argument rviz: one of {', '.join(RVIZ_CHOICES)}, got {choice!r}")
    if choice in ("false", "0"):
        return False, None
    if installed:
        return True, None
    if choice == "auto":
        return False, "rviz2 is not installed: replaying without RViz (install ros-$ROS_DISTRO-rviz2 for it)"
    raise ValueError(
        "launch argument rviz: true, but the rviz2 package is not installed (ros-$ROS_DISTRO-rviz2)"
    )


def _rviz_installed() -> bool:
    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        return False
    return True


def _rviz(context: LaunchContext) -> list:
    """RViz with the package's config, as start_rviz decides."""
    start, message = start_rviz(LaunchConfiguration("rviz").perform(context), _rviz_installed())
    actions: list = [LogInfo(msg=message)] if message else []
    if start:
        share = get_package_share_directory("banet_vo")
        actions.append(
            Node(
                package="rviz2",
                executable="rviz2",
                arguments=["-d", os.path.join(share, "rviz", "banet_vo.rviz")],
                parameters=[{"use_sim_time": True}],
                output="screen",
            )
        )
    return actions
