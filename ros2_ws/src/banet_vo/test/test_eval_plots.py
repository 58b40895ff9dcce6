"""Headless plots: files are written, readable, and show what they claim (grey for invalid depth)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from banet_vo.evaluation.plots import (
    plot_depth,
    plot_error_over_time,
    plot_trajectory_top_view,
    top_view_plane,
    top_view_plane_from_poses,
)


def read_rgb(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} is not a readable image"
    return image[..., ::-1]


def test_depth_plot_shows_invalid_pixels_in_neutral_grey(tmp_path):
    depth = np.tile(np.linspace(1.0, 10.0, 80), (60, 1)).astype(np.float32)
    depth[:20, :30] = np.nan
    depth[40:, 50:] = 0.0
    path = plot_depth(depth, tmp_path / "out" / "depth.png", title="depth")
    assert path == tmp_path / "out" / "depth.png"
    rgb = read_rgb(path).astype(int)
    grey = np.all(np.abs(rgb - 128) <= 1, axis=-1)
    # invalid area 20*30 + 20*30 = 1200 of 4800 data pixels, drawn at least at 1:1 scale
    assert grey.sum() >= 1000
    colourful = (rgb.max(-1) - rgb.min(-1)) > 60
    assert colourful.sum() > grey.sum()  # the valid part and the colour bar are in colour
    all_invalid = plot_depth(np.full((10, 10), np.nan), tmp_path / "nan.png")
    grey_all = np.all(np.abs(read_rgb(all_invalid).astype(int) - 128) <= 1, axis=-1)
    assert grey_all.mean() > 0.3  # the whole image area is grey


def test_trajectory_top_view_and_plane_choice(tmp_path):
    s = np.linspace(0, 50, 100)
    gt = np.stack([np.sin(s / 10) * 5, 0.01 * s, s], axis=1)  # KITTI optical frame: drive along z, y down
    assert top_view_plane(gt) == "xz"
    est = gt + np.array([0.5, 0.0, 0.0])
    straight = np.tile(np.eye(4), (10, 1, 1))
    straight[:, 1, 3] = np.linspace(0, 2, 10)  # going downhill: y extent beats x extent
    straight[:, 2, 3] = np.linspace(0, 50, 10)
    assert top_view_plane(straight[:, :3, 3]) == "yz"
    assert top_view_plane_from_poses(straight) == "xz"  # camera y (down) is world y: drop it
    body = np.tile(np.eye(4), (3, 1, 1))
    body[:, :3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # optical camera in a z-up world (REP-103)
    assert top_view_plane_from_poses(body) == "xy"
    path = plot_trajectory_top_view(gt, est, tmp_path / "traj.png", title="top")
    rgb = read_rgb(path)
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 100) & (rgb[..., 2] < 100)
    black = rgb.max(-1) < 60
    assert red.sum() > 100 and black.sum() > 100  # estimate and ground-truth lines are both drawn
    with pytest.raises(ValueError, match="plane"):
        plot_trajectory_top_view(gt, est, tmp_path / "x.png", plane="xx")
    with pytest.raises(ValueError, match="est_xyz"):
        plot_trajectory_top_view(gt, est[:, :2], tmp_path / "x.png")


def test_error_over_time(tmp_path):
    t = 100.0 + 0.1 * np.arange(50)
    path = plot_error_over_time(t, {"ATE": np.linspace(0, 1, 50), "RPE": np.ones(50)}, tmp_path / "e.pdf")
    assert path.read_bytes()[:4] == b"%PDF"
    assert read_rgb(plot_error_over_time(t, np.zeros(50), tmp_path / "e.png")).shape[2] == 3
    with pytest.raises(ValueError, match="errors\\['ATE'\\]"):
        plot_error_over_time(t, {"ATE": np.zeros(3)}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="times"):
        plot_error_over_time([], {"ATE": []}, tmp_path / "bad.png")
