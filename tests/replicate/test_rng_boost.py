"""replicate.rng against Boost itself: boost.random is header-only, so this compiles a small program
(boost_streams.cpp) against the system's Boost 1.74 headers (Debian's libboost1.74-dev, installed by
``make test``) and compares long streams, value for value and bit for bit, for many seeds: raw mt19937
words, ``normal_distribution<float/double>`` (including the ziggurat's wedge and tail), uniform_real,
bernoulli, exponential and uniform_01, with the number of engine calls each value took and the
stream's next word at the end.  The fixtures in ../shared/golden/fillers only check what Caffe's
fillers drew; this checks the generator on streams long enough to hit every branch many times."""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from replicate.rng import CaffeRNG, caffe_seed

HERE = Path(__file__).resolve().parent
BOOST_HEADER = Path("/usr/include/boost/random/normal_distribution.hpp")


@pytest.fixture(scope="module")
def boost_streams(tmp_path_factory):
    """The compiled program; a missing compiler or Boost fails (``make test`` installs Boost)."""
    gxx = shutil.which("g++")
    if gxx is None or not BOOST_HEADER.exists():
        pytest.fail("these tests compile Boost 1.74's boost.random: need g++ and Debian's libboost1.74-dev "
                    "(`make test` installs it; by hand: apt-get install libboost1.74-dev)")
    exe = tmp_path_factory.mktemp("boost") / "boost_streams"
    subprocess.run([gxx, "-O2", "-std=c++14", str(HERE / "boost_streams.cpp"), "-o", str(exe)], check=True)
    version = int(subprocess.run([str(exe), "version"], check=True, capture_output=True, text=True).stdout)
    assert version == 107400, f"Boost {version}: Caffe 1.0's fixtures were made with Boost 1.74 (107400)"
    return exe


def boost(exe, kind, dtype, seed, n, *params):
    out = subprocess.run([str(exe), kind, "f" if dtype == np.float32 else "d", str(seed), str(n),
                          *[repr(float(p)) for p in params]], check=True, capture_output=True).stdout
    vt = {"raw": np.uint32, "bernoulli": np.int32}.get(kind, dtype)
    size = np.dtype(vt).itemsize * n
    values = np.frombuffer(out[:size], dtype=vt)
    counts = np.frombuffer(out[size:size + 4 * n], dtype=np.uint32)
    nxt = int(np.frombuffer(out[size + 4 * n:], dtype=np.uint32)[0])
    return values, counts, nxt


def ours_one_by_one(rng: CaffeRNG, draw, n):
    """``draw(rng)`` n times, one value per call, with the engine calls each took (from the state's
    position, which advances by one per call and restarts at 0 after a twist)."""
    values, counts = [], []
    for _ in range(n):
        before = rng.get_state()[1] % 624
        values.append(draw(rng)[0])
        after = rng.get_state()[1]
        counts.append((after - before) % 624 if after else 624 - before)
    return np.array(values), np.array(counts, dtype=np.uint32)


def same_bits(a, b):
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    diff = np.flatnonzero(a.view(f"u{a.itemsize}") != b.view(f"u{b.itemsize}"))
    assert diff.size == 0, f"{diff.size} values differ, first at {diff[0]}: ours {a[diff[0]]!r}, Boost {b[diff[0]]!r}"


SEEDS = [0, 1, 5489, 271828, 2**31 - 1, 2**32 - 1] + list(range(101, 111))


@pytest.mark.parametrize("seed", SEEDS)
def test_raw_words(boost_streams, seed):
    ref, _, nxt = boost(boost_streams, "raw", np.float32, seed, 2000)
    rng = CaffeRNG(seed)
    same_bits(rng.uint32(2000), ref)
    assert rng.rand() == nxt


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed,mean,sigma", [(0, 0.0, 1.0), (101, 0.0, 0.01), (102, 0.5, 2.0), (5489, -3.0, 0.005),
                                              (2**32 - 1, 1e-3, 7.5)])
def test_normal_long_stream(boost_streams, seed, mean, sigma, dtype):
    """200,000 values (float) / 100,000 (double): about 2,500 wedge tests and 50 tail values."""
    n = 200_000 if dtype == np.float32 else 100_000
    ref, counts, nxt = boost(boost_streams, "normal", dtype, seed, n, mean, sigma)
    assert (counts > (1 if dtype == np.float32 else 2)).sum() > 1000, "the stream must exercise the rejections"
    rng = CaffeRNG(seed)
    same_bits(rng.gaussian(n, mean, sigma, dtype), ref)
    assert rng.rand() == nxt, "the stream stands elsewhere after the gaussians"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [7, 103, 121, 171])
def test_normal_draws_per_value(boost_streams, seed, dtype):
    """Where the stream stands after each gaussian: the engine calls of every value equal Boost's."""
    n = 30_000
    ref, counts, _ = boost(boost_streams, "normal", dtype, seed, n, 0.0, 1.0)
    vals, ours = ours_one_by_one(CaffeRNG(seed), lambda r: r.gaussian(1, 0.0, 1.0, dtype), n)
    same_bits(vals.astype(dtype), ref)
    same_bits(ours, counts)
    tail = counts >= (4 if dtype == np.float32 else 6)
    assert tail.any(), "no value came from the tail: pick a longer stream"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed,lam", [(3, 1.0), (104, 3.7130862467403632609), (9, 0.25)])
def test_exponential_and_uniform01(boost_streams, seed, lam, dtype):
    n = 100_000
    ref, _, nxt = boost(boost_streams, "exponential", dtype, seed, n, lam)
    rng = CaffeRNG(seed)
    same_bits(rng.exponential(n, lam, dtype), ref)
    assert rng.rand() == nxt
    ref, _, nxt = boost(boost_streams, "uniform01", dtype, seed, n)
    rng = CaffeRNG(seed)
    same_bits(rng.uniform01(n, dtype), ref)
    assert rng.rand() == nxt


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed,a,b", [(131, -0.3, 0.7), (11, 0.0, 1.0), (12, -0.0589, 0.0589), (13, 2.0, 2.0),
                                       (14, -1e-30, 1e-30), (15, -5.0, -4.999)])
def test_uniform(boost_streams, seed, a, b, dtype):
    n = 100_000
    ref, _, nxt = boost(boost_streams, "uniform", dtype, seed, n, a, b)
    rng = CaffeRNG(seed)
    same_bits(rng.uniform(n, dtype(a), dtype(b), dtype), ref)
    assert rng.rand() == nxt


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed,p", [(171, 0.5), (181, 0.6), (3, 3 / 7), (4, 1.0), (5, 0.0), (6, 1e-9), (7, 0.999999)])
def test_bernoulli(boost_streams, seed, p, dtype):
    n = 100_000
    p = float(dtype(p))
    ref, counts, nxt = boost(boost_streams, "bernoulli", dtype, seed, n, p)
    rng = CaffeRNG(seed)
    same_bits(rng.bernoulli(n, p, dtype), ref)
    assert rng.rand() == nxt  # p == 0 draws nothing


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_in_pieces_is_boosts_stream(boost_streams, dtype):
    """Masks drawn in pieces of every size, starting anywhere in the key and crossing its twists
    (the C++ draws a block of words at a time), are Boost's one stream."""
    n, p = 100_000, float(dtype(0.5))
    ref, _, nxt = boost(boost_streams, "bernoulli", dtype, 191, n, p)
    rng = CaffeRNG(191)
    sizes = [1, 623, 1, 624, 625, 1023, 1024, 1025, 2, 3, 5000, 7, 4096]
    pieces, k = [], 0
    for size in itertools.cycle(sizes):
        size = min(size, n - k)
        pieces.append(rng.bernoulli(size, p, dtype))
        pieces.append(rng.bernoulli(0, p, dtype))  # draws nothing
        k += size
        if k == n:
            break
    same_bits(np.concatenate(pieces), ref)
    assert rng.rand() == nxt


def test_state_round_trip_continues_the_stream():
    a = CaffeRNG(42)
    a.gaussian(1000, 0.0, 1.0)
    key, pos = a.get_state()
    b = CaffeRNG(7)
    b.set_state(key, pos)
    same_bits(a.gaussian(5000, 0.0, 1.0), b.gaussian(5000, 0.0, 1.0))
    c = a.copy()
    assert a.uint32(700).tolist() == c.uint32(700).tolist()


def test_numpy_legacy_seeding_is_boosts():
    """The state layout is numpy's MT19937: the same seed gives numpy's legacy stream."""
    bits = np.random.MT19937(0)
    bits._legacy_seeding(271828)
    assert CaffeRNG(271828).uint32(1500).tolist() == bits.random_raw(1500).astype(np.uint32).tolist()


def test_seed_truncation_and_errors():
    assert caffe_seed(2**32 + 5) == 5 and caffe_seed(2**40 + 2**31) == 2**31 and caffe_seed(17) == 17
    with pytest.raises(ValueError, match="unsigned 32-bit"):
        CaffeRNG(2**32)
    rng = CaffeRNG(1)
    with pytest.raises(ValueError, match="std > 0"):
        rng.gaussian(3, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rng.bernoulli(3, 1.5)
    with pytest.raises(ValueError, match="min <= max"):
        rng.uniform(3, 1.0, 0.0)
    with pytest.raises(ValueError, match="mt19937 state"):
        rng.set_state(np.zeros(5, np.uint32), 0)
