"""Plain-text tables and JSON files for evaluation results (shared by the CLI subcommands)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def format_value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.4e}"
        return f"{value:.4f}"
    return str(value)


def format_table(rows: Sequence[tuple[str, object]], title: str = "") -> str:
    """Two-column table: metric name, value (right-aligned)."""
    cells = [(name, format_value(value)) for name, value in rows]
    wn = max([len(n) for n, _ in cells] + [6])
    wv = max([len(v) for _, v in cells] + [5])
    rule = "-" * (wn + wv + 3)
    lines = [title, rule] if title else [rule]
    lines += [f"{n:<{wn}} | {v:>{wv}}" for n, v in cells]
    lines.append(rule)
    return "\n".join(lines)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def write_json(path: str | Path, data: dict | list, indent: int = 2) -> Path:
    """`data` as strict JSON (NaN -> null, inf -> "inf": Python's default writes bare NaN, which other
    JSON readers refuse), keys as strings, numpy values as numbers; the folder is made, the file replaced
    whole (written beside it first); returns the path. Every JSON file the evaluation and benchmark tools
    write goes through here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_jsonable(data), indent=indent, allow_nan=False) + "\n"
    # whole or not at all: a run stopped while writing must not leave half a file that reads as its result
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:  # a Ctrl-C too: no temporary left beside the file
        tmp.unlink(missing_ok=True)
        raise
    return path
