"""Caffe's Datum databases, read the way ``caffe::db`` reads them.

Both backends iterate in byte order of the keys (LMDB's and LevelDB's default
comparators), which for ``convert_imageset`` keys (``%08d_<file>``) is the order
they were written in.  :class:`Cursor` is Caffe's ``db::Cursor`` as the Data
layer uses it: ``value()`` of the current record, ``next()`` that wraps around
to the first key at the end (``DataLayer::Next``), and ``seek(key)`` for an
exact resume.

Read-only guarantees
--------------------
* LMDB is opened with ``readonly=True, lock=False``: nothing in the folder is
  written, not even ``lock.mdb`` (Caffe itself opens ``MDB_RDONLY`` but with
  locking, which rewrites ``lock.mdb``).  The folder may be read-only.
* Without the reader lock a database must not be read while it is written, so
  a database that ``data_prep pack`` has not finished is refused
  (:class:`DataSourceError`): a folder named ``*.partial``, one holding pack's
  ``pack-in-progress.json`` marker, or a missing ``DB`` whose ``DB.partial``
  exists.  pack writes ``DB.partial`` and renames it to ``DB`` when complete.
  A database that another program (e.g. Caffe's ``convert_imageset``) is
  writing in place is not detected: read it when that program has finished.
* LevelDB (``plyvel``) cannot be opened without writing: the leveldb library
  rewrites ``MANIFEST-*``, ``LOG`` and the ``.log`` file and takes ``LOCK``,
  even for reading, so the folder must be writable.  To keep a database
  untouched (e.g. a golden fixture), copy the folder and open the copy.
  Records are never written by this module.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

__all__ = ["DataSourceError", "open_db", "Cursor", "iter_records", "BACKENDS", "UNFINISHED_MARKER",
           "check_finished"]

BACKENDS = ("lmdb", "leveldb")
UNFINISHED_MARKER = "pack-in-progress.json"  # data_prep pack's state file, inside DB.partial


class DataSourceError(RuntimeError):
    """A database or data-layer setting Caffe would refuse (missing, empty,
    not Datums, mean shape mismatch, ...).  The message names the layer (when
    known) and the path."""


def check_finished(path: str) -> None:
    """Refuse a database that ``data_prep pack`` is still writing (or was stopped writing)."""
    stem = os.path.normpath(path)
    if stem.endswith(".partial") or os.path.exists(os.path.join(path, UNFINISHED_MARKER)):
        final = stem[:-len(".partial")] if stem.endswith(".partial") else stem
        raise DataSourceError(f"{path!r} is a database that data_prep pack has not finished (it is being "
                              f"written, or the pack was stopped: run the same pack command again to "
                              f"finish it); it becomes {final!r} when complete")
    if not os.path.exists(path) and os.path.isdir(stem + ".partial"):
        raise DataSourceError(f"{path!r} does not exist yet: data_prep pack has not finished writing "
                              f"{stem + '.partial'!r} (it is renamed to {path!r} when complete)")


def _backend_name(backend) -> str:
    """``"lmdb"`` / ``"leveldb"`` from a name or DataParameter.DB enum (LEVELDB=0, LMDB=1)."""
    if isinstance(backend, str):
        b = backend.lower()
    elif backend == 0:
        b = "leveldb"
    elif backend == 1:
        b = "lmdb"
    else:
        b = str(backend)
    if b not in BACKENDS:
        raise DataSourceError(f"unknown database backend {backend!r} (use lmdb or leveldb)")
    return b


_SHARED: dict = {}  # (backend, real path) -> [handle, users]: one open per process
_SHARED_LOCK = __import__("threading").Lock()


def _acquire(kind: str, path: str, opener):
    key = (kind, os.path.realpath(path))
    with _SHARED_LOCK:
        entry = _SHARED.get(key)
        if entry is None:
            entry = _SHARED[key] = [opener(), 0]
        entry[1] += 1
        return key, entry[0]


def _release(key) -> None:
    with _SHARED_LOCK:
        entry = _SHARED.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _SHARED[key]
            entry[0].close()


class _LMDB:
    """Read-only, without locking (so ``lock.mdb`` is never written).  Two readers of one
    database in one process (a TRAIN and a TEST Data layer) share the environment, which LMDB
    requires; each has its own read transaction."""

    def __init__(self, path: str):
        import lmdb
        check_finished(path)
        if not os.path.isdir(path) or not os.path.exists(os.path.join(path, "data.mdb")):
            raise DataSourceError(f"LMDB {path!r} does not exist (no folder with data.mdb)")

        def opener():
            try:
                return lmdb.open(path, readonly=True, lock=False, subdir=True,
                                 readahead=False, max_readers=126, create=False)
            except lmdb.Error as e:
                raise DataSourceError(f"cannot open LMDB {path!r}: {e}") from None

        self.key, self.env = _acquire("lmdb", path, opener)
        self.txn = self.env.begin(write=False, buffers=False)

    def iterator(self, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        cur = self.txn.cursor()
        if not (cur.first() if start is None else cur.set_range(start)):
            return
        yield from cur.iternext(keys=True, values=True)

    def count(self) -> int:
        return self.txn.stat()["entries"]

    def close(self):
        if self.env is not None:
            self.txn.abort()
            self.env = None
            _release(self.key)


class _LevelDB:
    """LevelDB has no read-only mode: opening rewrites files in the folder (open a copy when the
    folder must stay untouched).  Readers in one process share the handle (LevelDB's LOCK)."""

    def __init__(self, path: str):
        import plyvel
        check_finished(path)
        if not os.path.isdir(path) or not os.path.exists(os.path.join(path, "CURRENT")):
            raise DataSourceError(f"LevelDB {path!r} does not exist (no folder with CURRENT)")

        def opener():
            try:
                return plyvel.DB(path, create_if_missing=False)
            except Exception as e:  # plyvel.Error, IOError (read-only folder) ...
                raise DataSourceError(f"cannot open LevelDB {path!r} (leveldb needs a writable "
                                      f"folder even to read; open a copy): {e}") from None

        self.key, self.db = _acquire("leveldb", path, opener)

    def iterator(self, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        yield from self.db.iterator(start=start, fill_cache=False)

    def count(self) -> int:
        return sum(1 for _ in self.db.iterator(include_value=False))

    def close(self):
        if self.db is not None:
            self.db = None
            _release(self.key)


def open_db(path, backend="lmdb"):
    """An open read-only database: ``.iterator(start=None)`` yields ``(key, value)``
    bytes in key order (from the first key >= ``start``, found by a tree search); ``.close()``."""
    path = os.fspath(path)
    return (_LMDB if _backend_name(backend) == "lmdb" else _LevelDB)(path)


class Cursor:
    """Caffe's db cursor as the Data layer drives it: starts at the first key;
    :meth:`next` wraps around to the first key after the last one."""

    def __init__(self, path, backend="lmdb"):
        self.path = os.fspath(path)
        self.db = open_db(self.path, backend)
        self._it = self.db.iterator()
        self._cur = next(self._it, None)
        if self._cur is None:
            self.db.close()
            raise DataSourceError(f"database {self.path!r} is empty")
        self.wraps = 0

    def key(self) -> bytes:
        return self._cur[0]

    def value(self) -> bytes:
        return self._cur[1]

    def next(self) -> None:
        self._cur = next(self._it, None)
        if self._cur is None:  # "Restarting data prefetching from start."
            self.wraps += 1
            self._it = self.db.iterator()
            self._cur = next(self._it)

    def seek(self, key: bytes, wraps: int = 0) -> None:
        """Make ``key`` the current record (a B-tree / LSM search, not a scan); ``wraps`` restores
        the wrap-around count.  The key must be in the database."""
        key = bytes(key)
        it = self.db.iterator(start=key)
        cur = next(it, None)
        if cur is None or cur[0] != key:
            raise DataSourceError(f"database {self.path!r} has no record with key {key[:64]!r}")
        self._it, self._cur, self.wraps = it, cur, int(wraps)

    def close(self) -> None:
        self.db.close()


def iter_records(path, backend="lmdb") -> Iterator[tuple[bytes, bytes]]:
    """Every ``(key, value)`` once, in key order (no wrap-around)."""
    db = open_db(path, backend)
    try:
        yield from db.iterator()
    finally:
        db.close()


def default_backend(path) -> str:
    """Guess the backend of an existing database folder."""
    p = Path(path)
    if (p / "data.mdb").exists():
        return "lmdb"
    if (p / "CURRENT").exists():
        return "leveldb"
    raise DataSourceError(f"{os.fspath(path)!r} is neither an LMDB nor a LevelDB folder")
