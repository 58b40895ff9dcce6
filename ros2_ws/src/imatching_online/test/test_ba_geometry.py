"""Geometry pieces of the window BA against float64 references: the analytic LM Jacobian against finite
differences on pypose's manifold, triangulation, anchored inverse depth, parallax, motion prior."""

import numpy as np
import pypose as pp
import pytest
import torch
from banet_vo.geometry import PinholeCamera
from imatching_online.ba import WindowConfig, build_tracks
from imatching_online.ba.multiview import (
    anchored_inverse_depth,
    anchored_reprojection_errors,
    invert,
    project_all,
    rays,
    rotation_compensated_parallax_deg,
    triangulate_tracks,
)
from imatching_online.ba.refine import AnchoredReprojection, lm_pass, normalise_scale
from imatching_online.ba.synthetic import make_window, trajectory
from imatching_online.ba.tracking import constant_velocity_prior
from pypose.optim.functional import modjac

CAMERA = PinholeCamera(400.0, 420.0, 160.0, 120.0, 320, 240)  # fx ≠ fy: a swap shows


def _problem(num_frames=4, num_landmarks=12, seed=0):
    rng = np.random.default_rng(seed)
    T_cw = invert(trajectory(num_frames, "sideways", 0.4, rng))
    anchor = rng.integers(0, num_frames, num_landmarks)
    uv_anchor = rng.uniform([20, 20], [300, 220], (num_landmarks, 2))
    rho = rng.uniform(1 / 12, 1 / 3, num_landmarks)
    mask = np.ones((num_landmarks, num_frames), dtype=bool)
    mask[np.arange(num_landmarks), anchor] = False
    return T_cw, anchor, rays(uv_anchor, CAMERA), rho, mask


def _model_output(T_cw, rho, ray, anchor, mask):
    intr = torch.tensor([CAMERA.fx, CAMERA.fy, CAMERA.cx, CAMERA.cy], dtype=torch.float64)
    model = AnchoredReprojection(torch.from_numpy(T_cw), torch.from_numpy(rho), intr)
    m = torch.from_numpy(mask[..., None])
    inputs = (
        torch.from_numpy(ray),
        torch.from_numpy(anchor),
        m,
        torch.zeros(*mask.shape, 2, dtype=torch.float64),
    )
    return model, inputs


def test_analytic_jacobian_matches_finite_differences_on_the_manifold():
    T_cw, anchor, ray, rho, mask = _problem()
    model, inputs = _model_output(T_cw, rho, ray, anchor, mask)
    J_pose, J_rho = modjac(model, input=inputs, flatten=False, vectorize=True)
    J_pose = J_pose.reshape(-1, *J_pose.shape[-2:])  # (2LN, N-1, 7)
    J_rho = J_rho.reshape(-1, len(rho))
    assert torch.all(J_pose[..., 6] == 0)  # pypose's convention: the 7th entry carries nothing
    eps = 1e-6
    free = pp.mat2SE3(torch.from_numpy(T_cw[1:]), check=False)
    for k in range(len(T_cw) - 1):
        for i in range(6):
            out = []
            for sign in (1.0, -1.0):
                delta = torch.zeros(len(T_cw) - 1, 6, dtype=torch.float64)
                delta[k, i] = sign * eps
                T = T_cw.copy()
                T[1:] = (pp.se3(delta).Exp() * free).matrix().numpy()  # LM's update: Exp(delta) * X
                m, inp = _model_output(T, rho, ray, anchor, mask)
                out.append(m(*inp).detach().reshape(-1))
            fd = (out[0] - out[1]) / (2 * eps)
            torch.testing.assert_close(J_pose[:, k, i], fd, rtol=1e-5, atol=1e-5)
    for j in range(len(rho)):
        out = []
        for sign in (1.0, -1.0):
            r = rho.copy()
            r[j] += sign * eps
            m, inp = _model_output(T_cw, r, ray, anchor, mask)
            out.append(m(*inp).detach().reshape(-1))
        torch.testing.assert_close(J_rho[:, j], (out[0] - out[1]) / (2 * eps), rtol=1e-5, atol=1e-5)
    # Masked entries (the anchor's own frame) are pinned: no residual, no Jacobian.
    masked = ~torch.from_numpy(np.repeat(mask.reshape(-1), 2))
    assert torch.all(J_pose[masked] == 0) and torch.all(J_rho[masked] == 0)


def _exact_window(**kwargs):
    w = make_window(noise_px=0.0, outlier_ratio=0.0, queries_per_anchor=60, **kwargs)
    return w, build_tracks(w.matches, len(w.poses))


def test_lm_pass_recovers_exact_poses_and_depths_from_a_perturbed_start():
    w, tracks = _exact_window(seed=3)
    T_true = invert(w.poses)
    rho_true = anchored_inverse_depth(T_true, tracks.uv, tracks.anchor, tracks.observed, w.camera)
    rng = np.random.default_rng(0)
    T0 = T_true.copy()
    T0[1:] = (pp.se3(torch.from_numpy(rng.normal(0, 0.01, (len(T0) - 1, 6)))).Exp().matrix().numpy()) @ T0[1:]
    rho0 = rho_true * rng.uniform(0.9, 1.1, len(rho_true))
    config = WindowConfig(lm_iterations=20, lm_tolerance=1e-12)
    T, rho, stats = lm_pass(T0, rho0, tracks.observed, tracks, w.camera, config)
    assert stats.cost_after < 1e-8 * stats.cost_before
    s = np.linalg.norm(invert(T_true)[-1, :3, 3]) / np.linalg.norm(invert(T)[-1, :3, 3])  # gauge: scale
    np.testing.assert_allclose(invert(T)[:, :3, :3], w.poses[:, :3, :3], atol=1e-7)
    np.testing.assert_allclose(s * invert(T)[:, :3, 3], w.poses[:, :3, 3], atol=1e-7)
    np.testing.assert_allclose(rho / s, rho_true, rtol=1e-6)


def test_normalise_scale_keeps_reprojections_and_puts_the_farthest_camera_at_one():
    w, tracks = _exact_window(seed=4)
    T = invert(w.poses)
    rho = anchored_inverse_depth(T, tracks.uv, tracks.anchor, tracks.observed, w.camera)
    T2, rho2 = normalise_scale(T, rho)
    assert np.linalg.norm(invert(T2)[:, :3, 3], axis=1).max() == pytest.approx(1.0)
    e1 = anchored_reprojection_errors(T, tracks.uv, tracks.anchor, rho, w.camera)
    e2 = anchored_reprojection_errors(T2, tracks.uv, tracks.anchor, rho2, w.camera)
    np.testing.assert_allclose(e1, e2, atol=1e-9)
    assert np.nanmax(e1) < 1e-8  # the exact window reprojects exactly


def test_anchored_inverse_depth_is_exact_and_points_at_infinity_stay_finite():
    w, tracks = _exact_window(seed=5)
    T = invert(w.poses)
    rho = anchored_inverse_depth(T, tracks.uv, tracks.anchor, tracks.observed, w.camera)
    row = {(a, q): t for t, (a, q) in enumerate(zip(tracks.anchor, tracks.query_id, strict=True))}
    checked = 0
    for (a, b), pts in w.points.items():
        z_true = (pts @ T[a, :3, :3].T + T[a, :3, 3])[:, 2]
        t = [row[(a, q)] for q in w.matches[(a, b)].query_ids]
        np.testing.assert_allclose(1 / rho[t], z_true, rtol=1e-9)
        checked += len(t)
    assert checked > 100
    err = anchored_reprojection_errors(T, tracks.uv, tracks.anchor, np.zeros_like(rho), w.camera)
    assert np.isfinite(err[tracks.observed]).all()


def test_triangulate_tracks_recovers_points_and_rejects_a_corrupted_view():
    w, tracks = _exact_window(seed=6)
    T = invert(w.poses)
    uv = tracks.uv.copy()
    bad = (np.arange(tracks.num_tracks), (tracks.anchor + 1) % 5)
    uv[bad] += 25.0  # one wrong match per track
    X, inliers = triangulate_tracks(T, np.ones(5, dtype=bool), uv, w.camera, threshold_px=1.0)
    long_tracks = tracks.observed.sum(1) >= 4
    assert not inliers[bad][long_tracks].any()
    err, _ = project_all(T, X, w.camera)
    good = inliers & long_tracks[:, None]
    np.testing.assert_allclose(err[good], uv[good], atol=1e-6)


def test_rotation_compensated_parallax_separates_rotation_from_translation():
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(-4, 4, 300), rng.uniform(-3, 3, 300), rng.uniform(3, 15, 300)])
    R = pp.so3(torch.tensor([0.02, 0.1, -0.03], dtype=torch.float64)).Exp().matrix().numpy()
    rotated = pts @ R.T
    rotated[:60] = rng.uniform(-1, 1, (60, 3)) + np.array([0.0, 0.0, 5.0])  # 20 % outliers
    assert rotation_compensated_parallax_deg(pts, rotated) < 0.01
    moved = pts @ R.T + np.array([1.0, 0.0, 0.0])
    assert rotation_compensated_parallax_deg(pts, moved) > 1.0


def test_constant_velocity_prior_is_exact_on_a_constant_twist_trajectory():
    xi = torch.tensor([0.1, -0.02, 0.3, 0.01, 0.03, -0.02], dtype=torch.float64)
    T = np.stack([pp.se3(k * xi).Exp().matrix().numpy() for k in range(6)])
    posed = np.zeros(6, dtype=bool)
    posed[[1, 3]] = True
    for k in (0, 2, 4, 5):  # extrapolate back, interpolate, extrapolate forward
        np.testing.assert_allclose(constant_velocity_prior(T, posed, k), T[k], atol=1e-10)
    with pytest.raises(ValueError, match="posed"):
        constant_velocity_prior(T, np.eye(6, dtype=bool)[0], 2)
