"""Launch the banet_vo node: `ros2 launch banet_vo vo.launch.py model:=/path/to/model.safetensors`.

Arguments: image, camera_info (topics to remap the inputs to), params_file (node parameters, default the
package's config/banet_vo.yaml), model (required), device (auto|cuda|cpu), use_sim_time (true when
replaying a bag with /clock), publish_tf, rectify, namespace.

The default input is the driver's raw image (/camera/image_raw) with rectify:=true: the node undistorts
it with the camera_info calibration. With image_proc already running, pass
image:=/camera/image_rect rectify:=false.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("banet_vo"), "config", "banet_vo.yaml")
    arguments = [
        DeclareLaunchArgument("image", default_value="/camera/image_raw", description="input image topic"),
        DeclareLaunchArgument(
            "camera_info", default_value="/camera/camera_info", description="input camera_info topic"
        ),
        DeclareLaunchArgument(
            "params_file", default_value=default_params, description="node parameters YAML"
        ),
        DeclareLaunchArgument("model", description="BA-Net checkpoint (.safetensors)"),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cuda or cpu"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        DeclareLaunchArgument("publish_tf", default_value="true", description="broadcast odom → base_link"),
        DeclareLaunchArgument(
            "rectify",
            default_value="true",
            description="rectify raw images in the node (false for an image_rect input)",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
    ]
    node = Node(
        package="banet_vo",
        executable="vo_node",
        name="banet_vo",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model": LaunchConfiguration("model"),
                "device": LaunchConfiguration("device"),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
                "publish_tf": ParameterValue(LaunchConfiguration("publish_tf"), value_type=bool),
                "rectify": ParameterValue(LaunchConfiguration("rectify"), value_type=bool),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("camera_info", LaunchConfiguration("camera_info")),
        ],
    )
    return LaunchDescription([*arguments, node])
