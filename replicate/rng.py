"""Caffe's random numbers, drawn exactly as Caffe 1.0 draws them on the CPU.

Caffe keeps one global ``boost::mt19937`` seeded by ``Caffe::set_random_seed(seed)`` (the
solver's ``random_seed``).  numpy's MT19937 with legacy seeding is the same generator and the same
seeding (``init_genrand``), so its raw 32-bit outputs are Caffe's.
"""
from __future__ import annotations

import numpy as np

UINT32_MAX = 4294967295.0


class CaffeRNG:
    def __init__(self, seed: int):
        if not 0 <= int(seed) < 2**32:
            raise ValueError(f"Caffe's random seed is an unsigned 32-bit integer, got {seed}")
        self._bits = np.random.MT19937(0)
        self._bits._legacy_seeding(int(seed))

    def uint32(self, n: int) -> np.ndarray:
        """``n`` raw outputs of the generator, as ``boost::mt19937::operator()`` returns them."""
        return self._bits.random_raw(n).astype(np.uint32)

    def bernoulli(self, n: int, p: float) -> np.ndarray:
        """``caffe_rng_bernoulli<double>``: boost's bernoulli_distribution<double>(p), 1 iff
        ``double(u) <= p * (2^32 - 1)``; p == 0 draws nothing (boost returns false at once)."""
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Bernoulli probability must be in [0, 1], got {p}")
        if p == 0.0:
            return np.zeros(n, dtype=np.int32)
        return (self.uint32(n).astype(np.float64) <= p * UINT32_MAX).astype(np.int32)

    def dropout_mask(self, shape, ratio: float) -> np.ndarray:
        """DropoutLayer::Forward_cpu's mask: ``caffe_rng_bernoulli(count, 1. - threshold_)`` with
        the ratio rounded to float as Caffe's layer parameter is."""
        keep = 1.0 - float(np.float32(ratio))
        return self.bernoulli(int(np.prod(shape)), keep).reshape(shape)
