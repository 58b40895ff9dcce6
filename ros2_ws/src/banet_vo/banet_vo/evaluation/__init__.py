"""Evaluation of banet-vo outputs: two-view pose, depth, trajectory and matching metrics; plots; CLI.

Definitions are in each module's docstring and in docs/evaluation.md. Plots are imported lazily
(`banet_vo.evaluation.plots`) so that metric code does not pull in matplotlib.
"""

from banet_vo.evaluation.depth import DepthMetrics, depth_metrics, load_depth, mean_depth_metrics
from banet_vo.evaluation.matching import MatchAccuracy, aggregate_mma, ground_truth_matches, matching_accuracy
from banet_vo.evaluation.pose import TwoViewPoseError, pose_auc, summarize_pose_errors, two_view_pose_error
from banet_vo.evaluation.trajectory import (
    KittiSegmentErrors,
    TrajectoryReport,
    evaluate_trajectory,
    kitti_segment_errors,
    read_tum,
    trajectory_from_poses,
    write_tum,
)

__all__ = [
    "DepthMetrics",
    "KittiSegmentErrors",
    "MatchAccuracy",
    "TrajectoryReport",
    "TwoViewPoseError",
    "aggregate_mma",
    "depth_metrics",
    "evaluate_trajectory",
    "ground_truth_matches",
    "kitti_segment_errors",
    "load_depth",
    "matching_accuracy",
    "mean_depth_metrics",
    "pose_auc",
    "read_tum",
    "summarize_pose_errors",
    "trajectory_from_poses",
    "two_view_pose_error",
    "write_tum",
]
