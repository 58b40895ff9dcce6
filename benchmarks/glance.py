"""The first section of BENCHMARKS.md: where issue 14's targets stand, read from the main real-clips table
(benchmarks/results/real_clips.md) when the file is assembled, so it cannot disagree with that table.

Targets (issue 14): Sim(3) ATE at or below the ORB figure the issue gives for the clip (ISSUE_REFERENCE_M;
from the clips' READMEs, KITTI 06's from the repository's own ORB run) with the default configuration;
metric SE(3) ATE on KITTI with the ground plane at most 1.5x its own Sim(3), on HoloLens and TartanAir with
the learned scale at most 2x.
"""

from __future__ import annotations

import math

from banet_vo.evaluation.real_clips import CLASSICAL_LABELS, ISSUE_REFERENCE_M

from benchmarks.real_clips import DEFAULT_MARK, banet_label

TITLE = "At a glance: issue 14's targets on the real clips"
DEFAULT = banet_label("xfeat", "learned") + DEFAULT_MARK
GROUND = banet_label("xfeat", "ground_plane")
NONE = banet_label("xfeat", "none")
ALONE = banet_label("none", "learned")
# Which row's SE(3) / Sim(3) ratio the metric target reads, and its bound.
METRIC_TARGET = {"kitti": (GROUND, 1.5), "hololens": (DEFAULT, 2.0), "tartanair": (DEFAULT, 2.0)}


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def table_rows(markdown: str) -> dict[tuple[str, str], tuple[float | None, float | None]]:
    """{(clip, method): (Sim(3) ATE, SE(3) ATE)} of the first table of a real_clips section (its columns:
    clip, method, ATE Sim(3), ATE SE(3), ...); '—' and non-numbers read as None."""
    rows: dict[tuple[str, str], tuple[float | None, float | None]] = {}
    in_table = False
    for line in markdown.splitlines():
        if not line.startswith("|"):
            if in_table:
                break
            continue
        in_table = True
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or cells[0] == "clip" or set(cells[0]) <= set("-: "):
            continue  # the header or its rule
        rows.setdefault((cells[0], cells[1]), (_number(cells[2]), _number(cells[3])))
    return rows


def _pair(value: tuple[float | None, float | None] | None) -> str:
    if value is None or value[0] is None:
        return "—"
    return f"{value[0]:.3f}" + (f" / {value[1]:.3f}" if value[1] is not None else "")


def _sim3(value: tuple[float | None, float | None] | None) -> str:
    return "—" if value is None or value[0] is None else f"{value[0]:.3f}"


def _metric_check(clip: str, rows: dict) -> str:
    family = next((k for k in METRIC_TARGET if clip.startswith(k)), None)
    if family is None:
        return "—"
    method, bound = METRIC_TARGET[family]
    sim3, se3 = rows.get((clip, method), (None, None))
    if sim3 is None or se3 is None or sim3 <= 0:
        return "not measured"
    ratio = se3 / sim3
    which = "ground plane" if method == GROUND else "learned"
    return f"{which} {ratio:.2f}x (≤ {bound:g}x: {'met' if ratio <= bound else 'missed'})"


def glance_section(real_clips_md: str) -> str | None:
    """The section's markdown, or None when the main table has no default row to read."""
    rows = table_rows(real_clips_md)
    clips = list(dict.fromkeys(clip for clip, _ in rows))
    if not any((clip, DEFAULT) in rows for clip in clips):
        return None
    lines = [
        f"## {TITLE}",
        "",
        "Read from the main table below when this file is assembled (its seed medians, ATE in metres).",
        "Sim(3) target: at or below issue 14's ORB figure for the clip with the default configuration",
        "(XFeat front end, learned scale). Metric target: SE(3) at most 1.5x its own Sim(3) on KITTI with",
        "the ground plane (camera_height 1.65), 2x on HoloLens and TartanAir with the learned scale. The",
        "references are given every step's length from the ground truth; banet_vo is not.",
        "",
        "| clip | default: Sim(3) / SE(3) | Sim(3) target | met | ground_plane | scale none | BA-Net alone "
        "| ORB ref. | SIFT ref. | metric target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for clip in clips:
        default = rows.get((clip, DEFAULT))
        target = ISSUE_REFERENCE_M.get(clip)
        if target is None or default is None or default[0] is None:
            met = "—"
        else:
            met = "yes" if default[0] <= target else "no"
        cells = [
            clip,
            _pair(default),
            "—" if target is None else f"{target:.3f}",
            met,
            _pair(rows.get((clip, GROUND))),
            _sim3(rows.get((clip, NONE))),
            _pair(rows.get((clip, ALONE))),
            _sim3(rows.get((clip, CLASSICAL_LABELS["orb"]))),
            _sim3(rows.get((clip, CLASSICAL_LABELS["sift"]))),
            _metric_check(clip, rows),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
