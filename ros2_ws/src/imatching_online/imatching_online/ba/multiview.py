"""Multi-view geometry in numpy for the window BA: projection, triangulation, parallax.

Poses here are world-to-camera ``T_cw`` (N, 4, 4), the form projection wants; window.py hands out
camera-to-world. Pixels follow OpenCV (docs/CONVENTIONS.md); intrinsics are a banet_vo PinholeCamera (its K
only where OpenCV wants the matrix).
"""

from __future__ import annotations

import cv2
import numpy as np
from banet_vo.geometry import PinholeCamera
from banet_vo.geometry.rigid import invert


def focal_lengths(camera: PinholeCamera) -> np.ndarray:
    return np.array([camera.fx, camera.fy])


def principal_point(camera: PinholeCamera) -> np.ndarray:
    return np.array([camera.cx, camera.cy])


def normalized(uv: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Pixels (..., 2) -> normalised image coordinates (..., 2) (z = 1 plane)."""
    return (uv - principal_point(camera)) / focal_lengths(camera)


def rays(uv: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Pixels (..., 2) -> rays [x, y, 1] (..., 3) in the camera frame."""
    xy = normalized(uv, camera)
    return np.concatenate([xy, np.ones_like(xy[..., :1])], -1)


def camera_centres(T_cw: np.ndarray) -> np.ndarray:
    """World positions (N, 3) of the cameras."""
    return invert(T_cw)[..., :3, 3]


def transform(T: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Apply T (4, 4) or (..., 4, 4) to points (..., 3)."""
    return np.einsum("...ij,...j->...i", T[..., :3, :3], X) + T[..., :3, 3]


def project_all(T_cw: np.ndarray, X: np.ndarray, camera: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
    """Project world points X (T, 3) into every camera: pixels (T, N, 2) and depths z (T, N)."""
    P = np.einsum("nij,tj->tni", T_cw[:, :3, :3], X) + T_cw[None, :, :3, 3]
    z = P[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = P[..., :2] / z[..., None]
    return xy * focal_lengths(camera) + principal_point(camera), z


def reprojection_errors(
    T_cw: np.ndarray, X: np.ndarray, uv: np.ndarray, camera: PinholeCamera
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel error (T, N) of points X (T, 3) against observations uv (T, N, 2) (NaN where unobserved),
    and the depths z (T, N). Points behind a camera get an infinite error there."""
    proj, z = project_all(T_cw, X, camera)
    err = np.linalg.norm(proj - uv, axis=-1)
    err = np.where(z > 0, err, np.inf)
    return np.where(np.isnan(uv[..., 0]), np.nan, err), z


def triangulate_pair(
    T_cw_i: np.ndarray, T_cw_j: np.ndarray, uv_i: np.ndarray, uv_j: np.ndarray, camera: PinholeCamera
) -> np.ndarray:
    """Two-view linear triangulation (OpenCV) of pixel pairs (M, 2) -> world points (M, 3)."""
    if len(uv_i) == 0:
        return np.zeros((0, 3))
    Xh = cv2.triangulatePoints(
        T_cw_i[:3], T_cw_j[:3], normalized(uv_i, camera).T.copy(), normalized(uv_j, camera).T.copy()
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return (Xh[:3] / Xh[3]).T


def max_ray_angle_deg(T_cw: np.ndarray, X: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Largest angle (deg) between the viewing rays of X (T, 3) from the cameras where use (T, N)."""
    d = X[:, None, :] - camera_centres(T_cw)[None]
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    d = np.where(use[..., None], d, np.nan)
    # Largest pairwise angle = smallest dot product; N is a handful of frames.
    cos = np.einsum("tni,tmi->tnm", d, d)
    cos = np.where(np.isnan(cos), 1.0, cos)
    return np.degrees(np.arccos(np.clip(cos.min(axis=(1, 2)), -1.0, 1.0)))


def rotation_compensated_parallax_deg(rays_a: np.ndarray, rays_b: np.ndarray, trims: int = 3) -> float:
    """Median angle (deg) between matched rays once the best pure rotation b<-a is removed.

    The rotation is a Kabsch fit, refitted ``trims`` times on the better-fitting half so that the
    outliers an essential matrix lets through do not bias it. The angle is near zero for a rotating or
    static camera whatever the scene, and independent of how an essential matrix would be decomposed,
    so it is the test for a degenerate pair.
    """
    fa = rays_a / np.linalg.norm(rays_a, axis=1, keepdims=True)
    fb = rays_b / np.linalg.norm(rays_b, axis=1, keepdims=True)
    use = np.ones(len(fa), dtype=bool)
    for _ in range(trims + 1):
        U, _, Vt = np.linalg.svd(fa[use].T @ fb[use])
        D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
        R = Vt.T @ D @ U.T
        angle = np.arccos(np.clip(np.einsum("mi,mi->m", fb, fa @ R.T), -1.0, 1.0))
        use = angle <= np.median(angle)
    return float(np.degrees(np.median(angle)))


def triangulate_tracks(
    T_cw: np.ndarray, posed: np.ndarray, uv: np.ndarray, camera: PinholeCamera, threshold_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """RANSAC-style multi-view triangulation of every track from the posed frames.

    Each pair of posed views of a track proposes a point (OpenCV two-view triangulation); the proposal
    seen within threshold_px by most views wins (ties: smaller error), and a linear DLT over its inlier
    views refines it. Returns points (T, 3) (NaN when no proposal has 2 inlier views) and the inlier
    observations (T, N).
    """
    num_tracks = uv.shape[0]
    usable = ~np.isnan(uv[..., 0]) & posed[None, :]
    best_X = np.full((num_tracks, 3), np.nan)
    best_count = np.zeros(num_tracks, dtype=np.int64)
    best_score = np.full(num_tracks, np.inf)
    frames = np.flatnonzero(posed)
    for ii, i in enumerate(frames):
        for j in frames[ii + 1 :]:
            sel = np.flatnonzero(usable[:, i] & usable[:, j])
            if len(sel) == 0:
                continue
            X = triangulate_pair(T_cw[i], T_cw[j], uv[sel, i], uv[sel, j], camera)
            err, _ = reprojection_errors(T_cw, X, uv[sel], camera)
            ok = usable[sel] & (err < threshold_px)
            count = np.where(ok[:, i] & ok[:, j], ok.sum(1), 0)
            score = np.where(ok, err, threshold_px).sum(1)
            better = (count > best_count[sel]) | ((count == best_count[sel]) & (score < best_score[sel]))
            better &= count >= 2
            upd = sel[better]
            best_X[upd], best_count[upd], best_score[upd] = X[better], count[better], score[better]

    found = best_count >= 2
    X = best_X.copy()
    if found.any():
        err, _ = reprojection_errors(T_cw, best_X[found], uv[found], camera)
        inl = usable[found] & (err < threshold_px)
        X[found] = _dlt(T_cw, normalized(uv[found], camera), inl)
    err, _ = reprojection_errors(T_cw, np.nan_to_num(X), uv, camera)
    inliers = usable & found[:, None] & (err < threshold_px)
    bad = inliers.sum(1) < 2
    X[bad], inliers[bad] = np.nan, False
    return X, inliers


def _dlt(T_cw: np.ndarray, xy: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Linear multi-view triangulation from normalised points xy (T, N, 2) over views where use."""
    P = T_cw[:, :3, :]  # (N, 3, 4)
    rows_x = xy[..., 0, None] * P[None, :, 2] - P[None, :, 0]
    rows_y = xy[..., 1, None] * P[None, :, 2] - P[None, :, 1]
    A = np.concatenate([rows_x, rows_y], axis=1)  # (T, 2N, 4)
    A = np.where(np.concatenate([use, use], 1)[..., None], A, 0.0)
    Xh = np.linalg.svd(A)[2][:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return Xh[:, :3] / Xh[:, 3:]


def anchored_inverse_depth(
    T_cw: np.ndarray,
    uv: np.ndarray,
    anchor: np.ndarray,
    use: np.ndarray,
    camera: PinholeCamera,
    iterations: int = 3,
) -> np.ndarray:
    """Inverse depth rho (T,) of each track's point on its anchor ray, from the views where use (T, N).

    The point seen from view b is ∝ R_ba·f + rho·t_ba (f = anchor ray), which is linear in rho: a linear
    least-squares start, then Gauss-Newton on the pixel error. The anchor view itself adds nothing.
    """
    num_tracks = len(anchor)
    f = rays(uv[np.arange(num_tracks), anchor], camera)  # (T, 3)
    T_ba = np.einsum("nij,tjk->tnik", T_cw, invert(T_cw[anchor]))  # (T, N, 4, 4)
    Rf = np.einsum("tnij,tj->tni", T_ba[..., :3, :3], f)
    t = T_ba[..., :3, 3]
    obs = normalized(uv, camera)
    w = use & ~np.isnan(obs[..., 0])
    obs = np.nan_to_num(obs)
    focal = focal_lengths(camera)
    # Linear: x * (Rf_z + rho t_z) = Rf_x + rho t_x, likewise y.
    alpha = obs * t[..., 2:] - t[..., :2]  # (T, N, 2)
    beta = Rf[..., :2] - obs * Rf[..., 2:]
    num = np.where(w[..., None], alpha * beta, 0.0).sum((1, 2))
    den = np.where(w[..., None], alpha * alpha, 0.0).sum((1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = num / den
        for _ in range(iterations):
            P = Rf + rho[:, None, None] * t
            proj = P[..., :2] / P[..., 2:]
            r = (proj - obs) * focal
            J = (t[..., :2] * P[..., 2:] - P[..., :2] * t[..., 2:]) / P[..., 2:] ** 2 * focal
            ok = w & (P[..., 2] > 0)
            g = np.where(ok[..., None], J * r, 0.0).sum((1, 2))
            H = np.where(ok[..., None], J * J, 0.0).sum((1, 2))
            rho = np.where(H > 0, rho - g / H, rho)
    return rho


def anchored_points(
    T_cw: np.ndarray, uv: np.ndarray, anchor: np.ndarray, rho: np.ndarray, camera
) -> np.ndarray:
    """World points (T, 3) at inverse depth rho on each track's anchor ray."""
    num_tracks = len(anchor)
    f = rays(uv[np.arange(num_tracks), anchor], camera)
    with np.errstate(divide="ignore", invalid="ignore"):
        return transform(invert(T_cw[anchor]), f / rho[:, None])


def anchored_reprojection_errors(
    T_cw: np.ndarray, uv: np.ndarray, anchor: np.ndarray, rho: np.ndarray, camera: PinholeCamera
) -> np.ndarray:
    """Pixel error (T, N) of anchored landmarks (anchor ray, inverse depth rho) against uv (T, N, 2).

    Uses the homogeneous point [f, rho] so points at infinity (rho = 0) stay finite; NaN where
    unobserved, infinite behind a camera or where rho is not finite.
    """
    num_tracks = len(anchor)
    f = rays(uv[np.arange(num_tracks), anchor], camera)
    T_ba = np.einsum("nij,tjk->tnik", T_cw, invert(T_cw[anchor]))
    P = np.einsum("tnij,tj->tni", T_ba[..., :3, :3], f) + rho[:, None, None] * T_ba[..., :3, 3]
    z = P[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        proj = P[..., :2] / z[..., None] * focal_lengths(camera) + principal_point(camera)
        err = np.linalg.norm(proj - uv, axis=-1)
    err = np.where((z > 0) & np.isfinite(rho)[:, None], err, np.inf)
    return np.where(np.isnan(uv[..., 0]), np.nan, err)
