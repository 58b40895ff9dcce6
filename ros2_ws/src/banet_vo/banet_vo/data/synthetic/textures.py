"""Texture images for the synthetic world: procedural patterns and photos shipped with scikit-image.

Every generator returns an S x S x 3 float32 array of display (sRGB-like) values in [0, 1]. Procedural
textures are periodic with period S, so they tile seamlessly with plain repeat; photos are not, so the
atlas tiles them with mirrored repeat (see `banet_vo.data.synthetic.atlas`).
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

# Photos bundled inside the scikit-image wheel (no download needed). Gray ones are tinted when used.
PHOTO_NAMES = (
    "brick",
    "grass",
    "gravel",
    "camera",
    "coffee",
    "astronaut",
    "chelsea",
    "rocket",
    "coins",
    "moon",
    "page",
    "text",
    "hubble_deep_field",
    "immunohistochemistry",
)
POSTER_NAMES = ("camera", "coffee", "astronaut", "chelsea", "rocket", "coins", "moon", "hubble_deep_field")


@cache
def _load_photo(name: str) -> np.ndarray:
    import skimage.data

    if name not in PHOTO_NAMES:
        raise ValueError(f"photo name must be one of {PHOTO_NAMES}, got {name!r}")
    image = np.asarray(getattr(skimage.data, name)())
    if image.dtype != np.uint8:
        raise ValueError(f"photo {name!r} has dtype {image.dtype}, expected uint8")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = image[..., :3].astype(np.float32) / 255.0
    image.setflags(write=False)
    return image


def photo(name: str, size: int, *, crop_square: bool = True) -> np.ndarray:
    """A bundled photo resized (area filter) to size x size; centre-cropped to a square first if asked."""
    image = _load_photo(name)
    if crop_square:
        h, w = image.shape[:2]
        m = min(h, w)
        y0, x0 = (h - m) // 2, (w - m) // 2
        image = image[y0 : y0 + m, x0 : x0 + m]
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)


def photo_aspect(name: str) -> float:
    """Width / height of a bundled photo (posters keep it so that they are not stretched)."""
    h, w = _load_photo(name).shape[:2]
    return w / h


def tint(gray_or_rgb: np.ndarray, colour) -> np.ndarray:
    """Multiply by an RGB colour; a gray texture becomes a coloured one."""
    return np.clip(gray_or_rgb * np.asarray(colour, dtype=np.float32), 0.0, 1.0).astype(np.float32)


def periodic_noise(rng: np.random.Generator, size: int, cells: int | tuple[int, int]) -> np.ndarray:
    """Value noise with `cells` lattice cells per period (x, y), smoothstep-interpolated; period = size."""
    cx, cy = (cells, cells) if isinstance(cells, int) else cells
    lattice = rng.random((cy, cx)).astype(np.float32)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    fx, fy = coords * cx, coords * cy
    ix0, iy0 = np.floor(fx).astype(int), np.floor(fy).astype(int)
    tx, ty = fx - ix0, fy - iy0
    tx, ty = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
    ix0, iy0 = ix0 % cx, iy0 % cy
    ix1, iy1 = (ix0 + 1) % cx, (iy0 + 1) % cy
    top = lattice[iy0][:, ix0] * (1 - tx) + lattice[iy0][:, ix1] * tx
    bottom = lattice[iy1][:, ix0] * (1 - tx) + lattice[iy1][:, ix1] * tx
    return (top * (1 - ty)[:, None] + bottom * ty[:, None]).astype(np.float32)


def fbm(
    rng: np.random.Generator,
    size: int,
    base_cells: int = 4,
    octaves: int = 6,
    persistence: float = 0.55,
    stretch: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """Fractal (multi-octave) periodic noise normalised to [0, 1]. `stretch` makes it anisotropic (grain)."""
    total = np.zeros((size, size), np.float32)
    amplitude, cells = 1.0, base_cells
    for _ in range(octaves):
        if cells * max(stretch) > size:
            break
        total += amplitude * periodic_noise(rng, size, (cells * stretch[0], cells * stretch[1]))
        amplitude *= persistence
        cells *= 2
    total -= total.min()
    return total / max(float(total.max()), 1e-6)


def _colour(rng: np.random.Generator, base, jitter: float) -> np.ndarray:
    """`base` varied mostly in brightness (as real materials vary), slightly in hue."""
    brightness = 1 + jitter * rng.standard_normal()
    hue = 1 + 0.25 * jitter * rng.standard_normal(3)
    return np.clip(np.asarray(base, np.float32) * brightness * hue, 0, 1).astype(np.float32)


def noisy_paint(rng: np.random.Generator, size: int, colour, amount: float = 0.25) -> np.ndarray:
    """Plaster / painted wall: a colour modulated by fractal noise (low- and high-frequency)."""
    n = fbm(rng, size, base_cells=3, octaves=7, persistence=0.6)
    return tint(np.repeat((1 - amount + 2 * amount * n)[..., None], 3, axis=2), colour)


def bricks(
    rng: np.random.Generator,
    size: int,
    rows: int = 8,
    cols: int = 4,
    colour=(0.62, 0.3, 0.22),
    mortar_colour=(0.75, 0.72, 0.66),
) -> np.ndarray:
    """Running-bond brick wall (`rows` must be even so the pattern is periodic), per-brick colour jitter."""
    if rows % 2:
        raise ValueError(f"rows must be even for a periodic brick pattern, got {rows}")
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    row = np.floor(y * rows / size).astype(int)
    shifted = x + (row % 2) * (size / cols / 2)
    col = np.floor(shifted * cols / size).astype(int) % cols
    fy = (y * rows / size) % 1.0
    fx = (shifted * cols / size) % 1.0
    # Mortar at least ~1.2 texels wide so that it survives the texture size.
    mortar_h = max(0.08, 1.2 * rows / size)
    mortar_w = max(0.08 * cols / rows, 1.2 * cols / size)
    is_mortar = (fy < mortar_h) | (fx < mortar_w)
    brick_colours = np.stack([_colour(rng, colour, 0.18) for _ in range(rows * cols)]).reshape(rows, cols, 3)
    image = brick_colours[row % rows, col]
    grain = fbm(rng, size, base_cells=8, octaves=5)[..., None]
    image = image * (0.75 + 0.5 * grain)
    mortar = np.asarray(mortar_colour, np.float32) * (0.85 + 0.3 * grain)
    image = np.where(is_mortar[..., None], mortar, image)
    return np.clip(image, 0, 1).astype(np.float32)


def stripes(
    rng: np.random.Generator, size: int, count: int = 8, colours=None, noise: float = 0.15
) -> np.ndarray:
    """Vertical stripes (wallpaper, siding, awnings) with a fine noise texture."""
    if colours is None:
        colours = [rng.random(3) * 0.7 + 0.2 for _ in range(2)]
    palette = np.asarray(colours, np.float32)
    x = (np.arange(size) + 0.5) * count / size
    index = np.floor(x).astype(int) % len(palette)
    image = np.broadcast_to(palette[index][None], (size, size, 3)).copy()
    n = fbm(rng, size, base_cells=16, octaves=4)[..., None]
    return np.clip(image * (1 - noise + 2 * noise * n), 0, 1).astype(np.float32)


def tiles(rng: np.random.Generator, size: int, count: int = 4, colour=(0.8, 0.78, 0.72)) -> np.ndarray:
    """Square floor/pavement tiles with grout lines and per-tile shade variation."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    ty, tx = np.floor(y * count / size).astype(int), np.floor(x * count / size).astype(int)
    fy, fx = (y * count / size) % 1.0, (x * count / size) % 1.0
    shades = 0.8 + 0.4 * rng.random((count, count)).astype(np.float32)
    image = np.asarray(colour, np.float32) * shades[ty, tx][..., None]
    image = image * (0.85 + 0.3 * fbm(rng, size, base_cells=16, octaves=4))[..., None]
    grout = (fy < 0.04) | (fx < 0.04)
    image[grout] *= 0.45
    return np.clip(image, 0, 1).astype(np.float32)


def planks(rng: np.random.Generator, size: int, count: int = 6, colour=(0.55, 0.36, 0.2)) -> np.ndarray:
    """Wooden planks along x: stretched noise for the grain, a dark gap and a shade per plank."""
    y = (np.arange(size) + 0.5)[:, None] * np.ones((1, size))
    plank = np.floor(y * count / size).astype(int)
    fy = (y * count / size) % 1.0
    grain = fbm(rng, size, base_cells=2, octaves=6, stretch=(1, 8))
    shades = 0.75 + 0.5 * rng.random(count).astype(np.float32)
    image = np.asarray(colour, np.float32) * (shades[plank] * (0.7 + 0.6 * grain))[..., None]
    image[fy < 0.035] *= 0.35
    return np.clip(image, 0, 1).astype(np.float32)


def facade(rng: np.random.Generator, wall: np.ndarray) -> np.ndarray:
    """One storey x one bay of a facade: `wall` texture with a framed window (one tile = one window)."""
    size = wall.shape[0]
    image = wall.copy()
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    w0, w1 = 0.2 + 0.1 * rng.random(), 0.7 + 0.1 * rng.random()
    h0, h1 = 0.15 + 0.1 * rng.random(), 0.7 + 0.1 * rng.random()
    frame = 0.03
    frame_colour = _colour(rng, rng.choice([0.15, 0.85]) * np.ones(3), 0.1)
    glass = _colour(rng, (0.18, 0.24, 0.3), 0.3)
    reflection = fbm(rng, size, base_cells=2, octaves=5)
    outer = (x > w0) & (x < w1) & (y > h0) & (y < h1)
    inner = (x > w0 + frame) & (x < w1 - frame) & (y > h0 + frame) & (y < h1 - frame)
    mullion = np.abs(x - (w0 + w1) / 2) < frame / 2
    image[outer] = frame_colour
    glass_image = glass * (0.6 + 0.9 * reflection)[..., None]
    pane = inner & ~mullion
    image[pane] = glass_image[pane]
    sill = (x > w0 - 0.03) & (x < w1 + 0.03) & (y > h1) & (y < h1 + 0.035)
    image[sill] = frame_colour * 0.8
    return np.clip(image, 0, 1).astype(np.float32)


def road(rng: np.random.Generator, size: int) -> np.ndarray:
    """Asphalt across the full road width (x) and one dash period along it (y): edge and centre lines."""
    asphalt = 0.25 + 0.12 * fbm(rng, size, base_cells=16, octaves=5)
    gravel = photo("gravel", size)[..., 0]
    base = (asphalt * (0.75 + 0.5 * gravel))[..., None] * _colour(rng, (1.0, 1.0, 1.0), 0.04)
    patches = fbm(rng, size, base_cells=3, octaves=3)[..., None]
    image = base * (0.8 + 0.35 * patches)
    x = (np.arange(size) + 0.5) / size
    y = (np.arange(size) + 0.5) / size
    paint = np.asarray([0.85, 0.85, 0.8], np.float32) * (0.85 + 0.15 * fbm(rng, size, 32, 3))[..., None]
    edge = (np.abs(x - 0.04) < 0.008) | (np.abs(x - 0.96) < 0.008)
    centre = (np.abs(x - 0.5) < 0.007)[None, :] & (y < 0.5)[:, None]
    mask = np.broadcast_to(edge[None, :], (size, size)) | centre
    image[mask] = paint[mask]
    return np.clip(image, 0, 1).astype(np.float32)


def sky_clouds(rng: np.random.Generator, size: int) -> np.ndarray:
    """Cloud cover (gray, periodic): thresholded fractal noise."""
    n = fbm(rng, size, base_cells=3, octaves=7, persistence=0.55)
    cover = np.clip((n - 0.45) * 2.5, 0, 1)
    return np.repeat(cover[..., None], 3, axis=2).astype(np.float32)
