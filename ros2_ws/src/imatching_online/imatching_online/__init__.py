"""imatching_online: label-free online matcher adaptation. The core never imports rclpy."""

__version__ = "0.1.0"
