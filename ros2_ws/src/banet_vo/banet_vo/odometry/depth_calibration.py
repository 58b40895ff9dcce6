"""A monotone calibration of BA-Net's depth, fitted on clips with ground-truth poses and kept beside the
checkpoint it belongs to.

BA-Net trained on our renderer pulls every depth toward a middle value on real images (far depths too near,
near ones too far indoors), so a keyframe's learned-scale measurement follows how far its landmarks happen
to be (docs/preregistered/learned_scale_near.txt). A power law in depth, d' = exp(a) d^b, moves the level
of that measurement. `banet-vo-eval depth-curve` (evaluation.depth_curve) fits a and b and writes
`<checkpoint stem>.depth_calibration.json` next to the checkpoint; the keyframe odometry applies it when
`OdometryConfig.depth_calibration` is on. None ships with our models: on the real clips a power law
brought KITTI's metric error down (SE(3) 14.9 → 1.4 m) but stretched the measurement's keyframe-to-keyframe
wander into the trajectory's shape, and indoors BA-Net's depth does not follow the truth at all. A gain
alone (exponent 1) fitted on one recording of a car camera kept the shape and fixed the level on another
(docs/preregistered/depth_calibration*.txt, docs/frontend.md step 6).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

SUFFIX = ".depth_calibration.json"
FORM = "power"


@dataclass(frozen=True)
class DepthCalibration:
    """d' = exp(log_gain) · d^exponent for each valid (finite, > 0) depth; other pixels stay as they are."""

    log_gain: float
    exponent: float
    fitted_on: dict = field(default_factory=dict)  # provenance: clips, counts, command, date

    def __post_init__(self) -> None:
        for name in ("log_gain", "exponent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"DepthCalibration.{name} must be a finite number, got {value!r}")
        if not 0.1 <= self.exponent <= 10.0:
            # Outside this the curve is no longer a correction of BA-Net's depth but a different quantity.
            raise ValueError(f"DepthCalibration.exponent must be within [0.1, 10], got {self.exponent!r}")

    def apply(self, depth: np.ndarray) -> np.ndarray:
        """The calibrated depth (float32, same shape); NaN, inf and non-positive pixels pass unchanged."""
        d = np.asarray(depth, dtype=np.float32)
        out = d.copy()
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(d) & (d > 0)
        v = d[valid].astype(np.float64)
        out[valid] = np.exp(self.log_gain + self.exponent * np.log(v)).astype(np.float32)
        return out

    def gain(self, depth: np.ndarray, calibrated: bool = False) -> float:
        """d'/d at the median valid (finite, > 0) pixel of `depth`, BA-Net's or (`calibrated`) the curve's:
        the factor that takes a length BA-Net measures beside that depth, such as its translation, into
        the calibrated metres. Exact for a gain alone (exponent 1: any depth, even none); a power law
        scales near and far differently, so its gain at the median stands for the whole view.
        ValueError when a power law has no valid pixel to take it at."""
        if self.exponent == 1.0:
            return math.exp(self.log_gain)
        d = np.asarray(depth, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            d = d[np.isfinite(d) & (d > 0)]
        if d.size == 0:
            raise ValueError("depth has no valid (finite, > 0) pixel to take the calibration's gain at")
        log_d = math.log(float(np.median(d)))
        if calibrated:  # the BA-Net depth that the curve takes there (the curve is monotone)
            log_d = (log_d - self.log_gain) / self.exponent
        return math.exp(self.log_gain + (self.exponent - 1.0) * log_d)

    def describe(self) -> str:
        return f"d' = {math.exp(self.log_gain):.4g} d^{self.exponent:.4g}"

    def to_json(self) -> str:
        return json.dumps({"form": FORM, **asdict(self)}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "calibration") -> DepthCalibration:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{source}: not JSON: {err}") from None
        if not isinstance(data, dict) or data.get("form") != FORM:
            raise ValueError(f"{source}: expected an object with form {FORM!r}")
        try:
            return cls(float(data["log_gain"]), float(data["exponent"]), dict(data.get("fitted_on") or {}))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{source}: missing or bad log_gain / exponent ({err})") from None


def path_beside(checkpoint: str | Path) -> Path:
    """Where a checkpoint's calibration lives: models/x.safetensors → models/x.depth_calibration.json."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + SUFFIX)


def load_beside(checkpoint: str | Path) -> DepthCalibration | None:
    """The calibration shipped beside `checkpoint`, or None when it has none; ValueError for a bad file."""
    path = path_beside(checkpoint)
    if not path.is_file():
        return None
    return DepthCalibration.from_json(path.read_text(), source=str(path))
