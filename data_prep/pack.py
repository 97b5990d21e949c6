"""``convert_imageset``: images + list -> LMDB / LevelDB of Datum records.

Same records as Caffe 1.0's tool: keys ``%08d_<file>`` where the number is the line's position
after the optional shuffle; raw Datums (``channels/height/width``, uint8 C x H x W BGR, ``label``,
``encoded: false``) or, with ``encoded``, the image file itself (when no resize, the colour mode
fits and the extension matches) or OpenCV's re-encoding of the decoded and resized image
(``data``, ``label``, ``encoded: true``).  Decoding and resizing are OpenCV's own
(:mod:`data_prep.records`).  The list is read as convert_imageset reads it (``std::getline``:
every line counts, an empty one too; the name is everything before the last space, the label
``atoi`` of the rest).

A line whose file OpenCV cannot read (missing, empty, not an image, truncated before its pixels)
is skipped with its name and the reason, its line number still used, as Caffe does; the count is
given at the end.  A JPEG truncated inside its pixel data is decoded by OpenCV (the rest grey)
and packed, as Caffe packs it, with a warning naming it.  What makes Caffe abort stops pack too:
``--check_size`` finding a record of another size, an encoding OpenCV cannot write.

``shuffle`` is Caffe's ``shuffle(lines)`` (Fisher-Yates with boost's ``uniform_int`` on the global
mt19937).  ``convert_imageset`` never seeds that generator, so its order cannot be reproduced;
here ``seed`` seeds it (the order Caffe would give after ``Caffe::set_random_seed(seed)``), and
``keys_file`` re-packs in a recorded order (a ``keys.txt`` of ``%08d_<file>``).

At scale
--------
* The database is written to ``<out>.partial`` and renamed to ``<out>`` when complete.  The
  partial folder holds ``pack-in-progress.json`` (the options, a digest of the list, and how far
  the committed records go; the data layer refuses such a folder) and ``pack-skipped.txt``.
* A pack that is killed (or interrupted, or stopped by a worker's crash or a full disk) resumes
  when run again with the same arguments: the committed records are kept, their count is
  checked and ``verify`` of them (the last ones written and some spread over the rest) are made
  again and compared byte for byte; then packing goes on from the first line not committed.
  Different arguments or a changed list are refused (remove ``<out>.partial`` to start again).
* Memory does not grow with the list: lines are streamed; a shuffle keeps 16 bytes per line and a
  keys file 32, in arrays, not Python objects.  Records travel from ``workers`` processes
  through shared memory (:mod:`data_prep.workers`).  A transaction is committed every
  ``commit_every`` records (64; Caffe commits every 1000, which changes no record) or 16 MB, so
  that the writer's commits do not leave the workers waiting, and a stopped pack loses little.
* The LMDB map grows as needed (before each transaction, and doubled on ``MDB_MAP_FULL``).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import sys
import time
from array import array

import numpy as np

from replicate.data.db import UNFINISHED_MARKER
from replicate.fileio import atomic_write, atomic_writer
from replicate.progress import Progress as _Progress

from .records import Abort as _Abort, RecordMaker, Unreadable, atoi
from .workers import OK, WorkerError, WorkerPool, make_inline

__all__ = ["read_caffe_list", "caffe_shuffle", "make_record", "pack", "Progress", "parse_line",
           "SKIPPED_LOG", "STATE_FILE"]

STATE_FILE = UNFINISHED_MARKER          # pack-in-progress.json
SKIPPED_LOG = "pack-skipped.txt"
_FORMAT = 1
_TXN_BYTES = 16 << 20                   # commit at least every 16 MB of records
_MAP_MARGIN = 2 * _TXN_BYTES + (64 << 20)  # free map space made sure of before each transaction


# ---- the list, as convert_imageset reads it ------------------------------------------------------

def parse_line(line: bytes) -> tuple[bytes, int]:
    """``pos = line.find_last_of(' '); label = atoi(line.substr(pos + 1)); name = line.substr(0, pos)``
    (no space: the whole line is the name, and ``atoi`` of the whole line the label)."""
    pos = line.rfind(b" ")
    if pos < 0:
        return line, atoi(line)
    return line[:pos], atoi(line[pos + 1:])


def _getlines(f):
    """``std::getline`` on a file opened in binary mode: lines without their ``\\n`` (a ``\\r``
    stays), an empty line counts, nothing after a final ``\\n``."""
    for raw in f:
        yield raw[:-1] if raw.endswith(b"\n") else raw


def read_caffe_list(path) -> list[tuple[str, int]]:
    """convert_imageset's lines: ``(name, label)`` per line (names decoded with surrogateescape)."""
    with open(path, "rb") as f:
        return [(n.decode("utf-8", "surrogateescape"), lab) for n, lab in map(parse_line, _getlines(f))]


def _count_lines(path) -> int:
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 18):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def _shuffle_perm(n: int, seed: int) -> array:
    """The permutation ``caffe::shuffle`` applies to ``n`` items with Caffe's RNG seeded by ``seed``:
    item ``k`` of the result is item ``perm[k]`` of the input."""
    from replicate.rng import CaffeRNG
    rng = CaffeRNG(seed)
    perm = array("q", range(n))
    brange = 0xFFFFFFFF
    pool: list = []
    k = 0
    for i in range(n - 1, 0, -1):
        bucket = brange // (i + 1)
        if brange % (i + 1) == i:
            bucket += 1
        while True:  # boost::uniform_int<ptrdiff_t>(0, i): draws until one falls in range
            if k == len(pool):
                pool = rng.uint32(min(1 << 12, 2 * i + 16)).tolist()  # consecutive outputs
                k = 0
            j = pool[k] // bucket
            k += 1
            if j <= i:
                break
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def caffe_shuffle(items: list, seed: int) -> list:
    """``caffe::shuffle`` with Caffe's global generator seeded by ``seed``."""
    return [items[i] for i in _shuffle_perm(len(items), seed)]


class _Jobs:
    """The lines convert_imageset processes, in its order, as ``(job, line_id, name, label)``
    (``job``: position in this order; ``line_id``: the key's number), streamed from the files."""

    def __init__(self, list_file, *, shuffle: bool = False, seed: int | None = None, keys_file=None):
        self.list_file = os.fspath(list_file)
        self.keys_file = None if keys_file is None else os.fspath(keys_file)
        if self.keys_file is not None:
            self.mode = "keys"
            self._index_names()
            self.total = sum(1 for _ in self._keys())
        elif shuffle:
            self.mode = "shuffle"
            self.offsets = self._offsets()
            self.perm = _shuffle_perm(len(self.offsets), seed)
            self.total = len(self.offsets)
        else:
            self.mode = "lines"
            self.total = _count_lines(self.list_file)

    def _offsets(self) -> array:
        offs, pos = array("q"), 0
        with open(self.list_file, "rb") as f:
            for raw in f:
                offs.append(pos)
                pos += len(raw)
        return offs

    def _index_names(self) -> None:
        hashes, offs, pos = array("q"), array("q"), 0
        with open(self.list_file, "rb") as f:
            for raw in f:
                hashes.append(hash(parse_line(raw[:-1] if raw.endswith(b"\n") else raw)[0]))
                offs.append(pos)
                pos += len(raw)
        h = np.frombuffer(hashes, dtype=np.int64)
        self._order = np.argsort(h, kind="stable")      # stable: the first line of a name wins
        self._sorted = h[self._order]
        self.offsets = offs

    def _line_at(self, f, offset: int) -> bytes:
        f.seek(offset)
        raw = f.readline()
        return raw[:-1] if raw.endswith(b"\n") else raw

    def _label_of(self, f, name: bytes) -> int:
        hv = hash(name)
        lo, hi = np.searchsorted(self._sorted, [hv, hv], side="left")[0], \
            np.searchsorted(self._sorted, hv, side="right")
        for idx in self._order[lo:hi]:
            n, label = parse_line(self._line_at(f, self.offsets[int(idx)]))
            if n == name:
                return label
        raise ValueError(f"key names {name!r}, which is not in {self.list_file}")

    def _keys(self):
        with open(self.keys_file, "rb") as f:
            for raw in f:
                key = raw.rstrip(b"\r\n")
                if key.strip():
                    yield key

    def iter(self, start: int = 0):
        if self.mode == "lines":
            with open(self.list_file, "rb") as f:
                for i, line in enumerate(_getlines(f)):
                    if i >= start:
                        name, label = parse_line(line)
                        yield i, i, name, label
        elif self.mode == "shuffle":
            with open(self.list_file, "rb") as f:
                for i in range(start, self.total):
                    name, label = parse_line(self._line_at(f, self.offsets[self.perm[i]]))
                    yield i, i, name, label
        else:
            with open(self.list_file, "rb") as f:
                for i, key in enumerate(self._keys()):
                    if i >= start:
                        num, _, name = key.partition(b"_")
                        yield i, int(num), name, self._label_of(f, name)


def _key(line_id: int, name: bytes) -> bytes:
    return b"%08d_" % line_id + name             # caffe::format_int(line_id, 8) + "_" + name


# ---- writers -------------------------------------------------------------------------------------

class _MapFull(Exception):
    pass


class _LMDBWriter:
    """An LMDB written as Caffe's ``db::LMDB`` writes it (one writer, ``put`` into a transaction,
    ``commit``), with one open transaction at a time and the map grown before it can fill."""

    def __init__(self, path: str, *, create: bool = True, map_size: int = 1 << 30,
                 margin: int | None = None):
        import lmdb
        self.lmdb = lmdb
        if create and not os.path.isdir(path):
            os.mkdir(path, 0o755)
        # sync=False: a killed process loses nothing committed (the page cache has it); the
        # environment is synced when closed.
        self.env = lmdb.open(path, map_size=map_size, subdir=True, lock=True, metasync=False,
                             sync=False, create=create)
        self.psize = self.env.stat()["psize"]
        self.margin = _MAP_MARGIN if margin is None else margin
        self.txn = None
        with self.env.begin() as txn:
            cur = txn.cursor()
            self.last_key = cur.key() if cur.last() else None

    def _used(self) -> int:
        return (self.env.info()["last_pgno"] + 1) * self.psize

    def _grow(self, need: int) -> None:
        size = self.env.info()["map_size"]
        if need > size:
            new = max(2 * size, need)
            self.env.set_mapsize(-(-new // self.psize) * self.psize)

    def put(self, key: bytes, value) -> None:
        if self.txn is None:
            self._grow(self._used() + self.margin)
            self.txn = self.env.begin(write=True)
        append = self.last_key is None or key > self.last_key
        try:
            self.txn.put(key, value, append=append)
        except self.lmdb.MapFullError:
            self._map_full()
        if append:
            self.last_key = key

    def _map_full(self):
        self.txn.abort()
        self.txn = None
        with self.env.begin() as txn:
            cur = txn.cursor()
            self.last_key = cur.key() if cur.last() else None
        self._grow(2 * self.env.info()["map_size"])
        raise _MapFull

    def commit(self) -> None:
        if self.txn is not None:
            try:
                self.txn.commit()
            except self.lmdb.MapFullError:
                self._map_full()
            self.txn = None

    def abort(self) -> None:
        if self.txn is not None:
            self.txn.abort()
            self.txn = None
            with self.env.begin() as txn:
                cur = txn.cursor()
                self.last_key = cur.key() if cur.last() else None

    def count(self) -> int:
        return self.env.stat()["entries"]

    def get(self, key: bytes):
        with self.env.begin(buffers=False) as txn:
            return txn.get(key)

    def map_size(self) -> int:
        return self.env.info()["map_size"]

    def close(self) -> None:
        """Commits nothing: what was not committed is dropped."""
        self.abort()
        self.env.sync(True)
        self.env.close()


class _LevelDBWriter:
    def __init__(self, path: str, *, create: bool = True):
        import plyvel
        # Caffe's LevelDB::Open(NEW): error_if_exists, 256 MB write buffer, 100 open files.
        self.db = plyvel.DB(path, create_if_missing=create, error_if_exists=create,
                            write_buffer_size=268435456, max_open_files=100)
        self.batch = None

    def put(self, key: bytes, value) -> None:
        if self.batch is None:
            self.batch = self.db.write_batch()
        self.batch.put(key, bytes(value))

    def commit(self) -> None:
        if self.batch is not None:
            self.batch.write()
            self.batch = None

    def abort(self) -> None:
        if self.batch is not None:
            self.batch.clear()
            self.batch = None

    def count(self):
        return None  # LevelDB has no cheap count

    def get(self, key: bytes):
        return self.db.get(key)

    def close(self) -> None:
        self.abort()
        self.db.close()


def _tune_malloc() -> None:
    """glibc: keep freed buffers of up to 32 MB in the heap (``M_MMAP_THRESHOLD``) and up to 64 MB
    of free heap (``M_TRIM_THRESHOLD``), so that LMDB's page buffers (malloc'd per transaction, one
    per record of 196 KB at 256x256) are reused instead of mapped and faulted in afresh every
    transaction: put + commit costs a third.  Does nothing where malloc is not glibc's."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 32 << 20)   # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 << 20)   # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


# ---- progress ------------------------------------------------------------------------------------

def _hms(s: float) -> str:
    s = int(s + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress(_Progress):
    """A one-line bar on stderr with the rate and the time left; :meth:`message` prints a line
    above it."""

    def __init__(self, total: int, what: str = "", enabled: bool = True, stream=None, start: int = 0):
        super().__init__(total, what, enabled, stream)
        self.n = self.start = start
        self._width = 0

    def _draw(self, now) -> None:
        self._drawn = self.n
        frac = self.n / self.total if self.total else 1.0
        el = now - self.t0
        rate = (self.n - self.start) / el if el > 0 else 0.0
        left = _hms((self.total - self.n) / rate) if rate > 0 else "?"
        line = (f"{self.what} [{'#' * int(30 * frac):<30}] {self.n}/{self.total} {100 * frac:5.1f}% "
                f"{rate:,.0f} images/s, {_hms(el)} elapsed, {left} left")
        self.stream.write("\r" + line.ljust(self._width))
        self._width = len(line)
        self.stream.flush()

    def message(self, msg: str) -> None:
        if not self.enabled:
            print(msg, file=self.stream)
            return
        self.stream.write("\r" + msg.ljust(self._width) + "\n")
        self._width = 0
        self._draw(time.monotonic())


# ---- state of a pack in progress -----------------------------------------------------------------

def _digest(path) -> str | None:
    if path is None:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _write_state(folder: str, state: dict) -> None:
    atomic_write(os.path.join(folder, STATE_FILE), json.dumps(state, indent=1))


def _read_state(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, STATE_FILE)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _read_skipped(folder: str, done: int) -> list[tuple[int, str, str]]:
    """The skipped lines before ``done`` (later ones are made again), rewriting the log to them."""
    path = os.path.join(folder, SKIPPED_LOG)
    out = []
    if os.path.exists(path):
        with open(path, "rb") as f:
            for raw in f:
                parts = raw.rstrip(b"\n").split(b"\t", 2)
                if len(parts) == 3 and int(parts[0]) < done:
                    out.append((int(parts[0]), parts[1].decode("utf-8", "surrogateescape"),
                                parts[2].decode("utf-8", "surrogateescape")))
    with atomic_writer(path, "wb") as f:
        for i, name, why in out:
            f.write(b"%d\t%s\t%s\n" % (i, name.encode("utf-8", "surrogateescape"),
                                         why.encode("utf-8", "surrogateescape")))
    return out


class PartialMismatch(ValueError):
    """``<out>.partial`` was not made by this pack (other arguments, list, images, or records)."""


# ---- pack ----------------------------------------------------------------------------------------

def make_record(path: str, label: int, *, height: int = 0, width: int = 0, is_color: bool = True,
                encoding: str = "") -> bytes | None:
    """``ReadImageToDatum`` + ``SerializeToString``; None when Caffe would skip the file."""
    maker = RecordMaker(resize_height=height, resize_width=width, is_color=is_color,
                        encoded=bool(encoding), encode_type=encoding)
    p = os.fsencode(path)
    try:
        rec, _, _ = maker.make(p, p, label)
    except Unreadable:
        return None
    return rec


def pack(root, list_file, out, *, backend: str = "lmdb", resize_height: int = 0,
         resize_width: int = 0, gray: bool = False, encoded: bool = False, encode_type: str = "",
         shuffle: bool = False, seed: int | None = None, keys_file=None, check_size: bool = False,
         workers: int | None = None, progress: bool = True, log=None, resume: bool = True,
         verify: int = 16, commit_every: int = 64, map_size: int = 1 << 30) -> int:
    """Write the database ``out`` (resuming ``out.partial`` if an earlier run was stopped);
    returns the number of records in it."""
    out = os.fspath(out).rstrip("/") or "/"
    root_s = os.fspath(root)
    backend = backend.lower()
    if backend not in ("lmdb", "leveldb"):
        raise ValueError(f"unknown backend {backend!r} (lmdb or leveldb)")
    if os.path.exists(out):
        done = _read_state(out)
        if done is not None and done.get("complete"):   # stopped between the rename and the cleanup
            os.remove(os.path.join(out, STATE_FILE))
            return done["records"]
        raise FileExistsError(f"{out} already exists; remove it first")
    partial = out + ".partial"
    say_plain = log or (lambda msg: print(msg, file=sys.stderr))
    bar_ref: list = []

    def say(msg: str) -> None:
        if bar_ref and log is None:
            bar_ref[0].message(msg)
        else:
            say_plain(msg)

    state = _read_state(partial) if os.path.isdir(partial) else None
    if state is not None and not resume:
        say(f"removing the unfinished {partial} of an earlier run (resume=False)")
        shutil.rmtree(partial)
        state = None
    elif state is None and os.path.exists(partial):
        has_data = os.path.isdir(partial) and any(n not in ("lock.mdb", "LOCK", "LOG")
                                                   for n in os.listdir(partial))
        if has_data:
            raise PartialMismatch(f"{partial} exists but holds no pack state ({STATE_FILE}): it was not "
                                  f"left by this pack; remove it to start again")
        shutil.rmtree(partial)
    if shuffle and seed is None:
        seed = (state or {}).get("options", {}).get("seed")
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "little")
    options = {
        "root": os.path.abspath(root_s) + ("/" if root_s.endswith("/") else ""),
        "list_sha256": _digest(list_file), "keys_sha256": _digest(keys_file), "backend": backend,
        "resize_height": max(0, resize_height), "resize_width": max(0, resize_width), "gray": bool(gray),
        "encoded": bool(encoded) or bool(encode_type), "encode_type": encode_type or "",
        "shuffle": bool(shuffle) and keys_file is None, "seed": seed if shuffle and keys_file is None else None,
        "check_size": bool(check_size)}
    if state is not None:
        if state.get("format") != _FORMAT or state.get("options") != options:
            theirs = state.get("options", {})
            diff = sorted(k for k in set(options) | set(theirs) if options.get(k) != theirs.get(k))
            raise PartialMismatch(f"{partial} was started with other arguments or another list (differs in: "
                                  f"{', '.join(diff) or 'format'}); run the same command again, or remove "
                                  f"{partial} to start again")
    if shuffle and keys_file is None:
        say(f"Shuffling data (seed {seed})")
    jobs = _Jobs(list_file, shuffle=shuffle and keys_file is None, seed=seed, keys_file=keys_file)
    say(f"A total of {jobs.total} images.")
    if encode_type and not encoded:
        say("encode_type specified, assuming encoded=true.")
    maker = RecordMaker(resize_height=resize_height, resize_width=resize_width, is_color=not gray,
                        encoded=encoded, encode_type=encode_type)
    root_b = os.fsencode(root_s)

    fresh = state is None
    if fresh:
        os.mkdir(partial, 0o755)
        state = {"format": _FORMAT, "options": options, "total": jobs.total, "done": 0, "records": 0,
                 "skipped": 0, "data_size": None, "complete": False}
        _write_state(partial, state)
        skipped = []
        atomic_write(os.path.join(partial, SKIPPED_LOG), b"")
    else:
        skipped = _read_skipped(partial, state["done"])
    writer = None
    try:
        if backend == "lmdb":
            writer = _LMDBWriter(partial, create=fresh, map_size=map_size)
        else:
            writer = _LevelDBWriter(partial, create=fresh)
        if not fresh:
            _check_kept(writer, jobs, maker, root_b, state, skipped, verify, commit_every, say)
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    _tune_malloc()
    bar = Progress(jobs.total, f"pack {os.path.basename(out)}", enabled=progress, start=state["done"])
    bar_ref.append(bar)
    warned = 0
    keep_partial = True
    try:
        while True:
            try:
                warned += _run(jobs, maker, root_b, writer, state, partial, workers, check_size,
                               commit_every, bar, say)
                break
            except _MapFull:
                bar.n = state["done"]
                say(f"LMDB map full: grown to {writer.map_size() >> 20} MB; making the records from line "
                    f"{state['done']} again")
                skipped = _read_skipped(partial, state["done"])
        state["complete"] = True
        _write_state(partial, state)
    except _Abort:
        keep_partial = False  # what makes Caffe abort would stop a resumed run too
        raise
    except BaseException as e:
        if isinstance(e, (KeyboardInterrupt, WorkerError, OSError)):
            say(f"pack stopped ({type(e).__name__}); {state['records']} records up to line {state['done']} "
                f"are kept in {partial}: run the same command again to resume")
        raise
    finally:
        bar.close()
        bar_ref.clear()
        writer.close()
        if not keep_partial:
            shutil.rmtree(partial, ignore_errors=True)
    os.remove(os.path.join(partial, SKIPPED_LOG))
    os.rename(partial, out)
    os.remove(os.path.join(out, STATE_FILE))
    say(f"Processed {state['records']} files.")
    if state["skipped"]:
        say(f"{state['skipped']} of {jobs.total} lines skipped (the file could not be read; named above"
            f"{' and in earlier runs' if not fresh else ''}).")
    if warned:
        say(f"{warned} truncated JPEG(s) packed as OpenCV decodes them (named above).")
    return state["records"]


def _check_kept(writer, jobs, maker, root_b, state, skipped, verify, commit_every, say) -> None:
    """The records an earlier run committed: their count, and ``verify`` of them made again."""
    done, records = state["done"], state["records"]
    n = writer.count()
    if n is not None and not records <= n <= records + max(commit_every, 1):
        raise PartialMismatch(f"the unfinished database holds {n} records where {records} were committed "
                              f"(remove it to start again)")
    skip_set = {i for i, _, _ in skipped}
    picks = set(range(max(0, done - verify), done))
    if done > 0 and verify > 0:
        picks |= set(np.linspace(0, done - 1, num=min(verify, done)).astype(int).tolist())
    checked = 0
    if picks:
        last = max(picks)
        for job, line_id, name, label in jobs.iter(0):
            if job > last:
                break
            if job not in picks:
                continue
            got = writer.get(_key(line_id, name))
            try:
                want = None if job in skip_set else maker.make(root_b + name, name, label)[0]
            except Unreadable:
                want = "unreadable"
            if got != want:
                what = ("is missing" if got is None else "should not be there" if want is None
                        else "cannot be made again (the file is unreadable now)" if want == "unreadable"
                        else "differs from the record made now")
                raise PartialMismatch(f"resuming: the kept record of line {job} ({_key(line_id, name)!r}) {what}"
                                      f" (images changed since?); remove the unfinished database to start again")
            checked += 1
    if done == 0:
        say("Resuming: nothing was committed yet; starting at line 0")
        return
    say(f"Resuming: {records} records of lines 0-{done - 1} kept ({checked} made again and identical), "
        f"{len(skipped)} lines skipped so far; going on from line {done}")


def _run(jobs, maker, root_b, writer, state, partial, workers, check_size, commit_every, bar, say) -> int:
    """Make and write the records from ``state['done']`` on; commits update ``state``."""
    start = state["done"]
    records, n_skipped, data_size = state["records"], state["skipped"], state["data_size"]
    pool = None
    if maker.height and maker.width and not maker.encoded:
        slot = (3 if maker.is_color else 1) * maker.height * maker.width + 64
    else:
        slot = 4 << 20
    slot = -(-slot // 4096) * 4096
    if workers > 1 and jobs.total - start > 1:
        # enough slots for the workers to go on while the writer commits or is descheduled
        pool = WorkerPool(maker, root_b, workers, slots=max(8, min(32, (32 << 20) // slot)), slot_size=slot)
        results = pool.imap(jobs.iter(start))
    else:
        results = make_inline(maker, root_b, jobs.iter(start), slot_size=slot)
    skiplog = open(os.path.join(partial, SKIPPED_LOG), "ab")
    warned = 0
    in_txn = txn_bytes = 0
    try:
        for (job, line_id, name, label), kind, value, sizes, warning in results:
            if kind != OK:
                path = (root_b + name).decode("utf-8", "surrogateescape")
                say(f"Could not open or find file {path} ({value}): skipped")
                skiplog.write(b"%d\t%s\t%s\n" % (job, root_b + name, value.encode()))
                skiplog.flush()
                n_skipped += 1
            else:
                if warning:
                    say(f"{(root_b + name).decode('utf-8', 'surrogateescape')}: {warning}")
                    warned += 1
                if check_size:
                    if data_size is None:
                        data_size = sizes[0]
                    elif sizes[1] != data_size:
                        raise _Abort(f"Incorrect data field size {sizes[1]} ({name!r}; expected {data_size})")
                writer.put(_key(line_id, name), value)
                records += 1
                in_txn += 1
                txn_bytes += len(value)
            bar.update()
            if in_txn >= commit_every or txn_bytes >= _TXN_BYTES:
                writer.commit()
                state.update(done=job + 1, records=records, skipped=n_skipped, data_size=data_size)
                _write_state(partial, state)
                in_txn = txn_bytes = 0
        writer.commit()
        state.update(done=jobs.total, records=records, skipped=n_skipped, data_size=data_size)
        _write_state(partial, state)
    finally:
        skiplog.close()
        if hasattr(results, "close"):
            results.close()
        if pool is not None:
            pool.close()
    return warned
