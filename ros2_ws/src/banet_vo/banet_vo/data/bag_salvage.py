"""Read what is intact in a damaged rosbag2 (an interrupted recording, a copy cut short).

rosbags refuses such bags outright: an MCAP file without its footer gives "File end magic is invalid", a
cut sqlite3 file "database disk image is malformed" (the timestamp index, written last, points past the
end of the file). Everything before the cut is usually intact, so `salvage_bag` copies it into a
readable bag in a scratch directory, which rosbags then reads as usual:

- MCAP: the complete top-level records (header, chunks with their schemas, channels and messages, message
  indexes) up to the first record the cut left incomplete, closed with an empty footer (summary offset 0,
  which tells a reader to scan the data section). Messages in the chunk the cut went through are lost.
- sqlite3: the tables are created afresh and every row that SQLite can still read in full is copied (the
  schema is read with ``writable_schema`` on, so SQLite does not give up on the unreachable index; the
  page the cut went through is dropped, see `_whole_pages_copy`); rows that need a page past the cut are
  lost.

`damaged_files` tells a reader beforehand whether a bag needs this: a sqlite3 file cut inside its last
page still opens in rosbags and fails only part-way through reading.

How much was lost comes from metadata.yaml, which the recorder wrote with the counts it recorded. The
copy costs disk space the size of the intact part; it lives as long as the reader that asked for it.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import struct
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from rosbags.highlevel import AnyReader

logger = logging.getLogger(__name__)

__all__ = ["SalvageReport", "damaged_files", "salvage_bag"]

MCAP_MAGIC = b"\x89MCAP0\r\n"
_OP_FOOTER = 0x02
_OP_DATA_END = 0x0F
_RECORD_HEAD = struct.Struct("<BQ")  # opcode, body length
# Footer record with summary start 0, summary offset start 0 and CRC 0: "no summary, scan the data".
_EMPTY_FOOTER = _RECORD_HEAD.pack(_OP_FOOTER, 20) + bytes(20) + MCAP_MAGIC


@dataclass
class SalvageReport:
    """What a salvage kept: readable messages per topic against the counts metadata.yaml recorded."""

    bag: Path
    storage: str
    expected: dict[str, int] = field(default_factory=dict)  # per topic, from metadata.yaml
    readable: dict[str, int] = field(default_factory=dict)  # per topic, in the salvaged copy
    files: list[str] = field(default_factory=list)  # storage files that were damaged
    metadata: bool = True  # False: the bag had no metadata.yaml, so the loss is unknown
    paths: list[Path] = field(default_factory=list)  # what to open with rosbags: the copy (dir or files)

    @property
    def expected_total(self) -> int:
        return sum(self.expected.values())

    @property
    def readable_total(self) -> int:
        return sum(self.readable.values())

    def describe(self) -> str:
        if not self.metadata:
            per_topic = ", ".join(f"{t} {n}" for t, n in sorted(self.readable.items()))
            damaged = f"{', '.join(self.files)} cut short" if self.files else "no damaged file"
            return (
                f"bag {self.bag} has no metadata.yaml (a recording that never closed; {damaged}): read "
                f"{self.readable_total} messages ({per_topic}); how many were lost is unknown"
            )
        lost = {
            t: n - self.readable.get(t, 0) for t, n in self.expected.items() if n > self.readable.get(t, 0)
        }
        per_topic = ", ".join(f"{t} {self.readable.get(t, 0)}/{n}" for t, n in sorted(self.expected.items()))
        total = self.expected_total
        share = f" ({100.0 * (total - self.readable_total) / total:.1f} % lost)" if total else ""
        return (
            f"bag {self.bag} is damaged ({', '.join(self.files)} cut short): read {self.readable_total} of "
            f"{total} messages{share}; {per_topic}" + ("" if lost else "; no message lost")
        )


def _metadata(bag: Path) -> dict:
    try:
        info = yaml.safe_load((bag / "metadata.yaml").read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"bag: {bag}/metadata.yaml is not valid YAML: {exc}") from exc
    if not isinstance(info, dict) or "rosbag2_bagfile_information" not in info:
        raise ValueError(f"bag: {bag}/metadata.yaml is not rosbag2 metadata")
    return info["rosbag2_bagfile_information"]


def _mcap_intact_end(path: Path) -> int:
    """Offset just past the last complete top-level record of an MCAP file (0: no valid header)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
            return 0
        end = offset = len(MCAP_MAGIC)
        while offset + _RECORD_HEAD.size <= size:
            op, length = _RECORD_HEAD.unpack(f.read(_RECORD_HEAD.size))
            if op in (0, _OP_FOOTER, _OP_DATA_END) or offset + _RECORD_HEAD.size + length > size:
                break  # the data section ends, or the cut went through this record
            offset += _RECORD_HEAD.size + length
            f.seek(offset)
            end = offset
    return end


def _salvage_mcap(src: Path, dst: Path) -> None:
    end = _mcap_intact_end(src)
    if end <= len(MCAP_MAGIC):
        raise ValueError(f"{src.name} has no intact MCAP header")
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        remaining = end
        while remaining:
            block = fin.read(min(remaining, 1 << 22))
            if not block:
                raise ValueError(f"{src.name} changed while being read")
            fout.write(block)
            remaining -= len(block)
        fout.write(_EMPTY_FOOTER)


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _whole_pages_copy(src: Path, dst: Path) -> None:
    """Copy the complete pages of a cut SQLite file and make its header say how many there are.

    SQLite zero-fills a short read: a row whose overflow chain ends in the page the cut went through comes
    back with zeroed bytes and no error (data invented, not lost), and the header still gives the page
    count from before the cut. With only whole pages and the header's count equal to them, SQLite
    reports every row that needs a missing page as corrupt, and the salvage leaves it out.
    """
    with open(src, "rb") as f:
        header = f.read(100)
        if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
            raise ValueError(f"{src.name} has no intact SQLite header")
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = src.stat().st_size // page_size
        if pages < 1:
            raise ValueError(f"{src.name} holds no complete page")
        f.seek(0)
        with open(dst, "wb") as out:
            shutil.copyfileobj(_Limited(f, pages * page_size), out)
    with open(dst, "r+b") as out:
        out.seek(28)  # "in-header database size" in pages, big-endian
        out.write(pages.to_bytes(4, "big"))


class _Limited:
    """A file object that ends after ``size`` bytes (for copyfileobj)."""

    def __init__(self, f, size: int) -> None:
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data


def _salvage_sqlite(src: Path, dst: Path) -> None:
    """Copy every readable row of ``src`` into a new database ``dst`` with the same tables."""
    pages = dst.with_name(dst.name + ".pages")
    _whole_pages_copy(src, pages)
    source = sqlite3.connect(f"file:{pages}?mode=ro", uri=True)
    target = sqlite3.connect(dst)
    try:
        source.execute("PRAGMA writable_schema=ON")  # read the schema although an index is unreachable
        tables = source.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
        if not any(name == "messages" for name, _ in tables):
            raise ValueError(f"{src.name} has no readable messages table")
        for name, sql in tables:
            target.execute(sql)
            columns = [row[1] for row in source.execute(f'PRAGMA table_info("{name}")')]
            placeholders = ", ".join("?" * len(columns))
            insert = f'INSERT INTO "{name}" VALUES ({placeholders})'
            if name != "messages":
                target.executemany(insert, source.execute(f'SELECT * FROM "{name}"').fetchall())
                continue
            # Row ids first (the b-tree leaves), then each row on its own: a row whose blob lies past the
            # cut fails alone instead of ending the scan.
            ids = []
            try:
                for (rowid,) in source.execute('SELECT rowid FROM "messages"'):
                    ids.append(rowid)
            except sqlite3.DatabaseError as exc:
                logger.debug("%s: row scan stopped after %d rows: %s", src.name, len(ids), exc)
            for rowid in ids:
                try:
                    row = source.execute('SELECT * FROM "messages" WHERE rowid = ?', (rowid,)).fetchone()
                except sqlite3.DatabaseError:
                    continue  # this row's pages are gone; counted as lost in the report
                if row is not None:  # None: the leaf listed it, the lookup no longer reaches it
                    target.execute(insert, row)
        target.commit()
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{src.name}: {exc}") from exc
    finally:
        source.close()
        target.close()
        pages.unlink(missing_ok=True)


def _sqlite_cut_short(path: Path) -> bool:
    """Whether a SQLite file is shorter than the page count its header gives (a copy or recording cut
    short, possibly inside its last page, which SQLite's own checks read as zeros and pass)."""
    with open(path, "rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        return True
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # the header's count is only kept up to date when the change counter matches (SQLite's file format)
    valid = pages > 0 and header[24:28] == header[92:96]
    return valid and path.stat().st_size < pages * page_size


def _intact(path: Path, storage: str) -> bool:
    """Whether rosbags' own reader can read this storage file to its end (a complete file needs no
    salvage)."""
    if storage == "mcap":
        size = path.stat().st_size
        if size < len(_EMPTY_FOOTER) + len(MCAP_MAGIC):
            return False
        with open(path, "rb") as f:
            f.seek(size - len(MCAP_MAGIC))
            return f.read() == MCAP_MAGIC
    if _sqlite_cut_short(path):
        return False
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return connection.execute("PRAGMA quick_check").fetchone() == ("ok",)
        finally:
            connection.close()
    except sqlite3.DatabaseError:
        return False


STORAGE_SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3"}


def storage_files(bag: Path) -> list[Path]:
    """The MCAP / sqlite3 files of a bag directory, for a bag without metadata.yaml (a recorder that was
    killed writes metadata.yaml never: it is written when the recording closes)."""
    return sorted(p for p in bag.iterdir() if p.suffix in STORAGE_SUFFIXES and p.is_file())


def damaged_files(bag: str | Path) -> list[str]:
    """The storage files metadata.yaml lists that are missing or not intact: rosbags may open such a bag
    (a sqlite3 file cut inside its last pages) and fail only while reading it, so a reader checks first."""
    bag = Path(bag)
    meta = _metadata(bag)
    storage = meta.get("storage_identifier")
    if storage not in ("mcap", "sqlite3"):
        return []  # not ours to judge: rosbags says what it makes of it
    # only plain storage files: a compressed one (.mcap.zstd) is rosbags' to decompress and check
    names = [n for n in meta.get("relative_file_paths") or [] if Path(n).suffix in STORAGE_SUFFIXES]
    return [n for n in names if not (bag / n).is_file() or _cut_short(bag / n, storage)]


def _cut_short(path: Path, storage: str) -> bool:
    """A cheap look for a file that ends early (every open asks): the MCAP footer's magic, the SQLite page
    count. SQLite's own check reads the whole file, which a recording of many GB cannot afford at each open;
    other damage shows while reading, as a ValueError naming the bag."""
    if storage == "mcap":
        return not _intact(path, storage)
    return _sqlite_cut_short(path)


def salvage_bag(bag: str | Path, into: str | Path) -> SalvageReport:
    """Write a readable copy of the damaged bag ``bag`` into the empty or new directory ``into``.

    With metadata.yaml the copy is a bag directory (``report.paths == [into]``) and the loss is counted
    against the recorded counts; without it, each salvaged storage file is read on its own
    (``report.paths``) and how much was lost is unknown. ValueError when the storage is neither MCAP nor
    sqlite3 or nothing is intact. The report counts what rosbags reads from the copy.
    """

    bag, into = Path(bag), Path(into)
    into.mkdir(parents=True, exist_ok=True)
    has_metadata = (bag / "metadata.yaml").is_file()
    if has_metadata:
        meta = _metadata(bag)
        storage = meta.get("storage_identifier")
        names = list(meta.get("relative_file_paths") or [])
    else:
        meta = {}
        names = [p.name for p in storage_files(bag)]
        kinds = {STORAGE_SUFFIXES[Path(n).suffix] for n in names}
        storage = kinds.pop() if len(kinds) == 1 else None
    if storage not in ("mcap", "sqlite3"):
        raise ValueError(f"bag: {bag} has storage {storage!r}; only one of mcap or sqlite3 can be salvaged")
    report = SalvageReport(bag, storage, metadata=has_metadata)
    for entry in meta.get("topics_with_message_count") or []:
        report.expected[entry["topic_metadata"]["name"]] = int(entry["message_count"])
    problems = []
    for name in names:
        src, dst = bag / name, into / name
        if not src.is_file():
            problems.append(f"{name} is missing")
            report.files.append(name)
            continue
        if _intact(src, storage):
            shutil.copyfile(src, dst)
            continue
        report.files.append(name)
        try:
            (_salvage_mcap if storage == "mcap" else _salvage_sqlite)(src, dst)
        except ValueError as exc:
            problems.append(str(exc))
            dst.unlink(missing_ok=True)
    kept = [name for name in names if (into / name).is_file()]
    if not kept:
        raise ValueError(f"bag: nothing readable in {bag}: {'; '.join(problems) or 'no storage files'}")
    if has_metadata:
        meta["relative_file_paths"] = kept
        meta["files"] = [f for f in meta.get("files") or [] if f.get("path") in kept]
        (into / "metadata.yaml").write_text(yaml.safe_dump({"rosbag2_bagfile_information": meta}))
        report.paths = [into]
    else:
        report.paths = [into / name for name in kept]
    # Counted by reading, not from the copy's index or metadata: what a player would actually get.
    # bags imports this module at its top: importing it back here, at call time, avoids the cycle
    from banet_vo.data.bags import TYPESTORE

    with AnyReader(report.paths, default_typestore=TYPESTORE) as reader:
        for connection, _, _ in reader.messages():
            report.readable[connection.topic] = report.readable.get(connection.topic, 0) + 1
    return report
