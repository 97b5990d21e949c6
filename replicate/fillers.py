"""Caffe's weight fillers (``include/caffe/filler.hpp``), drawing from the net's Caffe RNG.

Every filler is Caffe's, draw for draw and bit for bit: ``gaussian`` (with ``sparse``'s Bernoulli
mask), ``msra``, ``uniform``, ``xavier`` and ``positive_unitball`` draw from the emulated
``boost::mt19937`` through Boost's distributions (:mod:`replicate.rng`); ``constant`` and
``bilinear`` draw nothing.  Values are computed in the net's Dtype (float32 for ``Net<float>``).
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


def _n(param, shape, T=np.float32):
    """XavierFiller/MSRAFiller's ``Dtype n``: fan_in, fan_out or ``(fan_in + fan_out) / Dtype(2)``."""
    fan_in, fan_out = _fans(shape)
    if param.variance_norm == _VN.AVERAGE:
        return T(fan_in + fan_out) / T(2)
    if param.variance_norm == _VN.FAN_OUT:
        return T(fan_out)
    return T(fan_in)


def fill(param: caffe_pb2.FillerParameter, shape, rng: CaffeRNG, *, where: str = "",
         dtype=np.float32) -> np.ndarray:
    """An array of ``shape`` filled as Caffe's ``GetFiller<Dtype>(param)->Fill(blob)``."""
    shape = tuple(int(d) for d in shape)
    dt = np.dtype(dtype)
    T = dt.type
    count = math.prod(shape)
    kind = param.type
    if kind not in _KINDS:
        raise ValueError(f"{where}: unknown filler type {kind!r} (Caffe 1.0 has constant, uniform, gaussian, "
                         "positive_unitball, xavier, msra, bilinear)")
    if count == 0:
        raise ValueError(f"{where}: the {kind!r} filler got a blob of shape {shape} with no elements")
    if kind == "gaussian":
        if param.sparse < -1:
            raise ValueError(f"{where}: sparse must be >= -1, got {param.sparse}")
    elif param.sparse != -1:
        raise ValueError(f"{where}: sparsity is not supported by the {kind!r} filler (Caffe's rule)")
    # the value checks each filler makes after filling (CHECK_EQ(sparse, -1)) come first here: a
    # Caffe run that fails them aborts anyway
    if kind == "constant":
        return np.full(shape, T(np.float32(param.value)), dtype=dt)
    if kind == "uniform":
        return rng.uniform(count, np.float32(param.min), np.float32(param.max), dt).reshape(shape)
    if kind == "gaussian":
        std = np.float32(param.std)
        if not std > 0:
            raise ValueError(f"{where}: gaussian filler needs std > 0, got {param.std}")
        data = rng.gaussian(count, np.float32(param.mean), std, dt)
        if param.sparse >= 0:
            # p = Dtype(sparse) / Dtype(num_outputs), a Bernoulli<Dtype> mask; data[i] *= mask[i]
            p = T(param.sparse) / T(shape[0])
            if p > 1:
                raise ValueError(f"{where}: sparse {param.sparse} > {shape[0]} outputs gives a Bernoulli "
                                 f"probability {p} > 1 (Caffe: CHECK_LE(p, 1))")
            data = data * rng.bernoulli(count, float(p), dt).astype(dt)
        return data.reshape(shape)
    if kind == "positive_unitball":
        if len(shape) > 4:
            raise ValueError(f"{where}: positive_unitball needs a blob of at most 4 axes (Caffe's num())")
        data = rng.uniform(count, 0.0, 1.0, dt).reshape(shape[0], -1)
        sums = np.zeros(shape[0], dtype=dt)
        for j in range(data.shape[1]):  # Caffe's sequential sum per row
            sums += data[:, j]
        return (data / sums[:, None]).astype(dt).reshape(shape)
    if kind == "xavier":
        scale = np.sqrt(T(3) / _n(param, shape, T))
        return rng.uniform(count, -scale, scale, dt).reshape(shape)
    if kind == "msra":
        std = np.sqrt(T(2) / _n(param, shape, T))
        return rng.gaussian(count, 0.0, std, dt).reshape(shape)
    return _bilinear(shape, dt, where)


_KINDS = ("constant", "uniform", "gaussian", "positive_unitball", "xavier", "msra", "bilinear")


def _bilinear(shape, dt, where) -> np.ndarray:
    """BilinearFiller: ``f = ceil(K / 2.)``, ``c = (K - 1) / (2. * f)`` (double, then Dtype), and
    ``(1 - |x / f - c|) * (1 - |y / f - c|)`` in Dtype for x = i % K, y = (i / K) % K."""
    if len(shape) != 4:
        raise ValueError(f"{where}: the bilinear filler needs a 4-D blob, got shape {shape}")
    k_h, k_w = shape[2], shape[3]
    if k_h != k_w:
        raise ValueError(f"{where}: the bilinear filler needs a square kernel, got {k_h}x{k_w}")
    T = dt.type
    f = math.ceil(k_w / 2.0)
    c = T((k_w - 1) / (2.0 * f))
    i = np.arange(math.prod(shape), dtype=np.int64)
    x = (i % k_w).astype(dt)
    y = ((i // k_w) % k_h).astype(dt)
    fT = T(f)
    one = T(1)
    return ((one - np.abs(x / fT - c)) * (one - np.abs(y / fT - c))).astype(dt).reshape(shape)
