"""Launch the banet_vo node: `ros2 launch banet_vo vo.launch.py [image:=/cam/image_raw] [name:=value ...]`.

Arguments: image, camera_info (topics to remap the inputs to; camera_info defaults to the one beside the
image, /cam/left/image_raw → /cam/left/camera_info), params_file (node parameters, default the package's
config/banet_vo.yaml), namespace, lifecycle, autostart, and these node parameters (banet_vo.ros.
launch_args): model (default: the shipped model, installed with the package), device, use_sim_time (true
when replaying a bag with /clock), publish_tf, rectify, image_transport (raw, or compressed to read
image_transport's `<image>/compressed`), frontend, scale_source, camera_height, base_frame,
depth_calibration (with model: a copy with its depth curve beside it), and the live settings
background_ba, tracking_banet_min_interval, tracking_max_keypoints, tracking_between_keyframes,
tracking_mapping (README, live on a small CPU). A node parameter left empty is not passed: params_file
decides, else the node's default; a given one overrides params_file. Other node parameters go in a
params_file (copy config/banet_vo.yaml).

lifecycle:=true runs the managed node (vo_lifecycle_node: configure loads the model, activate subscribes)
instead of vo_node; with autostart:=true (the default) this file configures it and, once that first
configure has made it inactive, activates it (only then: a later deactivate is left as it is);
autostart:=false leaves both to a lifecycle manager (nav2_lifecycle_manager, or
`ros2 lifecycle set /banet_vo configure`).

The default input is the driver's raw image (/camera/image_raw) with rectify true: the node undistorts
it with the camera_info calibration. With image_proc already running, pass
image:=/camera/image_rect rectify:=false.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from banet_vo.ros.launch_args import LAUNCH_PARAMETERS, launch_description, parameter_overrides
from banet_vo.ros.topics import camera_info_beside_launch
from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    GroupAction,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.conditions import IfCondition, UnlessCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from lifecycle_msgs.msg import Transition


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("banet_vo"), "config", "banet_vo.yaml")
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
            DeclareLaunchArgument(name, default_value="", description=launch_description(name))
            for name in LAUNCH_PARAMETERS
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument(
            "lifecycle",
            default_value="false",
            description="run the managed node vo_lifecycle_node instead of vo_node",
        ),
        DeclareLaunchArgument(
            "autostart",
            default_value="true",
            description="with lifecycle:=true, configure and activate it here (false: a lifecycle manager "
            "does)",
        ),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])


def _nodes(context: LaunchContext) -> list:
    """vo_node or vo_lifecycle_node with the params file and the node parameters given as arguments."""
    given = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_PARAMETERS}
    # launch_ros reads a plain string value as YAML (a path "2024" would become an int): strings stay strings
    overrides = {
        name: ParameterValue(value, value_type=str) if isinstance(value, str) else value
        for name, value in parameter_overrides(given).items()
    }
    lifecycle = LaunchConfiguration("lifecycle")
    common = dict(
        package="banet_vo",
        name="banet_vo",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("camera_info", LaunchConfiguration("camera_info")),
        ],
    )
    node = Node(executable="vo_node", condition=UnlessCondition(lifecycle), **common)
    managed = LifecycleNode(executable="vo_lifecycle_node", condition=IfCondition(lifecycle), **common)
    true = "'.lower() in ('true', '1')"  # the spellings IfCondition reads as true
    autostart = IfCondition(
        PythonExpression(["'", lifecycle, true, " and '", LaunchConfiguration("autostart"), true])
    )

    def transition(transition_id: int) -> EmitEvent:
        return EmitEvent(
            event=ChangeState(lifecycle_node_matcher=matches_action(managed), transition_id=transition_id)
        )

    # With autostart: configure (loads the model) at start, activate (subscribes) once that configure has
    # made it inactive. Only configuring → inactive, once: a deactivate (active → deactivating → inactive)
    # by a user or a lifecycle manager must stay, and a later cleanup + configure is theirs to activate. The
    # handler is registered before the configure event is emitted; a group carries the condition, which
    # EmitEvent does not take.
    start = GroupAction(
        [
            RegisterEventHandler(
                OnStateTransition(
                    target_lifecycle_node=managed,
                    start_state="configuring",
                    goal_state="inactive",
                    entities=[transition(Transition.TRANSITION_ACTIVATE)],
                    handle_once=True,
                )
            ),
            transition(Transition.TRANSITION_CONFIGURE),
        ],
        scoped=False,
        condition=autostart,
    )
    return [node, managed, start]
