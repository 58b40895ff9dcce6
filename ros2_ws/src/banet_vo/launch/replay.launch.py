"""Replay a bag with /clock, run banet_vo on it, and optionally RViz:

    ros2 launch banet_vo replay.launch.py bag:=/path/to/kitti06_bag

Arguments: bag (rosbag2 directory, e.g. written by `banet-vo-bag`), model (default: the shipped one),
device, rate (playback speed), rviz (true/false, with the package's rviz/banet_vo.rviz), params_file
(optional node parameters YAML); model and device left empty are the params file's or the node's.
The node runs with use_sim_time so its clock follows the bag. Without a ROS 2 distro,
`banet-vo-run BAG --out DIR` runs the same graph in one process.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


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
            "rviz", default_value="true", description="start RViz with the package's rviz/banet_vo.rviz"
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
            "camera_info": "/camera/camera_info",
        }.items(),
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", os.path.join(share, "rviz", "banet_vo.rviz")],
        parameters=[{"use_sim_time": True}],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    return LaunchDescription([*arguments, vo, play, rviz])
