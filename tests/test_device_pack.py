"""benchmarks/device_pack.py: wheels unpacked in pip's layout, unused parts pruned, duplicates linked."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest

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


def test_a_failed_pack_leaves_no_truncated_archive(tmp_path: Path, monkeypatch) -> None:
    """The archive was opened before xz ran: a failed or killed pack left a truncated .devsite.tar.xz
    where device_check.sh unpacks it. Now a temporary beside it is renamed on success only."""
    import tarfile

    from benchmarks import device_pack

    prefix = tmp_path / "prefix"
    (prefix / "lib").mkdir(parents=True)
    (prefix / "lib" / "x.py").write_text("x = 1\n" * 1000)
    out = tmp_path / ".devsite.tar.xz"
    out.write_bytes(b"the archive of an earlier pack")
    monkeypatch.setattr(device_pack, "XZ", ["sh", "-c", "head -c 100; exit 1"])
    with pytest.raises(subprocess.CalledProcessError):
        device_pack.compress(prefix, out)
    assert out.read_bytes() == b"the archive of an earlier pack"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".devsite.tar.xz", "prefix"]

    monkeypatch.setattr(device_pack, "XZ", ["xz", "-0", "-T1"])
    device_pack.compress(prefix, out)
    with tarfile.open(out) as tar:
        assert "./lib/x.py" in tar.getnames()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".devsite.tar.xz", "prefix"]
