"""Names of the banet_vo node and its outputs, for the node and for everything that listens to it.

The node publishes each output as a private topic (`~/<name>`); a listener outside the node (the run
tool, benchmarks, tests, the RViz config) resolves it with `output_topic`. No ROS import here.
"""

from __future__ import annotations

NODE_NAME = "banet_vo"

ODOMETRY = "odometry"
PATH = "path"
DEPTH_IMAGE = "depth/image"
DEPTH_CAMERA_INFO = "depth/camera_info"
POINTS = "points"
STATUS = "status"
OUTPUTS = (ODOMETRY, PATH, DEPTH_IMAGE, DEPTH_CAMERA_INFO, POINTS, STATUS)

# The camera inputs, as node-relative names for remapping (`image:=/cam/image_raw`).
IMAGE = "image"
CAMERA_INFO = "camera_info"

DIAGNOSTICS = "/diagnostics"  # global, as diagnostic_aggregator expects

# Matcher versions (std_msgs/String, banet_vo.odometry.matcher_swap.MatcherUpdate JSON, latched): the node
# subscribes to this relative name; imatching_node publishes it as its private ~/matcher_updates
# (vo_with_adaptation.launch.py connects the two).
MATCHER_UPDATES = "matcher_updates"


def private(name: str) -> str:
    """The node-relative form the node publishes under, e.g. "~/odometry"."""
    return "~/" + name


def output_topic(name: str, namespace: str = "/", node_name: str = NODE_NAME) -> str:
    """The fully resolved topic of output `name` of the node `node_name` in `namespace`,
    e.g. "/banet_vo/odometry" or "/robot1/banet_vo/odometry"."""
    return f"{namespace.rstrip('/')}/{node_name}/{name}"


def camera_info_beside(image_topic: str) -> str:
    """image_transport's camera_info topic for an image topic: `camera_info` in the image's namespace
    (/cam/left/image_raw → /cam/left/camera_info), as a driver publishes the pair. A relative image topic
    gives a relative camera_info, so that both resolve in the same namespace (image_raw → camera_info:
    with namespace:=camera, /camera/image_raw and /camera/camera_info)."""
    parent, slash, _ = image_topic.rstrip("/").rpartition("/")
    return f"{parent}{slash}{CAMERA_INFO}"


def camera_info_beside_launch(image: object) -> list:
    """The parts of a launch `PythonExpression` that evaluates to the camera_info the node picks for
    <image> by itself: camera_info_beside of its base topic (an image_transport `.../compressed` topic
    stands for its camera's base topic), for a launch argument's default (`image` is its substitution,
    e.g. LaunchConfiguration("image"))."""
    from banet_vo.data.compressed_image import TRANSPORT  # (cv2 and PIL: only for the launch files)

    suffix = f"/{TRANSPORT}"
    return [
        "''.join('",
        image,
        f"'.rstrip('/').removesuffix('{suffix}').rpartition('/')[:2]) + '{CAMERA_INFO}'",
    ]
