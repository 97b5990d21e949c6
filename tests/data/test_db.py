"""Database readers vs the databases Caffe's convert_imageset wrote (shared/golden/data)."""
import hashlib

import lmdb
import pytest

from prototxt_like.datum import parse_datum
from replicate.data.db import Cursor, DataSourceError, iter_records

from tests._shared import writable_copy

CASES = [("train_lmdb", "lmdb", "keys.txt"), ("train_lmdb_encoded", "lmdb", "keys_encoded.txt"),
         ("train_gray_lmdb", "lmdb", "keys_gray.txt"), ("train_leveldb", "leveldb", "keys_leveldb.txt")]


def _snapshot(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("db,backend,keys", CASES)
def test_keys_in_caffe_order_and_read_only(golden_data, tmp_path, db, backend, keys):
    # A writable copy: a reader that wrote anything (lock.mdb, leveldb's log) would show.
    folder = writable_copy(golden_data / db, tmp_path / db)
    before = _snapshot(folder) if backend == "lmdb" else None
    got = [k.decode() for k, _ in iter_records(folder, backend)]
    assert got == (golden_data / keys).read_text().split()
    if backend == "lmdb":
        assert _snapshot(folder) == before


def test_lmdb_reads_from_a_read_only_folder(golden_data):
    # the golden folder itself is read-only; lock=False must not need to write lock.mdb
    before = _snapshot(golden_data / "train_lmdb")
    assert sum(1 for _ in iter_records(golden_data / "train_lmdb", "lmdb")) == 48
    assert _snapshot(golden_data / "train_lmdb") == before


def test_lmdb_and_leveldb_hold_the_same_datums(golden_data, tmp_path):
    # the same images and command line, two backends: Caffe's Datum bytes must agree per file
    lm = {k.decode()[9:]: v for k, v in iter_records(golden_data / "train_lmdb", "lmdb")}
    ldb = writable_copy(golden_data / "train_leveldb", tmp_path / "ldb")
    lv = {k.decode()[9:]: v for k, v in iter_records(ldb, "leveldb")}
    assert lm.keys() == lv.keys() and len(lm) == 48
    assert all(lm[f] == lv[f] for f in lm)
    d = parse_datum(lm["img_000.jpg"])
    assert (d.channels, d.height, d.width, len(d.data)) == (3, 32, 32, 3072)
    labels = dict(line.split() for line in (golden_data / "list.txt").read_text().splitlines())
    assert all(parse_datum(v).label == int(labels[f]) for f, v in lm.items())


def test_cursor_wraps_around(golden_data):
    keys = (golden_data / "keys.txt").read_text().split()
    c = Cursor(golden_data / "train_lmdb", "lmdb")
    seen = []
    for _ in range(50):
        seen.append(c.key().decode())
        c.next()
    c.close()
    assert seen == keys + keys[:2]


def test_missing_and_empty_databases(tmp_path):
    with pytest.raises(DataSourceError, match="does not exist"):
        Cursor(tmp_path / "nope", "lmdb")
    with pytest.raises(DataSourceError, match="does not exist"):
        Cursor(tmp_path / "nope", "leveldb")
    env = lmdb.open(str(tmp_path / "empty"))
    env.close()
    with pytest.raises(DataSourceError, match="empty"):
        Cursor(tmp_path / "empty", "lmdb")


def test_unfinished_pack_databases_are_refused(tmp_path):
    # the readers take no lock (lock=False), so a database data_prep pack is still writing is refused
    partial = tmp_path / "train_lmdb.partial"
    env = lmdb.open(str(partial))
    with env.begin(write=True) as txn:
        txn.put(b"00000000_a.jpg", b"x")
    env.close()
    for path in (partial, tmp_path / "train_lmdb"):
        with pytest.raises(DataSourceError, match="not finished"):
            Cursor(path, "lmdb")
    done = tmp_path / "done_lmdb"
    partial.rename(done)
    assert [k for k, _ in iter_records(done)] == [b"00000000_a.jpg"]
    (done / "pack-in-progress.json").write_text("{}")
    with pytest.raises(DataSourceError, match="not finished"):
        Cursor(done, "lmdb")
    with pytest.raises(DataSourceError, match="not finished"):
        Cursor(done, "leveldb")
