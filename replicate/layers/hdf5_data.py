"""HDF5Data: rows of HDF5 datasets, one dataset per top (Caffe 1.0's ``HDF5DataLayer``,
``src/caffe/layers/hdf5_data_layer.cpp``), read with the HDF5 library through h5py.

* ``hdf5_data_param.source`` lists ``.h5`` files, whitespace-separated (``ifstream >> string``);
  relative names are relative to the working folder, as in Caffe.
* Each top reads the dataset of its own name from the file's root group: at least one axis, an
  integer or floating class (HDF5 converts it to float, as ``H5LTread_dataset_float`` does); every
  top must have as many rows as the first.  The top shapes are ``batch_size`` x the first file's
  row shape; later files must have rows of the same size.
* Forward copies ``batch_size`` rows, in the order of the row permutation, moving to the next file
  when a file's rows are used up (the whole file is loaded, there is no prefetch thread).
* ``shuffle``: Caffe shuffles with ``std::random_shuffle``, i.e. libstdc++'s
  ``j = rand() % (i + 1)`` for ``i = 1 .. n-1`` on the C library's ``rand()``, which Caffe never
  seeds: the order does not depend on ``random_seed`` but on how many ``rand()`` calls the process
  made before.  :class:`GlibcRand` is glibc's ``rand()`` (the TYPE_3 additive generator, seed 1),
  one per process, shared by every HDF5Data layer as the C library's state is shared.  At set-up
  the file order is shuffled, then the first file's rows; when a file's rows are used up and there
  is more than one file, the next file is loaded (its rows shuffled on loading) and, after the
  last file, the file order is shuffled again first; then (one file or several) the rows are
  shuffled once more, as Caffe's ``Next()`` does.
"""
from __future__ import annotations

import threading

import numpy as np
import torch

from .base import Layer

__all__ = ["HDF5Data", "GlibcRand", "libc_rand", "random_shuffle"]


class GlibcRand:
    """glibc's ``rand()`` / ``random()``: ``r[i] = r[i-3] + r[i-31]`` (mod 2^32), output ``r[i] >> 1``,
    the 31 words seeded by ``srand(seed)`` with ``16807 * x mod (2^31 - 1)`` and 310 outputs
    discarded (``srandom_r``, TYPE_3)."""

    def __init__(self, seed: int = 1):
        self.seed(seed)

    def seed(self, seed: int = 1) -> None:
        seed = int(seed) & 0xFFFFFFFF
        if seed == 0:
            seed = 1
        word = seed - (1 << 32) if seed >= 1 << 31 else seed  # glibc's int32_t word
        r = [seed]
        for _ in range(30):
            hi = int(word / 127773)  # C's truncating division (word may be negative)
            lo = word - hi * 127773
            word = 16807 * lo - 2836 * hi
            if word < 0:
                word += 2147483647
            r.append(word & 0xFFFFFFFF)
        self.r = r            # the last 31 words, oldest first
        self.f, self.b = 3, 0  # glibc's fptr / rptr
        for _ in range(310):
            self.rand()

    def rand(self) -> int:
        r = self.r
        r[self.f] = v = (r[self.f] + r[self.b]) & 0xFFFFFFFF
        self.f = (self.f + 1) % 31
        self.b = (self.b + 1) % 31
        return v >> 1

    def get_state(self) -> np.ndarray:
        return np.array(self.r + [self.f, self.b], dtype=np.int64)

    def set_state(self, state) -> None:
        s = [int(x) for x in np.asarray(state)]
        if len(s) != 33:
            raise ValueError("not a glibc rand() state")
        self.r, self.f, self.b = s[:31], s[31], s[32]


_LIBC = GlibcRand(1)
_LIBC_LOCK = threading.Lock()


def libc_rand() -> GlibcRand:
    """The process's C-library ``rand()`` as Caffe's process would have it (seed 1 at start)."""
    return _LIBC


def random_shuffle(items, rng: GlibcRand = None) -> None:
    """libstdc++'s ``std::random_shuffle(first, last)`` in place: ``swap(a[i], a[rand() % (i + 1)])``
    for ``i = 1 .. n-1``."""
    rng = _LIBC if rng is None else rng
    with _LIBC_LOCK:
        for i in range(1, len(items)):
            j = rng.rand() % (i + 1)
            if i != j:
                items[i], items[j] = items[j], items[i]


def read_source(path) -> list:
    """The file names of ``source``: whitespace-separated words (``source_file >> line``)."""
    with open(path, "rb") as f:
        return [w.decode("utf-8", "surrogateescape") for w in f.read().split()]


class HDF5Data(Layer):
    type = "HDF5Data"
    max_bottoms = 0

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        if param.HasField("transform_param"):
            raise self.error("HDF5Data does not transform data.")
        if len(param.top) < 1:
            raise self.error("HDF5Data takes at least 1 top blob")
        p = param.hdf5_data_param
        self.tops = list(param.top)
        self.batch_size = int(p.batch_size)
        self.shuffle = bool(p.shuffle)
        self.np_dtype = np.float64 if ctx.dtype == torch.float64 else np.float32
        try:
            self.files = read_source(p.source)
        except OSError:
            raise self.error(f"Failed to open source file: {p.source}") from None
        if not self.files:
            raise self.error(f"Must have at least 1 HDF5 filename listed in {p.source}")
        self.file_perm = list(range(len(self.files)))
        if self.shuffle:
            random_shuffle(self.file_perm)
        self.current_file = 0
        self._load(self.files[self.file_perm[0]])
        self.current_row = 0
        self.row_shapes = [b.shape[1:] for b in self.blobs]
        self.row_sizes = [int(np.prod(s)) for s in self.row_shapes]

    def _load(self, filename: str, shuffle_rows: bool = True) -> None:
        """LoadHDF5FileData: every top's dataset, the identity row permutation, shuffled if asked."""
        import h5py
        try:
            f = h5py.File(filename, "r")
        except OSError as e:
            raise self.error(f"Failed opening HDF5 file: {filename} ({e})") from None
        blobs = []
        with f:
            for name in self.tops:
                obj = f.get(name) if "/" not in name else None  # H5LTfind_dataset: the root group only
                if not isinstance(obj, h5py.Dataset):
                    raise self.error(f"Failed to find HDF5 dataset {name} in {filename}")
                if obj.ndim < 1:
                    raise self.error(f"dataset {name} of {filename} has no axes")
                if obj.dtype.kind not in "fiu":
                    raise self.error(f"Unsupported datatype class of dataset {name} in {filename}: {obj.dtype}")
                arr = np.empty(obj.shape, dtype=self.np_dtype)
                if arr.size:
                    obj.read_direct(arr)  # the HDF5 library's own conversion to float / double
                blobs.append(arr)
        num = blobs[0].shape[0]
        for name, b in zip(self.tops[1:], blobs[1:]):
            if b.shape[0] != num:
                raise self.error(f"dataset {name} of {filename} has {b.shape[0]} rows, {self.tops[0]} has {num}")
        if num == 0:
            raise self.error(f"{filename} has no rows")
        if hasattr(self, "row_sizes"):
            for name, b, size in zip(self.tops, blobs, self.row_sizes):
                if int(np.prod(b.shape[1:])) != size:
                    raise self.error(f"dataset {name} of {filename} has rows of {int(np.prod(b.shape[1:]))} "
                                     f"values, the top was shaped for {size}")
        self.blobs = blobs
        self.data_perm = list(range(num))
        if self.shuffle and shuffle_rows:
            random_shuffle(self.data_perm)

    def _next(self) -> None:
        self.current_row += 1
        if self.current_row == self.blobs[0].shape[0]:
            if len(self.files) > 1:
                self.current_file += 1
                if self.current_file == len(self.files):
                    self.current_file = 0
                    if self.shuffle:
                        random_shuffle(self.file_perm)
                self._load(self.files[self.file_perm[self.current_file]])
            self.current_row = 0
            if self.shuffle:
                random_shuffle(self.data_perm)

    def forward(self, bottoms):
        shapes = [(self.batch_size,) + tuple(s) for s in self.row_shapes]
        if self.ctx.shape_only:
            return [torch.empty(s, dtype=self.ctx.dtype, device="meta") for s in shapes]
        outs = [np.empty((self.batch_size, size), dtype=self.np_dtype) for size in self.row_sizes]
        for i in range(self.batch_size):
            row = self.data_perm[self.current_row]
            for out, blob in zip(outs, self.blobs):
                out[i] = blob[row].reshape(-1)
            self._next()
        return [torch.from_numpy(o.reshape(s)).to(self.ctx.device) for o, s in zip(outs, shapes)]

    def resume_state(self) -> dict:
        return {"file_perm": np.asarray(self.file_perm, dtype=np.int64),
                "data_perm": np.asarray(self.data_perm, dtype=np.int64),
                "current_file": np.int64(self.current_file), "current_row": np.int64(self.current_row),
                "libc_rand": _LIBC.get_state()}

    def restore_state(self, state) -> None:
        file_perm = [int(i) for i in np.asarray(state["file_perm"])]
        if sorted(file_perm) != list(range(len(self.files))):
            raise self.error("the saved state lists another number of files")
        self.file_perm, self.current_file = file_perm, int(state["current_file"])
        self._load(self.files[self.file_perm[self.current_file]], shuffle_rows=False)
        data_perm = [int(i) for i in np.asarray(state["data_perm"])]
        if sorted(data_perm) != list(range(self.blobs[0].shape[0])):
            raise self.error("the saved row order does not fit the file's rows")
        self.data_perm, self.current_row = data_perm, int(state["current_row"])
        _LIBC.set_state(state["libc_rand"])


LAYER = HDF5Data
