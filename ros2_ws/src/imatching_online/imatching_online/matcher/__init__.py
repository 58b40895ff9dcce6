"""imatching_online.matcher."""
