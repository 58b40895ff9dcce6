"""benchmarks/device_pack.py: wheels unpacked in pip's layout, unused parts pruned, duplicates linked."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from benchmarks.device_pack import slim, unpack


def _wheel(path: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)


def test_wheels_unpack_in_pips_layout_and_slim_prunes_and_links(tmp_path: Path) -> None:
    wheels, prefix = tmp_path / "wheels", tmp_path / "prefix"
    wheels.mkdir()
    library = os.urandom(200_000)  # a "shared library" two wheels ship (ROS wheels cannot hold links)
    _wheel(
        wheels / "ros_a-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
        {
            "a/__init__.py": b"x = 1\n",
            "a/stub.pyi": b"x: int\n",
            "ros_a-1.0.data/data/lib/liba.so": library,
            "ros_a-1.0.data/data/share/a/cmake/aConfig.cmake": b"set()\n",
            "ros_a-1.0.data/data/share/a/package.xml": b"<package/>\n",
            "ros_a-1.0.data/data/include/a/a.h": b"int a;\n",
            "ros_a-1.0.dist-info/METADATA": b"Name: ros-a\n",
            "ros_a-1.0.dist-info/RECORD": b"a/__init__.py,,\n",
        },
    )
    _wheel(
        wheels / "b-2.0-py3-none-any.whl",
        {
            "b/__init__.py": b"",
            "b/tests/test_b.py": b"",
            "b.libs/liba-copy.so": library,
            "b-2.0.dist-info/METADATA": b"Name: b\n",
        },
    )
    unpack(wheels, prefix)
    site = prefix / "lib/python3.12/site-packages"
    assert (site / "a/__init__.py").read_text() == "x = 1\n"
    assert (prefix / "lib/liba.so").read_bytes() == library  # NAME.data/data/ → the prefix
    assert (prefix / "share/a/package.xml").is_file() and (prefix / "include/a/a.h").is_file()
    slim(prefix)
    assert not (prefix / "include").exists() and not (site / "a/stub.pyi").exists()
    assert not (prefix / "share/a/cmake").exists() and (prefix / "share/a/package.xml").is_file()
    assert (
        not (site / "ros_a-1.0.dist-info/RECORD").exists()
        and (site / "ros_a-1.0.dist-info/METADATA").is_file()
    )
    assert not (site / "b/tests").exists() and (site / "b/__init__.py").is_file()
    copy = site / "b.libs/liba-copy.so"
    assert copy.read_bytes() == library and os.path.samefile(copy, prefix / "lib/liba.so")  # one inode
