"""Projection, back-projection and analytic Jacobians against float64 references and finite differences."""

from __future__ import annotations

import numpy as np
import pypose as pp
import pytest
import torch
from banet_vo.geometry import (
    PinholeCamera,
    backproject,
    backproject_depth,
    jacobian_point_wrt_pose,
    jacobian_project_wrt_depth,
    jacobian_project_wrt_point,
    jacobian_project_wrt_pose,
    perturb_left,
    pixel_grid,
    project,
    scale_intrinsics,
    skew,
    to_matrix,
    transform_points,
)

F64 = torch.float64
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
FD_STEP = 1e-6
FD_RTOL = 1e-6


def _intrinsics(batch: int, device="cpu") -> torch.Tensor:
    base = torch.tensor([120.0, 110.0, 31.5, 23.5], dtype=F64, device=device)
    return base + torch.arange(batch, dtype=F64, device=device)[:, None] * torch.tensor(
        [3.0, -2.0, 0.5, 0.25], dtype=F64, device=device
    )


def _points_in_front(gen: torch.Generator, batch: int, n: int, device="cpu") -> torch.Tensor:
    xy = torch.rand(batch, n, 2, generator=gen, dtype=F64) * 4.0 - 2.0
    z = torch.rand(batch, n, 1, generator=gen, dtype=F64) * 6.0 + 2.0
    return torch.cat([xy, z], dim=-1).to(device)


def _random_poses(gen: torch.Generator, batch: int, device="cpu") -> pp.LieTensor:
    delta = torch.randn(batch, 6, generator=gen, dtype=F64) * torch.tensor([0.3] * 3 + [0.1] * 3, dtype=F64)
    return pp.se3(delta.to(device)).Exp()


def _rel_err(analytic: torch.Tensor, numeric: torch.Tensor) -> float:
    return float((analytic - numeric).norm() / numeric.norm())


def _central_difference(fn, x: torch.Tensor, step: float = FD_STEP) -> torch.Tensor:
    """d fn / dx for x (..., D), fn(x) (..., M) independent over the leading dims → (..., M, D)."""
    columns = []
    for k in range(x.shape[-1]):
        e = torch.zeros_like(x)
        e[..., k] = step
        columns.append((fn(x + e) - fn(x - e)) / (2 * step))
    return torch.stack(columns, dim=-1)


def test_pixel_grid_is_row_major_u_v():
    grid = pixel_grid(3, 4, dtype=F64)
    assert grid.shape == (12, 2)
    assert grid[0].tolist() == [0.0, 0.0]
    assert grid[1].tolist() == [1.0, 0.0]  # u (column) varies fastest
    assert grid[4].tolist() == [0.0, 1.0]
    assert grid[2 * 4 + 3].tolist() == [3.0, 2.0]  # index v*W + u
    with pytest.raises(ValueError, match="height"):
        pixel_grid(0, 4)


@pytest.mark.parametrize("device", DEVICES)
def test_project_matches_homogeneous_K_product(device):
    gen = torch.Generator().manual_seed(1)
    points = _points_in_front(gen, 3, 50, device)
    K = _intrinsics(3, device)
    uv, z, valid = project(points, K)
    assert uv.shape == (3, 50, 2) and z.shape == (3, 50) and valid.shape == (3, 50)
    assert bool(valid.all())
    for b in range(3):
        cam = PinholeCamera(*K[b].tolist(), width=64, height=48)
        homogeneous = points[b].cpu().numpy() @ cam.K.T
        expected = homogeneous[:, :2] / homogeneous[:, 2:]
        np.testing.assert_allclose(uv[b].cpu().numpy(), expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(z[b].cpu().numpy(), points[b, :, 2].cpu().numpy(), rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_backproject_project_round_trip_float64(device):
    gen = torch.Generator().manual_seed(2)
    uv = (torch.rand(4, 100, 2, generator=gen, dtype=F64) * torch.tensor([63.0, 47.0], dtype=F64)).to(device)
    depth = (torch.rand(4, 100, generator=gen, dtype=F64) * 20 + 0.1).to(device)
    K = _intrinsics(4, device)
    points = backproject(uv, depth, K)
    assert points.shape == (4, 100, 3)
    uv2, z2, valid = project(points, K)
    assert bool(valid.all())
    assert float((uv2 - uv).abs().max()) < 1e-11
    assert float((z2 - depth).abs().max()) < 1e-12


def test_backproject_depth_uses_pixel_grid_order():
    gen = torch.Generator().manual_seed(3)
    depth = torch.rand(2, 5, 7, generator=gen, dtype=F64) + 1.0
    K = _intrinsics(2)
    points = backproject_depth(depth, K)
    assert points.shape == (2, 35, 3)
    expected = backproject(pixel_grid(5, 7, dtype=F64).expand(2, 35, 2), depth.reshape(2, 35), K)
    torch.testing.assert_close(points, expected, rtol=0, atol=0)
    # Pixel (u=6, v=4) of image 1, computed by hand.
    fx, fy, cx, cy = K[1].tolist()
    d = float(depth[1, 4, 6])
    np.testing.assert_allclose(points[1, 4 * 7 + 6].numpy(), [(6 - cx) / fx * d, (4 - cy) / fy * d, d])


def test_intrinsics_broadcast_from_a_single_vector():
    gen = torch.Generator().manual_seed(4)
    points = _points_in_front(gen, 3, 10)
    K = _intrinsics(1)
    uv_shared, _, _ = project(points, K[0])
    uv_batched, _, _ = project(points, K.expand(3, 4))
    torch.testing.assert_close(uv_shared, uv_batched, rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_transform_points_matches_matrix_product_and_pypose_act(device):
    gen = torch.Generator().manual_seed(5)
    T = _random_poses(gen, 3, device)
    points = _points_in_front(gen, 3, 20, device)
    out = transform_points(T, points)
    M = to_matrix(T)
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)
    expected = (homogeneous @ M.mT)[..., :3]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(out, T[:, None].Act(points), rtol=0, atol=1e-12)
    torch.testing.assert_close(transform_points(M, points), out, rtol=0, atol=0)


def test_skew_is_the_cross_product_matrix():
    gen = torch.Generator().manual_seed(6)
    a = torch.randn(5, 3, generator=gen, dtype=F64)
    b = torch.randn(5, 3, generator=gen, dtype=F64)
    torch.testing.assert_close((skew(a) @ b[..., None])[..., 0], torch.linalg.cross(a, b), rtol=0, atol=1e-15)


def test_jacobian_project_wrt_point_matches_finite_differences():
    gen = torch.Generator().manual_seed(7)
    points = _points_in_front(gen, 2, 30)
    K = _intrinsics(2)
    analytic = jacobian_project_wrt_point(points, K)
    assert analytic.shape == (2, 30, 2, 3)
    numeric = _central_difference(lambda p: project(p, K)[0], points)
    assert _rel_err(analytic, numeric) < FD_RTOL


def test_jacobian_point_wrt_pose_matches_left_perturbation_finite_differences():
    gen = torch.Generator().manual_seed(8)
    T = _random_poses(gen, 2)
    points = _points_in_front(gen, 2, 15)
    transformed = transform_points(T, points)
    analytic = jacobian_point_wrt_pose(transformed)
    assert analytic.shape == (2, 15, 3, 6)

    def moved(delta: torch.Tensor) -> torch.Tensor:  # delta (2, 15, 6): one perturbation per point
        T_pert = pp.se3(delta).Exp() @ T[:, None]
        return T_pert.Act(points)

    numeric = _central_difference(moved, torch.zeros(2, 15, 6, dtype=F64))
    assert _rel_err(analytic, numeric) < FD_RTOL


def test_jacobian_project_wrt_pose_matches_finite_differences_and_the_chain_rule():
    gen = torch.Generator().manual_seed(9)
    T = _random_poses(gen, 3)
    points = _points_in_front(gen, 3, 25)
    K = _intrinsics(3)
    transformed = transform_points(T, points)
    analytic = jacobian_project_wrt_pose(transformed, K)
    assert analytic.shape == (3, 25, 2, 6)

    def pixels(delta: torch.Tensor) -> torch.Tensor:
        T_pert = perturb_left(T[:, None], delta)
        return project(T_pert.Act(points), K)[0]

    numeric = _central_difference(pixels, torch.zeros(3, 25, 6, dtype=F64))
    assert _rel_err(analytic, numeric) < FD_RTOL
    chained = jacobian_project_wrt_point(transformed, K) @ jacobian_point_wrt_pose(transformed)
    torch.testing.assert_close(analytic, chained, rtol=1e-12, atol=1e-12)


def test_jacobian_project_wrt_depth_matches_finite_differences():
    gen = torch.Generator().manual_seed(10)
    T = _random_poses(gen, 2)
    uv = torch.rand(2, 40, 2, generator=gen, dtype=F64) * torch.tensor([63.0, 47.0], dtype=F64)
    depth = torch.rand(2, 40, generator=gen, dtype=F64) * 8 + 3
    K = _intrinsics(2)
    analytic = jacobian_project_wrt_depth(uv, depth, T, K)
    assert analytic.shape == (2, 40, 2)

    def target_pixels(d: torch.Tensor) -> torch.Tensor:  # d (2, 40, 1)
        return project(transform_points(T, backproject(uv, d[..., 0], K)), K)[0]

    numeric = _central_difference(target_pixels, depth[..., None])[..., 0]
    assert _rel_err(analytic, numeric) < FD_RTOL


def test_jacobians_agree_with_autograd():
    gen = torch.Generator().manual_seed(11)
    points = _points_in_front(gen, 1, 4)
    K = _intrinsics(1)
    auto = torch.autograd.functional.jacobian(lambda p: project(p, K)[0], points)  # (1,4,2,1,4,3)
    auto = torch.stack([auto[0, n, :, 0, n, :] for n in range(4)])[None]
    torch.testing.assert_close(jacobian_project_wrt_point(points, K), auto, rtol=1e-12, atol=1e-12)


def test_degenerate_points_are_masked_finite_and_have_finite_gradients():
    nan, inf = float("nan"), float("inf")
    points = torch.tensor(
        [
            [
                [0.5, -0.2, 4.0],  # valid
                [0.5, -0.2, -4.0],  # behind the camera
                [0.5, -0.2, 0.0],  # on the camera plane
                [1e-3, 0.0, 1e-9],  # z below min_depth
                [nan, 0.0, 2.0],
                [0.0, inf, 2.0],
                [0.0, 0.0, nan],
            ]
        ],
        dtype=F64,
        requires_grad=True,
    )
    K = _intrinsics(1).requires_grad_(True)
    uv, z, valid = project(points, K)
    assert valid.tolist() == [[True, False, False, False, False, False, False]]
    assert bool(torch.isfinite(uv).all()) and bool(torch.isfinite(z).all())
    assert float(uv.detach()[0, 1:].abs().max()) == 0.0 and float(z.detach()[0, 1:].abs().max()) == 0.0
    (uv.sum() + z.sum()).backward()
    assert bool(torch.isfinite(points.grad).all()) and bool(torch.isfinite(K.grad).all())
    assert float(points.grad[0, 1:].abs().max()) == 0.0
    assert float(points.grad[0, 0].abs().max()) > 0.0

    detached = points.detach()
    for J in (
        jacobian_project_wrt_point(detached, K.detach()),
        jacobian_point_wrt_pose(detached)[:, 4:],
        jacobian_project_wrt_pose(detached, K.detach()),
    ):
        assert bool(torch.isfinite(J).all())
    assert float(jacobian_project_wrt_point(detached, K.detach())[0, 1:].abs().max()) == 0.0
    assert float(jacobian_project_wrt_pose(detached, K.detach())[0, 1:].abs().max()) == 0.0


def test_backproject_of_missing_depth_gives_an_invalid_point_with_finite_gradients():
    uv = torch.tensor(
        [[[10.0, 5.0], [20.0, 7.0], [float("nan"), 1.0], [3.0, 3.0]]], dtype=F64, requires_grad=True
    )
    depth = torch.tensor([[2.0, float("nan"), 3.0, 0.0]], dtype=F64, requires_grad=True)
    K = _intrinsics(1).requires_grad_(True)
    points = backproject(uv, depth, K)
    assert bool(torch.isfinite(points).all())
    torch.testing.assert_close(points[0, 1:3], torch.zeros(2, 3, dtype=F64))
    uv_out, _, valid = project(points, K)
    assert valid.tolist() == [[True, False, False, False]]
    uv_out.sum().backward()
    for grad in (uv.grad, depth.grad, K.grad):
        assert bool(torch.isfinite(grad).all())


def test_jacobian_wrt_depth_is_zero_for_invalid_depth_or_behind_target():
    # Pure translation (with identity, depth would not move the pixel at all); z_tgt = depth - 1.
    T = pp.SE3(torch.tensor([[0.3, 0.1, -1.0, 0.0, 0.0, 0.0, 1.0]], dtype=F64))
    uv = torch.tensor([[[10.0, 5.0], [20.0, 7.0], [30.0, 9.0], [5.0, 5.0], [8.0, 8.0]]], dtype=F64)
    depth = torch.tensor([[2.0, 0.0, float("nan"), -1.0, 0.5]], dtype=F64)
    J = jacobian_project_wrt_depth(uv, depth, T, _intrinsics(1))
    assert bool(torch.isfinite(J).all())
    assert float(J[0, 0].abs().min()) > 0
    assert float(J[0, 1:].abs().max()) == 0.0


def test_scale_intrinsics_matches_pinhole_camera_resized():
    cam = PinholeCamera(707.09, 707.09, 601.89, 183.11, 1226, 370)
    half = cam.resized(613, 185)
    K = scale_intrinsics(torch.tensor([cam.fx, cam.fy, cam.cx, cam.cy], dtype=F64), 0.5)
    np.testing.assert_allclose(K.numpy(), [half.fx, half.fy, half.cx, half.cy], rtol=1e-12)
    with pytest.raises(ValueError, match="scale"):
        scale_intrinsics(K, 0.0)


def test_bad_shapes_raise_value_errors_naming_the_argument():
    K = _intrinsics(2)
    with pytest.raises(ValueError, match="points"):
        project(torch.zeros(2, 5, 2, dtype=F64), K)
    with pytest.raises(ValueError, match="intrinsics"):
        project(torch.ones(2, 5, 3, dtype=F64), torch.ones(3, 4, dtype=F64))
    with pytest.raises(ValueError, match="intrinsics"):
        project(torch.ones(2, 5, 3, dtype=F64), torch.ones(2, 3, dtype=F64))
    with pytest.raises(ValueError, match="depth"):
        backproject(torch.zeros(2, 5, 2, dtype=F64), torch.ones(2, 4, dtype=F64), K)
    with pytest.raises(ValueError, match="depth"):
        backproject_depth(torch.ones(5, 4, dtype=F64), K)
    with pytest.raises(ValueError, match="T"):
        transform_points(torch.eye(3, dtype=F64), torch.ones(2, 5, 3, dtype=F64))
    with pytest.raises(ValueError, match="T"):
        transform_points(pp.identity_SE3(3, dtype=F64), torch.ones(2, 5, 3, dtype=F64))
    with pytest.raises(ValueError, match="points_transformed"):
        jacobian_point_wrt_pose(torch.ones(5, 3, dtype=F64))
