"""``compute_image_mean``: a Datum database -> mean image ``.binaryproto``.

As Caffe 1.0's tool: a float32 running sum of every record, in key order,
of its uint8 pixels (or float_data), divided by the record count in float32;
encoded records are decoded natively first.  Written as a ``BlobProto`` with
the legacy ``num: 1 channels height width`` fields and float ``data``.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from prototxt_like.blobs import numpy_to_blob
from replicate.fileio import atomic_write
from prototxt_like.codec import serialize

__all__ = ["compute_mean", "mean_blob_bytes", "write_mean"]


def compute_mean(db_path, backend: str = "lmdb", *, log=None) -> np.ndarray:
    """The mean image, float32 C x H x W.  (LevelDB is rewritten by opening it;
    see :mod:`replicate.data.db`.)"""
    from replicate.data.db import DataSourceError, iter_records
    from replicate.data.transformer import decode_datum
    from prototxt_like.datum import parse_datum
    total = None
    count = 0
    for key, value in iter_records(db_path, backend):
        x = decode_datum(parse_datum(value))
        if total is None:
            total = np.zeros(x.shape, dtype=np.float32)
        elif x.size != total.size:
            raise DataSourceError(f"{os.fspath(db_path)}: record {key!r} holds {x.size} values, "
                                  f"the first {total.size} (Incorrect data field size)")
        total += x.reshape(total.shape)  # float32 + uint8 -> float32, one add per record
        count += 1
        if log and count % 10000 == 0:
            log(f"Processed {count} files.")
    if total is None:
        raise DataSourceError(f"{os.fspath(db_path)} is empty")
    return total / np.float32(count)


def mean_blob_bytes(mean: np.ndarray) -> bytes:
    return serialize(numpy_to_blob(np.asarray(mean, dtype=np.float32)[None], legacy_4d=True))


def write_mean(db_path, out, backend: str = "lmdb", *, log=None) -> np.ndarray:
    log = log or (lambda m: print(m, file=sys.stderr))
    mean = compute_mean(db_path, backend, log=log)
    if out is not None:
        atomic_write(out, mean_blob_bytes(mean))
        log(f"Write to {out}")
    c = mean.shape[0]
    for i in range(c):
        # LOG line of compute_image_mean (its float sum over the channel, then / dim)
        log(f"mean_value channel [{i}]: {float(mean[i].astype(np.float64).sum()) / mean[i].size}")
    return mean
