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


def test_a_write_stopped_midway_leaves_the_previous_file_whole_and_no_temporary(tmp_path, monkeypatch):
    from banet_vo.evaluation import report

    path = write_json(tmp_path / "metrics.json", {"ate": 1.0})

    def interrupted(src, dst):  # a Ctrl-C after the new text was written, before it took the old one's place
        raise KeyboardInterrupt

    monkeypatch.setattr(report.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"ate": 2.0, "frames": 10})
    assert json.loads(path.read_text()) == {"ate": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
