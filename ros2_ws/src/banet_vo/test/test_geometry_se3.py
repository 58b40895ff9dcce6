"""SE(3) helpers: conversions, relative poses, rotation angles and pypose's conventions pinned down."""

from __future__ import annotations

import math

import numpy as np
import pypose as pp
import pytest
import torch
from banet_vo.geometry import (
    PinholeCamera,
    as_se3,
    exp_se3,
    identity_se3,
    perturb_left,
    relative_pose,
    rotation_angle_deg,
    to_matrix,
)
from scipy.linalg import expm
from scipy.spatial.transform import Rotation

F64 = torch.float64
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def _random_matrices(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = Rotation.random(n, random_state=rng).as_matrix()
    T[:, :3, 3] = rng.normal(size=(n, 3)) * 5.0
    return T


def _hat(delta: np.ndarray) -> np.ndarray:
    """4x4 twist matrix of δ = [ρ, φ]."""
    rho, phi = delta[:3], delta[3:]
    out = np.zeros((4, 4))
    out[:3, :3] = [[0, -phi[2], phi[1]], [phi[2], 0, -phi[0]], [-phi[1], phi[0], 0]]
    out[:3, 3] = rho
    return out


def test_pypose_layout_is_translation_then_xyzw_quaternion():
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    T[:3, 3] = [1.0, 2.0, 3.0]
    data = as_se3(T).tensor().numpy()
    np.testing.assert_allclose(data, [1, 2, 3, 0, 0, math.sqrt(0.5), math.sqrt(0.5)], atol=1e-12)


def test_se3_exp_is_the_matrix_exponential_of_rho_phi():
    """Pins the tangent order [ρ, φ] and that pypose's Exp is the true SE(3) exponential."""
    rng = np.random.default_rng(1)
    for _ in range(5):
        delta = rng.normal(size=6) * 0.7
        ours = to_matrix(pp.se3(torch.from_numpy(delta)).Exp()).numpy()
        np.testing.assert_allclose(ours, expm(_hat(delta)), atol=1e-12)


def test_perturb_left_multiplies_on_the_left():
    T = as_se3(_random_matrices(2, 3))
    delta = torch.tensor([0.1, -0.2, 0.3, 0.05, -0.02, 0.04], dtype=F64).expand(3, 6)
    ours = to_matrix(perturb_left(T, delta)).numpy()
    for b in range(3):
        np.testing.assert_allclose(
            ours[b], expm(_hat(delta[b].numpy())) @ to_matrix(T)[b].numpy(), atol=1e-12
        )
    with pytest.raises(ValueError, match="delta"):
        perturb_left(T, torch.zeros(3, 3, dtype=F64))


# Rotation angles on both sides of the switch to the Taylor series (0.1 rad) and up to nearly pi.
EXP_ANGLES = [0.0, 1e-9, 1e-4, 0.05, 0.0999, 0.1001, 0.5, 2.0, 3.1]


def _twists(angle: float, n: int = 64, seed: int = 0, dtype=F64) -> torch.Tensor:
    """n twists [rho, phi] with |phi| = angle exactly and rho ~ N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(n, 3, generator=g, dtype=F64)
    phi = phi / phi.norm(dim=-1, keepdim=True) * angle
    return torch.cat([torch.randn(n, 3, generator=g, dtype=F64), phi], -1).to(dtype)


@pytest.mark.parametrize("angle", EXP_ANGLES)
def test_exp_se3_is_the_exponential_and_pyposes(angle):
    """The branch-free exponential against the matrix exponential and pypose's (float64). pypose drops
    terms below about 1e-3 rad (3.6e-10 off at 1e-9 rad with a unit rho); this one keeps them."""
    delta = _twists(angle)
    ours, theirs = exp_se3(delta), pp.se3(delta).Exp()
    assert ours.ltype == pp.SE3_type and ours.dtype == F64
    for d, T in zip(delta.numpy(), to_matrix(ours).numpy(), strict=True):
        np.testing.assert_allclose(T, expm(_hat(d)), rtol=0, atol=1e-14)
    np.testing.assert_allclose(ours.tensor().numpy(), theirs.tensor().numpy(), rtol=0, atol=1e-9)


@pytest.mark.parametrize("angle", [1e-4, 0.0999, 0.1001, 1.0])
def test_exp_se3_in_float32_is_as_accurate_as_pyposes(angle):
    """float32 against the float64 exponential: no worse than pypose's own float32 (the closed forms
    switch to the series before they lose digits)."""
    delta = _twists(angle, n=1000, seed=1)
    truth = pp.se3(delta).Exp().tensor()
    ours = (exp_se3(delta.float()).tensor().double() - truth).abs().max()
    theirs = (pp.se3(delta.float()).Exp().tensor().double() - truth).abs().max()
    assert ours <= max(theirs, 1e-6), (ours, theirs)


@pytest.mark.parametrize("angle", [0.0, 1e-6, 0.05, 0.5, 2.0])
def test_exp_se3_gradients_are_pyposes(angle):
    """Through pypose's composition and Act downstream (its Lie-algebra gradient convention), the
    gradient of a loss w.r.t. the twist equals pypose's Exp's and central differences (float64)."""
    torch.manual_seed(3)
    T = pp.randn_SE3(4, dtype=F64)
    P = torch.randn(4, 10, 3, dtype=F64)
    delta0 = _twists(angle, n=4, seed=2)

    def loss(delta, exp):
        moved = exp(delta) @ T
        return moved.unsqueeze(-2).Act(P).sin().sum() + moved.matrix().square().sum()

    grads = []
    for exp in (exp_se3, lambda d: pp.se3(d).Exp()):
        delta = delta0.clone().requires_grad_()
        (grad,) = torch.autograd.grad(loss(delta, exp), delta)
        grads.append(grad)
    # (pypose's small-angle forward is off by up to ~1e-9, which its gradient carries)
    np.testing.assert_allclose(grads[0].numpy(), grads[1].numpy(), rtol=1e-8, atol=1e-9)
    eps, numeric = 1e-6, torch.zeros_like(delta0)
    for i in range(4):
        for j in range(6):
            e = torch.zeros_like(delta0)
            e[i, j] = eps
            numeric[i, j] = (loss(delta0 + e, exp_se3) - loss(delta0 - e, exp_se3)) / (2 * eps)
    np.testing.assert_allclose(grads[0].numpy(), numeric.numpy(), rtol=1e-6, atol=1e-6)


def test_exp_se3_selects_without_data_dependent_indexing():
    """pypose's Exp indexes by a boolean mask (aten::nonzero, a host sync on a GPU); this one must not."""
    delta = torch.cat([_twists(1e-5, n=8), _twists(1.0, n=8)])
    with torch.profiler.profile() as prof:
        exp_se3(delta)
    assert not [
        e.key for e in prof.key_averages() if e.key in ("aten::nonzero", "aten::index", "aten::index_put_")
    ]
    with torch.profiler.profile() as prof:
        pp.se3(delta).Exp()
    assert any(e.key == "aten::nonzero" for e in prof.key_averages())  # the reason exp_se3 exists


@pytest.mark.gpu
def test_exp_se3_never_syncs_with_the_host_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available on this machine (torch.cuda.is_available() is False)")
    delta = _twists(0.3, n=32).cuda()
    exp_se3(delta)  # warm-up (kernel loading may sync)
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = exp_se3(delta)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    np.testing.assert_allclose(
        out.tensor().cpu().numpy(), pp.se3(delta.cpu()).Exp().tensor().numpy(), atol=1e-14
    )


@pytest.mark.parametrize("device", DEVICES)
def test_matrix_round_trips(device):
    M = _random_matrices(3, 6).reshape(2, 3, 4, 4)
    T = as_se3(M, device=device)
    assert T.shape == (2, 3, 7) and T.dtype == F64 and T.device.type == device
    np.testing.assert_allclose(to_matrix(T).cpu().numpy(), M, atol=1e-12)
    torch_M = torch.from_numpy(M).to(device)
    np.testing.assert_allclose(to_matrix(as_se3(torch_M)).cpu().numpy(), M, atol=1e-12)
    np.testing.assert_allclose(to_matrix(as_se3(torch_M[..., :3, :])).cpu().numpy(), M, atol=1e-12)
    np.testing.assert_allclose(to_matrix(as_se3(T.tensor())).cpu().numpy(), M, atol=1e-12)  # (..., 7)
    assert as_se3(T) is T
    assert as_se3(T, dtype=torch.float32).dtype == torch.float32


def test_near_180_degree_rotations_convert_exactly():
    for axis in np.eye(3):
        T = np.eye(4)
        T[:3, :3] = Rotation.from_rotvec(axis * (math.pi - 1e-9)).as_matrix()
        np.testing.assert_allclose(to_matrix(as_se3(T)).numpy(), T, atol=1e-9)


def test_as_se3_rejects_invalid_poses_with_value_errors():
    bad_rotation = np.eye(4)
    bad_rotation[0, 0] = 1.1
    reflection = np.diag([1.0, 1.0, -1.0, 1.0])
    bad_last_row = np.eye(4)
    bad_last_row[3, 0] = 0.5
    with_nan = np.eye(4)
    with_nan[0, 3] = np.nan
    with pytest.raises(ValueError, match="orthonormal"):
        as_se3(bad_rotation)
    with pytest.raises(ValueError, match="reflection"):
        as_se3(reflection)
    with pytest.raises(ValueError, match="last row"):
        as_se3(bad_last_row)
    with pytest.raises(ValueError, match="non-finite"):
        as_se3(with_nan)
    with pytest.raises(ValueError, match=r"shape"):
        as_se3(np.eye(3))
    with pytest.raises(ValueError, match="SE3"):
        as_se3(pp.identity_so3(2))
    with pytest.raises(ValueError, match="T_wj"):
        relative_pose(np.eye(4), np.eye(3))


def test_relative_pose_maps_points_from_camera_i_into_camera_j():
    T_wi, T_wj = _random_matrices(4, 2)
    T_ji = relative_pose(T_wi, T_wj)
    assert isinstance(T_ji, np.ndarray) and T_ji.dtype == np.float64
    np.testing.assert_allclose(T_ji, np.linalg.inv(T_wj) @ T_wi, atol=1e-12)
    p_i = np.array([0.3, -1.2, 4.0, 1.0])
    p_world = T_wi @ p_i
    np.testing.assert_allclose(T_ji @ p_i, np.linalg.inv(T_wj) @ p_world, atol=1e-12)

    lie = relative_pose(as_se3(T_wi), as_se3(T_wj))
    assert isinstance(lie, pp.LieTensor) and lie.ltype == pp.SE3_type
    np.testing.assert_allclose(to_matrix(lie).numpy(), T_ji, atol=1e-12)
    mats = relative_pose(torch.from_numpy(T_wi), torch.from_numpy(T_wj))
    assert isinstance(mats, torch.Tensor) and not isinstance(mats, pp.LieTensor)
    np.testing.assert_allclose(mats.numpy(), T_ji, atol=1e-12)


def test_relative_pose_is_batched_and_identity_on_itself():
    T = _random_matrices(5, 7)
    np.testing.assert_allclose(relative_pose(T, T), np.tile(np.eye(4), (7, 1, 1)), atol=1e-12)
    lie = relative_pose(as_se3(T[1:]), as_se3(T[:-1]))
    np.testing.assert_allclose(to_matrix(lie).numpy(), np.linalg.inv(T[:-1]) @ T[1:], atol=1e-12)


def test_rotation_angle_deg_known_angles_and_small_angle_accuracy():
    angles = np.array([0.0, 1e-7, 0.01, 30.0, 90.0, 179.0, 180.0])
    T = np.tile(np.eye(4), (len(angles), 1, 1))
    T[:, :3, :3] = Rotation.from_rotvec(
        np.radians(angles)[:, None] * np.array([1.0, 2.0, -2.0]) / 3
    ).as_matrix()
    np.testing.assert_allclose(rotation_angle_deg(T), angles, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(rotation_angle_deg(T[:, :3, :3]), angles, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(rotation_angle_deg(torch.from_numpy(T)).numpy(), angles, rtol=1e-7, atol=1e-9)
    lie = as_se3(T)
    np.testing.assert_allclose(rotation_angle_deg(lie).numpy(), angles, rtol=1e-7, atol=1e-9)
    with pytest.raises(ValueError, match="T"):
        rotation_angle_deg([1, 2, 3])


def test_rotation_angle_deg_of_lie_tensors_with_negative_w_quaternions():
    """q and -q are the same rotation: a LieTensor whose quaternion has w < 0 (as optimisers and
    pp.mat2SE3 produce) must give the angle in [0, 180], the same as the matrix path and scipy."""
    rng = np.random.default_rng(7)
    angles = np.array([0.5, 10.0, 60.0, 120.0, 170.0])
    axes = rng.normal(size=(len(angles), 3))
    q = Rotation.from_rotvec(
        np.radians(angles)[:, None] * axes / np.linalg.norm(axes, axis=1)[:, None]
    ).as_quat()
    q = -q * np.sign(q[:, 3:])  # every w negative
    assert np.all(q[:, 3] < 0)
    data = np.concatenate([rng.normal(size=(len(angles), 3)), q], axis=1)
    lie = pp.SE3(torch.from_numpy(data))
    np.testing.assert_allclose(rotation_angle_deg(lie).numpy(), angles, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rotation_angle_deg(to_matrix(lie)).numpy(), angles, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(np.degrees(Rotation.from_quat(q).magnitude()), angles, rtol=1e-9)


def test_identity_se3():
    ident = identity_se3(2, 3, dtype=F64)
    assert ident.shape == (2, 3, 7)
    np.testing.assert_allclose(to_matrix(ident).numpy(), np.tile(np.eye(4), (2, 3, 1, 1)))


def test_as_se3_is_differentiable_through_matrices():
    M = torch.from_numpy(_random_matrices(6, 2)).requires_grad_(True)
    p = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    as_se3(M).Act(p).sum().backward()
    assert M.grad is not None and bool(torch.isfinite(M.grad).all())


def test_real_kitti_poses_consecutive_motion_and_calibration(kitti06_dir):
    poses = np.loadtxt(kitti06_dir / "poses.txt").reshape(-1, 3, 4)
    T = np.tile(np.eye(4), (len(poses), 1, 1))
    T[:, :3, :] = poses
    step = relative_pose(T[:-1], T[1:])
    # Driving forward: camera i seen from camera i+1 is behind it (−z) by ~1.2 m; rotation is tiny.
    assert np.all(step[:, 2, 3] < -0.9) and np.all(step[:, 2, 3] > -1.5)
    assert float(rotation_angle_deg(step).max()) < 0.5
    lie = as_se3(T)
    np.testing.assert_allclose(rotation_angle_deg(relative_pose(lie[:-1], lie[1:])).numpy(),
                               rotation_angle_deg(step), atol=1e-6)  # fmt: skip
    P0 = np.loadtxt(kitti06_dir / "calib.txt", max_rows=1)  # 12 values, no "P0:" prefix in this copy
    cam = PinholeCamera.from_projection(P0, 1226, 370)
    np.testing.assert_allclose([cam.fx, cam.fy, cam.cx, cam.cy], [707.0912, 707.0912, 601.8873, 183.1104])
