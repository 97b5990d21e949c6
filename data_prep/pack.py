"""``convert_imageset``: images + list -> LMDB / LevelDB of Datum records.

Same records as Caffe 1.0's tool (checked byte for byte on ``../shared/golden/data``):
keys ``%08d_<file>`` where the number is the line's position after the
optional shuffle; raw Datums (``channels/height/width``, uint8 C x H x W BGR,
``label``, ``encoded: false``) or, with ``encoded``, the image file itself
(when no resize, the colour mode fits and the extension matches) or OpenCV's
re-encoding of the decoded and resized image (``data``, ``label``,
``encoded: true``).  Decoding and resizing follow OpenCV (see
:mod:`replicate.data.image`).  An image that cannot be read is skipped with
a message, its line number still used, as Caffe does.

``shuffle`` is Caffe's ``shuffle(lines)`` (Fisher-Yates with boost's
``uniform_int`` on the global mt19937).  ``convert_imageset`` never seeds that
generator, so its order cannot be reproduced; here ``seed`` seeds it (the
order Caffe would give after ``Caffe::set_random_seed(seed)``), and
``keys_file`` re-packs in a recorded order (a ``keys.txt`` of ``%08d_<file>``).

The database is written to ``<out>.partial`` and renamed to ``<out>`` only
when complete; records are decoded in ``workers`` processes.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import sys
from pathlib import Path

from prototxt_like import caffe_pb2
from prototxt_like.codec import serialize
from replicate.data.image import hwc_to_chw, imdecode, imencode, resize_linear
from replicate.progress import Progress

__all__ = ["read_caffe_list", "caffe_shuffle", "make_record", "pack", "Progress"]


def read_caffe_list(path) -> list[tuple[str, int]]:
    """convert_imageset's list parsing: the file name is everything before the
    last space, the label ``atoi`` of what follows."""
    out = []
    with open(path, "rb") as f:
        for raw in f.read().decode("utf-8", "surrogateescape").split("\n"):
            line = raw[:-1] if raw.endswith("\r") else raw
            if not line:
                continue
            pos = line.rfind(" ")
            tail = line[pos + 1:].strip()
            digits = ""
            for ch in tail:
                if ch.isdigit() or (not digits and ch in "+-"):
                    digits += ch
                else:
                    break
            try:
                label = int(digits)
            except ValueError:
                label = 0
            out.append((line[:pos] if pos >= 0 else line, label))
    return out


def caffe_shuffle(items: list, seed: int) -> list:
    """``caffe::shuffle`` with Caffe's global generator seeded by ``seed``."""
    from replicate.rng import CaffeRNG
    rng = CaffeRNG(seed)
    items = list(items)
    brange = 0xFFFFFFFF
    for i in range(len(items) - 1, 0, -1):
        bucket = brange // (i + 1)
        if brange % (i + 1) == i:
            bucket += 1
        while True:  # boost::uniform_int<ptrdiff_t>(0, i)
            j = int(rng.uint32(1)[0]) // bucket
            if j <= i:
                break
        items[i], items[j] = items[j], items[i]
    return items


def _match_ext(name: str, enc: str) -> bool:
    p = name.rfind(".")
    ext = (name[p + 1:] if p >= 0 else name).lower()
    enc = enc.lower()
    return ext == enc or (enc == "jpg" and ext == "jpeg")


def make_record(path: str, label: int, *, height: int = 0, width: int = 0, is_color: bool = True,
                encoding: str = "") -> bytes | None:
    """``ReadImageToDatum`` + ``SerializeToString``; None when the image cannot be read."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        img = imdecode(raw, "color" if is_color else "gray")
    except Exception:
        return None
    if height > 0 and width > 0:
        img = resize_linear(img, height, width)
    d = caffe_pb2.Datum()
    if encoding:
        if (img.shape[2] == 3) == is_color and not height and not width and _match_ext(path, encoding):
            d.data = raw  # ReadFileToDatum: the file as is
        else:
            d.data = imencode("." + encoding, img)
        d.label = label
        d.encoded = True
    else:
        d.channels, d.height, d.width = img.shape[2], img.shape[0], img.shape[1]
        d.data = hwc_to_chw(img).tobytes()
        d.encoded = False
        d.label = label
    return serialize(d)


def _job(args):
    line_id, name, label, root, opts = args
    return line_id, name, make_record(root + name, label, **opts)


class _LMDBWriter:
    def __init__(self, path: str):
        import lmdb
        os.mkdir(path, 0o755)
        self.map_size = 1 << 30
        self.env = lmdb.open(path, map_size=self.map_size, subdir=True, lock=True,
                             metasync=False, sync=False)
        self.pending: list[tuple[bytes, bytes]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.pending.append((key, value))

    def commit(self) -> None:
        import lmdb
        while True:  # grow the map as Caffe's LMDBTransaction::Commit does
            try:
                with self.env.begin(write=True) as txn:
                    for k, v in self.pending:
                        txn.put(k, v)
                break
            except lmdb.MapFullError:
                self.map_size *= 2
                self.env.set_mapsize(self.map_size)
        self.pending = []

    def close(self) -> None:
        self.env.sync(True)
        self.env.close()


class _LevelDBWriter:
    def __init__(self, path: str):
        import plyvel
        # Caffe's LevelDB::Open(NEW): error_if_exists, 256 MB write buffer, 100 open files.
        self.db = plyvel.DB(path, create_if_missing=True, error_if_exists=True,
                            write_buffer_size=268435456, max_open_files=100)
        self.batch = self.db.write_batch()

    def put(self, key: bytes, value: bytes) -> None:
        self.batch.put(key, value)

    def commit(self) -> None:
        self.batch.write()
        self.batch = self.db.write_batch()

    def close(self) -> None:
        self.db.close()


def pack(root, list_file, out, *, backend: str = "lmdb", resize_height: int = 0,
         resize_width: int = 0, gray: bool = False, encoded: bool = False, encode_type: str = "",
         shuffle: bool = False, seed: int | None = None, keys_file=None, check_size: bool = False,
         workers: int | None = None, progress: bool = True, log=None) -> int:
    """Write the database ``out``; returns the number of records."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    out = os.fspath(out)
    root = os.fspath(root)
    if os.path.exists(out):
        raise FileExistsError(f"{out} already exists; remove it first")
    lines = read_caffe_list(list_file)
    if keys_file is not None:
        labels = {}
        for name, label in lines:
            labels.setdefault(name, label)
        order = []
        for key in Path(keys_file).read_text().split():
            num, _, name = key.partition("_")
            if name not in labels:
                raise ValueError(f"key {key} names {name!r}, which is not in {list_file}")
            order.append((int(num), name, labels[name]))
    else:
        if shuffle:
            if seed is None:
                seed = int.from_bytes(os.urandom(4), "little")
            log(f"Shuffling data (seed {seed})")
            lines = caffe_shuffle(lines, seed)
        order = [(i, name, label) for i, (name, label) in enumerate(lines)]
    log(f"A total of {len(order)} images.")
    if encode_type and not encoded:
        log("encode_type specified, assuming encoded=true.")
    opts = dict(height=max(0, resize_height), width=max(0, resize_width), is_color=not gray)
    jobs = []
    for line_id, name, label in order:
        enc = encode_type
        if encoded and not enc:
            p = name.rfind(".")
            enc = name[p + 1:].lower() if p >= 0 else ""
        jobs.append((line_id, name, label, root, dict(opts, encoding=enc)))

    partial = out + ".partial"
    if os.path.exists(partial):
        log(f"removing the unfinished {partial} of an earlier run")
        shutil.rmtree(partial)
    writer = _LMDBWriter(partial) if backend.lower() == "lmdb" else _LevelDBWriter(partial)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    bar = Progress(len(jobs), f"pack {os.path.basename(out)}", enabled=progress)
    count = 0
    data_size = None
    pool = None
    try:
        if workers > 1 and len(jobs) > 1:
            pool = mp.get_context("fork").Pool(workers)
            results = pool.imap(_job, jobs, chunksize=8)
        else:
            results = map(_job, jobs)
        for line_id, name, value in results:
            bar.update()
            if value is None:
                log(f"Could not open or find file {root + name}")
                continue
            if check_size:
                d = caffe_pb2.Datum.FromString(value)
                size = d.channels * d.height * d.width if data_size is None else len(d.data)
                if data_size is None:
                    data_size = size
                elif size != data_size:
                    raise ValueError(f"Incorrect data field size {size} ({name}; expected {data_size})")
            writer.put(f"{line_id:08d}_{name}".encode("utf-8", "surrogateescape"), value)
            count += 1
            if count % 1000 == 0:
                writer.commit()
        writer.commit()
        writer.close()
    except BaseException:
        if pool is not None:
            pool.terminate()
        try:
            writer.close()
        except Exception:
            pass
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    os.rename(partial, out)
    log(f"Processed {count} files.")
    return count
