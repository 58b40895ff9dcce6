"""Vectorised ray casting of a Scene in torch: exact z-depth, filtered textures, Lambertian light.

Rays use un-normalised directions d = R_wc [(u - cx)/fx, (v - cy)/fy, 1], so the ray parameter of a hit
is its z-depth exactly. The image is cut into square tiles; each tile is tested only against the quads
whose clipped screen bounding box overlaps it (tiles with similar counts are batched together).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from banet_vo.data.synthetic.atlas import to_display, to_linear
from banet_vo.data.synthetic.scene import Scene
from banet_vo.geometry import PinholeCamera

NEAR = 0.01  # metres: hits closer than this along z are ignored
_EDGE_EPS = 1e-3  # metres: quads grow by this much so that the faces of a box leave no cracks
_TILE = 32
_BATCH_ELEMENTS = 1 << 21  # pixels x quads per batched intersection (bounds the memory)


def camera_from_fov(width: int, height: int, fov_deg: float) -> PinholeCamera:
    """Square-pixel pinhole with horizontal field of view `fov_deg` and the principal point at the centre."""
    if not 1.0 <= fov_deg <= 170.0:
        raise ValueError(f"fov_deg must be in [1, 170], got {fov_deg}")
    f = (width / 2) / math.tan(math.radians(fov_deg) / 2)
    return PinholeCamera(f, f, (width - 1) / 2, (height - 1) / 2, width, height)


def _check_pose(pose) -> np.ndarray:
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        raise ValueError(f"pose must be a finite 4x4 camera-to-world matrix, got shape {pose.shape}")
    rot = pose[:3, :3]
    if np.abs(rot.T @ rot - np.eye(3)).max() > 1e-4 or np.linalg.det(rot) < 0:
        raise ValueError("pose rotation block must be a proper rotation")
    return pose


def _screen_boxes(
    scene: Scene, rot: torch.Tensor, origin: torch.Tensor, intr: tuple[float, ...]
) -> torch.Tensor:
    """(Q, 4) [u_min, u_max, v_min, v_max] of each quad clipped to z >= NEAR; NaN rows for culled quads."""
    fx, fy, cx, cy = intr
    pts = (scene.corners() - origin) @ rot  # (Q, 4, 3) in the camera frame
    nxt = pts.roll(-1, dims=1)
    za, zb = pts[..., 2], nxt[..., 2]
    crossing = (za - NEAR) * (zb - NEAR) < 0
    w = ((NEAR - za) / torch.where(crossing, zb - za, torch.ones_like(za))).unsqueeze(-1)
    cross_pts = pts + w * (nxt - pts)
    cand = torch.cat([pts, cross_pts], dim=1)  # (Q, 8, 3)
    keep = torch.cat([za >= NEAR, crossing], dim=1)
    z = cand[..., 2].clamp(min=NEAR * 0.5)
    u = fx * cand[..., 0] / z + cx
    v = fy * cand[..., 1] / z + cy
    inf = torch.tensor(float("inf"))
    boxes = torch.stack(
        [
            torch.where(keep, u, inf).amin(1),
            torch.where(keep, u, -inf).amax(1),
            torch.where(keep, v, inf).amin(1),
            torch.where(keep, v, -inf).amax(1),
        ],
        dim=1,
    )
    return torch.where(keep.any(1, keepdim=True), boxes, torch.full_like(boxes, float("nan")))


def cast_rays(
    scene: Scene, pose, camera: PinholeCamera, offset: tuple[float, float] = (0.0, 0.0)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest hit of every pixel's ray (through pixel centre + `offset`).

    Returns depth (H, W) float32 z-depth (0 where no quad is hit), quad (H, W) long (-1 = none) and the
    world ray directions (H, W, 3) with camera-z component 1.
    """
    pose = _check_pose(pose)
    rot = torch.tensor(pose[:3, :3], dtype=torch.float32)
    origin = torch.tensor(pose[:3, 3], dtype=torch.float32)
    intr = (camera.fx, camera.fy, camera.cx, camera.cy)
    height, width = camera.height, camera.width
    tiles_y, tiles_x = -(-height // _TILE), -(-width // _TILE)
    hp, wp = tiles_y * _TILE, tiles_x * _TILE
    u = torch.arange(wp, dtype=torch.float32) + offset[0]
    v = torch.arange(hp, dtype=torch.float32) + offset[1]
    x = ((u[None, :] - intr[2]) / intr[0]).expand(hp, wp)
    y = ((v[:, None] - intr[3]) / intr[1]).expand(hp, wp)
    dirs_cam = torch.stack([x, y, torch.ones(hp, wp)], dim=-1)
    dirs = dirs_cam @ rot.T  # (Hp, Wp, 3)
    # (tiles, pixels-per-tile, 3), tiles in row-major order.
    tiled = (
        dirs.reshape(tiles_y, _TILE, tiles_x, _TILE, 3).permute(0, 2, 1, 3, 4).reshape(-1, _TILE * _TILE, 3)
    )

    boxes = _screen_boxes(scene, rot, origin, intr)
    tile_u0 = (torch.arange(tiles_x, dtype=torch.float32) * _TILE).repeat(tiles_y) + offset[0]
    tile_v0 = (torch.arange(tiles_y, dtype=torch.float32) * _TILE).repeat_interleave(tiles_x) + offset[1]
    margin = 1.0
    overlap = (
        (boxes[None, :, 1] >= tile_u0[:, None] - margin)
        & (boxes[None, :, 0] <= tile_u0[:, None] + _TILE - 1 + margin)
        & (boxes[None, :, 3] >= tile_v0[:, None] - margin)
        & (boxes[None, :, 2] <= tile_v0[:, None] + _TILE - 1 + margin)
    )  # (tiles, Q); NaN boxes compare False
    counts = overlap.sum(1)
    quad_lists = torch.argsort((~overlap).to(torch.uint8), dim=1, stable=True)  # overlapping quads first

    plane_n = torch.linalg.cross(scene.u_axis, scene.v_axis)
    num = (plane_n * (scene.origin - origin)).sum(1)  # n·(O - o)
    rel = origin - scene.origin
    base_u = (scene.u_axis * rel).sum(1)
    base_v = (scene.v_axis * rel).sum(1)

    n_tiles = tiled.shape[0]
    best_t = torch.zeros(n_tiles, _TILE * _TILE)
    best_q = torch.full((n_tiles, _TILE * _TILE), -1, dtype=torch.long)
    order = torch.argsort(counts, descending=True)
    start = 0
    while start < n_tiles and counts[order[start]] > 0:
        q_max = int(counts[order[start]])
        group_size = max(1, _BATCH_ELEMENTS // (_TILE * _TILE * q_max))
        group = order[start : start + group_size]
        group = group[counts[group] > 0]
        start += group_size
        qi = quad_lists[group, :q_max]  # (G, Qm)
        used = torch.arange(q_max)[None, :] < counts[group][:, None]
        d = tiled[group]  # (G, P, 3)
        denom = torch.bmm(d, plane_n[qi].transpose(1, 2))  # (G, P, Qm)
        t = num[qi][:, None, :] / denom
        su = base_u[qi][:, None, :] + t * torch.bmm(d, scene.u_axis[qi].transpose(1, 2))
        sv = base_v[qi][:, None, :] + t * torch.bmm(d, scene.v_axis[qi].transpose(1, 2))
        ext = scene.extent[qi]
        hit = (
            used[:, None, :]
            & (t > NEAR)
            & (su >= -_EDGE_EPS)
            & (su <= ext[:, None, :, 0] + _EDGE_EPS)
            & (sv >= -_EDGE_EPS)
            & (sv <= ext[:, None, :, 1] + _EDGE_EPS)
        )
        t = torch.where(hit, t, torch.full_like(t, float("inf")))
        t_min, arg = t.min(dim=2)
        found = torch.isfinite(t_min)
        best_t[group] = torch.where(found, t_min, torch.zeros_like(t_min))
        best_q[group] = torch.where(found, torch.gather(qi, 1, arg.flatten(1)).view_as(arg), -1)

    def untile(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(tiles_y, tiles_x, _TILE, _TILE).permute(0, 2, 1, 3).reshape(hp, wp)
        return x[:height, :width]

    return untile(best_t), untile(best_q), dirs[:height, :width]


def shade(
    scene: Scene,
    pose,
    camera: PinholeCamera,
    depth: torch.Tensor,
    quad: torch.Tensor,
    dirs: torch.Tensor,
    footprint: float = 1.0,
    max_aniso: int = 4,
) -> torch.Tensor:
    """Linear radiance (H, W, 3) of the hits from `cast_rays`; `footprint` is the pixel size in pixels
    (1/k for k x k supersampling) for texture filtering."""
    pose = _check_pose(pose)
    rot = torch.tensor(pose[:3, :3], dtype=torch.float32)
    origin = torch.tensor(pose[:3, 3], dtype=torch.float32)
    height, width = depth.shape
    out = torch.zeros(height * width, 3)
    flat_q = quad.reshape(-1)
    flat_d = dirs.reshape(-1, 3)
    hit = torch.nonzero(flat_q >= 0).squeeze(1)
    d_du = rot[:, 0] * (footprint / camera.fx)  # change of the ray direction per pixel step in u
    d_dv = rot[:, 1] * (footprint / camera.fy)
    light = scene.lighting
    if hit.numel():
        q = flat_q[hit]
        d = flat_d[hit]
        t = depth.reshape(-1)[hit].unsqueeze(1)
        p = origin + t * d
        ua, va = scene.u_axis[q], scene.v_axis[q]
        plane_n = torch.linalg.cross(ua, va)
        nd = (plane_n * d).sum(1, keepdim=True)
        nd = torch.where(nd.abs() < 1e-12, torch.full_like(nd, 1e-12), nd)
        # Ray differentials on the plane: dp/du = t (d_u - d (n·d_u)/(n·d)).
        dp_du = t * (d_du - d * (plane_n @ d_du).unsqueeze(1) / nd)
        dp_dv = t * (d_dv - d * (plane_n @ d_dv).unsqueeze(1) / nd)
        tile = scene.tile[q]
        rel = p - scene.origin[q]
        uv = torch.stack([(ua * rel).sum(1), (va * rel).sum(1)], 1) / tile + scene.tex_offset[q]
        duv_dx = torch.stack([(ua * dp_du).sum(1), (va * dp_du).sum(1)], 1) / tile
        duv_dy = torch.stack([(ua * dp_dv).sum(1), (va * dp_dv).sum(1)], 1) / tile
        albedo = scene.atlas.sample_footprint(scene.texture[q], uv, duv_dx, duv_dy, max_aniso) * scene.tint[q]
        # Shading normal turned towards the camera (thin two-sided quads such as signs).
        n = scene.normal[q]
        n = torch.where(((n * d).sum(1, keepdim=True) > 0), -n, n)
        sun = torch.tensor(light.sun_direction, dtype=torch.float32)
        irradiance = light.ambient + light.sun_strength * (n @ sun).clamp(min=0)
        for pos, strength in zip(light.light_positions, light.light_strengths, strict=True):
            to_light = torch.tensor(pos, dtype=torch.float32) - p
            r2 = (to_light * to_light).sum(1)
            cos = (n * to_light).sum(1) / r2.sqrt().clamp(min=1e-6)
            irradiance = irradiance + float(strength) * cos.clamp(min=0) / (1 + r2 / light.light_radius**2)
        out[hit] = albedo * irradiance.unsqueeze(1)
    miss = torch.nonzero(flat_q < 0).squeeze(1)
    if miss.numel() and scene.sky is not None:
        out[miss] = _sky(scene, flat_d[miss], d_du, d_dv)
    return (out * light.gain).reshape(height, width, 3)


def _sky(scene: Scene, d: torch.Tensor, d_du: torch.Tensor, d_dv: torch.Tensor) -> torch.Tensor:
    """Sky at infinity: elevation gradient and a cloud layer indexed by direction only."""
    sky = scene.sky
    assert sky is not None
    zenith = torch.tensor(to_linear(sky.zenith), dtype=torch.float32)
    horizon = torch.tensor(to_linear(sky.horizon), dtype=torch.float32)
    elevation = (d[:, 2] / d.norm(dim=1)).unsqueeze(1)
    colour = horizon + (zenith - horizon) * elevation.clamp(0, 1).sqrt()
    colour = torch.where(elevation < 0, horizon * 0.6, colour)
    # Clouds: uv = scale (dx, dy) / dz; its derivative per pixel gives the filter footprint.
    dz = d[:, 2:3].clamp(min=0.05)
    uv = sky.cloud_scale * d[:, :2] / dz
    duv_dx = sky.cloud_scale * (d_du[:2] * dz - d[:, :2] * d_du[2]) / dz**2
    duv_dy = sky.cloud_scale * (d_dv[:2] * dz - d[:, :2] * d_dv[2]) / dz**2
    tex = torch.full((d.shape[0],), sky.cloud_texture, dtype=torch.long)
    cover = scene.atlas.sample_footprint(tex, uv, duv_dx, duv_dy)[:, :1]
    cover = cover * (elevation * 8).clamp(0, 1)  # clouds thin out towards the horizon
    return colour * (1 - cover) + 0.9 * cover


def render_radiance(
    scene: Scene, pose, camera: PinholeCamera, supersample: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """(linear radiance (H, W, 3), z-depth (H, W), 0 = sky). With supersample k > 1 the colour averages
    k x k sub-pixel rays (smooth geometry edges); depth is always that of the pixel-centre ray."""
    if not isinstance(supersample, int) or supersample < 1:
        raise ValueError(f"supersample must be a positive integer, got {supersample!r}")
    depth, quad, dirs = cast_rays(scene, pose, camera)
    if supersample == 1:
        return shade(scene, pose, camera, depth, quad, dirs), depth
    total = torch.zeros(camera.height, camera.width, 3)
    k = supersample
    for j in range(k):
        for i in range(k):
            offset = ((i + 0.5) / k - 0.5, (j + 0.5) / k - 0.5)
            sub = cast_rays(scene, pose, camera, offset)
            total += shade(scene, pose, camera, *sub, footprint=1.0 / k)
    return total / (k * k), depth


def quantize(display: torch.Tensor) -> np.ndarray:
    """Display values in [0, 1] -> uint8 (rounded)."""
    return (display.clamp(0, 1) * 255.0 + 0.5).floor().to(torch.uint8).numpy()


def render_frame(
    scene: Scene, pose, camera: PinholeCamera, supersample: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free image (H, W, 3) uint8 RGB at the scene's own exposure and z-depth (H, W) float32
    (metres; 0 where the ray sees the sky)."""
    radiance, depth = render_radiance(scene, pose, camera, supersample)
    return quantize(to_display(radiance)), depth.numpy().astype(np.float32)
