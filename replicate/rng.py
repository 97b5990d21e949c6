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

    def get_state(self) -> tuple:
        """``(key, pos)``: a copy of the generator's 624-word state and its position."""
        st = self._bits.state["state"]
        return np.array(st["key"], dtype=np.uint32), int(st["pos"])

    def set_state(self, key, pos: int) -> None:
        """Continue from a state :meth:`get_state` returned."""
        key = np.asarray(key, dtype=np.uint32)
        if key.shape != (624,) or not 0 <= int(pos) <= 624:
            raise ValueError(f"not an mt19937 state: key of shape {key.shape}, pos {pos}")
        self._bits.state = {"bit_generator": "MT19937", "state": {"key": key.copy(), "pos": int(pos)}}

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

    def rand(self) -> int:
        """``caffe_rng_rand()``: one raw draw (Caffe seeds data transformers and threads with it)."""
        return int(self.uint32(1)[0])

    def uniform(self, n: int, a: float, b: float, dtype=np.float32) -> np.ndarray:
        """``caffe_rng_uniform<Dtype>(n, a, b)``: boost::uniform_real<Dtype>(a, nextafter(b)) on
        mt19937, i.e. ``float(u32) / 2^32 * (max - min) + min`` in Dtype, redrawn when it
        reaches max."""
        dt = np.dtype(dtype)
        lo = dt.type(a)
        hi = np.nextafter(dt.type(b), dt.type(np.inf))
        if lo > dt.type(b):
            raise ValueError(f"uniform needs min <= max, got [{a}, {b}]")
        out = np.empty(n, dtype=dt)
        filled = 0
        divisor = dt.type(4294967295.0) + dt.type(1)
        while filled < n:
            state = self._bits.state
            vals = self.uint32(n - filled).astype(dt) / divisor * (hi - lo) + lo
            ok = vals < hi
            if ok.all():
                out[filled:] = vals
                break
            # boost draws again when a value reaches max: keep the stream's order
            k = int(np.argmin(ok))
            out[filled:filled + k] = vals[:k]
            filled += k
            self._bits.state = state
            self.uint32(k + 1)
        return out

    def gaussian(self, n: int, mean: float, std: float, dtype=np.float32) -> np.ndarray:
        """Normal draws from this generator's stream (Box-Muller on pairs of uniform draws).
        Caffe's ``caffe_rng_gaussian`` uses boost's ziggurat, whose bits this does not claim."""
        u = (self.uint32(2 * ((n + 1) // 2)).astype(np.float64) + 0.5) / 4294967296.0
        u1, u2 = u[0::2], u[1::2]
        r = np.sqrt(-2.0 * np.log(u1))
        z = np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)])
        z = np.stack([z[: len(u1)], z[len(u1):]], axis=1).reshape(-1)[:n]
        return (z * std + mean).astype(dtype)
