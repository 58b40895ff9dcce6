"""Real-image features for the odometry front end (ROS-free): pretrained XFeat keypoints and
descriptors, mutual-nearest-neighbour matching, and the two-view / PnP solvers that track with them.
Names are imported on first use (banet_vo.lazy_exports)."""

from banet_vo.lazy_exports import lazy_exports

_EXPORTS = {
    "solvers": ("AbsolutePose", "RelativePose", "solve_absolute_pose", "solve_relative_pose", "triangulate"),
    "xfeat": ("Features", "XFeatExtractor", "match_mutual"),
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = [name for names in _EXPORTS.values() for name in names]
