"""Truncated bags (banet_vo.data.bag_salvage through BagReader): bags written with our writer, then cut.

Every message read from a cut bag must be one that was written (same topic, stamp and pixels), the count
must match what the salvage report says, and the loss must shrink as less is cut away.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from banet_vo.data.bag_salvage import salvage_bag
from banet_vo.data.bags import (
    CAMERA_INFO_TOPIC,
    IMAGE_TOPIC,
    STORAGES,
    BagReader,
    image_from_message,
    stamp_ns,
    write_bag,
)
from banet_vo.data.sequence import Frame
from banet_vo.geometry import PinholeCamera

N = 40
T0 = 2.0


def _frames() -> list[Frame]:
    camera = PinholeCamera(200.0, 200.0, 159.5, 119.5, 320, 240)
    rng = np.random.default_rng(5)
    frames = []
    for i in range(N):
        T = np.eye(4)
        T[2, 3] = 0.1 * i
        # 230 kB of noise per image: ~4 images per 1 MiB MCAP chunk, the unit a cut loses at most
        image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
        frames.append(Frame(i, 0.1 * i, image, camera, None, T))
    return frames


FRAMES = _frames()
IMAGES = {round((T0 + f.timestamp) * 1e9): f.image for f in FRAMES}


@pytest.fixture(scope="module", params=STORAGES)
def intact(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(f"intact_{request.param}") / "bag"
    write_bag(FRAMES, out, storage=request.param, start_time=T0)
    return out


def _cut(intact: Path, tmp_path: Path, fraction: float) -> Path:
    """A copy of the bag whose storage file keeps only the first ``fraction`` of its bytes."""
    bag = tmp_path / f"cut_{fraction}"
    bag.mkdir()
    for src in intact.iterdir():
        data = src.read_bytes()
        if src.name != "metadata.yaml":
            data = data[: int(len(data) * fraction)]
        (bag / src.name).write_bytes(data)
    return bag


def _read_images(bag: Path) -> tuple[list[int], BagReader]:
    stamps = []
    with BagReader(bag) as reader:
        for record, msg in reader.messages([IMAGE_TOPIC]):
            stamp = stamp_ns(msg.header)
            assert record.timestamp_ns == stamp
            # nothing invented: each image read is the one written at that stamp
            np.testing.assert_array_equal(image_from_message(msg), IMAGES[stamp])
            stamps.append(stamp)
    return stamps, reader


def test_an_intact_bag_reads_without_salvage(intact):
    stamps, reader = _read_images(intact)
    assert len(stamps) == N and reader.damage is None


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95])
def test_a_cut_bag_yields_its_intact_messages_and_says_what_was_lost(intact, tmp_path, fraction, caplog):
    bag = _cut(intact, tmp_path, fraction)
    with caplog.at_level("WARNING"):
        stamps, reader = _read_images(bag)
    report = reader.damage
    assert report is not None and report.expected[IMAGE_TOPIC] == N
    assert 0 < len(stamps) < N and report.readable[IMAGE_TOPIC] == len(stamps)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # the cut keeps roughly its share of the images (the last partial chunk / pages are lost)
    assert len(stamps) <= fraction * N + 1
    assert len(stamps) >= fraction * N - 5  # at most one MCAP chunk (~4 images) more
    assert any(
        "is damaged" in r.message and f"of {report.expected_total} messages" in r.message
        for r in caplog.records
    )
    assert f"{IMAGE_TOPIC} {len(stamps)}/{N}" in report.describe()


def test_less_cut_never_reads_less(intact, tmp_path):
    counts = []
    for fraction in (0.2, 0.4, 0.7, 0.9, 0.99):
        with BagReader(_cut(intact, tmp_path, fraction)) as reader:
            counts.append(sum(1 for _ in reader.records([CAMERA_INFO_TOPIC, IMAGE_TOPIC])))
    assert counts == sorted(counts) and counts[-1] > counts[0]


def test_nothing_readable_is_an_error_naming_the_bag(intact, tmp_path):
    bag = _cut(intact, tmp_path, 0.0005)  # a few bytes: not even the header survives
    with pytest.raises(ValueError, match=r"(nothing readable|nothing to read)") as info:
        with BagReader(bag):
            pass
    assert str(bag) in str(info.value)
    with pytest.raises(ValueError, match="cannot read"):
        with BagReader(_cut(intact, tmp_path, 0.5), salvage=False):
            pass


def test_salvage_leaves_the_original_untouched_and_cleans_its_copy(intact, tmp_path):
    bag = _cut(intact, tmp_path, 0.5)
    before = {p.name: p.read_bytes() for p in bag.iterdir()}
    report = salvage_bag(bag, tmp_path / "copy")
    assert report.readable_total > 0 and (tmp_path / "copy" / "metadata.yaml").is_file()
    assert {p.name: p.read_bytes() for p in bag.iterdir()} == before
    with BagReader(bag) as reader:
        scratch = Path(reader._scratch.name)
        assert scratch.is_dir()
    assert not scratch.exists()


@pytest.mark.parametrize("fraction", [0.6, 1.0])
def test_a_recording_that_never_closed_has_no_metadata_and_is_still_read(intact, tmp_path, fraction):
    """A killed recorder never writes metadata.yaml: the storage file is read on its own."""
    bag = _cut(intact, tmp_path, fraction)
    (bag / "metadata.yaml").unlink()
    stamps, reader = _read_images(bag)
    assert reader.damage is not None and not reader.damage.metadata
    assert 0 < len(stamps) <= N and (len(stamps) == N) == (fraction == 1.0)
    assert reader.damage.readable[IMAGE_TOPIC] == len(stamps)
    assert "how many were lost is unknown" in reader.damage.describe()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"no metadata\.yaml"):
        BagReader(empty)


def test_random_cuts_never_invent_a_message(intact, tmp_path):
    """SQLite reads pages past a cut as zeros: without care, a row whose overflow pages were cut off comes
    back with zeroed pixels. Every image read from any cut must be the image written."""
    data_file = next(p for p in intact.iterdir() if p.name != "metadata.yaml")
    size = data_file.stat().st_size
    rng = np.random.default_rng(11)
    compared = 0
    for k, cut in enumerate(sorted(rng.integers(size // 10, size, 8))):
        bag = tmp_path / f"cut{k}"
        bag.mkdir()
        (bag / "metadata.yaml").write_bytes((intact / "metadata.yaml").read_bytes())
        (bag / data_file.name).write_bytes(data_file.read_bytes()[:cut])
        try:
            compared += len(_read_images(bag)[0])  # asserts each image equals the one written at its stamp
        except ValueError as exc:
            assert "nothing" in str(exc)
    assert compared >= N  # the cuts above a tenth of the file keep images to compare


def test_sqlite_rows_cut_off_are_lost_not_zero_filled(tmp_path):
    """The hazard behind the random-cut test, made deterministic: a cut through the last page of a row's
    overflow chain. SQLite zero-fills the short read and returns the row without an error; the salvage
    must drop it."""
    import os
    import sqlite3

    from banet_vo.data.bag_salvage import _salvage_sqlite

    db = tmp_path / "x.db3"
    big = os.urandom(200_000)
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, data BLOB)")
        con.execute("INSERT INTO messages VALUES (1, ?)", (b"a" * 100,))
        con.execute("INSERT INTO messages VALUES (2, ?)", (big,))  # overflow pages at the end of the file
    con.close()
    cut = tmp_path / "cut.db3"
    raw = db.read_bytes()
    cut.write_bytes(raw[:-1000])  # the last page is the blob's last overflow page
    naive = sqlite3.connect(f"file:{cut}?mode=ro", uri=True)
    zeroed = naive.execute("SELECT data FROM messages WHERE id = 2").fetchone()[0]
    naive.close()
    assert len(zeroed) == len(big) and zeroed != big  # what a plain read would have handed on
    _salvage_sqlite(cut, tmp_path / "out.db3")
    with sqlite3.connect(tmp_path / "out.db3") as out:
        assert dict(out.execute("SELECT id, data FROM messages")) == {1: b"a" * 100}
    out.close()


@pytest.mark.parametrize("cut_bytes", [1, 100, 2000, 4095])
def test_a_sqlite_bag_cut_inside_its_last_page_is_salvaged_up_front(tmp_path, cut_bytes):
    """Cut by less than a page, a sqlite3 bag still opens in rosbags and then fails (apsw.CorruptError)
    part-way through reading, or reads zeros as data: the reader must see the cut before opening."""
    out = tmp_path / "intact"
    write_bag(FRAMES[:6], out, storage="sqlite3", start_time=T0)
    bag = tmp_path / "cut"
    bag.mkdir()
    for src in out.iterdir():
        data = src.read_bytes()
        (bag / src.name).write_bytes(data if src.name == "metadata.yaml" else data[:-cut_bytes])
    stamps, reader = _read_images(bag)  # each image read is the one written at its stamp
    assert reader.damage is not None and "cut short" in reader.damage.describe()
    assert 0 < len(stamps) <= 6 and reader.damage.readable[IMAGE_TOPIC] == len(stamps)


@pytest.mark.parametrize("fraction", [0.6, 1.0])
def test_a_salvaged_bag_counts_what_can_be_read(intact, tmp_path, fraction):
    bag = _cut(intact, tmp_path, fraction)
    if fraction == 1.0:
        (bag / "metadata.yaml").unlink()  # a recording that never closed: the counts come from reading
    with BagReader(bag) as reader:
        read = {}
        for record in reader.records():
            read[record.topic] = read.get(record.topic, 0) + 1
        assert {name: topic.count for name, topic in reader.topics.items() if topic.count} == read
        assert reader.message_count == sum(read.values())
    assert read[IMAGE_TOPIC] < N or fraction == 1.0


def test_damage_found_while_reading_is_a_value_error_naming_the_bag(intact, monkeypatch):
    import apsw

    with BagReader(intact) as reader:

        def corrupt(*args, **kwargs):
            yield from ()
            raise apsw.CorruptError("database disk image is malformed")

        monkeypatch.setattr(reader._reader, "messages", corrupt)
        with pytest.raises(ValueError, match=rf"bag: {re.escape(str(intact))} is damaged.*malformed"):
            list(reader.records())
