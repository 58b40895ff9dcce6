"""evaluation.report.write_json: the one writer of the tools' JSON files writes strict JSON."""

import json
import math

import numpy as np
import pytest
from banet_vo.evaluation.report import write_json


def _refuse(constant: str):
    raise ValueError(f"not strict JSON: {constant}")


def test_nan_and_infinities_become_null_and_strings_in_lists_and_dicts(tmp_path):
    rows = [
        {"ate": float("nan"), "scale": np.float32(2.5), "frames": np.int64(7), "t": np.array([1.0, np.nan])},
        {"ate": math.inf, "low": -math.inf, 3: "int key"},
    ]
    path = write_json(tmp_path / "deep" / "rows.json", rows, indent=1)
    text = path.read_text()
    back = json.loads(text, parse_constant=_refuse)  # a bare NaN / Infinity would raise here
    assert back == [
        {"ate": None, "scale": 2.5, "frames": 7, "t": [1.0, None]},
        {"ate": "inf", "low": "-inf", "3": "int key"},
    ]
    assert text.endswith("\n") and '\n {\n  "ate"' in text  # indent 1 as asked


def test_an_object_json_cannot_hold_is_an_error_not_a_silent_string(tmp_path):
    with pytest.raises(TypeError):
        write_json(tmp_path / "x.json", {"path": object()})
