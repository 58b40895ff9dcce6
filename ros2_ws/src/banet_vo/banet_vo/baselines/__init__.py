"""Table 1 baselines: photometric BA (the same LM on intensities) and geometric BA (OpenCV + 5-point + BA)."""
