"""imatching_online.ba."""
