"""Real-image features for the odometry front end (ROS-free): pretrained XFeat keypoints and
descriptors, mutual-nearest-neighbour matching, and the two-view / PnP solvers that track with them."""

from banet_vo.frontend.solvers import (
    AbsolutePose,
    RelativePose,
    solve_absolute_pose,
    solve_relative_pose,
    triangulate,
)
from banet_vo.frontend.xfeat import Features, XFeatExtractor, match_mutual

__all__ = [
    "AbsolutePose",
    "Features",
    "RelativePose",
    "XFeatExtractor",
    "match_mutual",
    "solve_absolute_pose",
    "solve_relative_pose",
    "triangulate",
]
