"""The camera's mounting from a bag's /tf_static, for replays where no tf2_ros buffer is there to ask.

A robot's bag records robot_state_publisher's static transforms on /tf_static (tf2_msgs/TFMessage). The
transform from the odometry's base frame to the images' frame_id follows from that tree; banet-vo-run
passes it to the node as its base_camera_* parameters. No ROS here (rosbags messages).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from banet_vo.geometry.rigid import pose_matrix


def transform_matrix(transform: Any) -> np.ndarray:
    """4x4 of a geometry_msgs/Transform, rclpy's or rosbags' (translation, quaternion x y z w)."""
    t, q = transform.translation, transform.rotation
    return pose_matrix([t.x, t.y, t.z], [q.x, q.y, q.z, q.w])


def static_transforms(messages: Any) -> dict[str, tuple[str, np.ndarray]]:
    """child frame → (parent frame, T_parent_child) from TFMessages in bag order (a later one for the same
    child replaces the earlier, as tf2's static buffer does). Frame names lose a leading '/'."""
    tree: dict[str, tuple[str, np.ndarray]] = {}
    for msg in messages:
        for t in msg.transforms:
            tree[t.child_frame_id.lstrip("/")] = (
                t.header.frame_id.lstrip("/"),
                transform_matrix(t.transform),
            )
    return tree


def _to_root(tree: dict[str, tuple[str, np.ndarray]], frame: str) -> list[tuple[str, np.ndarray]]:
    """[(frame, T_frame_start)] from `frame` itself up to the root of its tree (cycles stop the walk)."""
    path, T, seen = [(frame, np.eye(4))], np.eye(4), {frame}
    while frame in tree:
        parent, T_parent_child = tree[frame]
        if parent in seen:
            break
        T = T_parent_child @ T
        frame = parent
        seen.add(frame)
        path.append((frame, T))
    return path


def transform_between(tree: dict[str, tuple[str, np.ndarray]], target: str, source: str) -> np.ndarray | None:
    """T_target_source (maps points in `source` to `target`) through the tree; None when the two frames
    are not connected."""
    up_from_source = dict(_to_root(tree, source.lstrip("/")))  # frame → T_frame_source
    for frame, T_frame_target in _to_root(tree, target.lstrip("/")):
        if frame in up_from_source:  # the lowest common ancestor
            return np.linalg.inv(T_frame_target) @ up_from_source[frame]
    return None
