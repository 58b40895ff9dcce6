"""Settings of the window bundle adjustment, validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from banet_vo.config_fields import setting

KERNELS = ("cauchy", "huber")
SOLVERS = ("gtsam", "pypose")


@dataclass(frozen=True)
class WindowConfig:
    """Thresholds in pixels and degrees; counts are per window unless named per frame."""

    # The caller slides the window; solve_window takes any N >= 2, but a node's window needs at least
    # min_track_length (3) frames for any landmark to survive, hence the parameter's range.
    window_size: int = setting(5, "frames per bundle-adjustment window", range=(3, 30))
    min_confidence: float = 0.0  # matches below this confidence are ignored
    # Initialisation (best pair).
    min_pair_matches: int = 30  # co-observations a frame pair needs to be considered
    # Median motion of the essential inliers below this in every pair: a static camera, no initial map.
    # (The stream's own keep gate is StreamConfig.min_flow_px, Lucas-Kanade flow against the last kept
    # frame: another measurement, taken before matching.)
    init_min_flow_px: float = 2.0
    min_parallax_deg: float = setting(
        0.5, "median rotation-compensated parallax the BA's initial pair needs [deg]", range=(0.0, 45.0)
    )
    essential_threshold_px: float = 1.0  # RANSAC epipolar threshold
    essential_confidence: float = 0.999
    min_init_inliers: int = 30  # essential-matrix inliers the chosen pair needs
    # Tracking (PnP registration of the other frames, constant-velocity prior).
    pnp_threshold_px: float = 3.0
    pnp_iterations: int = 200
    min_frame_inliers: int = 15  # 2D-3D inliers (and, after BA, observations) every frame needs
    triangulation_threshold_px: float = 3.0
    # Refinement (LM passes with outlier pruning).
    passes: int = setting(3, "BA optimise / prune / re-triangulate passes per window", range=(1, 20))
    lm_iterations: int = setting(10, "LM iterations per BA pass at most", range=(1, 100))
    lm_tolerance: float = 1e-4  # stop a pass when the relative cost decrease falls below this
    # gtsam: the shared sparse back end (banet_vo.backend, Huber factors, 3-D landmarks); pypose: the dense
    # LM over anchored inverse depths (refine.py), kept to measure the change against.
    solver: str = "gtsam"
    kernel: str = "cauchy"  # robust kernel of pypose: cauchy or huber (gtsam: always Huber)
    kernel_delta_px: float = 1.0
    outlier_threshold_px: float = 2.0  # observations with a larger reprojection error are pruned
    min_track_length: int = 3  # views (query + matches) a landmark needs after pruning
    min_landmark_parallax_deg: float = 0.5  # largest ray angle a landmark needs after pruning
    max_ba_landmarks: int = 400  # landmarks in the LM problem (others follow by re-triangulation)
    min_landmarks: int = 30
    min_inlier_ratio: float = setting(
        0.2, "BA inlier matches / usable matches below which a window is skipped", range=(0.0, 1.0)
    )
    torch_threads: int = 1  # torch threads while LM runs (0: leave torch's setting alone)
    seed: int = 0  # RANSAC and landmark subsampling are seeded: same input, same result

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"WindowConfig.{f.name} must be an int, got {value!r}")
            if f.type == "float":
                if not isinstance(value, int | float) or not math.isfinite(value):
                    raise ValueError(f"WindowConfig.{f.name} must be a finite number, got {value!r}")
        positive = [
            "essential_threshold_px", "pnp_threshold_px", "triangulation_threshold_px", "kernel_delta_px",
            "outlier_threshold_px", "pnp_iterations", "passes", "lm_iterations", "max_ba_landmarks",
        ]  # fmt: skip
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"WindowConfig.{name} must be positive, got {getattr(self, name)}")
        non_negative = [
            "min_confidence", "init_min_flow_px", "min_parallax_deg", "min_landmark_parallax_deg",
            "lm_tolerance", "min_frame_inliers", "min_landmarks", "min_inlier_ratio", "torch_threads", "seed",
        ]  # fmt: skip
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"WindowConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.window_size < 2:
            raise ValueError(f"WindowConfig.window_size must be >= 2, got {self.window_size}")
        if self.min_track_length < 2:
            raise ValueError(f"WindowConfig.min_track_length must be >= 2, got {self.min_track_length}")
        if self.min_pair_matches < 5 or self.min_init_inliers < 5:
            raise ValueError(
                "WindowConfig.min_pair_matches and min_init_inliers must be >= 5 (5-point solver)"
            )
        if not 0 < self.essential_confidence < 1:
            raise ValueError(
                f"WindowConfig.essential_confidence must be in (0, 1), got {self.essential_confidence}"
            )
        if self.solver not in SOLVERS:
            raise ValueError(f"WindowConfig.solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.kernel not in KERNELS:
            raise ValueError(f"WindowConfig.kernel must be one of {KERNELS}, got {self.kernel!r}")
        if self.min_inlier_ratio > 1:
            raise ValueError(f"WindowConfig.min_inlier_ratio must be <= 1, got {self.min_inlier_ratio}")
