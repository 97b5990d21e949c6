"""Caffe's random numbers, drawn exactly as Caffe 1.0 draws them on the CPU.

Caffe keeps one ``boost::mt19937`` per thread, seeded by ``Caffe::set_random_seed(seed)`` (the
solver's ``random_seed``), and draws through Boost 1.74's distributions wrapped in
``boost::variate_generator`` (``src/caffe/util/math_functions.cpp``).  :class:`CaffeRNG` is one such
generator: its state is numpy's MT19937 state layout (624 key words and a position, the same
generator and the same ``init_genrand`` seeding), kept in a small tensor that the C++ functions of
``csrc/cpu/rng.cpp`` advance in place, value for value with Boost:

* :meth:`uint32` / :meth:`rand`: raw outputs (``caffe_rng_rand()``);
* :meth:`uniform`: ``caffe_rng_uniform<Dtype>``, ``boost::uniform_real<Dtype>(a, nextafter(b))``;
* :meth:`gaussian`: ``caffe_rng_gaussian<Dtype>``, ``boost::normal_distribution<Dtype>`` -- Boost's
  128-layer ziggurat with its int/float pair, wedge test and exponential tail, a variable number
  of draws per value (one per attempt in float, two in double);
* :meth:`bernoulli`: ``caffe_rng_bernoulli<Dtype>``, ``boost::bernoulli_distribution<Dtype>``.

Each call builds a fresh distribution, as each Caffe call does: nothing is cached between calls.
"""
from __future__ import annotations

import numpy as np
import torch

UINT32_MAX = 4294967295.0
_N = 624


def _c():
    from . import _C
    return _C


def caffe_seed(seed: int) -> int:
    """``Caffe::set_random_seed(const unsigned int)``: the solver's int64 ``random_seed`` converted
    to unsigned int, i.e. taken modulo 2^32 (a seed above 32 bits is truncated, as in Caffe)."""
    return int(seed) & 0xFFFFFFFF


class CaffeRNG:
    """One Caffe generator (``boost::mt19937``) seeded with ``seed``; ``seed`` must be a uint32
    (use :func:`caffe_seed` for Caffe's truncation of a wider ``random_seed``)."""

    def __init__(self, seed: int):
        if not 0 <= int(seed) < 2**32:
            raise ValueError(f"Caffe's random seed is an unsigned 32-bit integer, got {seed}")
        self.state = torch.empty(_N + 1, dtype=torch.int32)
        _c().rng_seed(self.state, int(seed))

    # --- state (for snapshots and exact resume) ----------------------------------------------
    def get_state(self) -> tuple:
        """``(key, pos)``: a copy of the generator's 624-word state and its position (numpy's
        MT19937 layout)."""
        words = self.state.numpy()
        return words[:_N].view(np.uint32).copy(), int(words[_N])

    def set_state(self, key, pos: int) -> None:
        """Continue from a state :meth:`get_state` returned."""
        key = np.asarray(key, dtype=np.uint32)
        if key.shape != (_N,) or not 0 <= int(pos) <= _N:
            raise ValueError(f"not an mt19937 state: key of shape {key.shape}, pos {pos}")
        words = self.state.numpy()
        words[:_N] = key.view(np.int32)
        words[_N] = int(pos)

    def copy(self) -> "CaffeRNG":
        other = CaffeRNG.__new__(CaffeRNG)
        other.state = self.state.clone()
        return other

    # --- draws ----------------------------------------------------------------------------------
    def uint32(self, n: int) -> np.ndarray:
        """``n`` raw outputs of the generator, as ``boost::mt19937::operator()`` returns them."""
        return _c().rng_raw(self.state, int(n)).numpy().astype(np.uint32)

    def rand(self) -> int:
        """``caffe_rng_rand()``: one raw draw (Caffe seeds data transformers and threads with it)."""
        return int(_c().rng_raw(self.state, 1)[0])

    def bernoulli(self, n: int, p: float, dtype=np.float64) -> np.ndarray:
        """``caffe_rng_bernoulli<Dtype>(n, p)``: boost's ``bernoulli_distribution<Dtype>(p)``, 1 iff
        ``Dtype(u) <= p * Dtype(2^32 - 1)``; p == 0 draws nothing (Boost returns false at once).
        ``p`` is taken as a value of ``dtype`` (float32 for a float ``p`` in Caffe)."""
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Bernoulli probability must be in [0, 1], got {p}")
        dbl = np.dtype(dtype) == np.float64
        return _c().rng_bernoulli(self.state, int(n), float(p), dbl).numpy()

    def dropout_mask(self, shape, ratio: float) -> np.ndarray:
        """DropoutLayer::Forward_cpu's mask: ``caffe_rng_bernoulli(count, 1. - threshold_)`` in double,
        with the ratio rounded to float as Caffe's layer parameter is."""
        keep = 1.0 - float(np.float32(ratio))
        return self.bernoulli(int(np.prod(shape)), keep).reshape(shape)

    def uniform(self, n: int, a: float, b: float, dtype=np.float32) -> np.ndarray:
        """``caffe_rng_uniform<Dtype>(n, a, b)``: ``boost::uniform_real<Dtype>(a, nextafter(b))``, i.e.
        ``Dtype(u) / 2^32 * (b' - a) + a`` in Dtype, drawn again when it reaches ``b'``."""
        dt = np.dtype(dtype)
        a, b = dt.type(a), dt.type(b)
        if not a <= b:
            raise ValueError(f"uniform needs min <= max, got [{a}, {b}]")
        return _c().rng_uniform(self.state, int(n), float(a), float(b), dt == np.float64).numpy()

    def gaussian(self, n: int, mean: float, std: float, dtype=np.float32) -> np.ndarray:
        """``caffe_rng_gaussian<Dtype>(n, mean, std)``: ``boost::normal_distribution<Dtype>(mean, std)``,
        ``unit_normal * std + mean`` in Dtype, the unit normal from Boost's ziggurat."""
        dt = np.dtype(dtype)
        mean, std = dt.type(mean), dt.type(std)
        if not std > 0:
            raise ValueError(f"gaussian needs std > 0, got {std}")
        return _c().rng_gaussian(self.state, int(n), float(mean), float(std), dt == np.float64).numpy()

    def exponential(self, n: int, lam: float = 1.0, dtype=np.float32) -> np.ndarray:
        """``boost::exponential_distribution<Dtype>(lam)`` (the normal's tail draws these)."""
        dt = np.dtype(dtype)
        return _c().rng_exponential(self.state, int(n), float(dt.type(lam)), dt == np.float64).numpy()

    def uniform01(self, n: int, dtype=np.float32) -> np.ndarray:
        """``boost::uniform_01<Dtype>`` (the ziggurat's wedge test draws these)."""
        return _c().rng_uniform01(self.state, int(n), np.dtype(dtype) == np.float64).numpy()

    def uniform_int(self, lo: int, hi: int) -> int:
        """One ``boost::uniform_int<long>(lo, hi)(engine)`` (``caffe::shuffle``'s draw): Boost 1.74's
        ``generate_uniform_int`` on the 32-bit engine, its ranges in ``unsigned long``: a range below
        2^32 - 1 takes ``u / bucket`` with ``bucket = (2^32 - 1) // (range + 1)`` (plus one when
        ``(2^32 - 1) % (range + 1) == range``) and draws again while that exceeds the range; a wider
        range concatenates draws and rejects, as Boost does."""
        lo, hi = int(lo), int(hi)
        if not -(1 << 63) <= lo <= hi < (1 << 63):
            raise ValueError(f"uniform_int needs lo <= hi within long, got [{lo}, {hi}]")
        r, offset = self._uniform_uint(hi - lo)
        if not offset:  # Boost returns a range of exactly 2^64 values without adding lo
            return r - (1 << 64) if r >= 1 << 63 else r
        return lo + r

    def _uniform_uint(self, rng: int):
        """(value in [0, rng], whether Boost adds the minimum to it)."""
        br, top = 0xFFFFFFFF, (1 << 64) - 1
        if rng == 0:
            return 0, True
        if rng == br:
            return self.rand(), True
        if rng < br:
            bucket = br // (rng + 1) + (1 if br % (rng + 1) == rng else 0)
            while True:
                r = self.rand() // bucket
                if r <= rng:
                    return r, True
        while True:  # brange < range: base-2^32 digits, then a rejected top digit
            limit = (rng // (br + 1) + (1 if rng % (br + 1) == br else 0)) if rng == top else (rng + 1) // (br + 1)
            result, mult = 0, 1
            while mult <= limit:
                result += self.rand() * mult
                if mult * br == rng - mult + 1:
                    return result, False
                mult = (mult * (br + 1)) & top
            inc = self._uniform_uint(rng // mult)[0]
            if top // mult < inc:
                continue
            result += inc * mult
            if result > top or result > rng:
                continue
            return result, True
