"""Renderer of the synthetic world: exact depth against independent float64 references, texture filtering
against a heavily supersampled reference, the atlas's wrap modes and mip levels, sky placement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from banet_vo.data.synthetic import textures as tx
from banet_vo.data.synthetic.atlas import WRAP_MIRROR, WRAP_REPEAT, TextureAtlas, to_linear
from banet_vo.data.synthetic.generate import torch_threads
from banet_vo.data.synthetic.render import camera_from_fov, cast_rays, render_frame, shade
from banet_vo.data.synthetic.scene import Lighting, SceneBuilder
from banet_vo.data.synthetic.trajectory import states_to_poses
from banet_vo.geometry import PinholeCamera

FREE = (np.zeros(3), np.ones(3))
LIGHT = Lighting(ambient=1.0, sun_direction=np.array([0.0, 0.0, 1.0]), sun_strength=0.0)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small tensors: one thread is much faster than two on this shared machine (see docs/synthetic.md)."""
    with torch_threads(1):
        yield


def _rays64(camera: PinholeCamera, pose: np.ndarray) -> np.ndarray:
    """(H, W, 3) float64 world directions with camera-z component 1 (independent of the renderer)."""
    v, u = np.mgrid[0 : camera.height, 0 : camera.width].astype(np.float64)
    d = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], -1)
    return d @ pose[:3, :3].T


def _pose(x, y, z, yaw, pitch, roll) -> np.ndarray:
    return states_to_poses(np.array([[x, y, z, yaw, pitch, roll]], dtype=float))[0]


def test_camera_from_fov_principal_point_and_focal() -> None:
    cam = camera_from_fov(160, 120, 90.0)
    assert cam.fx == pytest.approx(80.0) and cam.fy == pytest.approx(80.0)
    assert (cam.cx, cam.cy) == (79.5, 59.5)
    with pytest.raises(ValueError, match="fov_deg"):
        camera_from_fov(160, 120, 0.0)


def test_depth_of_a_tilted_plane_matches_float64_reference() -> None:
    b = SceneBuilder(np.random.default_rng(0), 16)
    tex = b.add_texture(np.full((16, 16, 3), 0.5, np.float32), periodic=True)
    origin, u_axis, v_axis, extent = (
        np.array([4.0, 3.0, 2.5]),
        np.array([0.6, -0.8, 0.0]),
        np.array([0.0, 0.0, -1.0]),
        (7.0, 4.0),
    )
    b.add_quad(origin, u_axis, v_axis, extent, tex, (1.0, 1.0))
    scene = b.build("test", 0, LIGHT, None, FREE)
    camera = camera_from_fov(96, 72, 75.0)
    pose = _pose(0.3, -0.2, 1.1, 0.4, -0.05, 0.08)
    depth, quad, _ = cast_rays(scene, pose, camera)

    d = _rays64(camera, pose)
    n = np.cross(u_axis, v_axis)
    t = (n @ (origin - pose[:3, 3])) / (d @ n)
    rel = pose[:3, 3] + t[..., None] * d - origin
    su, sv = rel @ u_axis, rel @ v_axis
    inside = (t > 0) & (su >= 0) & (su <= extent[0]) & (sv >= 0) & (sv <= extent[1])
    well_inside = (t > 0) & (su > 0.01) & (su < extent[0] - 0.01) & (sv > 0.01) & (sv < extent[1] - 0.01)
    well_outside = (t <= 0) | (su < -0.01) | (su > extent[0] + 0.01) | (sv < -0.01) | (sv > extent[1] + 0.01)
    rendered = depth.numpy() > 0
    assert inside.mean() > 0.3 and well_outside.mean() > 0.05  # the view holds the plane and its edges
    assert np.all(rendered[well_inside]) and not np.any(rendered[well_outside])
    assert np.all((quad.numpy() == 0) == rendered)
    hit = inside & rendered
    np.testing.assert_allclose(depth.numpy()[hit], t[hit], rtol=2e-6)


def test_depth_of_a_box_on_a_floor_matches_slab_method() -> None:
    b = SceneBuilder(np.random.default_rng(1), 16)
    tex = b.add_texture(np.full((16, 16, 3), 0.5, np.float32), periodic=True)
    lo, hi = np.array([2.0, -0.7, 0.0]), np.array([3.5, 0.9, 1.3])
    b.add_box((lo + hi) / 2, hi - lo, tex, (1.0, 1.0))
    b.add_quad((-10.0, 10.0, 0.0), (1, 0, 0), (0, -1, 0), (20.0, 20.0), tex, (1.0, 1.0), normal=(0, 0, 1))
    scene = b.build("test", 0, LIGHT, None, FREE)
    camera = camera_from_fov(80, 60, 80.0)
    pose = _pose(-0.5, 0.4, 1.6, -0.15, 0.2, 0.03)
    depth = cast_rays(scene, pose, camera)[0].numpy()

    d = _rays64(camera, pose)
    o = pose[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - o) / d, (hi - o) / d
    t_near = np.minimum(t1, t2).max(-1)
    t_far = np.maximum(t1, t2).min(-1)
    t_box = np.where((t_near <= t_far) & (t_near > 0), t_near, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = -o[2] / d[..., 2]
    on_floor = (t_floor > 0) & (np.abs(o[:2] + t_floor[..., None] * d[..., :2]) <= 10.0).all(-1)
    reference = np.minimum(t_box, np.where(on_floor, t_floor, np.inf))
    assert np.isfinite(t_box).mean() > 0.1 and (~np.isfinite(reference)).mean() > 0.1
    # Rays within ~2 mm of a box edge may legitimately differ (quads grow by 1 mm against cracks).
    near_edge = np.abs(t_near - t_far) < 2e-3 * np.maximum(np.abs(t_near), 1.0)
    hit = np.isfinite(reference) & ~near_edge
    np.testing.assert_allclose(depth[hit], reference[hit], rtol=2e-6)
    assert np.all(depth[~np.isfinite(reference) & ~near_edge] == 0)


@pytest.fixture(scope="module")
def striped_floor():
    rng = np.random.default_rng(0)
    b = SceneBuilder(rng, 256)
    stripes = tx.stripes(rng, 256, count=32, colours=[(0.9, 0.9, 0.9), (0.1, 0.1, 0.1)], noise=0.0)
    tex = b.add_texture(stripes, periodic=True)
    # 4 m per texture repeat: stripes 12.5 cm wide, resolved near the camera and far below a pixel at the
    # horizon. With 1 m the whole floor sat past the mip level where the stripes average to grey, so the
    # anisotropic and isotropic filters gave the same image and the comparison below was float noise.
    b.add_quad((-50, 50, 0), (1, 0, 0), (0, -1, 0), (100, 100), tex, (4.0, 4.0), normal=(0, 0, 1))
    scene = b.build("test", 0, LIGHT, None, FREE)
    return scene, _pose(0.0, 0.0, 1.5, np.pi / 2 + 0.3, 0.05, 0.0), camera_from_fov(48, 36, 70.0)


def _render_supersampled(scene, pose, camera, k: int, footprint: float = 1.0, max_aniso: int = 4):
    total = torch.zeros(camera.height, camera.width, 3)
    for j in range(k):
        for i in range(k):
            hits = cast_rays(scene, pose, camera, ((i + 0.5) / k - 0.5, (j + 0.5) / k - 0.5))
            total += shade(scene, pose, camera, *hits, footprint=footprint / k, max_aniso=max_aniso)
    return total / k**2


def test_texture_filtering_removes_aliasing_on_a_receding_floor(striped_floor) -> None:
    scene, pose, camera = striped_floor
    reference = _render_supersampled(scene, pose, camera, 6)  # box filter over 36 samples per pixel
    filtered = _render_supersampled(scene, pose, camera, 1)
    isotropic = _render_supersampled(scene, pose, camera, 1, max_aniso=1)
    point_sampled = _render_supersampled(scene, pose, camera, 1, footprint=1e-4)  # level 0, no filtering
    err = {
        name: float((img - reference).abs().mean())
        for name, img in [("filtered", filtered), ("isotropic", isotropic), ("point", point_sampled)]
    }
    assert err["point"] > 0.1, err  # the scene really aliases without filtering
    assert err["filtered"] < 0.1 * err["point"], err
    assert err["filtered"] < 0.5 * err["isotropic"], err  # anisotropic probes keep the far floor sharper


def _atlas(images, wraps):
    return TextureAtlas([np.asarray(i, np.float32) for i in images], wraps)


def test_atlas_lod0_returns_texels_and_levels_average_blocks() -> None:
    rng = np.random.default_rng(2)
    image = rng.random((8, 8, 3)).astype(np.float32)
    atlas = _atlas([image, image[::-1]], [WRAP_REPEAT, WRAP_MIRROR])
    linear = to_linear(image.astype(np.float64))
    iy, ix = np.mgrid[0:8, 0:8]
    uv = torch.tensor(np.stack([(ix.ravel() + 0.5) / 8, (iy.ravel() + 0.5) / 8], 1), dtype=torch.float32)
    tex = torch.zeros(64, dtype=torch.long)
    got = atlas.sample(tex, uv, torch.zeros(64))
    np.testing.assert_allclose(got.numpy(), linear.reshape(-1, 3), atol=1e-5)
    # Level 1 at its texel centres = mean of the 2x2 blocks of level 0.
    iy, ix = np.mgrid[0:4, 0:4]
    uv1 = torch.tensor(np.stack([(ix.ravel() + 0.5) / 4, (iy.ravel() + 0.5) / 4], 1), dtype=torch.float32)
    got1 = atlas.sample(torch.zeros(16, dtype=torch.long), uv1, torch.ones(16))
    blocks = linear.reshape(4, 2, 4, 2, 3).mean(axis=(1, 3)).reshape(-1, 3)
    np.testing.assert_allclose(got1.numpy(), blocks, atol=1e-5)
    # Coarsest level: the mean of the whole texture, wherever it is sampled.
    top = atlas.sample(torch.zeros(3, dtype=torch.long), torch.rand(3, 2) * 5 - 2, torch.full((3,), 10.0))
    np.testing.assert_allclose(top.numpy(), np.broadcast_to(linear.mean(axis=(0, 1)), (3, 3)), atol=1e-5)


def test_atlas_wrap_modes_repeat_and_mirror() -> None:
    rng = np.random.default_rng(3)
    image = rng.random((16, 16, 3)).astype(np.float32)
    atlas = _atlas([image, image], [WRAP_REPEAT, WRAP_MIRROR])
    uv = torch.rand(200, 2, dtype=torch.float32)
    lod = torch.rand(200) * 3
    rep, mir = torch.zeros(200, dtype=torch.long), torch.ones(200, dtype=torch.long)
    base_r, base_m = atlas.sample(rep, uv, lod), atlas.sample(mir, uv, lod)
    torch.testing.assert_close(
        atlas.sample(rep, uv + torch.tensor([3.0, -2.0]), lod), base_r, atol=2e-5, rtol=0
    )
    torch.testing.assert_close(atlas.sample(mir, -uv, lod), base_m, atol=2e-5, rtol=0)
    torch.testing.assert_close(atlas.sample(mir, 2.0 - uv, lod), base_m, atol=2e-5, rtol=0)
    # Across the seam the repeat mode interpolates between the last and the first texel column.
    seam = torch.tensor([[1.0, 0.5 / 16]])
    expected = 0.5 * (to_linear(image[0, 0].astype(np.float64)) + to_linear(image[0, 15].astype(np.float64)))
    np.testing.assert_allclose(atlas.sample(rep[:1], seam, torch.zeros(1))[0].numpy(), expected, atol=1e-5)


def test_atlas_rejects_bad_textures() -> None:
    with pytest.raises(ValueError, match="power of two"):
        _atlas([np.zeros((6, 6, 3))], [WRAP_REPEAT])
    with pytest.raises(ValueError, match="wraps"):
        _atlas([np.zeros((8, 8, 3))], [])


def test_procedural_textures_tile_seamlessly() -> None:
    rng = np.random.default_rng(4)
    for image in (
        tx.fbm(rng, 64)[..., None],
        tx.bricks(rng, 64, rows=8, cols=4),
        tx.tiles(rng, 64),
        tx.road(rng, 64),
    ):
        # The jump across the wrap seam is no larger than the largest jump inside the texture.
        inner = np.abs(np.diff(image, axis=0)).max()
        seam = np.abs(image[0] - image[-1]).max()
        assert seam <= inner + 1e-6
        assert image.dtype == np.float32 and image.min() >= 0 and image.max() <= 1
    with pytest.raises(ValueError, match="rows"):
        tx.bricks(rng, 64, rows=5)


def test_photos_load_offline_and_render_frame_outputs() -> None:
    for name in tx.PHOTO_NAMES:
        image = tx.photo(name, 32)
        assert image.shape == (32, 32, 3) and 0 <= image.min() and image.max() <= 1 and image.std() > 0.01
    b = SceneBuilder(np.random.default_rng(5), 32)
    tex = b.add_texture(tx.photo("astronaut", 32), periodic=False)
    b.add_wall((5.0, 0.0, 1.5), (-1, 0, 0), 4.0, 3.0, tex, (4.0, 3.0))
    scene = b.build("test", 0, LIGHT, None, FREE)
    image, depth = render_frame(scene, _pose(0, 0, 1.5, 0, 0, 0), camera_from_fov(40, 30, 40.0))
    assert image.dtype == np.uint8 and image.shape == (30, 40, 3) and depth.dtype == np.float32
    np.testing.assert_allclose(depth, 5.0, rtol=1e-6)  # wall at x=5, camera at x=0 looking +x
    assert image.std() > 5
    with pytest.raises(ValueError, match="pose"):
        render_frame(scene, np.eye(3), camera_from_fov(40, 30, 40.0))
