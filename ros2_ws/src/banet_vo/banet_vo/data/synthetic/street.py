"""Procedural street: road with markings, kerbs and pavements, facades with windows, parked cars, poles,
trees and a sky. Everything but the sky is closed off (cross-street blocks at both ends, a back row of
buildings), so every non-sky pixel has finite depth.
"""

from __future__ import annotations

import math

import numpy as np

from banet_vo.data.synthetic import textures as tx
from banet_vo.data.synthetic.scene import Lighting, Scene, SceneBuilder, Sky

# Cameras drive along y = LANE_Y (right-hand lane); parked cars keep clear of it (see free_space).
LANE_Y = -1.75
CAMERA_HEIGHT = 1.6


def _wall_textures(b: SceneBuilder, count: int) -> list[tuple[int, int]]:
    """(facade-with-window, plain wall) texture pairs in varied styles."""
    rng, size = b.rng, b.texture_size
    pairs = []
    for _ in range(count):
        style = rng.integers(4)
        if style == 0:
            colour = rng.uniform(0.35, 0.8, 3) * np.array([1.0, 0.7, 0.55])
            wall = tx.bricks(
                rng, size, rows=int(rng.choice([24, 32])), cols=int(rng.choice([8, 10])), colour=colour
            )
        elif style == 1:  # pebble-dash render
            wall = tx.tint(0.4 + 0.6 * tx.photo("gravel", size), rng.uniform(0.6, 1.0, 3))
        elif style == 2:
            wall = tx.noisy_paint(rng, size, rng.uniform(0.45, 0.95, 3), amount=0.2)
        else:
            wall = tx.stripes(rng, size, count=int(rng.choice([16, 24])), noise=0.2)
        pairs.append((b.add_texture(tx.facade(rng, wall), periodic=True), b.add_texture(wall, periodic=True)))
    return pairs


def _car(b: SceneBuilder, x: float, y: float, yaw: float, paint: int, tyre: int, glass: int) -> None:
    rng = b.rng
    length, width = rng.uniform(3.8, 4.8), rng.uniform(1.65, 1.9)
    if rng.random() < 0.6:  # most cars are white, silver, grey or black
        colour = np.full(3, rng.choice([0.08, 0.3, 0.55, 0.85])) * rng.uniform(0.95, 1.05, 3)
    else:
        colour = rng.uniform(0.1, 0.9, 3)
    b.add_box((x, y, 0.65), (length, width, 0.7), paint, (1.5, 1.5), yaw=yaw, tint=colour)
    cabin = length * rng.uniform(0.45, 0.6)
    b.add_box((x - 0.1 * length, y, 1.25), (cabin, width * 0.9, 0.5), glass, (1.0, 1.0), yaw=yaw)
    for axle in (-0.32, 0.32):
        cx, cy = x + np.cos(yaw) * axle * length, y + np.sin(yaw) * axle * length
        b.add_box((cx, cy, 0.3), (0.62, width * 0.95, 0.6), tyre, (1.0, 1.0), yaw=yaw)


def make_street(seed: int, length: float = 200.0, texture_size: int = 256) -> Scene:
    """A straight street covering x in [0, length] (plus margins) with the camera lane at y = LANE_Y."""
    if not length > 0:
        raise ValueError(f"length must be positive, got {length}")
    # Whole 50 m blocks, and one random stream per side and kind of object (drawn left to right), so
    # sequences of different lengths from one seed share their street as far as it goes.
    length = 50.0 * math.ceil(length / 50.0)

    def stream(part: int) -> np.random.Generator:
        b.rng = np.random.default_rng([seed, 1, part])
        return b.rng

    rng = np.random.default_rng([seed, 1])
    b = SceneBuilder(rng, texture_size)
    size = texture_size
    x0, x1 = -40.0, length + 40.0
    half_road = rng.uniform(4.6, 6.0)
    pavement = rng.uniform(2.0, 4.0)
    kerb_y = half_road + pavement

    road = b.add_texture(tx.road(rng, size), periodic=True)
    paving = b.add_texture(tx.tiles(rng, size, count=4, colour=rng.uniform(0.55, 0.8, 3)), periodic=True)
    ground = b.add_texture(tx.tint(tx.photo("grass", size), (0.55, 0.75, 0.4)), periodic=False)
    roof = b.add_texture(tx.tint(tx.photo("gravel", size), (0.45, 0.45, 0.48)), periodic=False)
    kerb = b.add_texture(tx.noisy_paint(rng, size, (0.7, 0.7, 0.68), amount=0.3), periodic=True)
    metal = b.add_texture(tx.noisy_paint(rng, size, (0.5, 0.52, 0.55), amount=0.35), periodic=True)
    bark = b.add_texture(tx.planks(rng, size, count=3, colour=(0.35, 0.25, 0.18)), periodic=True)
    leaves = b.add_texture(tx.tint(tx.photo("grass", size), (0.35, 0.6, 0.25)), periodic=False)
    paint = b.add_texture(tx.noisy_paint(rng, size, (0.9, 0.9, 0.9), amount=0.12), periodic=True)
    tyre = b.add_texture(tx.noisy_paint(rng, size, (0.12, 0.12, 0.12), amount=0.4), periodic=True)
    glass = b.add_texture(
        tx.stripes(rng, size, count=2, colours=[(0.15, 0.2, 0.25), (0.3, 0.35, 0.4)]), periodic=True
    )
    signs = [b.add_texture(tx.photo(name, size), periodic=False) for name in rng.choice(tx.POSTER_NAMES, 3)]
    styles = _wall_textures(b, int(rng.integers(4, 7)))
    clouds = b.add_texture(tx.sky_clouds(rng, size), periodic=True)

    # Ground under everything, road, pavements (low boxes: their kerb faces are visible).
    b.add_quad((x0 - 60, 120, -0.02), (0, -1, 0), (1, 0, 0), (240, x1 - x0 + 120), ground, (6.0, 6.0))
    b.add_quad(
        (x0, half_road, 0.0),
        (0, -1, 0),
        (1, 0, 0),
        (2 * half_road, x1 - x0),
        road,
        (2 * half_road, 9.0),
        tex_offset=(0.0, rng.random()),
    )
    for side in (1, -1):
        b.add_box(
            ((x0 + x1) / 2, side * (half_road + pavement / 2), 0.075),
            (x1 - x0, pavement, 0.15),
            {"default": kerb, "top": paving},
            (2.0, 2.0),
        )

    # Facades: blocks of whole bays and storeys, small random setbacks and alleys.
    for side in (1, -1):
        rng = stream(10 + side)
        x = x0 - 10.0
        while x < x1 + 10.0:
            facade, wall = styles[rng.integers(len(styles))]
            bay, storey = rng.uniform(2.6, 4.0), rng.uniform(2.9, 3.6)
            width = bay * int(rng.integers(2, 7))
            height = storey * int(rng.integers(2, 8))
            depth = rng.uniform(8.0, 14.0)
            setback = rng.uniform(0.0, 1.5)
            centre_y = side * (kerb_y + setback + depth / 2)
            b.add_box(
                (x + width / 2, centre_y, height / 2),
                (depth, width, height),
                {"front": facade, "default": wall, "top": roof},
                (bay, storey),
                yaw=-side * np.pi / 2,  # the box front (+x of its frame) looks at the street
                tint=rng.uniform(0.8, 1.1, 3),
                aligned_front=True,
            )
            x += width + (rng.uniform(2.0, 5.0) if rng.random() < 0.25 else 0.0)
    for side in (1, -1):
        rng = stream(20 + side)
        back_facade, _ = styles[rng.integers(len(styles))]
        b.add_wall(
            ((x0 + x1) / 2, side * (kerb_y + 30.0), 15.0),
            (0, -side, 0),
            x1 - x0 + 80,
            30.0,
            back_facade,
            (3.2, 3.2),
        )
    for end_x, normal in ((x0 - 12.0, 1.0), (x1 + 12.0, -1.0)):
        facade, _ = styles[rng.integers(len(styles))]
        b.add_wall((end_x, 0.0, 12.0), (normal, 0, 0), 2 * kerb_y + 80.0, 24.0, facade, (3.2, 3.2))

    # Parked cars along both kerbs (never in the camera lane), poles, signs and trees on the pavements.
    for side in (1, -1):
        rng = stream(30 + side)
        x = x0 + rng.uniform(0, 6)
        while x < x1:
            if rng.random() < 0.6:
                _car(b, x, side * (half_road - 1.15), rng.normal(0, 0.03), paint, tyre, glass)
            x += rng.uniform(5.5, 11.0)
        rng = stream(40 + side)
        x = x0 + rng.uniform(0, 10)
        while x < x1:
            y = side * (half_road + 0.5)
            kind = rng.random()
            if kind < 0.45:
                pole_h = rng.uniform(5.0, 7.0)
                b.add_box((x, y, pole_h / 2), (0.16, 0.16, pole_h), metal, (1.0, 1.0))
                b.add_box((x, y - side * 0.8, pole_h - 0.1), (0.3, 1.6, 0.15), metal, (1.0, 1.0))
            elif kind < 0.7:
                b.add_box((x, y, 1.2), (0.08, 0.08, 2.4), metal, (1.0, 1.0))
                sign = signs[rng.integers(len(signs))]
                b.add_box(
                    (x, y, 2.6), (0.04, 0.8, 0.8), {"default": metal, "front": sign, "back": sign}, (0.8, 0.8)
                )
            else:
                trunk_h = rng.uniform(2.0, 3.0)
                b.add_box(
                    (x, y + side * 0.3, trunk_h / 2), (0.3, 0.3, trunk_h), bark, (1.0, 1.0), yaw=rng.random()
                )
                crown = rng.uniform(2.0, 3.5)
                b.add_box(
                    (x, y + side * 0.3, trunk_h + crown / 2 - 0.3),
                    (crown, crown, crown),
                    leaves,
                    (2.0, 2.0),
                    yaw=rng.random(),
                    bottom=True,
                )
            x += rng.uniform(8.0, 20.0)

    rng = stream(50)
    elevation, azimuth = np.radians(rng.uniform(25, 65)), rng.uniform(0, 2 * np.pi)
    sun = np.array(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)]
    )
    lighting = Lighting(
        ambient=rng.uniform(0.35, 0.55),
        sun_direction=sun,
        sun_strength=rng.uniform(0.5, 0.8),
        gain=rng.uniform(0.8, 1.2),
    )
    sky = Sky(
        zenith=np.array([0.25, 0.45, 0.85]) * rng.uniform(0.8, 1.1, 3),
        horizon=np.array([0.8, 0.85, 0.9]) * rng.uniform(0.9, 1.05, 3),
        cloud_texture=clouds,
        cloud_scale=rng.uniform(0.15, 0.3),
    )
    free_space = (
        np.array([0.0, LANE_Y - 0.5, CAMERA_HEIGHT - 0.2]),
        np.array([length, LANE_Y + 0.5, CAMERA_HEIGHT + 0.2]),
    )
    return b.build("driving", seed, lighting, sky, free_space)
