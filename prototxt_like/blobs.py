"""BlobProto <-> numpy, with Caffe's shape rules.

A blob's shape is ``shape.dim`` unless any of the legacy 4-D fields
``num/channels/height/width`` is set, in which case it is exactly
``(num, channels, height, width)`` (``Blob::FromProto``).  Its values are
``double_data`` when that is non-empty, else ``data``; their count must equal
the product of the shape (an empty shape is a scalar of count 1).

Legacy parameter blobs were written right-aligned: an InnerProduct weight of
shape ``(M, K)`` was stored as ``1 x 1 x M x K`` and every bias as
``1 x 1 x 1 x N``.  Caffe accepts them wherever the right-aligned legacy
shape matches (``Blob::ShapeEquals``); :func:`fit_to_shape` does the same.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from . import caffe_pb2
from .errors import BlobError

__all__ = [
    "blob_shape",
    "blob_to_numpy",
    "numpy_to_blob",
    "has_legacy_shape",
    "legacy_shape_matches",
    "fit_to_shape",
    "check_blob",
]

INT_MAX = 2**31 - 1


def has_legacy_shape(blob: caffe_pb2.BlobProto) -> bool:
    return any(blob.HasField(f) for f in ("num", "channels", "height", "width"))


def blob_shape(blob: caffe_pb2.BlobProto) -> tuple[int, ...]:
    """The shape Caffe's ``Blob::FromProto`` gives this blob."""
    if has_legacy_shape(blob):
        return (blob.num, blob.channels, blob.height, blob.width)
    return tuple(int(d) for d in blob.shape.dim)


_LEGACY = ("num", "channels", "height", "width")


def check_blob(blob: caffe_pb2.BlobProto, what: str = "blob", *,
               from_file: bool = False) -> tuple[int, ...]:
    """Shape of ``blob`` after checking that its data and diff fit it.

    ``from_file`` adds a check that only damage can fail: Caffe always writes
    all four legacy dimensions or none, so a blob with some of them set was
    cut short.
    """
    if from_file and has_legacy_shape(blob) and not all(blob.HasField(f) for f in _LEGACY):
        unset = [f for f in _LEGACY if not blob.HasField(f)]
        raise BlobError(f"{what} has a legacy 4-D shape without {'/'.join(unset)}")
    shape = blob_shape(blob)
    if any(d < 0 for d in shape):
        raise BlobError(f"{what} has a negative dimension in shape {shape}")
    count = 1
    for d in shape:
        count *= d
    if count > INT_MAX:
        raise BlobError(f"{what} shape {shape} has {count} elements, more than Caffe's limit of {INT_MAX}")
    n_data = len(blob.double_data) or len(blob.data)
    if n_data != count:
        raise BlobError(f"{what} of shape {shape} needs {count} values but holds {n_data}")
    n_diff = len(blob.double_diff) or len(blob.diff)
    if n_diff not in (0, count):
        raise BlobError(f"{what} of shape {shape} needs {count} diff values but holds {n_diff}")
    return shape


def blob_to_numpy(blob: caffe_pb2.BlobProto, *, diff: bool = False,
                  what: str = "blob", from_file: bool = False) -> np.ndarray:
    """The blob's data (or diff) as a new array of the blob's shape.

    float32 from ``data``/``diff``; float64 from ``double_data``/``double_diff``
    (which Caffe prefers when present).
    """
    shape = check_blob(blob, what, from_file=from_file)
    if diff:
        if blob.double_diff:
            values = np.array(blob.double_diff, dtype=np.float64)
        elif blob.diff:
            values = np.array(blob.diff, dtype=np.float32)
        else:
            raise BlobError(f"{what} holds no diff")
    elif blob.double_data:
        values = np.array(blob.double_data, dtype=np.float64)
    else:
        values = np.array(blob.data, dtype=np.float32)
    return values.reshape(shape)


def numpy_to_blob(arr, *, diff=None, legacy_4d: bool = False) -> caffe_pb2.BlobProto:
    """A BlobProto holding ``arr`` (and optionally ``diff``).

    float64 arrays go to ``double_data`` (as ``Blob<double>::ToProto``),
    everything else to float32 ``data`` (as ``Blob<float>::ToProto``).
    The shape is written as ``shape.dim``; ``legacy_4d=True`` writes
    ``num/channels/height/width`` instead (right-aligned, for arrays of at
    most 4 axes), as ``compute_image_mean`` and 2014 Caffe did.
    """
    a = np.asarray(arr)
    if a.dtype.kind not in "fiub":
        raise BlobError(f"cannot store an array of dtype {a.dtype} in a blob")
    use_double = a.dtype == np.float64
    blob = caffe_pb2.BlobProto()
    if legacy_4d:
        if a.ndim > 4:
            raise BlobError(f"legacy 4-D blob cannot hold an array of shape {a.shape}")
        n, c, h, w = (1,) * (4 - a.ndim) + tuple(a.shape)
        blob.num, blob.channels, blob.height, blob.width = n, c, h, w
    else:
        # A 0-D array leaves `shape` unset, as Blob::ToProto does for scalars.
        if a.ndim:
            blob.shape.dim.extend(int(d) for d in a.shape)
    flat = a.reshape(-1)
    if use_double:
        blob.double_data.extend(flat.astype(np.float64).tolist())
    else:
        blob.data.extend(flat.astype(np.float32).tolist())
    if diff is not None:
        d = np.asarray(diff)
        if d.shape != a.shape:
            raise BlobError(f"diff shape {d.shape} differs from data shape {a.shape}")
        if use_double:
            blob.double_diff.extend(d.reshape(-1).astype(np.float64).tolist())
        else:
            blob.diff.extend(d.reshape(-1).astype(np.float32).tolist())
    return blob


def legacy_shape_matches(stored: Sequence[int], target: Sequence[int]) -> bool:
    """Caffe's ``ShapeEquals`` for a legacy 4-D ``stored`` shape: ``target``
    has at most 4 axes and, padded with leading 1s to 4, equals ``stored``."""
    target = tuple(target)
    if len(target) > 4:
        return False
    return tuple(stored) == (1,) * (4 - len(target)) + target


def fit_to_shape(arr: np.ndarray, target: Iterable[int], *, legacy: bool | None = None,
                 what: str = "blob") -> np.ndarray:
    """``arr`` reshaped to ``target`` when Caffe would accept it there.

    An exact shape match always fits; a legacy 4-D array (``legacy`` true,
    or unknown and ``arr`` 4-D) also fits a target whose right-aligned legacy
    shape equals it.  Anything else raises BlobError, like Caffe's
    ``Cannot copy param ... weights from layer ...; shape mismatch``.
    """
    target = tuple(int(d) for d in target)
    if arr.shape == target:
        return arr
    if legacy is None:
        legacy = arr.ndim == 4
    if legacy and legacy_shape_matches(arr.shape, target):
        return arr.reshape(target)
    raise BlobError(f"{what}: shape mismatch, stored {arr.shape} cannot fill {target}")
