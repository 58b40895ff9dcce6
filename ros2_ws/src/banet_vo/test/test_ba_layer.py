"""BA layer: per-pixel normal equations vs the dense Jacobian, Jacobian vs autograd, damped solve,
gradcheck of one LM step, finite gradients on degenerate input, and pose recovery on a rendered scene."""

from __future__ import annotations

import math

import pypose as pp
import pytest
import torch
import torch.nn.functional as F
from banet_vo.geometry.projection import backproject, pixel_grid, project, transform_points
from banet_vo.geometry.se3 import perturb_left, rotation_angle_deg
from banet_vo.model.ba_layer import (
    BALayer,
    bundle_adjust,
    damped_solve,
    depth_from_coefficients,
    euclidean_pose,
    linearize,
    lm_step,
    normal_equations,
    normal_equations_dense,
    positive_depth,
    prepare_level,
)
from banet_vo.model.config import BAOptions
from banet_vo.model.damping import DampingMLP

F64 = torch.float64


def _smooth_random(shape, generator, dtype=F64) -> torch.Tensor:
    """Random maps blurred a little, so bilinear sampling and its gradient are informative."""
    x = torch.rand(shape, generator=generator, dtype=dtype)
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def _random_level(B=2, C=5, K=3, h=9, w=11, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    f_ref = _smooth_random((B, C, h, w), g, dtype)
    f_tgt = _smooth_random((B, C, h, w), g, dtype)
    basis = 0.3 * torch.randn(B, K, h, w, generator=g, dtype=dtype)
    depth0 = 2.0 + torch.rand(B, 1, h, w, generator=g, dtype=dtype)
    intr = torch.tensor([[10.0, 11.0, (w - 1) / 2, (h - 1) / 2]], dtype=dtype).expand(B, 4)
    pose = pp.se3(0.03 * torch.randn(B, 6, generator=g, dtype=dtype)).Exp()
    coeffs = 0.1 * torch.randn(B, K, generator=g, dtype=dtype)
    return f_ref, f_tgt, basis, depth0, intr, pose, coeffs


UPDATES = pytest.mark.parametrize("update", ["additive", "multiplicative", "bounded"])


@UPDATES
def test_per_pixel_normal_equations_equal_the_dense_jacobian_ones(update):
    f_ref, f_tgt, basis, depth0, intr, pose, coeffs = _random_level(B=2, C=16, K=8, h=12, w=16)
    level = prepare_level(f_ref, f_tgt, basis, depth0, intr, update)
    lin = linearize(level, pose, coeffs, min_depth=0.1)
    assert lin.mask.float().mean() > 0.5  # most pixels land inside: a meaningful comparison
    H, g = normal_equations(lin.jacobian, lin.feature_gradient, lin.residual)
    H_dense, g_dense = normal_equations_dense(lin.jacobian, lin.feature_gradient, lin.residual)
    assert H.shape == (2, 14, 14) and g.shape == (2, 14)
    assert (H - H_dense).norm() / H_dense.norm() < 1e-5
    assert (g - g_dense).norm() / g_dense.norm() < 1e-5
    # The structured assembly the BA runs (rank-one depth block, J never formed) gives the same system.
    H_s, g_s = lin.normal_equations()
    assert (H_s - H_dense).norm() / H_dense.norm() < 1e-5
    assert (g_s - g_dense).norm() / g_dense.norm() < 1e-5
    # And against an explicit per-pixel loop over a few pixels' contributions (no shared code path).
    n = lin.residual.shape[1]
    A = torch.cat([lin.feature_gradient[0, p] @ lin.jacobian[0, p] for p in range(n)])  # (N·C, P)
    e = lin.residual[0].reshape(-1)
    torch.testing.assert_close(H[0], A.T @ A, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(g[0], A.T @ e, rtol=1e-10, atol=1e-10)


@UPDATES
def test_analytic_jacobian_equals_autograd_of_the_residual(update):
    """G·J is the derivative of the residual w.r.t. x = [δ (left), Δw], including the depth floor
    (additive) or the exp (multiplicative)."""
    f_ref, f_tgt, basis, depth0, intr, pose, coeffs = _random_level(B=1, C=4, K=3, h=8, w=10, seed=3)
    depth0 = depth0 - 1.8  # some raw depths near the 0.1 m floor, where its slope is < 1
    level = prepare_level(f_ref, f_tgt, basis, depth0, intr, update)
    lin = linearize(level, pose, coeffs, min_depth=0.1)
    ok = lin.mask[0]

    def residual(x: torch.Tensor) -> torch.Tensor:
        out = linearize(level, perturb_left(pose, x[None, :6]), coeffs + x[None, 6:], min_depth=0.1)
        return out.residual[0, ok].reshape(-1)

    J_auto = torch.autograd.functional.jacobian(residual, torch.zeros(9, dtype=F64))
    J_analytic = (lin.feature_gradient[0, ok] @ lin.jacobian[0, ok]).reshape(-1, 9)
    torch.testing.assert_close(J_analytic, J_auto, rtol=1e-8, atol=1e-10)
    if update == "additive":
        slope = positive_depth(depth0 + 0.0, 0.1)[1]
        assert slope.min() < 0.99  # the floor's slope was exercised


def test_damped_solve_is_the_lm_step_and_zero_hessian_gives_zero_step():
    g = torch.Generator().manual_seed(1)
    A = torch.randn(2, 40, 7, generator=g, dtype=F64) * torch.tensor(
        [1.0, 10.0, 100.0, 0.1, 1.0, 5.0, 0.01], dtype=F64
    )
    H, b = A.mT @ A, torch.randn(2, 7, generator=g, dtype=F64)
    lam = torch.tensor([0.1, 2.0], dtype=F64)
    eps = 1e-6
    x = damped_solve(H, b, lam, eps)
    direct = torch.linalg.solve(
        H
        + lam[:, None, None] * torch.diag_embed(H.diagonal(dim1=-2, dim2=-1))
        + eps * torch.eye(7, dtype=F64),
        -b,
    )
    torch.testing.assert_close(x, direct, rtol=1e-9, atol=1e-12)
    zero = damped_solve(torch.zeros(1, 7, 7), torch.zeros(1, 7), torch.tensor([0.1]), eps)
    assert torch.equal(zero, torch.zeros(1, 7))
    # fp32 with badly scaled unknowns still matches the float64 answer closely (Jacobi scaling).
    x32 = damped_solve(H.float(), b.float(), lam.float(), eps)
    assert ((x32.double() - direct).norm(dim=-1) / direct.norm(dim=-1)).max() < 1e-3


def test_damped_solve_with_pose_and_depth_lambdas_is_the_block_damped_lm_step():
    g = torch.Generator().manual_seed(2)
    P = 6 + 3
    A = torch.randn(2, 50, P, generator=g, dtype=F64)
    H, b = A.mT @ A, torch.randn(2, P, generator=g, dtype=F64)
    lam = torch.tensor([[0.1, 5.0], [2.0, 0.01]], dtype=F64)
    eps = 1e-6
    per_param = torch.cat([lam[:, :1].expand(-1, 6), lam[:, 1:].expand(-1, 3)], dim=1)
    direct = torch.linalg.solve(
        H + torch.diag_embed(per_param * H.diagonal(dim1=-2, dim2=-1)) + eps * torch.eye(P, dtype=F64), -b
    )
    torch.testing.assert_close(damped_solve(H, b, lam, eps), direct, rtol=1e-9, atol=1e-12)
    # Equal pose and depth λs are the shared-λ step.
    same = torch.tensor([[0.3, 0.3], [1.5, 1.5]], dtype=F64)
    torch.testing.assert_close(
        damped_solve(H, b, same, eps), damped_solve(H, b, same[:, 0], eps), rtol=1e-12, atol=1e-14
    )


def test_separate_depth_damping_layer_has_gradients_into_both_outputs():
    torch.manual_seed(0)
    B, C, K = 2, 4, 3
    layer = BALayer(C, BAOptions((2, 2)), damping_hidden=8, separate_depth_damping=True)
    assert layer.damping[0](torch.rand(B, C)).shape == (B, 2)
    g = torch.Generator().manual_seed(3)
    sizes = [(12, 16), (24, 32)]
    f_ref = [_smooth_random((B, C, h, w), g, torch.float32) for h, w in sizes]
    f_tgt = [_smooth_random((B, C, h, w), g, torch.float32) for h, w in sizes]
    basis = torch.randn(B, K, 24, 32, generator=g)
    depth0 = torch.full((B, 1, 24, 32), 2.0)
    intr = torch.tensor([[20.0, 20.0, 15.5, 11.5]]).expand(B, 4)
    out = layer(f_ref, f_tgt, basis, depth0, intr)
    assert len(out.lambdas) == 4 and all(lam.shape == (B, 2) for lam in out.lambdas)
    (out.depth.mean() + out.pose.tensor()[:, :3].sum()).backward()
    for mlp in layer.damping:
        last = mlp.net[-1]
        assert torch.isfinite(last.weight.grad).all() and (last.bias.grad.abs() > 0).all()


@UPDATES
def test_gradcheck_of_one_lm_step(update):
    f_ref, f_tgt, basis, depth0, intr, _, coeffs = _random_level(B=1, C=2, K=2, h=5, w=6, seed=7)
    # About half a pixel of motion: warped points sit mid-cell, away from the bilinear kinks.
    pose = pp.se3(torch.tensor([[0.12, 0.08, 0.0, 0.002, -0.003, 0.001]], dtype=F64)).Exp()
    torch.manual_seed(0)
    damping = DampingMLP(2, 4).double()

    def step(f_ref, f_tgt, basis, depth0, coeffs):
        level = prepare_level(f_ref, f_tgt, basis, depth0, intr, update)
        new_pose, new_coeffs, lam = lm_step(level, pose, coeffs, damping, min_depth=0.1, epsilon=1e-6)
        return euclidean_pose(new_pose).tensor(), new_pose.matrix(), new_coeffs, lam

    inputs = tuple(t.clone().requires_grad_(True) for t in (f_ref, f_tgt, basis, depth0, coeffs))
    # Finite differences are only meaningful away from kinks: no warped point within 1e-3 px of an integer
    # coordinate (bilinear cell edges, the image border) before or after the step.
    level = prepare_level(f_ref, f_tgt, basis, depth0, intr, update)
    new_pose, new_coeffs, _ = lm_step(level, pose, coeffs, damping, min_depth=0.1, epsilon=1e-6)
    for T, w in ((pose, coeffs), (new_pose, new_coeffs)):
        depth = depth_from_coefficients(level.depth0, (level.basis * w[:, None]).sum(-1), 0.1, update)[0]
        uv, _, _ = project(transform_points(T, backproject(level.uv, depth, intr)), intr)
        assert ((uv - uv.round()).abs() > 1e-3).all()
    assert linearize(level, pose, coeffs, 0.1).mask.float().mean() > 0.6
    assert torch.autograd.gradcheck(step, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@UPDATES
def test_gradcheck_through_bundle_adjust_outputs(update):
    """The returned pose's raw [t, q] (what losses read) carries exact gradients through two iterations."""
    f_ref, f_tgt, basis, depth0, intr, _, _ = _random_level(B=1, C=2, K=2, h=5, w=6, seed=7)
    pose = pp.se3(torch.tensor([[0.12, 0.08, 0.0, 0.002, -0.003, 0.001]], dtype=F64)).Exp()

    def run(f_ref, f_tgt, basis, depth0):
        out = bundle_adjust(
            [f_ref],
            [f_tgt],
            basis,
            depth0,
            intr,
            BAOptions((2,), depth_update=update),
            (0.5,),
            pose_init=pose,
        )
        return out.pose.tensor(), out.depth, out.cost

    inputs = tuple(t.clone().requires_grad_(True) for t in (f_ref, f_tgt, basis, depth0))
    assert torch.autograd.gradcheck(run, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


@pytest.mark.gpu
def test_normal_equations_on_cuda_match_the_cpu():
    level_cpu = _random_level(B=2, C=16, K=8, h=12, w=16)
    f_ref, f_tgt, basis, depth0, intr, pose, coeffs = (
        t.to("cuda") if isinstance(t, torch.Tensor) else t for t in level_cpu
    )
    lin = linearize(
        prepare_level(f_ref, f_tgt, basis, depth0, intr), pp.SE3(pose.tensor().cuda()), coeffs, 0.1
    )
    H, g = lin.normal_equations()
    H_dense, g_dense = normal_equations_dense(lin.jacobian, lin.feature_gradient, lin.residual)
    assert H.device.type == "cuda" and (H - H_dense).norm() / H_dense.norm() < 1e-10
    assert (g - g_dense).norm() / g_dense.norm() < 1e-10
    lin_cpu = linearize(prepare_level(*level_cpu[:5]), level_cpu[5], level_cpu[6], 0.1)
    torch.testing.assert_close(H.cpu(), lin_cpu.normal_equations()[0])
    torch.testing.assert_close(g.cpu(), lin_cpu.normal_equations()[1])


def test_backward_through_all_iterations_is_finite_on_textureless_images_and_zero_motion():
    torch.manual_seed(0)
    B, C, K = 2, 4, 3
    layer = BALayer(C, BAOptions((2, 2, 2)), damping_hidden=8)
    sizes = [(6, 8), (12, 16), (24, 32)]
    feats = [torch.full((B, C, h, w), 0.5, requires_grad=True) for h, w in sizes]  # textureless
    basis = torch.randn(B, K, 24, 32, requires_grad=True)
    depth0 = torch.full((B, 1, 24, 32), 2.0, requires_grad=True)
    intr = torch.tensor([[20.0, 20.0, 15.5, 11.5]]).expand(B, 4)
    for feats_tgt in (feats, [f.detach().clone().requires_grad_(True) for f in feats]):
        out = layer(feats, feats_tgt, basis, depth0, intr)  # identical images: zero motion
        loss = out.pose.tensor().square().sum() + out.depth.mean() + out.cost.sum() + out.hessian.sum()
        loss.backward()
        assert torch.isfinite(out.pose.tensor()).all() and torch.isfinite(out.hessian).all()
        torch.testing.assert_close(out.pose.tensor(), pp.identity_SE3(B).tensor())
        grads = [t.grad for t in (*feats, basis, depth0)] + [p.grad for p in layer.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # Textured but identical images (zero motion) are a fixed point with finite gradients too.
    g = torch.Generator().manual_seed(2)
    tex = [_smooth_random((B, C, h, w), g, torch.float32).requires_grad_(True) for h, w in sizes]
    out = layer(tex, tex, basis, depth0, intr)
    (out.pose.tensor().sum() + out.depth.sum()).backward()
    assert all(torch.isfinite(t.grad).all() for t in tex)
    assert rotation_angle_deg(out.pose).max() < 1e-3 and out.pose.translation().norm(dim=-1).max() < 1e-5


# -- pose recovery on a rendered scene ---------------------------------------------------------------------

# A convex room seen from inside (planes n·X = d, camera where n·X < d): the visible point of a ray is its
# nearest plane hit, so depth is exact and continuous (creases, no occlusions).
_PLANES = torch.tensor(
    [[0, 0, 1, 3.2], [0, 1, 0, 1.0], [0, -1, 0, 1.4], [-1, 0, 0, 1.6], [1, 0, 0, 1.9], [0, 0, -1, 3.0]],
    dtype=F64,
)
_FREQ = torch.tensor(
    [
        [[2.1, 0.7, 1.3], [-0.9, 2.6, 0.4], [1.1, -1.7, 2.3], [3.3, 1.9, -2.2]],
        [[0.5, 2.9, -1.6], [2.4, -0.6, 1.8], [-1.9, 1.4, 2.8], [1.2, 3.1, 0.9]],
        [[2.7, -2.1, 0.6], [-1.3, 0.8, 3.2], [0.9, 2.2, -1.4], [3.0, -0.4, 1.7]],
    ],
    dtype=F64,
)  # rad/m: 3 channels, 4 sinusoids each, painted on the walls in world coordinates
_PHASE = torch.tensor([[0.3, 1.7, 2.9, 4.1], [0.8, 2.2, 3.6, 5.0], [1.1, 2.5, 0.2, 3.9]], dtype=F64)


def _render_room(T_wc: torch.Tensor, intr: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (3, h, w) texture and (h, w) z-depth seen by camera T_wc (4x4)."""
    uv = pixel_grid(h, w, dtype=F64)
    fx, fy, cx, cy = intr.tolist()
    rays = torch.stack([(uv[:, 0] - cx) / fx, (uv[:, 1] - cy) / fy, torch.ones(h * w, dtype=F64)], -1)
    rays_w, origin = rays @ T_wc[:3, :3].T, T_wc[:3, 3]
    normals, offsets = _PLANES[:, :3], _PLANES[:, 3]
    facing = rays_w @ normals.T
    hit = (offsets - origin @ normals.T) / facing
    z = torch.where(facing > 1e-9, hit, torch.full_like(hit, math.inf)).min(dim=1).values  # rays have z = 1
    X = origin + z[:, None] * rays_w
    texture = torch.sin(torch.einsum("nd,ckd->nck", X, _FREQ) + _PHASE).mean(-1)
    return texture.T.reshape(3, h, w), z.reshape(h, w)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = math.ceil(3 * sigma)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype) / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(
        F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c
    )


def _ideal_pyramid(image: torch.Tensor) -> list[torch.Tensor]:
    """The image itself as features: area-downsampled and smoothed on coarse levels, as is at the finest."""
    x = image[None]
    return [_blur(F.avg_pool2d(x, 4), 1.0), _blur(F.avg_pool2d(x, 2), 0.8), x]


@pytest.fixture(scope="module")
def room_pair():
    h, w = 48, 64
    intr = torch.tensor([52.0, 52.0, (w - 1) / 2, (h - 1) / 2], dtype=F64)
    T_w_tgt = pp.se3(torch.tensor([0.2, -0.06, 0.3, 0.03, -0.04, 0.015], dtype=F64)).Exp().matrix()
    image_ref, depth = _render_room(torch.eye(4, dtype=F64), intr, h, w)
    image_tgt, _ = _render_room(T_w_tgt, intr, h, w)
    T_true = pp.mat2SE3(torch.linalg.inv(T_w_tgt)[None])  # T_tgt_ref with T_w_ref = I
    v, u = torch.meshgrid(
        torch.linspace(-1, 1, h, dtype=F64), torch.linspace(-1, 1, w, dtype=F64), indexing="ij"
    )
    centres = [(-0.5, -0.4), (0.5, -0.4), (-0.5, 0.45), (0.5, 0.45)]
    bumps = torch.stack([0.3 * torch.exp(-((u - a) ** 2 + (v - b) ** 2) / 0.18) for a, b in centres])
    return dict(
        feats_ref=_ideal_pyramid(image_ref),
        feats_tgt=_ideal_pyramid(image_tgt),
        depth=depth,
        basis=bumps[None],
        intr=intr[None],
        T_true=T_true,
    )


def _pose_errors(T: pp.LieTensor, T_true: pp.LieTensor) -> tuple[float, float]:
    T, T_true = pp.SE3(T.tensor().double()), pp.SE3(T_true.tensor().double())
    rot = float(rotation_angle_deg(T @ T_true.Inv())[0])
    trans = float((T.translation() - T_true.translation()).norm() / T_true.translation().norm())
    return rot, trans


@UPDATES
@pytest.mark.parametrize("depth_offset", [0.0, 1.0], ids=["gt_depth", "perturbed_depth"])
def test_recovers_a_known_pose_with_ideal_features(room_pair, depth_offset, update):
    """GT depth as D0 plus 4 smooth bump bases; runs in float32 like the model. Starting at identity (3 deg,
    37 cm away), the coarse-to-fine LM must land within 0.1 deg and 1 % of the translation. With the
    depth perturbed inside the basis span (an offset in metres, or in log depth), it must also recover the
    coefficients."""
    p = room_pair
    truth_w = torch.tensor([[depth_offset, 0.0, 0.0, -0.5 * depth_offset]], dtype=F64)
    offset = (p["basis"][0] * truth_w[0, :, None, None]).sum(0)
    depth = p["depth"] - offset if update == "additive" else p["depth"] * torch.exp(-offset)
    depth0 = depth[None, None]
    f32 = [[f.float() for f in p[k]] for k in ("feats_ref", "feats_tgt")]
    out = bundle_adjust(
        *f32,
        p["basis"].float(),
        depth0.float(),
        p["intr"].float(),
        BAOptions((5, 5, 5), depth_update=update),
        (1e-3, 1e-3, 1e-3),
    )
    assert out.pose.dtype == torch.float32 and out.hessian.dtype == torch.float32
    start_rot, start_trans = _pose_errors(pp.identity_SE3(1), p["T_true"])
    rot, trans = _pose_errors(out.pose, p["T_true"])
    assert start_rot > 2.5 and start_trans == pytest.approx(1.0)
    print(f"pose error {rot:.4f} deg, {100 * trans:.2f} % of the translation")
    assert rot < 0.1 and trans < 0.01, (rot, trans)
    # The coarse levels already bring the estimate close; the finest refines it.
    coarse_rot, _ = _pose_errors(out.poses_per_level[0], p["T_true"])
    assert coarse_rot < start_rot and rot < coarse_rot
    depth_err = (out.depth[0, 0].double() - p["depth"]).abs().mean()
    assert depth_err < 0.02  # metres, on a 2.2-3.2 m scene
    assert (out.coefficients.double() - truth_w).abs().max() < 0.15


def test_multiplicative_model_pools_log_depth_and_never_reaches_a_floor():
    """Coarse levels hold the geometric mean of D0 (the coefficients act on log D0); a large negative
    offset divides the depth instead of clamping it at min_depth, so the slope stays D (never zero)."""
    f_ref, f_tgt, basis, depth0, intr, _, _ = _random_level(B=1, C=2, K=2, h=8, w=12, seed=4)
    pooled = F.avg_pool2d(f_ref, 2), F.avg_pool2d(f_tgt, 2)
    coarse = prepare_level(*pooled, basis, depth0, intr, "multiplicative")
    expected = torch.exp(F.avg_pool2d(depth0.log(), 2)).reshape(1, -1)
    torch.testing.assert_close(coarse.depth0, expected)
    d0 = torch.full((3,), 2.0, dtype=F64)
    offset = torch.tensor([-3.0, 0.0, 2.0], dtype=F64)
    depth, slope = depth_from_coefficients(d0, offset, 0.1, "multiplicative")
    torch.testing.assert_close(depth, 2.0 * torch.exp(offset))
    torch.testing.assert_close(slope, depth)
    floored, floor_slope = depth_from_coefficients(d0, offset, 0.1, "additive")
    assert floored[0] < 0.11 and floor_slope[0] < 1e-3  # the additive model sits on the floor there
    with pytest.raises(ValueError, match="depth_update"):
        depth_from_coefficients(d0, offset, 0.1, "log")
    with pytest.raises(ValueError, match="depth_update"):
        BALayer(2, BAOptions((1,), depth_update="log"))


def test_bundle_adjust_validates_its_inputs(room_pair):
    p = room_pair
    with pytest.raises(ValueError, match="same non-zero number of levels"):
        bundle_adjust(
            p["feats_ref"],
            p["feats_tgt"][:2],
            p["basis"],
            p["depth"][None, None],
            p["intr"],
            BAOptions((1, 1, 1)),
            (1e-3,) * 3,
        )
    with pytest.raises(ValueError, match="intrinsics"):
        bundle_adjust(
            p["feats_ref"],
            p["feats_tgt"],
            p["basis"],
            p["depth"][None, None],
            p["intr"][0],
            BAOptions((1, 1, 1)),
            (1e-3,) * 3,
        )
    with pytest.raises(ValueError, match="depth0"):
        bundle_adjust(
            p["feats_ref"],
            p["feats_tgt"],
            p["basis"],
            p["depth"][None],
            p["intr"],
            BAOptions((1, 1, 1)),
            (1e-3,) * 3,
        )
    with pytest.raises(ValueError, match="coefficients_init"):
        depth0 = p["depth"][None, None]
        bundle_adjust(
            p["feats_ref"], p["feats_tgt"], p["basis"], depth0, p["intr"], BAOptions((1, 1, 1)), (1e-3,) * 3,
            coefficients_init=torch.zeros(1, 2, dtype=F64),
        )  # fmt: skip


def test_ba_options_are_the_network_configs_and_validated():
    from banet_vo.model import BANetConfig

    config = BANetConfig.preset("small", iterations=(2, 1, 1), min_depth=0.2, ba_epsilon=1e-5)
    options = config.ba_options
    assert options == BAOptions((2, 1, 1), min_depth=0.2, epsilon=1e-5, depth_update=config.depth_update)
    assert BALayer(4, options).options is options and len(BALayer(4, options).damping) == 3
    assert BAOptions([3, 3]).iterations == (3, 3)
    for bad in (dict(iterations=()), dict(iterations=(1, -1)), dict(iterations=(1,), epsilon=0.0)):
        with pytest.raises(ValueError, match="BAOptions"):
            BAOptions(**bad)


@pytest.mark.parametrize("depth_update", ["bounded", "multiplicative", "additive"])
def test_a_zero_in_d0_leaves_the_solve_finite(depth_update):
    """One pixel of D0 at 0 (a hole in a depth given as D0, or the head's exp underflowing) made the pose,
    the Hessian and the depth NaN for the bounded and multiplicative models (log 0, 0/0 in the Jacobian, and
    a masked NaN still summed into the normal equations)."""
    from banet_vo.model.ba_layer import bundle_adjust
    from banet_vo.model.config import BAOptions

    torch.manual_seed(0)
    B, C, K, H, W = 1, 4, 3, 12, 16
    feat = [torch.nn.functional.avg_pool2d(torch.rand(B, C, H * 4, W * 4), s).double() for s in (16, 8, 4)]
    ftgt = [f + 0.01 * torch.randn_like(f) for f in feat]
    basis = torch.randn(B, K, H, W, dtype=torch.float64)
    intrinsics = torch.tensor([[20.0, 20.0, 7.5, 5.5]], dtype=torch.float64)
    d0 = torch.full((B, 1, H, W), 3.0, dtype=torch.float64)
    d0[0, 0, 2, 3] = 0.0
    r = bundle_adjust(
        feat, ftgt, basis, d0, intrinsics, BAOptions((2, 2, 2), depth_update=depth_update), [0.1] * 3
    )
    assert torch.isfinite(r.pose.tensor()).all() and torch.isfinite(r.hessian).all()
    assert torch.isfinite(r.depth).all()
