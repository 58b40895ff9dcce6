"""Procedural room: floor, ceiling, four walls, skirting, a door, posters, furniture against the walls and
a low table and rug in the middle. Closed, so every pixel has finite depth (no sky).
"""

from __future__ import annotations

import numpy as np

from banet_vo.data.synthetic import textures as tx
from banet_vo.data.synthetic.scene import Lighting, Scene, SceneBuilder

# Cameras stay in this box (room-centred); every room is at least 5 x 4 x 2.5 m and furniture against the
# walls is at most 0.6 m deep, so it keeps >= 0.4 m from furniture and >= 1 m from walls in every room.
FREE_SPACE = (np.array([-1.5, -1.0, 1.1]), np.array([1.5, 1.0, 1.9]))


def _up(height: float) -> np.ndarray:
    return np.array([0.0, 0.0, height])


def _wall_texture(b: SceneBuilder) -> int:
    rng, size = b.rng, b.texture_size
    style = rng.integers(4)
    if style == 0:
        return b.add_texture(
            tx.noisy_paint(rng, size, rng.uniform(0.55, 0.95, 3), amount=0.15), periodic=True
        )
    if style == 1:
        colours = [rng.uniform(0.4, 0.95, 3), rng.uniform(0.4, 0.95, 3)]
        return b.add_texture(
            tx.stripes(rng, size, count=int(rng.choice([8, 12, 16])), colours=colours), periodic=True
        )
    if style == 2:
        return b.add_texture(
            tx.bricks(rng, size, rows=16, cols=6, colour=rng.uniform(0.4, 0.8, 3)), periodic=True
        )
    return b.add_texture(
        tx.tint(0.5 + 0.5 * tx.photo("gravel", size), rng.uniform(0.7, 1.0, 3)), periodic=False
    )


def _floor_texture(b: SceneBuilder) -> tuple[int, float]:
    rng, size = b.rng, b.texture_size
    style = rng.integers(3)
    if style == 0:
        return b.add_texture(
            tx.planks(rng, size, count=6, colour=rng.uniform(0.4, 0.7, 3)), periodic=True
        ), 1.2
    if style == 1:
        return b.add_texture(
            tx.tiles(rng, size, count=4, colour=rng.uniform(0.5, 0.9, 3)), periodic=True
        ), 1.6
    carpet = tx.tint(tx.photo("gravel", size), rng.uniform(0.4, 0.9, 3))
    return b.add_texture(carpet, periodic=False), 1.0


def _clutter(
    b: SceneBuilder, top_centre, width: float, depth: float, yaw: float, textures: list[int]
) -> None:
    """A few small boxes (books, tins, cartons) standing on a surface of width x depth."""
    rng = b.rng
    along = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
    for _ in range(int(rng.integers(1, 4))):
        sx, sy, sz = rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.35), rng.uniform(0.08, 0.35)
        offset = rng.uniform(-0.5, 0.5) * max(width - sy, 0.0)
        centre = np.asarray(top_centre) + along * offset + _up(sz / 2)
        texture = textures[int(rng.integers(len(textures)))]
        b.add_box(centre, (min(sx, depth), sy, sz), texture, (0.3, 0.3), yaw=yaw + rng.uniform(-0.3, 0.3))


def _table(b: SceneBuilder, centre, size, top: int, legs: int) -> None:
    x, y = centre
    sx, sy, height = size
    b.add_box((x, y, height - 0.02), (sx, sy, 0.04), top, (1.0, 1.0), bottom=True)
    for dx in (-1, 1):
        for dy in (-1, 1):
            lx, ly = x + dx * (sx / 2 - 0.06), y + dy * (sy / 2 - 0.06)
            b.add_box((lx, ly, (height - 0.04) / 2), (0.05, 0.05, height - 0.04), legs, (0.5, 0.5))


def make_room(seed: int, texture_size: int = 256) -> Scene:
    rng = np.random.default_rng([seed, 2])
    b = SceneBuilder(rng, texture_size)
    size = texture_size
    half_x, half_y, height = rng.uniform(2.5, 4.0), rng.uniform(2.0, 3.5), rng.uniform(2.5, 3.2)

    floor, floor_tile = _floor_texture(b)
    ceiling = b.add_texture(tx.noisy_paint(rng, size, (0.92, 0.92, 0.9), amount=0.08), periodic=True)
    walls = [_wall_texture(b) for _ in range(2)]
    wood = b.add_texture(tx.planks(rng, size, count=4, colour=rng.uniform(0.35, 0.7, 3)), periodic=True)
    dark_wood = b.add_texture(tx.planks(rng, size, count=8, colour=(0.3, 0.2, 0.12)), periodic=True)
    books = b.add_texture(
        tx.stripes(rng, size, count=24, colours=[rng.uniform(0.1, 0.9, 3) for _ in range(7)]), periodic=True
    )
    fabric = b.add_texture(tx.noisy_paint(rng, size, rng.uniform(0.2, 0.8, 3), amount=0.35), periodic=True)
    rug = b.add_texture(
        tx.photo(str(rng.choice(["immunohistochemistry", "hubble_deep_field"])), size), periodic=False
    )
    metal = b.add_texture(tx.noisy_paint(rng, size, (0.6, 0.6, 0.62), amount=0.25), periodic=True)
    cardboard = b.add_texture(tx.noisy_paint(rng, size, (0.6, 0.45, 0.3), amount=0.3), periodic=True)
    clutter = [cardboard, metal, fabric, books]

    # Shell: floor (normal up), ceiling (normal down), walls facing inwards.
    b.add_quad(
        (-half_x, half_y, 0.0),
        (1, 0, 0),
        (0, -1, 0),
        (2 * half_x, 2 * half_y),
        floor,
        (floor_tile,) * 2,
        normal=(0, 0, 1),
    )
    b.add_quad(
        (-half_x, -half_y, height),
        (1, 0, 0),
        (0, 1, 0),
        (2 * half_x, 2 * half_y),
        ceiling,
        (2.0, 2.0),
        normal=(0, 0, -1),
    )
    # (centre xy, inward normal, width) of the four walls.
    wall_specs = [
        ((half_x, 0.0), (-1, 0, 0), 2 * half_y),
        ((-half_x, 0.0), (1, 0, 0), 2 * half_y),
        ((0.0, half_y), (0, -1, 0), 2 * half_x),
        ((0.0, -half_y), (0, 1, 0), 2 * half_x),
    ]
    for i, ((cx, cy), normal, width) in enumerate(wall_specs):
        texture = walls[i % 2]
        b.add_wall((cx, cy, height / 2), normal, width, height, texture, (1.5, 1.5))
        n = np.asarray(normal, float)
        b.add_wall((cx + n[0] * 0.01, cy + n[1] * 0.01, 0.05), n, width, 0.1, dark_wood, (1.0, 0.25))

    # Along each wall: a door, posters, and furniture (depth <= 0.6 m) at random positions without overlap.
    door_wall = int(rng.integers(4))
    for i, ((cx, cy), normal, width) in enumerate(wall_specs):
        n = np.asarray(normal, float)
        along = np.cross(-n, (0, 0, 1))
        used: list[tuple[float, float]] = []

        def free_slot(w: float, used=used, width=width) -> float | None:
            for _ in range(20):
                s = rng.uniform(-width / 2 + w / 2 + 0.1, width / 2 - w / 2 - 0.1)
                if all(abs(s - t) > (w + u) / 2 + 0.1 for t, u in used):
                    used.append((s, w))
                    return s
            return None

        if i == door_wall and (s := free_slot(0.9)) is not None:
            p = np.array([cx, cy, 1.02]) + along * s + n * 0.012
            b.add_wall(p, n, 0.9, 2.04, wood, (0.9, 2.04), tex_offset=(0.0, 0.0))
        for _ in range(int(rng.integers(1, 4))):
            name = str(rng.choice(tx.POSTER_NAMES))
            h = rng.uniform(0.5, 1.0)
            w = h * tx.photo_aspect(name)
            if (s := free_slot(w)) is None:
                continue
            poster = b.add_texture(tx.photo(name, size, crop_square=False), periodic=False)
            p = np.array([cx, cy, rng.uniform(1.4, min(2.0, height - h / 2 - 0.1))]) + along * s + n * 0.015
            b.add_wall(p, n, w, h, poster, (w, h), tex_offset=(0.0, 0.0))
        for _ in range(int(rng.integers(1, 4))):
            kind = rng.integers(3)
            w = rng.uniform(0.8, 1.8)
            if (s := free_slot(w)) is None:
                continue
            depth = rng.uniform(0.3, 0.6)
            base = np.array([cx, cy, 0.0]) + along * s + n * (depth / 2 + 0.02)
            yaw = float(np.arctan2(n[1], n[0]))
            if kind == 0:  # bookshelf: book spines on the front
                h = rng.uniform(1.6, 2.2)
                b.add_box(
                    base + _up(h / 2),
                    (depth, w, h),
                    {"default": wood, "front": books},
                    (0.6, 0.35),
                    yaw=yaw,
                )
            elif kind == 1:  # sideboard / cabinet
                h = rng.uniform(0.7, 1.0)
                b.add_box(base + _up(h / 2), (depth, w, h), dark_wood, (0.8, 0.8), yaw=yaw)
                _clutter(b, base + _up(h), w, depth, yaw, clutter)
            else:  # sofa: seat and back
                b.add_box(base + _up(0.22), (depth, w, 0.44), fabric, (0.8, 0.8), yaw=yaw)
                back = base - n * (depth / 2 - 0.08) + _up(0.6)
                b.add_box(back, (0.16, w, 0.5), fabric, (0.8, 0.8), yaw=yaw)

    # Middle of the room: rug (just above the floor) and a low table, both under the cameras' free space.
    rw, rd = rng.uniform(1.6, 2.6), rng.uniform(1.2, 1.8)
    b.add_quad((-rw / 2, rd / 2, 0.004), (1, 0, 0), (0, -1, 0), (rw, rd), rug, (rw, rd), normal=(0, 0, 1))
    table_xy, table_w = (rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.3)), rng.uniform(0.8, 1.4)
    _table(b, table_xy, (table_w, 0.6, 0.45), wood, metal)
    _clutter(b, (*table_xy, 0.45), table_w, 0.5, 0.0, clutter)
    # Cartons on the floor along the end walls (outside the cameras' free space, below their height).
    for _ in range(int(rng.integers(1, 4))):
        sx, sy, sz = rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.6), rng.uniform(0.25, 0.5)
        x = rng.choice([-1, 1]) * (half_x - 0.45)
        y = rng.uniform(-half_y + 0.5, half_y - 0.5)
        b.add_box((x, y, sz / 2), (sx, sy, sz), cardboard, (0.5, 0.5), yaw=rng.uniform(-0.4, 0.4))

    lights = np.array([[-half_x / 2, 0.0, height - 0.15], [half_x / 2, 0.0, height - 0.15]])
    lighting = Lighting(
        ambient=rng.uniform(0.25, 0.4),
        sun_direction=np.array([0.3, 0.2, 0.93]) / np.linalg.norm([0.3, 0.2, 0.93]),
        sun_strength=rng.uniform(0.1, 0.25),
        light_positions=lights,
        light_strengths=rng.uniform(0.6, 1.0, 2),
        light_radius=rng.uniform(1.5, 2.5),
        gain=rng.uniform(0.8, 1.2),
    )
    for lx, ly, lz in lights:
        b.add_box(
            (lx, ly, lz + 0.07), (0.4, 0.4, 0.06), ceiling, (0.4, 0.4), tint=(2.5, 2.5, 2.3), bottom=True
        )
    return b.build("indoor", seed, lighting, None, FREE_SPACE)
