"""Caffe's weight fillers (filler.hpp), drawing from the net's Caffe RNG.

``constant``, ``uniform``, ``xavier`` and ``positive_unitball`` use Caffe's formulas on the
emulated boost mt19937 stream, draw for draw; ``gaussian`` (with ``sparse``) and ``msra`` use the
same stream but Box-Muller instead of boost's ziggurat, so their values are not Caffe's bits (no
result in this project depends on them: the paper's nets and every golden case load weights).
"""
from __future__ import annotations

import math

import numpy as np

from prototxt_like import caffe_pb2

from .rng import CaffeRNG

_VN = caffe_pb2.FillerParameter


def _fans(shape):
    count = math.prod(shape)
    fan_in = count // shape[0]
    fan_out = count // shape[1] if len(shape) > 1 else count
    return fan_in, fan_out


def _n(param, shape) -> np.float32:
    fan_in, fan_out = _fans(shape)
    if param.variance_norm == _VN.AVERAGE:
        return np.float32((fan_in + fan_out) / np.float32(2))
    if param.variance_norm == _VN.FAN_OUT:
        return np.float32(fan_out)
    return np.float32(fan_in)


def fill(param: caffe_pb2.FillerParameter, shape, rng: CaffeRNG, *, where: str = "") -> np.ndarray:
    """A float32 array of ``shape`` filled as Caffe's ``GetFiller(param)->Fill(blob)``."""
    shape = tuple(int(d) for d in shape)
    count = math.prod(shape)
    kind = param.type
    if param.sparse >= 0 and kind != "gaussian":
        raise ValueError(f"{where}: sparsity is not supported by the {kind!r} filler (Caffe's rule)")
    if kind == "constant":
        return np.full(shape, np.float32(param.value), dtype=np.float32)
    if kind == "uniform":
        return rng.uniform(count, np.float32(param.min), np.float32(param.max)).reshape(shape)
    if kind == "gaussian":
        std = np.float32(param.std)
        if not std > 0:
            raise ValueError(f"{where}: gaussian filler needs std > 0, got {param.std}")
        data = rng.gaussian(count, np.float32(param.mean), std)
        if param.sparse >= 0:
            p = np.float32(param.sparse) / np.float32(shape[0])
            data = data * rng.bernoulli(count, float(p)).astype(np.float32)
        return data.reshape(shape)
    if kind == "positive_unitball":
        data = rng.uniform(count, 0.0, 1.0).reshape(shape[0], -1)
        sums = np.zeros(shape[0], dtype=np.float32)
        for j in range(data.shape[1]):  # Caffe's sequential float sum
            sums += data[:, j]
        return (data / sums[:, None]).astype(np.float32).reshape(shape)
    if kind == "xavier":
        scale = np.float32(np.sqrt(np.float32(3) / _n(param, shape)))
        return rng.uniform(count, -scale, scale).reshape(shape)
    if kind == "msra":
        std = np.float32(np.sqrt(np.float32(2) / _n(param, shape)))
        return rng.gaussian(count, 0.0, std).reshape(shape)
    raise ValueError(f"{where}: unknown filler type {kind!r} (Caffe 1.0 has constant, uniform, gaussian, "
                     "positive_unitball, xavier, msra, bilinear)")
