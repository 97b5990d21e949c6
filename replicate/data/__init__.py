"""Caffe 1.0's Data layer: Datum databases -> DataTransformer -> batches.

The one entry point the net builder uses::

    source = replicate.data.open_source(layer_param, phase, rng_seed=None, workers=None)
    source.top_shapes()        # [(N, C, H, W), (N,)]  ((N, C, H, W) only for a one-top layer)
    data, label = source.next()  # fresh float32 tensors; label is None for a one-top layer
    source.resume_state() / source.restore_state(state)  # exact resume (solver snapshots)
    source.close()

Batches come strictly in cursor order whatever the number of workers: each
source has its own cursor starting at the first key, wrapping around at the
end, exactly as Caffe's ``DataLayer``.  See :mod:`.db` (read-only cursors),
:mod:`.transformer` (Caffe's arithmetic and random draws), :mod:`.prefetch`
(background workers) and :mod:`.image` (OpenCV-compatible decode/resize/encode).
"""
from __future__ import annotations

import os
import secrets
import threading

import numpy as np

from prototxt_like import caffe_pb2

from .db import Cursor, DataSourceError, iter_records, open_db
from .prefetch import Prefetcher
from .transformer import DataTransformer, decode_datum, needs_rand

__all__ = ["open_source", "DataSource", "DataSourceError", "DataTransformer", "Cursor",
           "open_db", "iter_records", "decode_datum", "needs_rand", "default_workers"]

_BACKEND = {caffe_pb2.DataParameter.LEVELDB: "leveldb", caffe_pb2.DataParameter.LMDB: "lmdb"}


def default_workers() -> int:
    """``REPLICATE_DATA_WORKERS``, else 2 (or 1 on a one-core machine)."""
    env = os.environ.get("REPLICATE_DATA_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(2, os.cpu_count() or 1))


class DataSource:
    """A running Data layer (see :func:`open_source`)."""

    def __init__(self, layer_param, phase, rng_seed=None, workers=None, *,
                 root=None, pin_memory=None, prefetch=None):
        self.name = layer_param.name
        dp = layer_param.data_param
        path = dp.source
        if root is not None and path and not os.path.isabs(path):
            path = os.path.join(os.fspath(root), path)
        self.path = path
        where = f"Data layer {self.name!r}, source {path!r}"
        if not dp.source:
            raise DataSourceError(f"Data layer {self.name!r}: data_param.source is not set")
        if dp.batch_size <= 0:
            raise DataSourceError(f"{where}: batch_size must be positive, not {dp.batch_size}")
        self.batch_size = int(dp.batch_size)
        self.backend = _BACKEND.get(dp.backend, "lmdb")
        self.transformer = DataTransformer(layer_param.transform_param, phase, root=root,
                                           layer=self.name)
        try:
            self.cursor = Cursor(path, self.backend)
        except DataSourceError as e:
            raise DataSourceError(f"{where}: {e}") from None
        try:
            # DataLayerSetUp: the first record fixes the top shape.
            first = self._decode(self.cursor.value())
            self.transformer.check(first.shape)
            self._shape = self.transformer.output_shape(first.shape)
        except DataSourceError as e:
            self.cursor.close()
            msg = str(e)
            raise DataSourceError(msg if path in msg else f"{where}: {msg}") from None
        self.output_labels = len(layer_param.top) != 1
        self._k = self.transformer.draws_per_item
        self.rng = None
        if self._k:
            from replicate.rng import CaffeRNG
            seed = secrets.randbits(32) if rng_seed is None else int(rng_seed)
            self.rng = CaffeRNG(seed)
        import torch
        if pin_memory is None:
            pin_memory = torch.cuda.is_available()
        self.pin_memory = bool(pin_memory)
        self.workers = default_workers() if workers is None else max(1, int(workers))
        self._pool: list = []
        self._pool_lock = threading.Lock()
        self._depth = prefetch if prefetch is not None else (dp.prefetch or 4)
        self._pool_max = 2 * (self._depth + self.workers) + 4
        self._state = self._position()  # where the next batch handed out starts
        self._prefetcher = self._start()

    def _start(self) -> Prefetcher:
        return Prefetcher(self._read_batch, self._make_batch, workers=self.workers,
                          depth=self._depth, name=f"data:{self.name}")

    def _position(self):
        """(cursor key, wrap count, transformer RNG state) before the next record is read."""
        return self.cursor.key(), self.cursor.wraps, self.rng.get_state() if self.rng else None

    def _decode(self, value):
        return self.transformer.decode(self.transformer.parse(value))

    # reader thread: cursor order and random draws, nothing else; each batch carries the
    # position after it, which becomes the source's state once the batch is handed out
    def _read_batch(self):
        values = []
        for _ in range(self.batch_size):
            values.append(self.cursor.value())
            self.cursor.next()
        draws = self.rng.uint32(self.batch_size * self._k) if self._k else None
        return values, draws, self._position()

    # worker threads
    def _make_batch(self, job):
        values, draws, after = job
        t = self.transformer
        n, k = self.batch_size, self._k
        data = None
        label = self._alloc((n,)) if self.output_labels else None
        lab = label.numpy() if label is not None else None
        try:
            for i, v in enumerate(values):
                datum = t.parse(v)
                x = t.decode(datum)
                if data is None:  # the batch's first record fixes its shape (load_batch)
                    shape = t.output_shape(x.shape)
                    data = self._alloc((n,) + shape)
                    arr = data.numpy()
                t.transform(x, arr[i], draws[i * k:(i + 1) * k] if k else ())
                if lab is not None:
                    lab[i] = datum.label
        except DataSourceError as e:
            raise DataSourceError(f"Data layer {self.name!r}, source {self.path!r}: "
                                  f"{str(e).split(': ', 1)[-1]}") from None
        return data, label, after

    def _alloc(self, shape):
        """A float32 tensor no one else holds.  Pinned batches come from torch's
        caching host allocator (which knows when a copy to the GPU is done);
        pageable ones reuse a storage of an earlier batch once every tensor and
        view of it is gone, since touching ~160 MB of fresh pages per batch
        costs more than the transform."""
        import torch
        if self.pin_memory:
            return torch.empty(shape, dtype=torch.float32, pin_memory=True)
        nbytes = 4 * int(np.prod(shape))
        with self._pool_lock:
            for st in self._pool:
                if st.nbytes() == nbytes and torch._C._storage_Use_Count(st._cdata) == 1:
                    break
            else:
                st = torch.empty(shape, dtype=torch.float32).untyped_storage()
                self._pool.append(st)
                if len(self._pool) > self._pool_max:
                    self._pool.pop(0)
            return torch.empty(0, dtype=torch.float32).set_(st, 0, shape)

    def top_shapes(self):
        """``[(N, C, H, W), (N,)]``, or ``[(N, C, H, W)]`` for a one-top layer."""
        shapes = [(self.batch_size,) + tuple(self._shape)]
        if self.output_labels:
            shapes.append((self.batch_size,))
        return shapes

    def next(self):
        """The next batch: ``(data, label)`` float32 tensors (label None for a one-top layer)."""
        data, label, self._state = self._prefetcher.next()
        return data, label

    def resume_state(self) -> dict:
        """Arrays that :meth:`restore_state` continues from: the key of the next batch's first
        record, the wrap count and the transformer's mt19937 state before that batch."""
        key, wraps, rng = self._state
        out = {"key": np.frombuffer(key, dtype=np.uint8).copy(), "wraps": np.int64(wraps)}
        if rng is not None:
            out["rng_key"], out["rng_pos"] = rng[0], np.int64(rng[1])
        return out

    def restore_state(self, state) -> None:
        """Drop the batches read ahead, seek the cursor to the saved key (a tree search), set the
        transformer's generator and prefetch again from there."""
        if ("rng_key" in state) != (self.rng is not None):
            raise DataSourceError(f"Data layer {self.name!r}: the saved state "
                                  f"{'has' if 'rng_key' in state else 'lacks'} a transformer generator, "
                                  f"the layer {'does not draw' if self.rng is None else 'draws'} random numbers")
        self._prefetcher.close()
        self._prefetcher.wait_reader()
        self.cursor.seek(np.asarray(state["key"], dtype=np.uint8).tobytes(), int(state["wraps"]))
        if self.rng is not None:
            self.rng.set_state(state["rng_key"], int(state["rng_pos"]))
        self._state = self._position()
        self._prefetcher = self._start()

    def close(self) -> None:
        self._prefetcher.close()
        self.cursor.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_source(layer_param, phase, rng_seed=None, workers=None, *, root=None,
                pin_memory=None, prefetch=None) -> DataSource:
    """Start a Data layer.

    * ``layer_param``: a V2 ``LayerParameter`` of type ``"Data"`` (``data_param``:
      source, backend, batch_size, prefetch; ``transform_param``).
    * ``phase``: ``caffe_pb2.TRAIN`` (0) or ``caffe_pb2.TEST`` (1).
    * ``rng_seed``: the uint32 seed of the transformer's generator (Caffe seeds it
      with one ``caffe_rng_rand()`` in ``InitRand``); None draws one from the OS.
      Ignored when :func:`needs_rand` is false (no mirror, no TRAIN crop).
    * ``workers``: transform threads (default :func:`default_workers`); the
      batches do not depend on it.
    * ``root``: folder that relative ``source`` / ``mean_file`` paths are
      relative to (default: the working folder, as in Caffe).
    * ``pin_memory``: page-locked batches (default: when CUDA is available).
    * ``prefetch``: batches read ahead (default ``data_param.prefetch``, 4).
    """
    return DataSource(layer_param, phase, rng_seed, workers, root=root,
                      pin_memory=pin_memory, prefetch=prefetch)
