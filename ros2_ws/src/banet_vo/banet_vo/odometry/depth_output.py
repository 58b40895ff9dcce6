"""Depth for consumers: the pipeline's low-resolution depth resampled to the input image, and 3D points.

BA-Net predicts depth at a fraction of the model's input size. Consumers of `depth/image` (image_transport,
depth_image_proc, RViz) expect it pixel-aligned with the camera image, so the node resamples it to the
(rectified) input camera. Both cameras are pinholes of the same optical frame, so a target pixel maps to the
depth map through the normalised ray: u_d = fx_d (u - cx) / fx + cx_d (and the same for v), which covers a
resize and a crop alike.

- nearest: each pixel takes the depth sample whose centre is closest (no new values are invented);
- edge_aware: bilinear between the four neighbouring samples where they lie on one surface (their spread
  is within `max_relative_jump` of the nearest one), nearest across a depth edge, so no "flying pixels"
  appear between a foreground object and the background as plain bilinear interpolation would make.

Invalid depth (0, negative or non-finite) stays invalid: NaN in the output (REP-118).

`landmark_corrected_depth` puts a keyframe's depth map onto its landmarks pixel by pixel: BA-Net's depth on
real images is mostly the network's prior (nearly one depth for a whole indoor view), while the map's
triangulated points are measured, so a smooth correction field interpolated from the landmarks' log depth
ratios moves each region toward the points near it and keeps BA-Net's depth where there are none.
"""

from __future__ import annotations

import cv2
import numpy as np

from banet_vo.geometry import PinholeCamera

UPSAMPLING_METHODS = ("nearest", "edge_aware")
DEFAULT_MAX_RELATIVE_JUMP = 0.05  # 5 % of the depth: two samples further apart lie on different surfaces
# landmark_corrected_depth: the field's Gaussian radius as a fraction of the map's diagonal, the weight of
# the unchanged depth (as one landmark at the pixel itself), and the largest factor one landmark may ask
# for (a landmark across a depth edge from its pixel, or a bad triangulation, pulls no further).
CORRECTION_SIGMA_FRACTION = 0.1
CORRECTION_PRIOR_WEIGHT = 1.0
CORRECTION_MAX_FACTOR = 4.0
MIN_CORRECTION_LANDMARKS = 5


def _sample_coordinates(
    depth_camera: PinholeCamera, target_camera: PinholeCamera
) -> tuple[np.ndarray, np.ndarray]:
    """Where each target column (us) and row (vs) falls on the depth map, through the normalised ray."""
    u = np.arange(target_camera.width, dtype=np.float64)
    v = np.arange(target_camera.height, dtype=np.float64)
    us = depth_camera.fx * (u - target_camera.cx) / target_camera.fx + depth_camera.cx
    vs = depth_camera.fy * (v - target_camera.cy) / target_camera.fy + depth_camera.cy
    return us, vs


def in_depth_range(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """A float32 copy of `depth` with every pixel outside [min_depth, max_depth] or not finite set to 0
    (invalid: published as NaN)."""
    d = np.array(depth, dtype=np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        d[~np.isfinite(d) | (d < min_depth) | (d > max_depth)] = 0.0
    return d


def landmark_corrected_depth(
    depth: np.ndarray,
    depth_camera: PinholeCamera,
    points_cam: np.ndarray,
    sigma_fraction: float = CORRECTION_SIGMA_FRACTION,
    prior_weight: float = CORRECTION_PRIOR_WEIGHT,
    max_factor: float = CORRECTION_MAX_FACTOR,
) -> np.ndarray:
    """`depth` (h×w, 0 invalid) times a smooth per-pixel factor from landmarks `points_cam` (N×3, in the
    depth map's camera and unit): at each pixel exp(Σ wᵢ log rᵢ / (Σ wᵢ + prior_weight)), rᵢ = the landmark's
    depth over the map's at its pixel (clipped to [1/max_factor, max_factor]), wᵢ a Gaussian of the pixel
    distance with σ = sigma_fraction × the map's diagonal. Far from every landmark the factor goes to 1.
    Invalid pixels stay 0; with fewer than MIN_CORRECTION_LANDMARKS usable landmarks the depth is returned
    as it is (a float32 copy)."""
    d = np.array(depth, dtype=np.float32, copy=True)
    h, w = d.shape
    P = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    P = P[np.isfinite(P).all(axis=1) & (P[:, 2] > 1e-9)]
    u = np.round(depth_camera.fx * P[:, 0] / P[:, 2] + depth_camera.cx).astype(np.int64)
    v = np.round(depth_camera.fy * P[:, 1] / P[:, 2] + depth_camera.cy).astype(np.int64)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    u, v, z = u[inside], v[inside], P[inside, 2]
    at = d[v, u]
    usable = np.isfinite(at) & (at > 0)
    if usable.sum() < MIN_CORRECTION_LANDMARKS:
        return d
    u, v = u[usable], v[usable]
    log_ratio = np.clip(np.log(z[usable] / at[usable]), -np.log(max_factor), np.log(max_factor))
    # Nadaraya-Watson by splatting: the Gaussian sums over landmarks are blurs of two images (the landmarks'
    # log ratios and their counts), zero outside the map as the explicit sums are.
    numerator = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.float64)
    np.add.at(numerator, (v, u), log_ratio)
    np.add.at(count, (v, u), 1.0)
    sigma = sigma_fraction * float(np.hypot(w, h))
    radius = max(1, int(np.ceil(3 * sigma)))
    size = (2 * radius + 1, 2 * radius + 1)

    def blur(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, size, sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)

    # The blur's weight at distance 0 (its separable kernel's centre, squared): wᵢ = 1 there.
    peak = float(cv2.getGaussianKernel(size[0], sigma, cv2.CV_64F)[radius, 0]) ** 2
    field = blur(numerator) / (blur(count) + prior_weight * peak)
    valid = np.isfinite(d) & (d > 0)
    d[valid] *= np.exp(field[valid]).astype(np.float32)
    return d


def upsample_depth(
    depth: np.ndarray,
    depth_camera: PinholeCamera,
    target_camera: PinholeCamera,
    method: str = "edge_aware",
    max_relative_jump: float = DEFAULT_MAX_RELATIVE_JUMP,
) -> np.ndarray:
    """`depth` (h×w metres, `depth_camera`) resampled to the pixels of `target_camera`: H×W float32, NaN
    invalid."""
    if method not in UPSAMPLING_METHODS:
        raise ValueError(f"method must be one of {UPSAMPLING_METHODS}, got {method!r}")
    if not max_relative_jump > 0:
        raise ValueError(f"max_relative_jump must be positive, got {max_relative_jump!r}")
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2 or d.shape != (depth_camera.height, depth_camera.width):
        raise ValueError(
            f"depth must be {depth_camera.height}x{depth_camera.width} (its camera), got shape {d.shape}"
        )
    with np.errstate(invalid="ignore"):
        d = np.where(np.isfinite(d) & (d > 0), d, np.nan).astype(np.float32)
    h, w = d.shape
    us, vs = _sample_coordinates(depth_camera, target_camera)
    # A target pixel outside the depth map's pixel area (beyond half a pixel from the outer centres) has
    # no depth: NaN rather than a value extrapolated from the border.
    inside_u = (us >= -0.5) & (us <= w - 0.5)
    inside_v = (vs >= -0.5) & (vs <= h - 0.5)
    iu = np.clip(np.floor(us + 0.5).astype(np.int64), 0, w - 1)
    iv = np.clip(np.floor(vs + 0.5).astype(np.int64), 0, h - 1)
    # Columns are sampled on the h source rows first, then whole rows are picked: the sample coordinates
    # are separable (u per column, v per row), and row gathers are copies, ~5x faster than 2-D indexing
    # at 1080p, with the same arithmetic.
    out = d[:, iu][iv]
    if method == "edge_aware":
        u0 = np.clip(np.floor(us).astype(np.int64), 0, w - 1)
        v0 = np.clip(np.floor(vs).astype(np.int64), 0, h - 1)
        u1, v1 = np.minimum(u0 + 1, w - 1), np.minimum(v0 + 1, h - 1)
        au = np.clip(us - u0, 0.0, 1.0).astype(np.float32)[None, :]
        av = np.clip(vs - v0, 0.0, 1.0).astype(np.float32)[:, None]
        left, right = d[:, u0], d[:, u1]
        across = (1 - au) * left + au * right  # h x W: bilinear along u on every source row
        # the 2x2 corners' largest and smallest depth; np.maximum/minimum keep a NaN corner, whose
        # comparison below is then False: not smooth
        high, low = np.maximum(left, right), np.minimum(left, right)
        with np.errstate(invalid="ignore"):
            spread = np.maximum(high[v0], high[v1]) - np.minimum(low[v0], low[v1])
            smooth = spread <= max_relative_jump * out
        bilinear = (1 - av) * across[v0] + av * across[v1]
        out = np.where(smooth, bilinear, out)
    out = np.where(inside_v[:, None] & inside_u[None, :], out, np.nan)
    return np.ascontiguousarray(out, dtype=np.float32)


def depth_to_points(depth: np.ndarray, camera: PinholeCamera, stride: int = 1) -> np.ndarray:
    """N×3 float32 points (x right, y down, z forward: the optical frame) of every `stride`-th pixel with
    valid depth; depth is metres along z (REP-118), so x = (u - cx) z / fx and y = (v - cy) z / fy."""
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be an int >= 1, got {stride!r}")
    d = np.asarray(depth, dtype=np.float64)
    if d.shape != (camera.height, camera.width):
        raise ValueError(f"depth must be {camera.height}x{camera.width} (its camera), got shape {d.shape}")
    vs, us = np.mgrid[0 : camera.height : stride, 0 : camera.width : stride]
    z = d[vs, us]
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(z) & (z > 0)
    z, us, vs = z[valid], us[valid], vs[valid]
    points = np.column_stack([(us - camera.cx) * z / camera.fx, (vs - camera.cy) * z / camera.fy, z])
    return points.astype(np.float32)
