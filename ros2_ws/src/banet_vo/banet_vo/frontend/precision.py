"""The precisions XFeat's network runs in. Torch-free, so that odometry.tracking_config offers them as a
parameter's choices without importing the extractor."""

# float32, or under bfloat16 autocast: faster on CPUs with AMX and on GPUs, and not the same function (a
# quarter of the keypoints move; docs/preregistered/xfeat_bfloat16.txt).
FEATURE_PRECISIONS = ("float32", "bfloat16")
