"""Package namespaces that import a submodule only when one of its names is first used (PEP 562).

`banet_vo.geometry`, `banet_vo.odometry` and their siblings re-export names from submodules that pull in
torch, GTSAM or kornia. Imported eagerly, a process that only needs a light part (a launch file reading
the parameter table, the bag player, a BA worker) would load all of them: ~1.5 s and ~300 MB that
`ros2 launch` and `banet-vo-play` then hold for the whole session.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose `exports` map each submodule (relative to the
    package) to the public names it defines. A name is imported on first use and then kept in the
    package's `namespace`, so later lookups are plain attribute reads."""
    home = {name: module for module, names in exports.items() for name in names}
    if len(home) != sum(len(names) for names in exports.values()):
        raise ValueError(f"{package}: a name is exported from two submodules")

    def __getattr__(name: str) -> Any:
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(home))

    return __getattr__, __dir__
