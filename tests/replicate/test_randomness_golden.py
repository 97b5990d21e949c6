"""Caffe's randomness, draw for draw, against real Caffe 1.0 output:

* ../shared/golden/fillers: every filler type from a seed, through whole nets built in order (several
  layers, two nets from one seed), bit for bit, -0.0 of the sparse mask included;
* ../shared/golden/data_train: TRAIN-phase Data-layer batches with random crops and mirrors, and the
  per-record draws (mirror, h0, w0) the fixture's README lists;
* ../shared/golden/scratch: a whole ``caffe train`` from Caffe's own initialisation (Data layer draws,
  TRAIN and TEST fillers, crops, mirrors, dropout): every printed value, the init weights and the
  snapshots byte-identical;
plus the draws Caffe takes that no fixture isolates (MemoryData's InitRand, blobs given in the
prototxt, a random_seed above 32 bits), derived from Caffe's source."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from prototxt_like import caffe_pb2
from replicate.net import Net
from replicate.rng import CaffeRNG
from tests._shared import count_compared, require
from tests.ops.golden import exact_blas_ready
from tests.replicate.test_solver_golden import messages, train, workdir


def assert_same_bits(ours: np.ndarray, caffe: np.ndarray, what: str, *, golden: bool = True):
    """Bit equality; ``golden``: ``caffe`` is Caffe's own output (counted as a bit-level comparison)."""
    assert ours.dtype == caffe.dtype and ours.shape == caffe.shape, \
        f"{what}: {ours.dtype}{ours.shape} against Caffe's {caffe.dtype}{caffe.shape}"
    bad = np.flatnonzero(ours.reshape(-1).view(np.uint32) != caffe.reshape(-1).view(np.uint32))
    assert bad.size == 0, (f"{what}: {bad.size} of {ours.size} values differ, first at flat index {bad[0]}: "
                           f"ours {ours.reshape(-1)[bad[0]]!r}, Caffe {caffe.reshape(-1)[bad[0]]!r}")
    if golden:
        count_compared()


# --- fillers ------------------------------------------------------------------------------------

def _filler_cases():
    return json.loads((require("golden", "fillers") / "cases.json").read_text())["cases"]


@pytest.fixture(scope="module")
def filler_golden():
    return np.load(require("golden", "fillers") / "fillers.npz")


def _case_names():
    from tests._shared import shared_dir
    path = shared_dir() / "golden" / "fillers" / "cases.json"
    if not path.exists():
        return ["(golden/fillers absent)"]  # the test then reports the missing fixture
    return [c["case"] for c in json.loads(path.read_text())["cases"]]


@pytest.mark.parametrize("case", _case_names())
def test_fillers_match_caffe(case, filler_golden, tmp_path):
    spec = next(c for c in _filler_cases() if c["case"] == case)
    rng = CaffeRNG(spec["seed"])  # caffe.set_random_seed(seed) once per case
    seen = set()
    for i, text in enumerate(spec["nets"]):
        path = tmp_path / f"net{i}.prototxt"
        path.write_text(text)
        net = Net(str(path), caffe_pb2.TEST, rng=rng)
        for layer in net.layers:
            for j, p in enumerate(layer.params):
                key = f"{case}/{layer.name}/{j}"
                assert_same_bits(p.data.numpy(), filler_golden[key], key)
                seen.add(key)
        net.close()
    assert seen == set(spec["blobs"]), f"blobs not compared: {set(spec['blobs']) - seen}"


# --- TRAIN-phase data -----------------------------------------------------------------------------

DATA_CASES = {"crop24_mirror": 8, "crop28": 6, "mirror_nocrop": 5}


@pytest.fixture
def data_train_dir(tmp_path):
    """golden/data_train's prototxts beside a link to golden/data, as the fixture's ../data paths need."""
    (tmp_path / "data").symlink_to(require("golden", "data"), target_is_directory=True)
    d = tmp_path / "data_train"
    shutil.copytree(require("golden", "data_train"), d)
    return d


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_train_batches_match_caffe(case, data_train_dir, monkeypatch):
    monkeypatch.chdir(data_train_dir)
    draws = json.loads((data_train_dir / "draws.json").read_text())[case]
    gold = np.load(data_train_dir / f"data_train_batches_{case}.npz")
    rng = CaffeRNG(draws["seed"])
    probe = CaffeRNG(draws["seed"])
    net = Net(f"data_train_{case}.prototxt", caffe_pb2.TRAIN, rng=rng)
    try:
        # the Data layer took 3 values at set-up; the second seeded the transformer
        first = probe.uint32(draws["main_generator_draws_at_setup"])
        assert rng.get_state()[1] == probe.get_state()[1]
        assert int(first[1]) == draws["transformer_seed"]
        layer = net.layers[0]
        t = layer.source.transformer
        # the per-record draws (mirror, h0, w0), from the transformer's own generator
        tr = CaffeRNG(draws["transformer_seed"])
        for rec, mirror, h0, w0 in draws["records"]:
            h, w, m = t.offsets((3, 32, 32), tr.uint32(t.draws_per_item))
            assert (int(m), h, w) == (mirror, h0, w0), f"record {rec}"
        for i in range(DATA_CASES[case]):
            net.forward()
            for k in ("data", "label"):
                assert_same_bits(net.blobs[k].data.numpy(), gold[f"{i}/{k}"], f"{case} forward {i} {k}")
    finally:
        net.close()


# --- a whole run from Caffe's own initialisation -------------------------------------------------

def _check_scratch_run(d, golden):
    ours, caffe = messages((d / "ours.log").read_text()), messages((golden / "train.log").read_text())
    assert len(ours) == len(caffe) and len(caffe) > 90
    for a, b in zip(ours, caffe):
        assert a == b
    count_compared(len(caffe))
    for f in ("snap_iter_15.caffemodel", "snap_iter_15.solverstate", "snap_iter_30.caffemodel",
              "snap_iter_30.solverstate"):
        assert (d / f).read_bytes() == (golden / f).read_bytes(), f"{f} differs from Caffe's"
        count_compared()


def test_scratch_run_matches_caffe(tmp_path):
    exact_blas_ready()
    golden = require("golden", "scratch")
    d = workdir(tmp_path, "scratch")
    train(d)
    _check_scratch_run(d, golden)


def test_scratch_init_equals_caffes_fillers(tmp_path, monkeypatch):
    """The TRAIN net's parameters right after Solver::Init (Data draws, TRAIN fillers, TEST net's
    Data draw and fillers), against the pycaffe replay's ``init_from_fillers.caffemodel``."""
    from prototxt_like import load_solver
    from replicate.solver import SGDSolver
    golden = require("golden", "scratch")
    d = workdir(tmp_path, "scratch")
    monkeypatch.chdir(d)
    solver = SGDSolver(load_solver("solver.prototxt"), log=lambda *a, **k: None)
    try:
        solver.net.save(str(d / "init.caffemodel"))
    finally:
        solver.close()
    assert (d / "init.caffemodel").read_bytes() == (golden / "init_from_fillers.caffemodel").read_bytes()
    count_compared()


def test_random_seed_above_32_bits_is_truncated(tmp_path):
    """Caffe::set_random_seed(unsigned int) takes the int64 random_seed modulo 2^32: 2^32 + 271828
    runs the scratch fixture's run (seed 271828) exactly."""
    exact_blas_ready()
    golden = require("golden", "scratch")
    d = workdir(tmp_path, "scratch")
    text = (d / "solver.prototxt").read_text()
    assert "random_seed: 271828" in text
    (d / "solver.prototxt").write_text(text.replace("random_seed: 271828", f"random_seed: {2**32 + 271828}"))
    train(d)
    _check_scratch_run(d, golden)


# --- draws no fixture isolates (from Caffe's source) ------------------------------------------------

_IP = """layer {{ name: "fc" type: "InnerProduct" bottom: "{bottom}" top: "fc"
  inner_product_param {{ num_output: 5 weight_filler {{ type: "gaussian" std: 0.1 }}
                         bias_filler {{ type: "uniform" min: -1 max: 1 }} }} }}
"""


def _net(tmp_path, text, phase=caffe_pb2.TRAIN, seed=5):
    p = tmp_path / "net.prototxt"
    p.write_text(text)
    rng = CaffeRNG(seed)
    return Net(str(p), phase, rng=rng), rng


def _expected_fc(seed, skip, k):
    rng = CaffeRNG(seed)
    rng.uint32(skip)
    w = rng.gaussian(5 * k, 0.0, np.float32(0.1)).reshape(5, k)
    b = rng.uniform(5, np.float32(-1), np.float32(1))
    return w, b


@pytest.mark.parametrize("transform,phase,draws", [
    ("mirror: true", caffe_pb2.TRAIN, 1), ("crop_size: 2", caffe_pb2.TRAIN, 1), ("crop_size: 2", caffe_pb2.TEST, 0),
    ("mirror: true", caffe_pb2.TEST, 1), ("", caffe_pb2.TRAIN, 0)])
def test_memory_data_init_rand(tmp_path, transform, phase, draws):
    """BaseDataLayer::LayerSetUp calls DataTransformer::InitRand: one caffe_rng_rand() when mirror is
    set or (TRAIN and crop_size); MemoryData starts no prefetch thread, so nothing more."""
    text = (f'layer {{ name: "d" type: "MemoryData" top: "x" top: "y" transform_param {{ {transform} }}\n'
            '  memory_data_param { batch_size: 2 channels: 1 height: 3 width: 3 } }\n' + _IP.format(bottom="x"))
    net, _ = _net(tmp_path, text, phase)
    w, b = _expected_fc(5, draws, 9)
    fc = net.layers[1]
    assert_same_bits(fc.params[0].data.numpy(), w, "fc weights", golden=False)
    assert_same_bits(fc.params[1].data.numpy(), b, "fc bias", golden=False)


def test_prototxt_blobs_skip_fillers(tmp_path):
    """Blobs given in a LayerParameter are loaded by Layer's constructor and LayerSetUp skips the
    fillers: the layer draws nothing, so the next layer's fillers start where they would without it."""
    conv_w = np.arange(2 * 1 * 2 * 2, dtype=np.float32).reshape(2, 1, 2, 2) / 7
    blobs = ("blobs { shape { dim: 2 dim: 1 dim: 2 dim: 2 } " + " ".join(f"data: {v!r}" for v in conv_w.ravel().tolist())
             + " } blobs { shape { dim: 2 } data: 0.5 data: -0.25 }")
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 3 dim: 3 } } }\n'
            'layer { name: "conv" type: "Convolution" bottom: "x" top: "c" ' + blobs +
            ' convolution_param { num_output: 2 kernel_size: 2 weight_filler { type: "gaussian" std: 1 } '
            'bias_filler { type: "gaussian" std: 1 } } }\n' + _IP.format(bottom="c"))
    net, _ = _net(tmp_path, text)
    conv, fc = net.layers[1], net.layers[2]
    assert_same_bits(conv.params[0].data.numpy(), conv_w, "given weights", golden=False)
    assert_same_bits(conv.params[1].data.numpy(), np.array([0.5, -0.25], np.float32), "given bias", golden=False)
    w, b = _expected_fc(5, 0, 8)
    assert_same_bits(fc.params[0].data.numpy(), w, "fc weights", golden=False)
    assert_same_bits(fc.params[1].data.numpy(), b, "fc bias", golden=False)


def test_prototxt_blobs_wrong_shape_is_an_error_naming_the_layer(tmp_path):
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 3 dim: 3 } } }\n'
            'layer { name: "conv" type: "Convolution" bottom: "x" top: "c" '
            'blobs { shape { dim: 2 dim: 1 dim: 1 dim: 2 } data: 1 data: 2 data: 3 data: 4 } '
            'blobs { shape { dim: 2 } data: 0 data: 0 } convolution_param { num_output: 2 kernel_size: 2 } }\n')
    with pytest.raises(Exception, match=r"conv.*Incorrect weight shape: expected shape 2 1 2 2"):
        _net(tmp_path, text)
    text2 = text.replace("blobs { shape { dim: 2 } data: 0 data: 0 } ", "")
    with pytest.raises(Exception, match=r"conv.*Incorrect number of weight blobs"):
        _net(tmp_path, text2)


def test_inner_product_given_legacy_blobs_keep_caffes_shape(tmp_path):
    """InnerProduct's LayerSetUp only skips its fillers when blobs are given: a legacy
    num/channels/height/width blob keeps Blob::FromProto's 4-D shape, which Net::ToProto writes back
    (and the solver's history follows); the layer computes with it as N x K."""
    w = np.array([[1, 2, 3], [4, 5, 6]], np.float32) / 8
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }\n'
            'layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" '
            'blobs { num: 1 channels: 1 height: 2 width: 3 ' + " ".join(f"data: {v!r}" for v in w.ravel().tolist())
            + ' } blobs { num: 1 channels: 1 height: 1 width: 2 data: 0.5 data: -1 } '
            'inner_product_param { num_output: 2 } }\n')
    net, _ = _net(tmp_path, text)
    fc = net.layers[1]
    assert [tuple(p.data.shape) for p in fc.params] == [(1, 1, 2, 3), (1, 1, 1, 2)]
    net.blobs["x"].data = torch.tensor([[1.0, -2.0, 4.0]])
    net.forward()
    expected = np.array([[np.float32(1 / 8 - 4 / 8 + 12 / 8) + np.float32(0.5),
                          np.float32(4 / 8 - 10 / 8 + 24 / 8) - np.float32(1)]], np.float32)
    np.testing.assert_array_equal(net.blobs["y"].data.numpy(), expected)
    shapes = [list(b.shape.dim) for b in net.to_proto().layer[1].blobs]
    assert shapes == [[1, 1, 2, 3], [1, 1, 1, 2]]
