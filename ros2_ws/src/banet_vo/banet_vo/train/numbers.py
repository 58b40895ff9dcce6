"""Numbers of the training configs: finite floats, whatever spelling YAML gave them.

PyYAML follows YAML 1.1, where ``1e-3`` (no dot) is not a float but the string '1e-3'; a config that said
``lr: 1e-3`` then passed ``float(x) > 0`` and failed an hour later inside Adam. ``.inf`` and ``.nan`` are
floats to YAML but no setting here means anything with them (``max_wall_s: .nan`` meant "no limit").
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["coerce_floats", "finite_number"]


def finite_number(value: Any, name: str) -> float:
    """``value`` as a finite float: a number, or a string that spells one; bools, other strings, NaN and
    infinities are a ValueError naming ``name``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def coerce_floats(config: Any, prefix: str) -> None:
    """Every field annotated ``float`` of the frozen dataclass instance ``config`` through
    ``finite_number`` (call from ``__post_init__``; ``prefix`` starts each field's name in messages)."""
    for f in dataclasses.fields(config):
        if f.type == "float":
            value = finite_number(getattr(config, f.name), f"{prefix}{f.name}")
            object.__setattr__(config, f.name, value)
