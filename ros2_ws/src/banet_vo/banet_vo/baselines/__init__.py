"""Table 1 baselines: photometric BA (same LM on intensities) and geometric BA (OpenCV features + 5-point + BA)."""
