"""benchmarks.section: the header lines every results section starts with, and the section writer."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from benchmarks import section
from benchmarks.section import header_lines, write_section


@pytest.fixture(autouse=True)
def fixed_provenance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(section, "code_version", lambda: "abc1234-dirty")
    monkeypatch.setattr(
        section, "machine_description", lambda torch_info=True: "2 CPUs" + ("; no CUDA" if torch_info else "")
    )


def test_the_header_has_title_command_machine_and_date_in_that_order() -> None:
    lines = header_lines(
        "A topic",
        "benchmarks.topic",
        ["--note", "two words", "--configs", "a=1;b=2"],
        machine_extra="torch threads 2",
        date=datetime.datetime(2026, 12, 6, 9, 44, tzinfo=datetime.UTC),
        run="3 seeds",
    )
    assert lines == [
        "## A topic",
        "",
        "Command: `.venv/bin/python -m benchmarks.topic --note 'two words' --configs 'a=1;b=2'`  ",
        "Machine: 2 CPUs; no CUDA; torch threads 2  ",
        "Date: 2026-12-06 09:44 UTC, code abc1234-dirty; 3 seeds  ",
    ]


def test_the_date_line_is_utc_and_takes_a_code_and_model_read_at_the_start() -> None:
    start = datetime.datetime(2026, 12, 6, 11, 44, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    date = header_lines("T", "benchmarks.t", [], date=start, code="0123abc", model="m.safetensors on cpu")[-1]
    assert date == "Date: 2026-12-06 09:44 UTC, code 0123abc, model m.safetensors on cpu  "


def test_defaults_leave_out_the_extras_and_date_the_header_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["prog", "--frames", "5"])
    before = datetime.datetime.now(datetime.UTC).replace(second=0, microsecond=0)
    _, _, command, machine, date = header_lines("T", "benchmarks.t", None, torch_info=False)
    assert command == "Command: `.venv/bin/python -m benchmarks.t --frames 5`  "
    assert machine == "Machine: 2 CPUs  "
    stamp = datetime.datetime.strptime(date.split(",")[0], "Date: %Y-%m-%d %H:%M UTC").replace(
        tzinfo=datetime.UTC
    )
    assert before <= stamp <= datetime.datetime.now(datetime.UTC)
    assert date.endswith(" UTC, code abc1234-dirty  ")


def test_write_section_writes_the_header_then_the_body(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "topic.md"
    text = write_section(out, "A topic", "benchmarks.topic", ["--x", "1"], "2 runs", ["| a |", "|---|"])
    assert out.read_text() == text and text in capsys.readouterr().out
    lines = text.splitlines()
    assert lines[:5] == header_lines(
        "A topic", "benchmarks.topic", ["--x", "1"], date=_date_of(lines), run="2 runs"
    )
    assert lines[5:] == ["", "| a |", "|---|"]


def _date_of(lines: list[str]) -> datetime.datetime:
    stamp = lines[4].split(",")[0]
    return datetime.datetime.strptime(stamp, "Date: %Y-%m-%d %H:%M UTC").replace(tzinfo=datetime.UTC)
