"""imatching_online.ros."""
