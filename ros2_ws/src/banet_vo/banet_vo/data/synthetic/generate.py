"""Whole synthetic sequences: scene + trajectory + rendering + sensor, as an InMemorySequence."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from banet_vo.data.sequence import Frame, InMemorySequence
from banet_vo.data.synthetic.atlas import to_display
from banet_vo.data.synthetic.render import camera_from_fov, quantize, render_radiance
from banet_vo.data.synthetic.room import make_room
from banet_vo.data.synthetic.scene import Scene
from banet_vo.data.synthetic.sensor import Sensor, SensorModel
from banet_vo.data.synthetic.street import make_street
from banet_vo.data.synthetic.trajectory import DRIVING_STEP_M, make_trajectory

logger = logging.getLogger(__name__)

KINDS = ("driving", "indoor")
DEFAULT_FOV_DEG = {"driving": 80.0, "indoor": 65.0}  # KITTI-like / HoloLens-like horizontal FOV
# Shutter time for motion blur (seconds) and the number of poses averaged across it.
SHUTTER_S = {"driving": 0.008, "indoor": 0.012}
BLUR_SAMPLES = 5
DEFAULT_SENSOR = SensorModel()


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run a block with `threads` torch intra-op threads (None: unchanged), restoring the old count."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def make_scene(kind: str, seed: int, *, length: float | None = None) -> Scene:
    """A procedural scene: "driving" (a street along +x covering [0, length] m, default 200) or "indoor"
    (a room). Different seeds give different layouts, textures and lighting."""
    if kind == "driving":
        return make_street(seed, 200.0 if length is None else float(length))
    if kind == "indoor":
        return make_room(seed)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _check_size(size) -> tuple[int, int]:
    try:
        width, height = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height), got {size!r}") from None
    if width < 8 or height < 8 or width > 8192 or height > 8192:
        raise ValueError(f"size must be between 8 and 8192 pixels per side, got {width}x{height}")
    return width, height


def render_sequence(
    scene: str = "driving",
    frames: int = 10,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    fov_deg: float | None = None,
    blur: bool = False,
    *,
    sensor: SensorModel | None = DEFAULT_SENSOR,
    supersample: int = 1,
    progress: bool = False,
    threads: int | None = 1,
) -> InMemorySequence:
    """Render a synthetic sequence with exact z-depth (0 = sky, driving only) and camera-to-world poses.

    `sensor=None` gives noise-free frames at a fixed exposure; `blur` averages BLUR_SAMPLES poses across
    the shutter (depth and pose stay those of the frame's timestamp); `supersample` k renders k x k rays
    per pixel for smoother geometry edges (k² times slower). `threads`: torch intra-op threads while
    rendering, restored afterwards (None leaves torch's setting). The renderer's tensors are small, so
    one thread is the fastest on a busy machine; render several sequences in parallel processes instead.
    """
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    if scene not in KINDS:
        raise ValueError(f"scene must be one of {KINDS}, got {scene!r}")
    if isinstance(frames, bool) or not isinstance(frames, int | np.integer) or frames < 1:
        raise ValueError(f"frames must be a positive integer, got {frames!r}")
    width, height = _check_size(size)
    fov = DEFAULT_FOV_DEG[scene] if fov_deg is None else float(fov_deg)
    camera = camera_from_fov(width, height, fov)
    trajectory = make_trajectory(scene, int(frames), seed)
    with torch_threads(threads):
        world = make_scene(scene, seed, length=DRIVING_STEP_M[1] * frames + 10.0)
        sensor_state = Sensor(sensor, seed, int(frames)) if sensor is not None else None
        shutter = SHUTTER_S[scene]
        out = []
        for i, (t, pose) in enumerate(zip(trajectory.timestamps, trajectory.poses, strict=True)):
            radiance, depth = render_radiance(world, pose, camera, supersample)
            if blur:  # BLUR_SAMPLES is odd: the middle sample is the frame's own render above
                for k in range(BLUR_SAMPLES):
                    dt = shutter * ((k + 0.5) / BLUR_SAMPLES - 0.5)
                    if k != BLUR_SAMPLES // 2:
                        radiance += render_radiance(world, trajectory.pose_at(t + dt), camera, supersample)[0]
                radiance /= BLUR_SAMPLES
            if sensor_state is not None:
                image = sensor_state.expose(radiance)[0]
            else:
                image = quantize(to_display(radiance))
            out.append(Frame(i, float(t), image, camera, depth.numpy().astype(np.float32), pose.copy()))
            if progress:
                print(f"rendered frame {i + 1}/{frames}", file=sys.stderr, flush=True)
    return InMemorySequence(out, name=f"synthetic-{scene}-seed{seed}")


__all__ = ["DEFAULT_FOV_DEG", "KINDS", "make_scene", "render_sequence", "torch_threads"]
