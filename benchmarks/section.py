"""One results section as the benchmarks write it: title, the command that made it, machine, date and
code, then its text; written to benchmarks/results/<topic>.md (or --out) and printed."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from banet_vo.provenance import code_version, machine_description


def write_section(
    out: str | Path,
    title: str,
    module: str,
    argv: list[str] | None,
    run: str,
    body: list[str],
    *,
    torch_info: bool = True,
) -> str:
    """Write and print the section; `run` completes the date line (what was run: seeds, frames...)."""
    args = argv if argv is not None else sys.argv[1:]
    command = " ".join([f".venv/bin/python -m {module}", *args])
    text = "\n".join(
        [
            f"## {title}",
            "",
            f"Command: `{command}`  ",
            f"Machine: {machine_description(torch_info=torch_info)}  ",
            f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, code {code_version()}; {run}",
            "",
            *body,
            "",
        ]
    )
    Path(out).write_text(text)
    print(text)
    return text
