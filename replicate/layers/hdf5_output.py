"""HDF5Output: writes its two bottoms to an HDF5 file as datasets ``data`` and ``label`` (Caffe
1.0's ``HDF5OutputLayer``, ``src/caffe/layers/hdf5_output_layer.cpp``), through h5py.

* Set-up creates ``hdf5_output_param.file_name``, truncating an existing file
  (``H5Fcreate(H5F_ACC_TRUNC)``); the file stays open until the net is closed.
* Forward copies each bottom into a blob of the legacy 4-D shape ``(num, channels, height, width)``
  (axes a bottom lacks are 1; more than 4 axes is an error, as ``Blob::LegacyShape``) and writes
  ``data`` and ``label`` as float (double in a double net) datasets of that shape
  (``H5LTmake_dataset_float``).  The bottoms must have the same ``num``.
* As in Caffe, the datasets are made, not replaced: a second forward into the same file fails
  (Caffe aborts with "Failed to make float dataset data").  It has no tops and its backward does
  nothing.
"""
from __future__ import annotations

import numpy as np
import torch

from .base import Layer


def legacy_shape(shape, layer) -> tuple:
    if len(shape) > 4:
        raise layer.error(f"Cannot use legacy accessors on Blobs with > 4 axes (shape {tuple(shape)})")
    return tuple(shape) + (1,) * (4 - len(shape)) if shape else (1, 1, 1, 1)


class HDF5Output(Layer):
    type = "HDF5Output"
    min_bottoms = max_bottoms = 2

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        if len(param.top):
            raise self.error(f"HDF5Output takes no top blobs, got {len(param.top)}")
        self.file_name = param.hdf5_output_param.file_name
        self.file = None

    def setup(self, bottoms):
        import h5py
        try:
            self.file = h5py.File(self.file_name, "w")
        except OSError as e:
            raise self.error(f"Failed to open HDF5 file {self.file_name}: {e}") from None

    def forward(self, bottoms):
        if self.ctx.shape_only:
            return []
        data, label = bottoms
        if data.dim() < 1 or label.dim() < 1 or data.shape[0] != label.shape[0]:
            raise self.error(f"data blob and label blob must have the same batch size "
                             f"({tuple(data.shape)} and {tuple(label.shape)})")
        dtype = np.float64 if self.ctx.dtype == torch.float64 else np.float32
        arrays = {}
        for name, b in (("data", data), ("label", label)):
            arrays[name] = np.ascontiguousarray(b.detach().cpu().numpy().astype(dtype, copy=False)) \
                .reshape(legacy_shape(tuple(b.shape), self))
        if self.file is None:
            raise self.error("the HDF5 file is closed")
        for name, arr in arrays.items():
            if name in self.file:
                raise self.error(f"Failed to make {'double' if dtype == np.float64 else 'float'} dataset {name}: "
                                 f"{self.file_name} already has it (Caffe's HDF5Output writes one batch per file)")
            self.file.create_dataset(name, data=arr)
        self.file.flush()
        return []

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        return [None] * len(bottoms)

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


LAYER = HDF5Output
