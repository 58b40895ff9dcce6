"""banet_vo: BA-Net dense visual odometry. The core never imports rclpy; ROS lives in banet_vo.ros."""

__version__ = "0.1.0"
