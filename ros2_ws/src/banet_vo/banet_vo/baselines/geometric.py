"""Geometric two-view BA baseline (BA-Net Table 1, "geometric BA"): OpenCV SIFT (or ORB) features, ratio-test
matching, 5-point essential matrix with RANSAC, recoverPose, triangulation, then a two-view bundle
adjustment (pose + points, Huber reprojection error in both images, scipy least_squares with a sparse
Jacobian). Monocular geometry has no scale: the translation is scaled to a given metric norm (the ground
truth's in our evaluation), which scales the triangulated depth by the same factor.

Depth is sparse: the inlier points' z in the reference camera, written at their (rounded) pixel in a map of
the requested size (0 elsewhere); ``density`` says which fraction of pixels it covers.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import lil_matrix
from scipy.spatial.transform import Rotation

__all__ = ["GeometricResult", "geometric_ba", "to_gray"]

MIN_INLIERS = 8


@dataclass
class GeometricResult:
    pose: np.ndarray  # 4x4 T_tgt_ref (identity on failure), translation scaled to ``scale``
    depth: np.ndarray  # (h, w) float32 sparse z-depth of the reference, 0 = none
    ok: bool  # False: too few matches/inliers for an essential matrix; pose is the identity
    num_matches: int
    num_inliers: int
    reprojection_rmse_px: float  # after the two-view BA (NaN on failure)

    @property
    def density(self) -> float:
        return float((self.depth > 0).mean())


def to_gray(image: np.ndarray) -> np.ndarray:
    """H×W or H×W×3 uint8 RGB → H×W uint8."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"image must be H×W or H×W×3 uint8, got {image.dtype} {image.shape}")
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _detect(gray: np.ndarray, feature: str) -> tuple[list, np.ndarray | None]:
    if feature == "sift":
        detector = cv2.SIFT_create(nfeatures=2000, contrastThreshold=0.01)
    elif feature == "orb":
        detector = cv2.ORB_create(nfeatures=2000, edgeThreshold=8, patchSize=15)
    else:
        raise ValueError(f"feature must be 'sift' or 'orb', got {feature!r}")
    return detector.detectAndCompute(gray, None)


def _match(desc_ref: np.ndarray, desc_tgt: np.ndarray, feature: str, ratio: float) -> list:
    norm = cv2.NORM_L2 if feature == "sift" else cv2.NORM_HAMMING
    knn = cv2.BFMatcher(norm).knnMatch(desc_ref, desc_tgt, k=2)
    return [m[0] for m in knn if len(m) == 2 and m[0].distance < ratio * m[1].distance]


def _project(points: np.ndarray, rvec: np.ndarray, t: np.ndarray, K: np.ndarray) -> np.ndarray:
    cam = Rotation.from_rotvec(rvec).apply(points) + t
    z = np.maximum(cam[:, 2], 1e-6)
    return np.stack([K[0, 0] * cam[:, 0] / z + K[0, 2], K[1, 1] * cam[:, 1] / z + K[1, 2]], axis=1)


def _two_view_ba(
    points: np.ndarray, R: np.ndarray, t: np.ndarray, uv_ref: np.ndarray, uv_tgt: np.ndarray, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Refine (R, t, points) with the reference camera fixed at the origin and |t| fixed to 1 (gauge)."""
    n = len(points)
    rvec0 = Rotation.from_matrix(R).as_rotvec()
    x0 = np.concatenate([rvec0, t / np.linalg.norm(t), points.ravel()])

    def residuals(x: np.ndarray) -> np.ndarray:
        rvec, tt, pts = x[:3], x[3:6] / np.linalg.norm(x[3:6]), x[6:].reshape(n, 3)
        r_ref = _project(pts, np.zeros(3), np.zeros(3), K) - uv_ref
        r_tgt = _project(pts, rvec, tt, K) - uv_tgt
        return np.concatenate([r_ref.ravel(), r_tgt.ravel()])

    sparsity = lil_matrix((4 * n, 6 + 3 * n), dtype=int)
    for i in range(n):
        cols = slice(6 + 3 * i, 9 + 3 * i)
        sparsity[2 * i : 2 * i + 2, cols] = 1
        sparsity[2 * n + 2 * i : 2 * n + 2 * i + 2, cols] = 1
        sparsity[2 * n + 2 * i : 2 * n + 2 * i + 2, :6] = 1
    sol = least_squares(
        residuals, x0, jac_sparsity=sparsity, loss="huber", f_scale=1.0, x_scale="jac", max_nfev=50
    )
    rvec, tt = sol.x[:3], sol.x[3:6] / np.linalg.norm(sol.x[3:6])
    rmse = float(np.sqrt(np.mean(residuals(sol.x) ** 2)))
    return Rotation.from_rotvec(rvec).as_matrix(), tt, sol.x[6:].reshape(n, 3), rmse


def geometric_ba(
    image_ref: np.ndarray,
    image_tgt: np.ndarray,
    K: np.ndarray,
    scale: float,
    depth_size: tuple[int, int] | None = None,
    feature: str = "sift",
    ratio: float = 0.8,
    ransac_threshold_px: float = 1.0,
) -> GeometricResult:
    """Relative pose T_tgt_ref and sparse reference depth from two images with intrinsics ``K`` (3x3).

    ``scale``: metric length given to the unit translation (e.g. the GT translation norm); ``depth_size``:
    (width, height) of the returned depth map (default: the image size; points are mapped by the resize
    rule of docs/CONVENTIONS.md).
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be 3x3, got {K.shape}")
    if not np.isfinite(scale) or scale < 0:
        raise ValueError(f"scale must be a finite number >= 0, got {scale}")
    gray_ref, gray_tgt = to_gray(image_ref), to_gray(image_tgt)
    if gray_ref.shape != gray_tgt.shape:
        raise ValueError(f"image_ref {gray_ref.shape} and image_tgt {gray_tgt.shape} differ in size")
    h, w = gray_ref.shape
    dw, dh = depth_size if depth_size is not None else (w, h)
    depth = np.zeros((dh, dw), np.float32)
    fail = GeometricResult(np.eye(4), depth, False, 0, 0, float("nan"))

    kp_ref, desc_ref = _detect(gray_ref, feature)
    kp_tgt, desc_tgt = _detect(gray_tgt, feature)
    if desc_ref is None or desc_tgt is None or len(kp_ref) < 2 or len(kp_tgt) < 2:
        return fail
    matches = _match(desc_ref, desc_tgt, feature, ratio)
    fail.num_matches = len(matches)
    if len(matches) < MIN_INLIERS:
        return fail
    uv_ref = np.array([kp_ref[m.queryIdx].pt for m in matches], dtype=np.float64)
    uv_tgt = np.array([kp_tgt[m.trainIdx].pt for m in matches], dtype=np.float64)
    E, mask = cv2.findEssentialMat(
        uv_ref, uv_tgt, K, method=cv2.RANSAC, prob=0.999, threshold=ransac_threshold_px
    )
    if E is None or E.shape != (3, 3):  # several stacked solutions: keep RANSAC's best (the first)
        if E is None or E.shape[0] < 3:
            return fail
        E = E[:3]
    _, R, t, mask_pose = cv2.recoverPose(E, uv_ref, uv_tgt, K, mask=mask.copy())
    inliers = mask_pose.ravel() > 0
    fail.num_inliers = int(inliers.sum())
    if inliers.sum() < MIN_INLIERS:
        return fail
    uv_ref, uv_tgt = uv_ref[inliers], uv_tgt[inliers]
    P_ref = K @ np.hstack([np.eye(3), np.zeros((3, 1))])
    P_tgt = K @ np.hstack([R, t])
    X = cv2.triangulatePoints(P_ref, P_tgt, uv_ref.T, uv_tgt.T)
    points = (X[:3] / X[3]).T
    front = points[:, 2] > 0
    if front.sum() < MIN_INLIERS:
        return fail
    R, t_unit, points, rmse = _two_view_ba(points[front], R, t.ravel(), uv_ref[front], uv_tgt[front], K)
    uv_ref = uv_ref[front]

    pose = np.eye(4)
    pose[:3, :3] = R
    pose[:3, 3] = t_unit * scale
    z = points[:, 2] * scale
    su, sv = dw / w, dh / h
    cols = np.rint(su * (uv_ref[:, 0] + 0.5) - 0.5).astype(int)
    rows = np.rint(sv * (uv_ref[:, 1] + 0.5) - 0.5).astype(int)
    keep = (z > 0) & (cols >= 0) & (cols < dw) & (rows >= 0) & (rows < dh)
    depth[rows[keep], cols[keep]] = z[keep].astype(np.float32)
    return GeometricResult(pose, depth, True, len(matches), int(front.sum()), rmse)
