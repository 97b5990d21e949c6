"""Property tests: damaged text and binaries raise only CaffeFormatError, fast.

Mutations of real prototxt text (deleted, inserted, duplicated and replaced
spans) and truncated or bit-flipped real binaries either load or raise our
error type; nothing else escapes, nothing hangs.  Truncated files that still
decode (a cut exactly between two top-level fields) must be caught by the
checks the loaders document, so a partial load is never silent.
"""
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prototxt_like as pl
from tests._shared import require

SETTINGS = dict(deadline=2000, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True, database=None)
LIMIT_S = 2.0  # per load, well above the few ms a load takes


def _formats():
    return require("golden", "formats")


def _timed(fn, *args, **kw):
    start = time.perf_counter()
    try:
        return fn(*args, **kw), None
    except pl.CaffeFormatError as e:  # the one allowed failure
        return None, e
    finally:
        assert time.perf_counter() - start < LIMIT_S


# --------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------

SNIPPETS = ["{", "}", ":", '"', "'", "\n", " ", "#", "\\", "layers", "layer", "type", "conv",
            "Convolution", "CONVOLUTION", "blobs_lr", "kernelsize", "0", "-1", "1e40", "0x1f",
            "nan", "true", "MAX", "padding", "input_dim", "<", ">", "[", "]", ",", ";", "\x00",
            "\u00e9", "solver_mode", "solver_type", "NESTEROV", "99999999999999999999"]


@st.composite
def mutated(draw, source):
    text = source
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 40)))
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "replace"]))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(SNIPPETS)) + text[i:]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        else:
            text = text[:i] + draw(st.text(max_size=6)) + text[j:]
    return text


def _net_text(name, limit=2500):
    return (_formats() / name).read_text()[:limit]


@pytest.mark.parametrize("name", ["half0A_imagenet_train.v0.prototxt", "v1_net.v1.prototxt",
                                  "half0A_imagenet_train.upgraded.prototxt"])
def test_mutated_net_text(name):
    source = _net_text(name)

    @settings(max_examples=60, **SETTINGS)
    @given(mutated(source))
    def run(text):
        net, err = _timed(pl.load_net, text)
        if err is not None and isinstance(err, pl.TextFormatError) and err.line is not None:
            assert err.line >= 1 and err.token is not None
        if net is not None:
            assert not net.layers and not net.input  # fully upgraded

    run()


def test_mutated_solver_text():
    source = (_formats() / "solver_type.v1.prototxt").read_text()

    @settings(max_examples=60, **SETTINGS)
    @given(mutated(source))
    def run(text):
        solver, _ = _timed(pl.load_solver, text)
        if solver is not None:
            assert not solver.HasField("solver_type")

    run()


@settings(max_examples=60, **SETTINGS)
@given(st.text(max_size=200))
def test_arbitrary_text(text):
    _timed(pl.load_net, text)


def test_deep_nesting_is_refused_cleanly():
    _, err = _timed(pl.load_net, "layer { " * 5000)
    assert isinstance(err, pl.TextFormatError)


# --------------------------------------------------------------------------
# Binaries
# --------------------------------------------------------------------------

MODELS = ["small.caffemodel", "small_v1.caffemodel", "small_v0.caffemodel"]


def _golden_weights():
    z = np.load(_formats() / "small.npz")
    return {k: z[k] for k in z.files}


def _flat(weights):
    return {f"{layer}/{i}": a for layer, arrays in weights.items() for i, a in enumerate(arrays)}


@pytest.mark.parametrize("name", MODELS)
def test_truncated_caffemodel_never_loads_partially(name):
    data = (_formats() / name).read_bytes()
    net = pl.load_net(_formats() / "small.prototxt")
    golden = _golden_weights()

    @settings(max_examples=80, **SETTINGS)
    @given(st.integers(0, len(data) - 1))
    def run(n):
        weights, err = _timed(pl.caffemodel_weights, data[:n], net=net)
        if err is None:  # only possible when nothing that matters was cut
            flat = _flat(weights)
            assert flat.keys() == golden.keys()
            assert all(np.array_equal(flat[k], golden[k]) for k in golden)

    run()


def test_every_truncation_of_a_small_model():
    # exhaustive for the V2 file: ~2000 prefixes, all rejected
    data = (_formats() / "small.caffemodel").read_bytes()
    net = pl.load_net(_formats() / "small.prototxt")
    for n in range(len(data)):
        _, err = _timed(pl.caffemodel_weights, data[:n], net=net)
        assert err is not None, n


@pytest.mark.parametrize("name", MODELS + ["mean.binaryproto", "blobs.binaryproto_vector"])
def test_bit_flips(name):
    data = (_formats() / name).read_bytes()
    load = {"mean.binaryproto": pl.load_blob,
            "blobs.binaryproto_vector": pl.load_blob_vector}.get(name, pl.caffemodel_weights)

    @settings(max_examples=80, **SETTINGS)
    @given(st.lists(st.integers(0, len(data) * 8 - 1), min_size=1, max_size=4))
    def run(bits):
        buf = bytearray(data)
        for b in bits:
            buf[b // 8] ^= 1 << (b % 8)
        _timed(load, bytes(buf))

    run()


def test_truncated_mean_and_solverstate(tmp_path):
    data = (_formats() / "mean.binaryproto").read_bytes()
    for n in list(range(0, 64)) + list(range(len(data) - 64, len(data))):
        _, err = _timed(pl.load_blob, data[:n])
        assert err is not None, n
    pl.save_solverstate(tmp_path / "s", iter=5, learned_net="x.caffemodel",
                        history=[np.ones((2, 3), np.float32), np.zeros(4, np.float32)])
    state = (tmp_path / "s").read_bytes()
    for n in range(len(state)):
        _, err = _timed(pl.load_solverstate, state[:n])
        assert err is not None, n


@settings(max_examples=80, **SETTINGS)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data):
    _timed(pl.load_net_binary, data)
    _timed(pl.load_blob, data)
    _timed(pl.load_solverstate, data)
