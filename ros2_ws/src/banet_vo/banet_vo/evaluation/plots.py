"""Headless evaluation plots (matplotlib Agg through Figure + FigureCanvasAgg: no pyplot, no display).

Each function writes one image file (format from the suffix: .png, .pdf, .svg) and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

INVALID_DEPTH_COLOUR = "#808080"  # neutral grey for NaN / <= 0 depth
_AXES = {"x": 0, "y": 1, "z": 2}


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=fig.dpi, bbox_inches="tight")
    return path


def top_view_plane(xyz: np.ndarray) -> str:
    """The two axes with the largest extent ('xz' for a KITTI optical-frame drive, 'xy' for a body frame)."""
    extent = np.ptp(np.asarray(xyz, dtype=np.float64), axis=0)
    a, b = sorted(np.argsort(extent)[-2:])
    return "xyz"[a] + "xyz"[b]


def top_view_plane_from_poses(poses_T_wc) -> str:
    """Top-view axes for camera-to-world optical-frame poses: drop the world axis closest to the mean
    camera y axis (optical y points down, so for upright cameras that axis is vertical). This picks
    'xz' for KITTI even on a straight drive, where the extents alone cannot tell up from sideways."""
    T = np.asarray(poses_T_wc, dtype=np.float64)
    if T.ndim != 3 or T.shape[1:] not in ((4, 4), (3, 4)) or T.shape[0] == 0:
        raise ValueError(f"poses_T_wc must have shape (N, 4, 4), got {T.shape}")
    down = T[:, :3, 1].mean(axis=0)
    vertical = int(np.argmax(np.abs(down)))
    return "".join(c for k, c in enumerate("xyz") if k != vertical)


def check_plane(plane: str) -> str:
    """`plane` if it is 'auto' or two distinct axes such as 'xz'; ValueError otherwise (a command checks
    it before it computes what it would plot)."""
    if plane != "auto" and (len(plane) != 2 or any(c not in _AXES for c in plane) or plane[0] == plane[1]):
        raise ValueError(f"plane must be 'auto' or two distinct axes of 'xyz' such as 'xz', got {plane!r}")
    return plane


def plot_trajectory_top_view(
    gt_xyz,
    est_xyz,
    path: str | Path,
    *,
    plane: str = "auto",
    title: str = "",
    labels: tuple[str, str] = ("ground truth", "estimate"),
) -> Path:
    """Positions (N, 3) of ground truth and (aligned) estimate seen from above, equal axis scale.

    plane: two axes such as 'xz', or 'auto' for the two of largest ground-truth extent (prefer
    `top_view_plane_from_poses` when orientations are known).
    """
    gt = np.asarray(gt_xyz, dtype=np.float64)
    est = np.asarray(est_xyz, dtype=np.float64)
    for name, arr in (("gt_xyz", gt), ("est_xyz", est)):
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
            raise ValueError(f"{name} must have shape (N, 3) with N >= 1, got {arr.shape}")
    if plane == "auto":
        plane = top_view_plane(gt)
    check_plane(plane)
    i, j = _AXES[plane[0]], _AXES[plane[1]]
    fig = Figure(figsize=(6, 6), dpi=100)
    ax = fig.add_subplot()
    ax.plot(gt[:, i], gt[:, j], "-", color="black", lw=1.5, label=labels[0])
    ax.plot(est[:, i], est[:, j], "-", color="tab:red", lw=1.2, label=labels[1])
    ax.plot(gt[0, i], gt[0, j], "o", color="black", ms=5, label="start")
    ax.set_xlabel(f"{plane[0]} [m]")
    ax.set_ylabel(f"{plane[1]} [m]")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_depth(
    depth,
    path: str | Path,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "magma_r",
    title: str = "",
    label: str = "depth [m]",
) -> Path:
    """Depth map (H, W) as a colour map with a colour bar; NaN and <= 0 pixels drawn in neutral grey."""
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be 2-D (H, W), got shape {d.shape}")
    with np.errstate(invalid="ignore"):
        invalid = ~np.isfinite(d) | (d <= 0)
    shown = np.ma.masked_array(d, mask=invalid)
    valid_values = d[~invalid]
    if vmin is None:
        vmin = float(np.percentile(valid_values, 1)) if valid_values.size else 0.0
    if vmax is None:
        vmax = float(np.percentile(valid_values, 99)) if valid_values.size else 1.0
    if vmax <= vmin:
        vmax = vmin + 1e-6
    colours = colormaps[cmap].with_extremes(bad=INVALID_DEPTH_COLOUR)
    h, w = d.shape
    fig = Figure(figsize=(max(4.0, 6.0 * w / max(h, w)) + 1.2, max(3.0, 6.0 * h / max(h, w))), dpi=100)
    ax = fig.add_subplot()
    image = ax.imshow(shown, cmap=colours, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    fig.colorbar(image, ax=ax, label=label, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_error_over_time(
    times,
    errors: Mapping[str, np.ndarray] | np.ndarray,
    path: str | Path,
    *,
    ylabel: str = "error [m]",
    title: str = "",
) -> Path:
    """One or more error series against time (seconds from the first stamp)."""
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if t.size == 0:
        raise ValueError("times is empty")
    series = {"error": errors} if not isinstance(errors, Mapping) else dict(errors)
    if not series:
        raise ValueError("errors is empty")
    fig = Figure(figsize=(8, 3.5), dpi=100)
    ax = fig.add_subplot()
    for name, values in series.items():
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if v.shape != t.shape:
            raise ValueError(f"errors[{name!r}] has {v.size} values but times has {t.size}")
        ax.plot(t - t[0], v, lw=1.2, label=name)
    ax.set_xlabel("time [s]")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return _save(fig, path)
