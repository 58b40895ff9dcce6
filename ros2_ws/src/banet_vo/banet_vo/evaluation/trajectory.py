"""Trajectory metrics: ATE / RPE through evo's API, TUM files through evo, KITTI segment errors (ours).

Poses are camera-to-world `T_wc` (docs/CONVENTIONS.md). Alignment of the estimate onto the ground truth
is Umeyama on the positions: `se3` (rotation + translation), `sim3` (+ scale, for monocular estimates),
or `none`. KITTI segment errors follow the KITTI odometry devkit definition: for every 10th frame as a
start and each length L in 100..800 m (measured along the ground-truth path), the first frame whose
path distance exceeds start + L ends the segment; the error pose is
`inv(inv(E_s) E_e) @ inv(G_s) G_e`; its translation norm / L and rotation angle / L are averaged over
all segments, reported in % and deg/100 m.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from evo.core import filters, metrics, sync
from evo.core.geometry import GeometryException
from evo.core.trajectory import PosePath3D, PoseTrajectory3D
from evo.core.units import Unit
from evo.tools import file_interface

from banet_vo.evaluation.pose import as_pose_matrices
from banet_vo.geometry.rigid import rotation_angle_deg

logger = logging.getLogger(__name__)

Alignment = Literal["se3", "sim3", "none"]
KITTI_SEGMENT_LENGTHS_M: tuple[float, ...] = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0)
KITTI_STEP_FRAMES = 10


def trajectory_from_poses(timestamps, poses_T_wc, name: str = "") -> PoseTrajectory3D:
    """evo trajectory from float-second stamps (N,) and camera-to-world poses (N, 4, 4) or (N, 3, 4)."""
    stamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    poses = as_pose_matrices(poses_T_wc, "poses_T_wc")
    if poses.ndim != 3 or poses.shape[0] != stamps.size:
        raise ValueError(
            f"poses_T_wc must be (N, 4, 4) with N = len(timestamps) = {stamps.size}, got {poses.shape}"
        )
    if poses.shape[1] == 3:
        bottom = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), (poses.shape[0], 1, 4))
        poses = np.concatenate([poses, bottom], axis=1)
    if stamps.size == 0:
        raise ValueError("timestamps is empty")
    if np.any(np.diff(stamps) <= 0):
        raise ValueError("timestamps must be strictly increasing")
    return PoseTrajectory3D(poses_se3=list(poses), timestamps=stamps, name=name or None)


class AlignmentError(ValueError, GeometryException):
    """Umeyama alignment is not possible (degenerate positions). A ValueError, as bad input is elsewhere
    here, and still evo's GeometryException for callers that catch that."""


# A quaternion shorter than this holds no rotation (a unit one written with a few digits is ~1 long).
MIN_QUATERNION_NORM = 1e-3


def read_tum(path: str | Path) -> PoseTrajectory3D:
    """TUM file (`t tx ty tz qx qy qz qw`, camera-to-world) through evo. ValueError unless the stamps are
    strictly increasing: evo reads rows in file order, and its association and RPE take that order as
    time's (a repeated or earlier stamp gives wrong figures, not an error); and unless every quaternion has
    a length (evo reads a zero quaternion as the identity rotation)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"trajectory file {path} does not exist")
    try:
        trajectory = file_interface.read_tum_trajectory_file(str(path))
    except file_interface.FileInterfaceException as exc:
        raise ValueError(f"trajectory file {path}: {exc}") from exc
    norms = np.linalg.norm(trajectory.orientations_quat_wxyz, axis=1)
    bad = np.nonzero(~np.isfinite(norms) | (norms < MIN_QUATERNION_NORM))[0]
    if bad.size:
        stamp = float(trajectory.timestamps[bad[0]])
        raise ValueError(
            f"trajectory file {path}: pose {int(bad[0]) + 1} (stamp {stamp:g}) has a zero or non-finite "
            "quaternion: no rotation can be read from it"
        )
    back = np.nonzero(np.diff(trajectory.timestamps) <= 0)[0]
    if back.size:
        # evo skips the lines that start with '#': its k-th row is the k-th other line of the file.
        lines = [
            (number, line.split(" ", 1)[0])
            for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1)
            if not line.startswith("#")
        ]
        k = int(back[0]) + 1
        (before, t_before), (at, t_at) = lines[k - 1], lines[k]
        raise ValueError(
            f"trajectory file {path}: timestamps must be strictly increasing; line {at} (stamp {t_at}) "
            f"does not come after line {before} (stamp {t_before}): sort the file and drop repeated stamps"
        )
    return trajectory


def write_tum(path: str | Path, trajectory: PoseTrajectory3D) -> Path:
    """Write a trajectory as TUM through evo; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    file_interface.write_tum_trajectory_file(str(path), trajectory)
    return path


def associate(est: PoseTrajectory3D, gt: PoseTrajectory3D, max_diff: float = 0.01):
    """Pairs of poses with stamps within max_diff seconds (evo's nearest-time association): (gt, est)."""
    try:
        gt_sync, est_sync = sync.associate_trajectories(gt, est, max_diff=max_diff)
    except sync.SyncException as exc:
        raise ValueError(f"est/gt timestamps do not associate: {exc}") from exc
    return gt_sync, est_sync


def nearest_stamps(stamps, reference, max_diff: float) -> np.ndarray:
    """Index into the sorted `reference` stamps of each stamp's nearest one; ValueError when one is more
    than max_diff seconds from every reference stamp."""
    stamps = np.asarray(stamps, dtype=np.float64).reshape(-1)
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    at = np.clip(np.searchsorted(reference, stamps), 0, len(reference) - 1)
    before = np.clip(at - 1, 0, len(reference) - 1)
    at = np.where(np.abs(reference[before] - stamps) < np.abs(reference[at] - stamps), before, at)
    if np.any(np.abs(reference[at] - stamps) > max_diff):
        raise ValueError("a pose's stamp has no ground-truth stamp within the matching tolerance")
    return at


def align_trajectory(est: PosePath3D, gt: PosePath3D, align: Alignment) -> tuple[PosePath3D, float]:
    """A copy of est aligned onto gt (Umeyama on positions); returns it and the scale (1.0 unless sim3)."""
    if align not in ("se3", "sim3", "none"):
        raise ValueError(f"align must be 'se3', 'sim3' or 'none', got {align!r}")
    aligned = copy.deepcopy(est)
    if align == "none":
        return aligned, 1.0
    if est.num_poses < 3:
        raise ValueError(f"alignment needs at least 3 matched poses, got {est.num_poses}")
    try:
        _, _, scale = aligned.align(gt, correct_scale=(align == "sim3"))
    except GeometryException as exc:
        raise AlignmentError(
            f"{align} alignment is not possible ({exc}): the {est.num_poses} matched positions of the "
            "estimate or the ground truth stand still or lie on one line; evaluate with align 'none', "
            "or a stretch where the camera moves off a line"
        ) from exc
    return aligned, float(scale)


def _stats(metric: metrics.PE) -> dict[str, float]:
    return {k: float(v) for k, v in metric.get_all_statistics().items()}


def ape(gt: PosePath3D, est: PosePath3D) -> tuple[dict[str, float], np.ndarray]:
    """ATE statistics of the translation part (metres) and the per-pose error; inputs already matched."""
    metric = metrics.APE(metrics.PoseRelation.translation_part)
    metric.process_data((gt, est))
    return _stats(metric), np.asarray(metric.error, dtype=np.float64)


def rpe(
    gt: PosePath3D, est: PosePath3D, delta: float = 1, unit: Literal["frames", "m"] = "frames"
) -> tuple[dict[str, float], dict[str, float]]:
    """RPE translation (m) and rotation (deg) statistics over consecutive pairs `delta` apart.
    ValueError for a delta that is not positive or that no pair of poses spans."""
    delta_unit = {"frames": Unit.frames, "m": Unit.meters}.get(unit)
    if delta_unit is None:
        raise ValueError(f"unit must be 'frames' or 'm', got {unit!r}")
    if not delta > 0:  # evo divides by a frame delta of 0 and takes a negative one as a slice step
        raise ValueError(f"RPE delta must be > 0, got {delta:g} {unit}")
    out = []
    for relation in (metrics.PoseRelation.translation_part, metrics.PoseRelation.rotation_angle_deg):
        try:
            metric = metrics.RPE(relation, delta=delta, delta_unit=delta_unit, all_pairs=False)
            metric.process_data((gt, est))
        except metrics.MetricsException as exc:
            raise ValueError(f"RPE with delta={delta} {unit}: {exc}") from exc
        except filters.FilterException as exc:
            length = float(gt.path_length) if unit == "m" else float(gt.num_poses - 1)
            raise ValueError(
                f"RPE with delta={delta:g} {unit}: no pair of matched poses is that far apart (the ground "
                f"truth spans {length:g} {unit}); give a smaller RPE delta"
            ) from exc
        out.append(_stats(metric))
    return out[0], out[1]


@dataclass
class KittiSegmentErrors:
    """KITTI devkit drift; the two averages are None (and `reason` says why) when no segment fits."""

    translation_pct: float | None
    rotation_deg_per_100m: float | None
    n_segments: int
    per_length: dict[float, dict[str, float]] = field(default_factory=dict)
    path_length_m: float = 0.0
    reason: str = ""

    def as_dict(self) -> dict:
        d = asdict(self)
        d["per_length"] = {str(k): v for k, v in self.per_length.items()}
        return d


def kitti_segment_errors(
    poses_gt,
    poses_est,
    lengths_m: Sequence[float] = KITTI_SEGMENT_LENGTHS_M,
    step_frames: int = KITTI_STEP_FRAMES,
) -> KittiSegmentErrors:
    """KITTI odometry segment errors of frame-matched camera-to-world poses (N, 4, 4), metres."""
    gt = as_pose_matrices(poses_gt, "poses_gt")
    est = as_pose_matrices(poses_est, "poses_est")
    if gt.ndim != 3 or gt.shape != est.shape:
        raise ValueError(f"poses_gt {gt.shape} and poses_est {est.shape} must both be (N, 4, 4)")
    if step_frames < 1:
        raise ValueError(f"step_frames must be >= 1, got {step_frames}")
    steps = np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1)
    dist = np.concatenate([[0.0], np.cumsum(steps)])
    path_length = float(dist[-1])

    rows: list[tuple[float, float, float]] = []  # (length, t_err / length, r_err_rad / length)
    for first in range(0, gt.shape[0], step_frames):
        for length in lengths_m:
            beyond = np.nonzero(dist > dist[first] + length)[0]
            if beyond.size == 0:
                continue
            last = int(beyond[0])
            delta_gt = np.linalg.inv(gt[first]) @ gt[last]
            delta_est = np.linalg.inv(est[first]) @ est[last]
            error = np.linalg.inv(delta_est) @ delta_gt
            t_err = float(np.linalg.norm(error[:3, 3]))
            r_err = float(np.radians(rotation_angle_deg(error[:3, :3])))
            rows.append((float(length), t_err / length, r_err / length))

    if not rows:
        reason = (
            f"ground-truth path is {path_length:.1f} m; KITTI segments need more than "
            f"{min(lengths_m):.0f} m from a start frame"
        )
        return KittiSegmentErrors(None, None, 0, path_length_m=path_length, reason=reason)
    table = np.asarray(rows)
    per_length = {}
    for length in lengths_m:
        sel = table[table[:, 0] == length]
        if sel.size:
            per_length[float(length)] = {
                "translation_pct": float(100.0 * sel[:, 1].mean()),
                "rotation_deg_per_100m": float(np.degrees(sel[:, 2].mean()) * 100.0),
                "n_segments": int(sel.shape[0]),
            }
    return KittiSegmentErrors(
        translation_pct=float(100.0 * table[:, 1].mean()),
        rotation_deg_per_100m=float(np.degrees(table[:, 2].mean()) * 100.0),
        n_segments=int(table.shape[0]),
        per_length=per_length,
        path_length_m=path_length,
    )


@dataclass
class TrajectoryReport:
    align: str
    scale: float
    n_matched: int
    n_est: int
    n_gt: int
    ate: dict[str, float]
    rpe_translation: dict[str, float]
    rpe_rotation_deg: dict[str, float]
    rpe_delta: str
    kitti: KittiSegmentErrors
    timestamps: np.ndarray = field(repr=False)
    ate_errors: np.ndarray = field(repr=False)
    gt_xyz: np.ndarray = field(repr=False)
    est_xyz: np.ndarray = field(repr=False)  # aligned

    def as_dict(self) -> dict:
        """JSON-ready summary (per-pose arrays left out except the ATE error series)."""
        return {
            "align": self.align,
            "scale": self.scale,
            "n_matched": self.n_matched,
            "n_est": self.n_est,
            "n_gt": self.n_gt,
            "ate_m": self.ate,
            "rpe_translation_m": self.rpe_translation,
            "rpe_rotation_deg": self.rpe_rotation_deg,
            "rpe_delta": self.rpe_delta,
            "kitti": self.kitti.as_dict(),
            "ate_errors_m": self.ate_errors.tolist(),
            "timestamps": self.timestamps.tolist(),
        }


def evaluate_trajectory(
    est: PoseTrajectory3D,
    gt: PoseTrajectory3D,
    *,
    align: Alignment = "se3",
    max_diff: float = 0.01,
    rpe_delta: float = 1,
    rpe_unit: Literal["frames", "m"] = "frames",
) -> TrajectoryReport:
    """Associate by time, align est onto gt, then ATE, RPE and KITTI segment errors on the aligned est."""
    gt_sync, est_sync = associate(est, gt, max_diff=max_diff)
    logger.debug("associated %d of %d estimated poses", est_sync.num_poses, est.num_poses)
    aligned, scale = align_trajectory(est_sync, gt_sync, align)
    ate_stats, ate_errors = ape(gt_sync, aligned)
    rpe_t, rpe_r = rpe(gt_sync, aligned, delta=rpe_delta, unit=rpe_unit)
    kitti = kitti_segment_errors(np.asarray(gt_sync.poses_se3), np.asarray(aligned.poses_se3))
    return TrajectoryReport(
        align=align,
        scale=scale,
        n_matched=gt_sync.num_poses,
        n_est=est.num_poses,
        n_gt=gt.num_poses,
        ate=ate_stats,
        rpe_translation=rpe_t,
        rpe_rotation_deg=rpe_r,
        rpe_delta=f"{rpe_delta:g} {rpe_unit}",
        kitti=kitti,
        timestamps=np.asarray(gt_sync.timestamps, dtype=np.float64),
        ate_errors=ate_errors,
        gt_xyz=np.asarray(gt_sync.positions_xyz),
        est_xyz=np.asarray(aligned.positions_xyz),
    )
