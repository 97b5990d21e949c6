"""Caffe's ``engine`` field (DEFAULT / CAFFE / CUDNN; replicate/layers/engine.py, README "The engine
field"):

* parsing: the field of every parameter message that has one, V1 nets keep it, an unknown value or
  the field on a message without it is the parser's located error;
* Caffe's layer factory as built with cuDNN (DEFAULT -> CUDNN but for its fall-backs; CUDNN on a
  dilated convolution is Caffe's fatal error);
* exact mode: the golden CaffeNet-like net gives Caffe's bits with every engine on every layer;
* fast mode: a convolution with engine CAFFE computes in Caffe's order on fast mode's library (bit
  for bit against Caffe's calls made one by one), with DEFAULT or CUDNN the fast kernels (other
  bits, same values within the fast-mode tolerance); the thread's Caffe-order request is set only
  inside a CAFFE layer's calls;
* the once-per-net log line.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from prototxt_like import TextFormatError, caffe_pb2, load_net
from prototxt_like.codec import parse_text
from replicate import ops as R
from replicate.layers import Context, layer_class
from replicate.layers.base import Layer
from replicate.layers.engine import (ENGINE_PARAM, caffe_order, engine_summary, honours_engine, in_caffe_order,
                                     requested, resolve)
from replicate.net import Net, NetError
from replicate.rng import CaffeRNG
from tests._shared import require
from tests.ops.golden import assert_close, assert_golden_bits, exact_blas_ready, golden_net, run_golden

ENGINES = ("DEFAULT", "CAFFE", "CUDNN")


def _layer_param(text: str) -> caffe_pb2.LayerParameter:
    return parse_text(text, caffe_pb2.LayerParameter)


# ---- parsing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("type_name,field", sorted(ENGINE_PARAM.items()))
@pytest.mark.parametrize("engine", ENGINES)
def test_engine_parsed(type_name, field, engine):
    lp = _layer_param(f'name: "l" type: "{type_name}" {field} {{ engine: {engine} }}')
    assert getattr(lp, field).engine == ENGINES.index(engine)
    assert requested(lp) == engine


def test_engine_by_number_and_in_v1_nets(tmp_path):
    lp = _layer_param('name: "l" type: "ReLU" relu_param { engine: 2 }')  # protobuf's text format takes numbers
    assert requested(lp) == "CUDNN"
    p = tmp_path / "v1.prototxt"
    p.write_text('name: "v1"\nlayers { name: "c" type: CONVOLUTION bottom: "d" top: "c"\n'
                 '  convolution_param { num_output: 2 kernel_size: 1 engine: CAFFE } }\n'
                 'layers { name: "p" type: POOLING bottom: "c" top: "p" pooling_param { pool: AVE kernel_size: 1 '
                 'engine: CUDNN } }\n')
    net = load_net(str(p))
    assert [requested(l) for l in net.layer] == ["CAFFE", "CUDNN"]


@pytest.mark.parametrize("body,token", [
    ("convolution_param { num_output: 1 kernel_size: 1 engine: FAST }", "FAST"),
    ("convolution_param { num_output: 1 kernel_size: 1 engine: 3 }", "3"),
    ("inner_product_param { num_output: 1 engine: CAFFE }", "engine"),  # InnerProduct has no engine in Caffe
])
def test_bad_engine_is_a_located_parse_error(tmp_path, body, token):
    p = tmp_path / "bad.prototxt"
    p.write_text(f'name: "n"\nlayer {{\n  name: "l"\n  type: "Convolution"\n  {body}\n}}\n')
    with pytest.raises(TextFormatError) as e:
        load_net(str(p))
    assert e.value.line == 5 and str(p) in str(e.value) and token in str(e.value)


# ---- Caffe's factory --------------------------------------------------------------------------

@pytest.mark.parametrize("text,want", [
    ('type: "Convolution" convolution_param { num_output: 1 }', "CUDNN"),
    ('type: "Convolution" convolution_param { num_output: 1 engine: CAFFE }', "CAFFE"),
    ('type: "Convolution" convolution_param { num_output: 1 dilation: 2 }', "CAFFE"),  # DEFAULT falls back
    ('type: "Deconvolution" convolution_param { num_output: 1 dilation: 1 engine: CUDNN }', "CUDNN"),
    ('type: "Pooling" pooling_param { pool: AVE }', "CUDNN"),
    ('type: "Pooling" pooling_param { pool: MAX engine: CUDNN }', "CAFFE"),  # Caffe keeps its max pooling
    ('type: "Pooling" pooling_param { pool: AVE engine: CAFFE }', "CAFFE"),
    ('type: "LRN" lrn_param { local_size: 5 }', "CUDNN"),
    ('type: "LRN" lrn_param { local_size: 17 engine: CUDNN }', "CAFFE"),  # wider than CUDNN_LRN_MAX_N
    ('type: "LRN" lrn_param { local_size: 17 norm_region: WITHIN_CHANNEL }', "CUDNN"),  # CuDNNLCNLayer
    ('type: "ReLU"', "CUDNN"), ('type: "Sigmoid" sigmoid_param { engine: CAFFE }', "CAFFE"),
    ('type: "TanH" tanh_param { engine: CUDNN }', "CUDNN"), ('type: "Softmax"', "CUDNN"),
    ('type: "SoftmaxWithLoss" softmax_param { engine: CAFFE }', "CAFFE"),
    ('type: "SPP" spp_param { engine: CUDNN }', "CAFFE"),  # SPPLayer never reads its engine
    ('type: "InnerProduct"', "CAFFE"),
])
def test_resolve_is_caffes_factory_with_cudnn(text, want):
    assert resolve(_layer_param('name: "l" ' + text))[0] == want


def test_pooling_second_top_note():
    lp = _layer_param('name: "p" type: "Pooling" top: "p" top: "mask" pooling_param { pool: MAX }')
    assert resolve(lp) == ("CAFFE", "cuDNN does not support multiple tops. Using Caffe's own pooling layer.")


@pytest.mark.parametrize("type_name", ["Convolution", "Deconvolution"])
def test_cudnn_dilated_is_caffes_error(type_name):
    text = (f'layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ dim: 1 dim: 2 dim: 8 dim: 8 }} }} }}\n'
            f'layer {{ name: "dil" type: "{type_name}" bottom: "x" top: "y" convolution_param {{ num_output: 2 '
            f'kernel_size: 3 dilation: 2 engine: CUDNN }} }}')
    with pytest.raises(NetError, match=f"'dil'.*CuDNN doesn't support the dilated {type_name.lower()} at Layer dil"):
        Net(parse_text(text, caffe_pb2.NetParameter), caffe_pb2.TEST, rng=CaffeRNG(0))


# ---- exact mode: the engine never changes the bits --------------------------------------------

def _with_engine(text: str, engine: str) -> str:
    """The net text with ``engine: <engine>`` in every parameter message that has the field (ReLU and
    SoftmaxWithLoss layers get a relu_param / softmax_param)."""
    for field in sorted(set(ENGINE_PARAM.values())):
        text = text.replace(f"{field} {{", f"{field} {{ engine: {engine}")
    text = text.replace('type: "ReLU" bottom', 'type: "ReLU" relu_param { engine: ' + engine + ' } bottom')
    return text.replace('type: "SoftmaxWithLoss" bottom',
                        'type: "SoftmaxWithLoss" softmax_param { engine: ' + engine + ' } bottom')


@pytest.mark.parametrize("engine", ENGINES)
def test_exact_bits_do_not_depend_on_engine(engine):
    """caffenet_narrow (Convolution with groups, ReLU in place, max Pooling, LRN, SoftmaxWithLoss)
    with every engine on every layer: Caffe's forward and backward bits."""
    exact_blas_ready()
    path = require("golden", "layers", "caffenet_narrow")
    text = _with_engine((path / "net.prototxt").read_text(), engine)
    assert text.count(f"engine: {engine}") == 18  # 5 Convolution, 7 ReLU, 3 Pooling, 2 LRN, 1 SoftmaxWithLoss
    with R.blas_mode("exact"):
        net = golden_net(path, text)
        assert [l.engine_requested for l in net.layers if l.type in ENGINE_PARAM] == [engine] * 18
        out, forward, backward = run_golden(path, net)
    assert_golden_bits(f"caffenet_narrow engine {engine}", out, forward, backward)


# ---- fast mode: CAFFE is Caffe's order, DEFAULT/CUDNN the fast kernels ------------------------

N, C, H, W, O, G, K = 40, 4, 9, 9, 6, 2, 3  # 40 images: more than one of fast mode's blocks of 16


def _conv(engine: str):
    eng = "" if engine == "DEFAULT" else f" engine: {engine}"
    lp = _layer_param(f'name: "conv" type: "Convolution" bottom: "x" top: "y" convolution_param {{ num_output: {O} '
                      f'kernel_size: {K} pad: 1 group: {G}{eng} }}')
    layer = layer_class("Convolution")(lp, Context(phase=caffe_pb2.TEST, rng=CaffeRNG(1)))
    g = torch.Generator().manual_seed(5)
    x = torch.randn(N, C, H, W, generator=g)
    layer.setup([x])
    layer.param_propagate_down = [True, True]
    w, b = layer.params
    w.data = torch.randn(w.data.shape, generator=g)
    b.data = torch.randn(b.data.shape, generator=g)
    w.diff = torch.randn(w.data.shape, generator=g)  # Caffe accumulates into what the diffs hold
    b.diff = torch.randn(b.data.shape, generator=g)
    td = torch.randn(N, O, H, W, generator=g)
    return layer, x, td


def _run(engine: str):
    layer, x, td = _conv(engine)
    (y,) = layer.forward([x])
    (gx,) = layer.backward([y], [td], [True], [x])
    return {"top": y, "bottom_diff": gx, "weight_diff": layer.params[0].diff, "bias_diff": layer.params[1].diff}


def _caffe_calls():
    """Caffe's BaseConvolutionLayer calls one by one through the BLAS seam (the current mode's library):
    forward_cpu_gemm + forward_cpu_bias per image; backward_cpu_bias for every image, then
    weight_cpu_gemm image by image (beta 1), backward_cpu_gemm + col2im per image."""
    layer, x, td = _conv("CAFFE")
    w, b = (p.data for p in layer.params)
    gw, gb = layer.params[0].diff.clone(), layer.params[1].diff.clone()
    S, M, Kd = H * W, O // G, C // G * K * K
    ones = torch.ones(S)
    wg = w.reshape(G, M, Kd)
    y = torch.empty(N, O, H, W)
    gx = torch.empty(N, C, H, W)
    cols = [torch.ops.replicate.im2col(x[n], [K, K], [1, 1], [1, 1], [1, 1]) for n in range(N)]
    for n in range(N):
        yn = y[n].reshape(G, M, S)
        for g in range(G):
            R.gemm(False, False, M, S, Kd, 1.0, wg[g].contiguous(), cols[n][g * Kd:(g + 1) * Kd].contiguous(), 0.0, yn[g])
        R.gemm(False, False, O, S, 1, 1.0, b, ones, 1.0, y[n].reshape(O, S))
    for n in range(N):
        R.gemv(False, O, S, 1.0, td[n].reshape(O, S).contiguous(), ones, 1.0, gb)
    gwg = gw.reshape(G, M, Kd)
    for n in range(N):
        tn = td[n].reshape(G, M, S)
        for g in range(G):
            R.gemm(False, True, M, Kd, S, 1.0, tn[g].contiguous(), cols[n][g * Kd:(g + 1) * Kd].contiguous(), 1.0,
                   gwg[g])
    for n in range(N):
        col = torch.empty(C * K * K, S)
        tn = td[n].reshape(G, M, S)
        for g in range(G):
            R.gemm(True, False, Kd, S, M, 1.0, wg[g].contiguous(), tn[g].contiguous(), 0.0, col[g * Kd:(g + 1) * Kd])
        gx[n] = torch.ops.replicate.col2im(col, [H, W], C, [K, K], [1, 1], [1, 1], [1, 1])
    return {"top": y, "bottom_diff": gx, "weight_diff": gw, "bias_diff": gb}


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and np.array_equal(a.numpy().view(np.uint32), b.numpy().view(np.uint32))


def test_fast_mode_caffe_engine_is_caffes_order():
    with R.blas_mode("fast"):
        want = _caffe_calls()
        got = _run("CAFFE")
    for k in want:
        assert _same_bits(got[k], want[k]), f"engine CAFFE in fast mode: {k} is not Caffe's calls' bits"


@pytest.mark.parametrize("engine", ["DEFAULT", "CUDNN"])
def test_fast_mode_default_and_cudnn_take_the_fast_kernels(engine):
    with R.blas_mode("fast"):
        want = _caffe_calls()
        got = _run(engine)
    # the fast kernels: the parameter diffs summed per block of 16 images, not into the running diff
    assert not _same_bits(got["weight_diff"], want["weight_diff"]), f"engine {engine}: Caffe's order ran"
    for k in want:
        assert_close(got[k], want[k], f"engine {engine} {k}", rel=1e-5)


def test_fast_mode_caffe_engine_gives_exact_bits_on_exact_library():
    """On exact mode's library (this process loaded it first, so fast mode shares it) engine CAFFE in
    fast mode gives exact mode's bits."""
    exact_blas_ready()
    with R.blas_mode("exact"):
        exact = _run("DEFAULT")
        lib_exact = R.blas_info()
    with R.blas_mode("fast"):
        lib_fast = R.blas_info()
        fast = _run("CAFFE")
    if (lib_fast["path"], lib_fast["core"], lib_fast["copy"]) != (lib_exact["path"], lib_exact["core"], lib_exact["copy"]):
        pytest.skip(f"fast mode computes on another library here ({lib_fast['path']}, core {lib_fast['core']})")
    for k in exact:
        assert _same_bits(fast[k], exact[k]), f"{k}: engine CAFFE in fast mode differs from exact mode"


@honours_engine
class _Probe(Layer):
    """Reports whether its forward ran with this thread's Caffe-order request (a ReLU by type)."""
    type = "ReLU"

    def forward(self, bottoms):
        return [in_caffe_order()]


@pytest.mark.parametrize("mode,engine,want", [
    ("fast", "CAFFE", True), ("fast", "CUDNN", False), ("fast", "DEFAULT", False),
    ("exact", "CUDNN", True), ("exact", "DEFAULT", True),
])
def test_caffe_order_only_inside_caffe_layers(mode, engine, want):
    if mode == "exact":
        exact_blas_ready()
    lp = _layer_param(f'name: "r" type: "ReLU" relu_param {{ engine: {engine} }}')
    probe = _Probe(lp, Context(phase=caffe_pb2.TEST, rng=CaffeRNG(0)))
    with R.blas_mode(mode):
        assert probe.forward([]) == [want]
        assert in_caffe_order() == (mode == "exact")  # the request ends with the call
        with caffe_order():
            assert in_caffe_order()
        assert in_caffe_order() == (mode == "exact")


# ---- the log line -----------------------------------------------------------------------------

NET = """layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 2 dim: 6 dim: 6 } } }
layer { name: "conv1" type: "Convolution" bottom: "x" top: "c1" convolution_param { num_output: 2 kernel_size: 3 %s } }
layer { name: "relu1" type: "ReLU" bottom: "c1" top: "c1" %s }
layer { name: "pool1" type: "Pooling" bottom: "c1" top: "p1" pooling_param { pool: MAX kernel_size: 2 } }
"""


def _net_log(caplog, conv: str, relu: str):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="replicate.net"):
        Net(parse_text(NET % (conv, relu), caffe_pb2.NetParameter), caffe_pb2.TEST, rng=CaffeRNG(0))
    return [r.getMessage() for r in caplog.records if "engine" in r.getMessage()]


def test_log_line_exact_mode(caplog):
    exact_blas_ready()
    with R.blas_mode("exact"):
        lines = _net_log(caplog, "engine: CUDNN", "relu_param { engine: CUDNN }")
        assert lines == ["Layers asking for engine CUDNN: conv1, relu1; on CPU they run Caffe's CPU code, as Caffe "
                         "built with cuDNN does in CPU mode: exact bits do not depend on the engine"]
        assert _net_log(caplog, "engine: CAFFE", "") == []  # nothing to say: CAFFE is what exact mode computes


def test_log_line_fast_mode(caplog):
    with R.blas_mode("fast"):
        lines = _net_log(caplog, "engine: CAFFE", "relu_param { engine: CAFFE }")
        assert lines == ["Layers with engine CAFFE: conv1, relu1; fast mode runs them in Caffe's kernel order on its "
                         "own BLAS library (Caffe's bits only with exact mode's library)"]
        # DEFAULT everywhere: nothing (the max pooling that Caffe keeps as its own is not named either)
        assert _net_log(caplog, "", "") == []
        assert _net_log(caplog, "engine: CUDNN", "") == []


def test_engine_summary_on_cuda_names_no_cudnn():
    class L:
        name, type, engine_requested, engine = "conv1", "Convolution", "CUDNN", "CUDNN"
    line = engine_summary([L()], torch.device("cuda"), mode="exact")
    assert "conv1" in line and "not cuDNN" in line
