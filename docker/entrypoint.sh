#!/usr/bin/env bash
# Source the distro and the workspace, then run the command.
set -e
source "/opt/ros/${ROS_DISTRO}/setup.bash"
source /opt/banet_vo/ros2_ws/install/setup.bash
exec "$@"
