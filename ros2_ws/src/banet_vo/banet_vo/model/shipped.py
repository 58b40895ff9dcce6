"""Where the shipped default BA-Net checkpoint lies, so that the node and banet-vo-run work without a
`model` argument from any working directory, and where the other shipped files are found by their
`models/NAME` spelling (the README's). No torch, no ROS.

The files live in the repository's models/ (with their model cards). setup.py installs every one of them
into share/banet_vo/models/, beside the package's config/ and launch/; an editable install (make setup)
and a plain checkout read them from models/ instead.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

DEFAULT_MODEL_NAME = "banet_small_synthetic.safetensors"
SHARE_MODELS = Path("share") / "banet_vo" / "models"  # under an install prefix (setup.py's data_files)

# This file is <prefix>/lib/pythonX.Y/site-packages/banet_vo/model/shipped.py when installed (colcon,
# pip) and <repo>/ros2_ws/src/banet_vo/banet_vo/model/shipped.py in a checkout: five levels up is the
# install prefix or the repository root in both layouts.
_ROOT = Path(__file__).resolve().parents[5]


def model_search_dirs(extra: Iterable[Path | str] = ()) -> list[Path]:
    """Folders searched for the shipped model, in order: `extra` (the ROS layer adds the package's ament
    share folder), this install's prefix, the interpreter's prefix, the repository's models/."""
    dirs = [Path(d) for d in extra]
    dirs += [_ROOT / SHARE_MODELS, Path(sys.prefix) / SHARE_MODELS, _ROOT / "models"]
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def default_model_path(extra: Iterable[Path | str] = ()) -> Path:
    """The shipped default checkpoint; FileNotFoundError naming every folder searched when no install or
    checkout has it."""
    dirs = model_search_dirs(extra)
    for d in dirs:
        path = d / DEFAULT_MODEL_NAME
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the shipped model {DEFAULT_MODEL_NAME} is in none of: {', '.join(str(d) for d in dirs)}; "
        "reinstall the package (make setup, or colcon build) or give a checkpoint path"
    )


def ament_model_dirs() -> list[Path]:
    """The package's share/banet_vo/models as the ament index knows it (a ROS environment where the package
    is installed), else nothing. ament_index_python is imported here only: no ROS at import."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return [Path(get_package_share_directory("banet_vo")) / "models"]
    except (ImportError, LookupError, OSError):
        return []  # not installed through ament (a pip venv): model_search_dirs' other folders still apply


def shipped_copy(path: str | Path, extra: Iterable[Path | str] = ()) -> Path | None:
    """The installed shipped file that a relative `NAME` or `models/NAME` (the README's spelling) stands for
    when it is not there from the working directory: NAME in the first of model_search_dirs(extra) that has
    it (an installed package's share/banet_vo/models, or the checkout's models/), so that
    `model:=models/banet_small_xfeat.safetensors` works from any directory. None for a path that exists,
    an absolute one, any other relative one, or a name no folder has: the caller opens what it was given
    (and reports it missing in the user's words)."""
    given = Path(path)
    if given.is_absolute() or given.exists():
        return None
    if len(given.parts) == 1 or (len(given.parts) == 2 and given.parts[0] == "models"):
        for d in model_search_dirs(extra):
            candidate = d / given.name
            if candidate.is_file():
                return candidate
    return None
