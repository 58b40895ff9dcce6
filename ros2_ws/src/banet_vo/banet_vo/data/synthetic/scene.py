"""Scene description: textured planar rectangles ("quads"; boxes are made of quads), lights and sky.

World frame of every scene: z up, metres. Driving scenes run along +x (the road's centre line is y = 0,
traffic drives on the right, y < 0); rooms are centred on the origin with the floor at z = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from banet_vo.data.synthetic.atlas import WRAP_MIRROR, WRAP_REPEAT, TextureAtlas

UP = np.array([0.0, 0.0, 1.0])


@dataclass
class Lighting:
    """Lambertian shading: ambient + a sun (directional) + point lights with 1 / (1 + r²/r0²) fall-off."""

    ambient: float
    sun_direction: np.ndarray  # unit vector towards the sun (world)
    sun_strength: float
    light_positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    light_strengths: np.ndarray = field(default_factory=lambda: np.zeros(0))
    light_radius: float = 2.0
    gain: float = 1.0  # scene-wide brightness, varied by seed


@dataclass
class Sky:
    """Background at infinity (depth 0 = invalid): a colour gradient by elevation plus a cloud layer."""

    zenith: np.ndarray
    horizon: np.ndarray
    cloud_texture: int
    cloud_scale: float  # texture units per unit of tan(angle from zenith)


@dataclass
class Scene:
    """Q quads as torch float32 tensors, their textures and the light. Build with SceneBuilder."""

    kind: str
    seed: int
    origin: torch.Tensor  # (Q, 3) one corner
    u_axis: torch.Tensor  # (Q, 3) unit, along the first side (texture u)
    v_axis: torch.Tensor  # (Q, 3) unit, along the second side (texture v)
    extent: torch.Tensor  # (Q, 2) side lengths in metres along u_axis, v_axis
    normal: torch.Tensor  # (Q, 3) unit shading normal (outward for boxes)
    texture: torch.Tensor  # (Q,) long, index into atlas
    tile: torch.Tensor  # (Q, 2) metres per texture repeat along u, v
    tex_offset: torch.Tensor  # (Q, 2) texture units
    tint: torch.Tensor  # (Q, 3) linear RGB multiplier
    atlas: TextureAtlas
    lighting: Lighting
    sky: Sky | None
    free_space: tuple[np.ndarray, np.ndarray]  # axis-aligned box where cameras may be placed

    @property
    def num_quads(self) -> int:
        return int(self.origin.shape[0])

    def corners(self) -> torch.Tensor:
        """(Q, 4, 3) corners in order origin, +u, +u+v, +v."""
        du = self.u_axis * self.extent[:, :1]
        dv = self.v_axis * self.extent[:, 1:]
        return torch.stack([self.origin, self.origin + du, self.origin + du + dv, self.origin + dv], dim=1)


class SceneBuilder:
    """Collects textures and quads, then freezes them into a Scene."""

    def __init__(self, rng: np.random.Generator, texture_size: int = 256) -> None:
        self.rng = rng
        self.texture_size = texture_size
        self._textures: list[np.ndarray] = []
        self._wraps: list[int] = []
        self._quads: list[tuple] = []

    def add_texture(self, image: np.ndarray, *, periodic: bool) -> int:
        if image.shape != (self.texture_size, self.texture_size, 3):
            raise ValueError(f"texture image has shape {image.shape}, expected {self.texture_size}² x 3")
        self._textures.append(np.asarray(image, np.float32))
        self._wraps.append(WRAP_REPEAT if periodic else WRAP_MIRROR)
        return len(self._textures) - 1

    def add_quad(
        self,
        origin,
        u_axis,
        v_axis,
        extent: tuple[float, float],
        texture: int,
        tile: tuple[float, float],
        *,
        normal=None,
        tint=(1.0, 1.0, 1.0),
        tex_offset: tuple[float, float] | None = None,
    ) -> None:
        u = np.asarray(u_axis, float)
        v = np.asarray(v_axis, float)
        u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
        if abs(float(u @ v)) > 1e-6:
            raise ValueError("quad u_axis and v_axis must be orthogonal")
        if extent[0] <= 0 or extent[1] <= 0:
            raise ValueError(f"quad extent must be positive, got {extent}")
        if not 0 <= texture < len(self._textures):
            raise ValueError(f"quad texture index {texture} out of range")
        n = np.cross(u, v) if normal is None else np.asarray(normal, float)
        if tex_offset is None:
            tex_offset = tuple(self.rng.random(2))
        self._quads.append(
            (np.asarray(origin, float), u, v, extent, n / np.linalg.norm(n), texture, tile, tex_offset, tint)
        )

    def add_wall(
        self,
        centre,
        normal,
        width: float,
        height: float,
        texture: int,
        tile,
        *,
        tint=(1, 1, 1),
        tex_offset=None,
    ) -> None:
        """Vertical rectangle seen from the side `normal` points to: texture upright and not mirrored."""
        n = np.asarray(normal, float)
        n = n / np.linalg.norm(n)
        u = np.cross(-n, UP)
        u = u / np.linalg.norm(u)
        corner = np.asarray(centre, float) - u * width / 2 + UP * height / 2
        self.add_quad(
            corner, u, -UP, (width, height), texture, tile, normal=n, tint=tint, tex_offset=tex_offset
        )

    def add_box(
        self,
        centre,
        size,
        textures: int | dict[str, int],
        tile,
        *,
        yaw: float = 0.0,
        tint=(1, 1, 1),
        bottom: bool = False,
        aligned_front: bool = False,
    ) -> None:
        """Oriented box (yaw about z). `textures`: one id or {"front", "back", "left", "right", "top",
        "default"}; front faces +x of the box frame. `aligned_front` starts the front texture at its
        top-left corner (facades: whole windows)."""
        c = np.asarray(centre, float)
        sx, sy, sz = (float(s) for s in size)
        ex = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        ey = np.array([-np.sin(yaw), np.cos(yaw), 0.0])

        def tex(name: str) -> int:
            if isinstance(textures, dict):
                return textures.get(name, textures["default"])
            return textures

        faces = {"front": (ex, sx, sy), "back": (-ex, sx, sy), "left": (ey, sy, sx), "right": (-ey, sy, sx)}
        for name, (n, depth, width) in faces.items():
            offset = (0.0, 0.0) if (aligned_front and name == "front") else None
            self.add_wall(c + n * depth / 2, n, width, sz, tex(name), tile, tint=tint, tex_offset=offset)
        top = c + UP * sz / 2
        self.add_quad(
            top - ex * sx / 2 - ey * sy / 2, ex, ey, (sx, sy), tex("top"), tile, normal=UP, tint=tint
        )
        if bottom:
            bottom_corner = c - UP * sz / 2 - ex * sx / 2 - ey * sy / 2
            self.add_quad(bottom_corner, ey, ex, (sy, sx), tex("top"), tile, normal=-UP, tint=tint)

    def build(
        self,
        kind: str,
        seed: int,
        lighting: Lighting,
        sky: Sky | None,
        free_space: tuple[np.ndarray, np.ndarray],
    ) -> Scene:
        if not self._quads:
            raise ValueError("a scene needs at least one quad")
        cols = list(zip(*self._quads, strict=True))

        def f32(values) -> torch.Tensor:
            return torch.tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32)

        return Scene(
            kind=kind,
            seed=seed,
            origin=f32(cols[0]),
            u_axis=f32(cols[1]),
            v_axis=f32(cols[2]),
            extent=f32(cols[3]),
            normal=f32(cols[4]),
            texture=torch.tensor(cols[5], dtype=torch.long),
            tile=f32(cols[6]),
            tex_offset=f32(cols[7]),
            tint=f32(cols[8]),
            atlas=TextureAtlas(self._textures, self._wraps),
            lighting=lighting,
            sky=sky,
            free_space=free_space,
        )
