"""Pre-rendered synthetic image pairs with dense ground-truth correspondences for matcher pretraining.

Pairs come from the procedural world of banet_vo.data.synthetic (rooms with hand-held motion, streets
with driving motion). For every pixel of image A with depth, the ground-truth pixel in B is the depth
point moved by T_BA and projected (banet_vo.evaluation.ground_truth_matches, which also drops pixels
that leave B or are occluded in B by more than 5 % of depth). Stored as one .npz so that training never
re-renders.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from banet_vo.data.synthetic.render import camera_from_fov, render_frame
from banet_vo.data.synthetic.room import make_room
from banet_vo.data.synthetic.street import make_street
from banet_vo.data.synthetic.trajectory import make_trajectory
from banet_vo.evaluation.matching import ground_truth_matches

log = logging.getLogger(__name__)


@dataclass
class PairSet:
    """N pairs of (H, W) images: images_a/b (N, H, W, 3) uint8, gt_uv (N, H, W, 2) float32 (NaN where
    no ground truth), intrinsics (N, 4) [fx, fy, cx, cy], T_ba (N, 4, 4), kind (N,) 0 indoor / 1 driving."""

    images_a: np.ndarray
    images_b: np.ndarray
    gt_uv: np.ndarray
    intrinsics: np.ndarray
    T_ba: np.ndarray
    kind: np.ndarray

    def __len__(self) -> int:
        return len(self.images_a)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **self.__dict__)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> PairSet:
        with np.load(path) as data:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def subset(self, index: np.ndarray) -> PairSet:
        return PairSet(**{k: v[index] for k, v in self.__dict__.items()})


def dense_ground_truth(depth_a: np.ndarray, depth_b: np.ndarray, T_ba: np.ndarray, camera) -> np.ndarray:
    """(H, W, 2) ground-truth pixel in B of every pixel of A; NaN where there is none."""
    h, w = depth_a.shape
    v, u = np.mgrid[0:h, 0:w]
    queries = np.stack([u.ravel(), v.ravel()], 1).astype(np.float64)
    gt, _ = ground_truth_matches(queries, depth_a, T_ba, camera, camera, depth_b=depth_b)
    return gt.reshape(h, w, 2).astype(np.float32)


def render_pairs(
    num_scenes: int,
    frames_per_scene: int,
    width: int,
    height: int,
    seed: int = 0,
    driving_fraction: float = 0.3,
    max_gap: int = 3,
    min_valid_fraction: float = 0.3,
) -> PairSet:
    """Render ``num_scenes`` short clips and pair frames 1..max_gap apart (gap 1-2 for driving)."""
    if num_scenes <= 0 or frames_per_scene < 2:
        raise ValueError("num_scenes must be positive and frames_per_scene >= 2")
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {k: [] for k in PairSet.__dataclass_fields__}
    t0 = time.perf_counter()
    for s in range(num_scenes):
        driving = rng.random() < driving_fraction
        scene_seed = int(rng.integers(1 << 30))
        if driving:
            scene = make_street(scene_seed, texture_size=128)
            traj = make_trajectory("driving", frames_per_scene, scene_seed)
            fov = rng.uniform(70, 90)
            gaps = (1, 2)
        else:
            scene = make_room(scene_seed, texture_size=128)
            traj = make_trajectory("indoor", frames_per_scene * 2, scene_seed)
            fov = rng.uniform(55, 75)
            gaps = tuple(range(1, max_gap + 1))
        camera = camera_from_fov(width, height, fov)
        stride = 1 if driving else 2  # 30 Hz hand-held: every other frame, like a 15 Hz camera
        poses = traj.poses[::stride][:frames_per_scene]
        frames = [render_frame(scene, pose, camera) for pose in poses]
        for i in range(len(frames)):
            for gap in gaps:
                j = i + gap
                if j >= len(frames):
                    continue
                T_ba = np.linalg.inv(poses[j]) @ poses[i]
                gt = dense_ground_truth(frames[i][1], frames[j][1], T_ba, camera)
                if np.isfinite(gt[..., 0]).mean() < min_valid_fraction:
                    continue
                out["images_a"].append(frames[i][0])
                out["images_b"].append(frames[j][0])
                out["gt_uv"].append(gt)
                out["intrinsics"].append([camera.fx, camera.fy, camera.cx, camera.cy])
                out["T_ba"].append(T_ba)
                out["kind"].append(int(driving))
        print(
            f"rendered scene {s + 1}/{num_scenes} ({'street' if driving else 'room'}), "
            f"{len(out['kind'])} pairs, {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
        )
    if not out["kind"]:
        raise ValueError("no pair had enough ground-truth correspondences")
    return PairSet(**{k: np.asarray(v) for k, v in out.items()})
