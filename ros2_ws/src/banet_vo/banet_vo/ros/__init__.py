"""banet_vo.ros."""
