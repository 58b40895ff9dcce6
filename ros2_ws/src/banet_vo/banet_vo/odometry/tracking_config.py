"""Knobs of the xfeat front end and its window (`frontend: xfeat`). Each field carries its description and
range, from which the node's `tracking_*` parameters derive; defaults were chosen on validation frames
(docs/frontend.md says where). No ROS, no torch."""

from __future__ import annotations

from dataclasses import dataclass

from banet_vo.config_fields import check_ranges, setting
from banet_vo.frontend.precision import FEATURE_PRECISIONS
from banet_vo.odometry.scale import MAX_SCALE_MEASUREMENTS

REBUILD_ANCHORS = ("hold", "predict")
GAP_FAILURES = ("rebuild", "retry", "retry_after_stall")
BETWEEN_KEYFRAMES = ("match", "flow")
BUSY_KEYFRAMES = ("wait", "defer")
KEYFRAME_JOINS = ("solved", "at_once")
MAPPINGS = ("inline", "background")
BACKING_UP_LANDMARKS = ("refuse_near", "add")
BANET_INPUT_GAINS = ("none", "first", "mean")
DEPTH_CORRECTIONS = ("global", "landmarks")
# The mean intensity BA-Net's input normalisation centres on (banet_vo.model.banet._MEAN).
BANET_INPUT_MEAN = 0.45
# Smallest working image for XFeat (e.g. 160x120): below it too few keypoints survive to track.
MIN_FEATURE_PIXELS = 160 * 120
# A camera of at most this many pixels (320x240, 416x240, 620x188...) loses accuracy with XFeat at its own
# size; SMALL_CAMERA_FEATURE_PIXELS (800x608, XFeat's training size) is the feature_min_pixels that brought
# our clips at half size back (docs/frontend.md, "Cameras of other resolutions").
SMALL_CAMERA_PIXELS = 120_000
SMALL_CAMERA_FEATURE_PIXELS = 486_400


# The banet_min_interval of the recommended live setting, with background_ba (README, "live";
# docs/preregistered/banet_min_interval.txt).
LIVE_BANET_MIN_INTERVAL = 0.5


@dataclass(frozen=True)
class TrackingConfig:
    max_keypoints: int = setting(
        2048, "XFeat keypoints per frame (matching and the window BA grow with them)", range=(8, 16384)
    )
    # XFeat's time grows with the pixels; the rest of the front end with the keypoints only.
    feature_max_pixels: int = setting(
        0,
        "XFeat runs on the image area-downscaled to at most this many pixels, its keypoints mapped back "
        "to the camera's pixels (bounds the time per frame of a high-resolution camera; 0: the full image)",
        range=(0, 1_000_000_000),
    )
    # XFeat places keypoints to a fraction of its own pixels: on a small image that is coarse in the
    # camera's, and the map's scale drifts (docs/frontend.md, "Cameras of other resolutions").
    feature_min_pixels: int = setting(
        0,
        "XFeat runs on the image upscaled (bilinear) to about this many pixels when it has fewer, its "
        "keypoints mapped back to the camera's pixels (0: the image's own size)",
        range=(0, 1_000_000_000),
    )
    # On a CPU with AMX, XFeat under bfloat16 took 0.6-0.7x the time; a quarter of its keypoints move
    # (docs/frontend.md, "Time per frame"; docs/preregistered/xfeat_bfloat16.txt).
    feature_precision: str = setting(
        "float32",
        "XFeat's network in float32 or under bfloat16 autocast (faster on CPUs with AMX, amx_bf16 in "
        "/proc/cpuinfo, and on GPUs; keypoints and descriptors differ a little)",
        choices=FEATURE_PRECISIONS,
    )
    min_cosine: float = setting(
        0.82,
        "mutual-nearest-neighbour descriptor similarity below which a match is dropped",
        range=(0.0, 1.0),
    )
    window_keyframes: int = setting(7, "keyframes in the bundle-adjusted window", range=(3, 100))
    track_keyframes: int = setting(
        3, "newest keyframes whose landmarks each frame is matched to", range=(1, 100)
    )
    free_keyframes: int = setting(
        5, "newest keyframes whose poses the window BA adjusts (at least 2 stay fixed)", range=(0, 100)
    )
    init_min_parallax_deg: float = setting(
        1.0, "median rotation-compensated parallax [deg] before the first map is built", range=(0.0, 90.0)
    )
    init_min_inliers: int = setting(
        60,
        "5-point inliers the first map needs; a frame with fewer against the first keyframe replaces it",
        range=(8, 100000),
    )
    init_max_frames: int = setting(
        30, "frames without enough parallax after which the first keyframe is replaced", range=(1, 100000)
    )
    # XFeat and its matching are most of the time of a frame that is not a keyframe, and such a frame needs
    # only the last frame's landmarks found again (docs/frontend.md, "Between keyframes").
    between_keyframes: str = setting(
        "match",
        "how a frame is located between keyframes: match (XFeat on every frame, matched to the window's "
        "keyframes) or flow (the landmarks of the last located frame followed by Lucas-Kanade optical flow; "
        "XFeat runs only when the flow's pose asks for a new keyframe or the flow loses the map)",
        choices=BETWEEN_KEYFRAMES,
    )
    # Live, a keyframe that waits for the previous window's solve (0.3 s median, 0.8 s p90 on HoloLens, 2
    # cores) holds up the frames behind it, and the next frame the node sees has moved further
    # (docs/preregistered/busy_keyframe.txt: defer gave 1.11-1.36x the frames/s live).
    busy_keyframe: str = setting(
        "defer",
        "with background_ba: a frame that asks for a keyframe while the window BA still solves: wait (for "
        "the solve, then make the keyframe) or defer (publish it as a tracked frame and ask again at the "
        "next one, unless fewer than half the keyframe_tracked_ratio share of landmarks are tracked)",
        choices=BUSY_KEYFRAMES,
    )
    # A keyframe that waits for the running window BA before it joins holds up the frames behind it
    # (HoloLens live: ~20 % of the inference thread; docs/preregistered/keyframe_join_live.txt: at_once
    # gave 1.20x the frames/s there, live Sim(3) 1.146 -> 0.390 m, the other clips within 0.99-1.03x).
    keyframe_join: str = setting(
        "at_once",
        "with background_ba: a keyframe made while the window BA still solves: solved (wait for the solve, "
        "then join the solved window) or at_once (join now, located in the map as it stands; when the solve "
        "is merged it moves with the newest solved keyframe's correction, as the frames located meanwhile "
        "do, and the next window BA includes it)",
        choices=KEYFRAME_JOINS,
    )
    # Live, nearly every frame the node sees is a keyframe, and a keyframe's XFeat, matching and BA-Net on
    # the frame that asks for it hold up the frames behind it: PTAM splits tracking from mapping
    # (docs/preregistered/mapping_background.txt, mapping_split.txt).
    mapping: str = setting(
        "inline",
        "how a keyframe is made: inline (on the frame that asks for it) or background (with "
        "between_keyframes flow: its XFeat, its matching to the window's keyframes and BA-Net run in a "
        "mapping thread while the next frames are located by optical flow; it joins the map, and its "
        "landmarks the flow, when that work is back; a frame the flow locates is always published from it, "
        "and XFeat runs inline only when the flow fails)",
        choices=MAPPINGS,
    )
    # Live on a small CPU nearly every second frame the node sees is a keyframe, and BA-Net on its pair is
    # about a quarter of a frame's time; depth at a few Hz, and a learned scale that is a median over the
    # whole trajectory, need fewer pairs (docs/preregistered/banet_min_interval.txt).
    banet_min_interval: float = setting(
        0.0,
        "BA-Net runs on a new keyframe's pair only when at least this many seconds (of stamps) passed since "
        "the keyframe it last ran on (0: on every keyframe); the others get no depth map and no learned "
        "scale measurement. It always runs until the learned scale has its first measurement",
        range=(0.0, 1e6),
    )
    # BA-Net's depth, and so the learned scale, moves with the image's brightness: an auto-exposure swing of
    # 1/1.5-1.5x moved the clips' learned scale by 2-30 % while their shape held. mean held the swung Sim(3)
    # on three clips but cost HoloLens's SE(3) as it is: opt-in (docs/preregistered/banet_input_gain.txt).
    banet_input_gain: str = setting(
        "none",
        "gain of BA-Net's keyframe images: none (as the camera took them), first (each scaled to the mean "
        "intensity of the trajectory's first BA-Net image: exposure changes undone) or mean (each scaled to "
        "the mean intensity BA-Net's input normalisation centres on)",
        choices=BANET_INPUT_GAINS,
    )
    # BA-Net's depth on real images is mostly its prior; the landmarks are measured. Per pixel, the published
    # depth's abs rel fell 0.36 -> 0.23 on HoloLens (docs/preregistered/depth_correction.txt).
    depth_correction: str = setting(
        "landmarks",
        "how a keyframe's published depth is put onto its landmarks: global (one factor, the median ratio "
        "at its landmarks) or landmarks (a smooth per-pixel factor interpolated from them, "
        "depth_output.landmark_corrected_depth)",
        choices=DEPTH_CORRECTIONS,
    )
    min_tracked: int = setting(25, "PnP inliers below which a frame is not tracked", range=(6, 100000))
    gap_failure: str = setting(
        "rebuild",
        "a frame after a forward gap (> max_time_gap) that PnP cannot locate: rebuild (the map, at once), "
        "retry (it counts as one of max_consecutive_failures, so the next frames may still find the map) or "
        "retry_after_stall (retry when the frame before the gap came within max_time_gap of its own "
        "predecessor: a stall, not a steady slow rate)",
        choices=GAP_FAILURES,
    )
    # Against the older keyframes a frame far beyond them can find a consistent but wrong pose: a live
    # node that saw every 3rd frame put one 30 map units behind its prediction
    # (docs/preregistered/reloc_gate.txt); a 5-point recovery's baseline from a few points can be as
    # wrong (docs/preregistered/recovery_gate.txt).
    reloc_max_jump: float = setting(
        2.0,
        "a pose relocalised against the whole window, or found by the 5-point recovery, is refused when it "
        "lies further from the constant-velocity prediction than this many times the larger of the predicted "
        "step and the newest keyframes' spacing (0: never refused)",
        range=(0.0, 1000.0),
    )
    pnp_max_px: float = setting(3.0, "PnP RANSAC inlier threshold [px]", range=(0.1, 100.0))
    # A view that moved far since the last keyframe (dropped frames, a fast turn) matches few of the
    # window's landmarks but many of the newest keyframe's keypoints
    # (docs/preregistered/tracking_recovery.txt).
    recovery_min_points: int = setting(
        8,
        "when PnP fails: 5-point inliers to the newest keyframe with a depth there (a landmark, else "
        "BA-Net's depth) that must fix the baseline for the frame to be tracked from that pair (0: off)",
        range=(0, 100000),
    )
    keyframe_parallax_deg: float = setting(
        1.0,
        "median rotation-compensated parallax [deg] to the last keyframe that makes a new one",
        range=(0.0, 90.0),
    )
    keyframe_tracked_ratio: float = setting(
        0.5,
        "a new keyframe when fewer than this share of the last keyframe's landmarks are tracked",
        range=(0.0, 1.0),
    )
    triangulation_max_px: float = setting(
        2.0, "reprojection error [px] above which a new landmark is not added", range=(0.1, 100.0)
    )
    triangulation_min_parallax_deg: float = setting(
        0.5, "ray angle [deg] below which a new landmark is not added", range=(0.0, 90.0)
    )
    # A keyframe pose that lost the scale would otherwise shrink or blow up the map.
    max_depth_ratio: float = setting(
        2.5,
        "new landmarks whose median depth differs from the tracked ones' by more than this factor are "
        "not added",
        range=(1.0, 1e6),
    )
    # A bound helps a camera that backs up (the check then refuses every keyframe and the map starves) but
    # cost HoloLens one seed in its test: opt-in (docs/preregistered/depth_ratio_streak.txt).
    max_depth_refusals: int = setting(
        0,
        "keyframes in a row whose new landmarks max_depth_ratio may refuse before the next one's are added "
        "anyway (0: no bound; for a camera that backs up, backing_up_landmarks add did better)",
        range=(0, 100000),
    )
    # Backing up, things enter the view at its borders nearer than the tracked ones, which recede: the
    # depth check then refuses every keyframe's new landmarks and the map starves
    # (docs/preregistered/backing_up_landmarks.txt).
    backing_up_landmarks: str = setting(
        "refuse_near",
        "a keyframe that moved backwards along its optical axis (at least half its step from the previous "
        "keyframe): refuse_near (max_depth_ratio applies as to any keyframe) or add (new landmarks nearer "
        "than the tracked ones are added; farther ones are still refused)",
        choices=BACKING_UP_LANDMARKS,
    )
    scale_window: int = setting(
        15,
        "scale_source ground_plane: keyframes in the running median of the metric scale",
        range=(1, MAX_SCALE_MEASUREMENTS),
    )
    # BA-Net's per-keyframe scale on real images wanders by 2-3x within a clip while the map's own scale
    # barely moves: a short median passes those runs into the steps (docs/preregistered/
    # learned_scale_window.txt).
    learned_scale_window: int = setting(
        0,
        "scale_source learned: keyframes in the running median of the metric scale (0: every keyframe of "
        "the trajectory, up to the newest 100000)",
        range=(0, MAX_SCALE_MEASUREMENTS),
    )
    # Road slope and pitching move the plane's normal a little off the extrinsic's up.
    ground_max_tilt_deg: float = setting(
        5.0,
        "scale_source ground_plane: largest angle [deg] between the plane's normal and up",
        range=(0.0, 90.0),
    )
    # Where cars are parked, the road and their sills have similar support and the RANSAC draw picks one
    # (docs/preregistered/ground_plane_ambiguity.txt).
    ground_ambiguity_ratio: float = setting(
        0.7,
        "scale_source ground_plane: a keyframe is not measured when a second plane, among the points the "
        "first leaves, has at least this share of its inliers at a height more than 10 % away (0: off)",
        range=(0.0, 1.0),
    )
    # A rebuilt map's first keyframe (its view left behind, or frames not tracked) has no motion to the last
    # tracked frame: "hold" publishes it at the last pose, "predict" at the constant-velocity prediction
    # from the last two tracked frames, never more than max_time_gap ahead (docs/preregistered/
    # rebuild_anchor.txt).
    rebuild_anchor: str = setting(
        "hold",
        "where a rebuilt map's first frame is published: hold (the last pose) or predict (constant "
        "velocity from the last two tracked frames, at most max_time_gap after the last)",
        choices=REBUILD_ANCHORS,
    )
    pixel_sigma: float = setting(
        1.0, "reprojection noise [px] of the window BA and of the pose covariance", range=(1e-3, 100.0)
    )
    # The pipeline is deterministic for a given seed; another seed shows how much a result owes to chance
    # (benchmarks.real_clips --seeds).
    ransac_seed: int = setting(
        0, "seed of the RANSAC draws (PnP, 5-point, ground plane)", range=(0, 2**31 - 1)
    )

    def __post_init__(self) -> None:
        check_ranges(self)
        if 0 < self.feature_max_pixels < MIN_FEATURE_PIXELS:
            raise ValueError(
                f"feature_max_pixels must be 0 (the full image) or at least {MIN_FEATURE_PIXELS}, "
                f"got {self.feature_max_pixels}"
            )
        if 0 < self.feature_min_pixels < MIN_FEATURE_PIXELS:
            raise ValueError(
                f"feature_min_pixels must be 0 (the image's own size) or at least {MIN_FEATURE_PIXELS}, "
                f"got {self.feature_min_pixels}"
            )
        if self.feature_max_pixels and self.feature_min_pixels > self.feature_max_pixels:
            raise ValueError(
                f"feature_min_pixels ({self.feature_min_pixels}) must not exceed feature_max_pixels "
                f"({self.feature_max_pixels})"
            )
        for name in ("init_min_inliers", "min_tracked"):
            if getattr(self, name) > self.max_keypoints:
                # a map could never start, or no frame could ever be tracked
                raise ValueError(
                    f"{name} ({getattr(self, name)}) must not exceed max_keypoints ({self.max_keypoints}): "
                    "no image could give that many"
                )
        if self.mapping != "inline" and self.between_keyframes != "flow":
            raise ValueError(
                f"mapping {self.mapping} needs between_keyframes flow (the frames between a keyframe and its "
                "mapping are located by optical flow)"
            )
