"""One results section as the benchmarks write it: title, the command that made it, machine, date and
code, then its text; written to benchmarks/results/<topic>.md (or --out) and printed. A benchmark that
writes its section itself starts it with :func:`header_lines`."""

from __future__ import annotations

import datetime
import hashlib
import re
import shlex
import sys
from pathlib import Path

from banet_vo.provenance import code_version, machine_description

RUNS = Path(__file__).resolve().parents[1] / "runs"  # development and variant runs (not committed)


def header_lines(
    title: str,
    module: str,
    argv: list[str] | None,
    *,
    machine_extra: str = "",
    date: datetime.datetime | None = None,
    code: str | None = None,
    model: str = "",
    run: str = "",
    torch_info: bool = True,
) -> list[str]:
    """``## title``, a blank line, then the Command, Machine and Date lines of a results section.

    Each of the three lines ends in a markdown line break, so a caller may go on with the paragraph.
    ``argv``: the arguments after ``-m module`` (None: ``sys.argv[1:]``), each shell-quoted.
    ``machine_extra``: after the machine description, following "; " (torch threads, a shared CPU...).
    ``date``: when it ran (default now), shown in UTC; ``code``: the code version (default
    ``code_version()`` now). A long run passes both as read at its start: the tree may change under it.
    ``model``: ", model <model>" after the code; ``run``: after "; " (what was run: seeds, minutes...).
    """
    args = argv if argv is not None else sys.argv[1:]
    command = " ".join([f".venv/bin/python -m {module}", *map(shlex.quote, args)])
    machine = machine_description(torch_info=torch_info) + (f"; {machine_extra}" if machine_extra else "")
    when = (date or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    stamp = f"{when:%Y-%m-%d %H:%M} UTC, code {code if code is not None else code_version()}"
    stamp += (f", model {model}" if model else "") + (f"; {run}" if run else "")
    return [f"## {title}", "", f"Command: `{command}`  ", f"Machine: {machine}  ", f"Date: {stamp}  "]


def write_section(
    out: str | Path,
    title: str,
    module: str,
    argv: list[str] | None,
    run: str,
    body: list[str],
    *,
    torch_info: bool = True,
    **header,
) -> str:
    """Write and print the section; `run` completes the date line (what was run: seeds, frames...);
    `header`: header_lines' other keywords (code, model, machine_extra, date)."""
    lines = header_lines(title, module, argv, run=run, torch_info=torch_info, **header)
    text = "\n".join([*lines, "", *body, ""])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    print(text)
    return text


def runs_path(stem: str, differs: list[str], folder: Path = RUNS) -> Path:
    """runs/<stem>[_<what differs>].md (in `folder`): where a development or variant run of a benchmark
    writes. A long name is cut and keeps a hash, so two variants never share a file."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join([stem, *differs]))
    if len(name) > 120:
        name = f"{name[:100]}_{hashlib.sha1(name.encode()).hexdigest()[:10]}"
    return folder / f"{name}.md"


def variant_out(out: str | Path | None, committed: Path, differs: list[str]) -> Path:
    """Where a run writes: `out` when given; the committed results file when the run is the committed one
    (`differs` empty); else runs_path, so that a smoke, subset or variant run never lands on a committed
    table (for modules whose committed run is their defaults)."""
    if out is not None:
        return Path(out)
    return committed if not differs else runs_path(committed.stem, differs)
