"""Group B layers (shape, reduction and normalisation) and the existing layers' extra cases, against
../shared/golden/layers_more: every blob after forward, and after backward every blob diff and
parameter diff, bit for bit in exact mode (``run_blobs`` as ``python -m replicate blobs``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prototxt_like import caffe_pb2
from replicate import ops as R
from replicate.layers import LayerError, layer_class
from replicate.layers.base import Context
from replicate.net import Net, NetError
from replicate.rng import CaffeRNG
from tests._shared import require
from tests.ops.golden import assert_bits, assert_golden_close, exact_blas_ready, golden_net, run_golden

NEW = ["crop", "slice", "silence", "tile", "reshape", "parameter", "reduction", "argmax", "im2col",
       "batchnorm_global", "batchnorm_batchstats", "bias", "scale", "mvn", "spp", "embed", "batch_reindex",
       "filter"]
EXISTING = ["conv_dilation2", "conv_rect", "innerproduct_transpose_axis2", "softmax_loss_axis2",
            "softmax_loss_valid_ignore", "softmax", "concat", "split", "flatten", "eltwise", "input"]
BLAS = ["reduction", "batchnorm_batchstats", "bias", "scale", "mvn", "embed", "batch_reindex", "conv_dilation2",
        "conv_rect", "innerproduct_transpose_axis2", "softmax", "softmax_loss_axis2"]


def _run(case: str):
    path = require("golden", "layers_more", case)
    net = golden_net(path)
    return (*run_golden(path, net), net, path)


def _check(case, out, forward, backward):
    for k, v in forward.items():
        assert k in out, f"{case}: the net has no blob {k!r}"
        assert_bits(out[k], v, f"{case} blob {k}")
    for k, v in backward.items():
        if not k.startswith("top_diff/"):
            assert k in out, f"{case}: no {k!r} in our output"
            assert_bits(out[k], v, f"{case} {k}")
    assert set(forward) == {k for k in out if "/" not in k}, "the net holds other blobs than Caffe's"


@pytest.mark.parametrize("case", NEW + EXISTING)
def test_layers_more_exact(case):
    exact_blas_ready()
    with R.blas_mode("exact"):
        out, forward, backward, net, path = _run(case)
    _check(case, out, forward, backward)


def test_batchnorm_batchstats_updates_blobs_in_forward():
    exact_blas_ready()
    with R.blas_mode("exact"):
        out, forward, backward, net, path = _run("batchnorm_batchstats")
    after = np.load(path / "params_after_forward.npz")
    for k in after.files:
        layer, i = k.rsplit("/", 1)
        assert_bits(net.params_of(layer)[int(i)].data, after[k], f"batchnorm_batchstats param {k}")
    assert net.params_lr[-3:] == [0.0, 0.0, 0.0], "BatchNorm's statistics must get lr_mult 0"


@pytest.mark.parametrize("case", BLAS)
def test_layers_more_fast_close(case):
    with R.blas_mode("fast"):
        out, forward, backward, net, path = _run(case)
    assert_golden_close(case, out, forward, backward)


# ---- behaviour without golden cases -------------------------------------------------------

def _layer(text: str):
    from google.protobuf import text_format
    lp = caffe_pb2.LayerParameter()
    text_format.Parse(text, lp)
    lp.phase = caffe_pb2.TEST
    return layer_class(lp.type)(lp, Context(phase=caffe_pb2.TEST, rng=CaffeRNG(7)))


def test_dummy_data_fills_as_caffe():
    """Constant fillers fill once at set-up; the others draw at every forward, top by top, from the
    net's RNG (the same draws as replicate.fillers.fill in that order)."""
    from replicate.fillers import fill
    l = _layer('name: "d" type: "DummyData" top: "a" top: "b" top: "c" dummy_data_param { '
               'data_filler { type: "constant" value: 3 } data_filler { type: "gaussian" std: 2 } '
               'data_filler { type: "uniform" min: -1 max: 1 } shape { dim: 2 dim: 3 } }')
    l.n_tops = 3
    l.setup([])
    ref = CaffeRNG(7)
    for _ in range(2):
        a, b, c = l.forward([])
        assert torch.equal(a, torch.full((2, 3), 3.0))
        eb = fill(l.fillers[1], (2, 3), ref)
        ec = fill(l.fillers[2], (2, 3), ref)
        assert np.array_equal(b.numpy(), eb) and np.array_equal(c.numpy(), ec)


def test_dummy_data_default_and_shared_filler():
    l = _layer('name: "d" type: "DummyData" top: "a" top: "b" dummy_data_param { num: 2 channels: 1 height: 2 '
               'width: 1 num: 3 }')
    l.n_tops = 2
    l.setup([])
    a, b = l.forward([])
    assert a.shape == (2, 1, 2, 1) and b.shape == (3, 1, 2, 1) and not a.any() and not b.any()


def test_dummy_data_in_a_net(tmp_path):
    p = tmp_path / "n.prototxt"
    p.write_text('layer { name: "d" type: "DummyData" top: "x" dummy_data_param { shape { dim: 2 dim: 4 } '
                 'data_filler { type: "gaussian" } } }\n'
                 'layer { name: "r" type: "Reduction" bottom: "x" top: "s" reduction_param { operation: SUMSQ } }\n')
    net = Net(str(p), caffe_pb2.TEST, rng=CaffeRNG(5))
    net.forward()
    first = net.blobs["x"].data.clone()
    net.forward()
    assert not torch.equal(first, net.blobs["x"].data)


def test_argmax_ties_take_the_larger_index():
    l = _layer('name: "a" type: "ArgMax" bottom: "x" top: "y" argmax_param { top_k: 2 }')
    x = torch.tensor([[1.0, 3.0, 3.0, 2.0]])
    (y,) = l.forward([x])
    assert y.reshape(-1).tolist() == [2.0, 1.0]


def test_embed_refuses_bad_indices_and_input_backward():
    l = _layer('name: "e" type: "Embed" bottom: "i" top: "y" embed_param { input_dim: 3 num_output: 2 }')
    l.setup([torch.zeros(2)])
    with pytest.raises(LayerError, match="outside"):
        l.forward([torch.tensor([0.0, 3.0])])
    with pytest.raises(LayerError, match="non-integer"):
        l.forward([torch.tensor([0.0, 1.5])])
    with pytest.raises(LayerError, match="input"):
        l.backward([None], [torch.zeros(2, 2)], [True], [torch.zeros(2)])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("text", [
    'name: "b" type: "Bias" bottom: "x" top: "y"',
    'name: "m" type: "MVN" bottom: "x" top: "y"',
    'name: "r" type: "Reduction" bottom: "x" top: "y"',
])
def test_cpu_only_layers_name_themselves_on_cuda(text):
    l = _layer(text)
    x = torch.zeros(2, 3, 2, 2, device="cuda")
    l.setup([x.cpu()])
    with pytest.raises(LayerError, match="CPU only"):
        l.forward([x])


def test_cpu_only_layers_name_themselves_on_other_devices():
    """The check itself, without a GPU: a tensor on a non-CPU device is refused with the layer's name."""
    from replicate.layers.bias import cpu_only
    l = _layer('name: "mine" type: "MVN" bottom: "x" top: "y"')

    class Fake:
        device = torch.device("cuda")
    with pytest.raises(LayerError, match="'mine'.*CPU only"):
        cpu_only(l, [Fake()])


def test_filter_set_up_shape_is_unfiltered():
    net = golden_net(require("golden", "layers_more", "filter"))
    assert net._meta_shapes["fp"] == (4, 3)


# ---- branches the golden cases do not reach, against float64 references --------------------

def _net_from(tmp_path, text, inputs):
    p = tmp_path / "n.prototxt"
    p.write_text("force_backward: true\n" + text)
    net = Net(str(p), caffe_pb2.TEST, rng=CaffeRNG(3))
    for k, v in inputs.items():
        net.blobs[k].data = torch.from_numpy(v)
    return net


@pytest.mark.parametrize("scale_param,shape", [
    ("axis: 0 num_axes: 0", ()),             # a scalar scale: outer 1, scale_dim 1
    ("axis: 0 num_axes: -1", (2, 3, 4)),     # elementwise: the product is the scale diff
    ("axis: 2 num_axes: 1", (4,)),           # inner 1, outer 6
    ("axis: 1 num_axes: 1", (3,)),           # the golden case's branch, as a reference check
])
@pytest.mark.parametrize("in_place", [False, True])
def test_scale_branches(tmp_path, scale_param, shape, in_place):
    rs = np.random.RandomState(1)
    x = rs.randn(2, 3, 4).astype(np.float32)
    top = "x" if in_place else "y"
    net = _net_from(tmp_path, 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 } } }\n'
                    f'layer {{ name: "s" type: "Scale" bottom: "x" top: "{top}" scale_param {{ {scale_param} '
                    'filler { type: "gaussian" } bias_term: true bias_filler { type: "gaussian" } } }\n', {"x": x})
    s = net.params_of("s")[0].data.numpy().astype(np.float64)
    b = net.params_of("s")[1].data.numpy().astype(np.float64)
    assert s.shape == shape and b.shape == shape
    net.forward()
    axis = 0 if not shape else {"axis: 0": 0, "axis: 1": 1, "axis: 2": 2}[scale_param[:7]]
    bshape = (1,) * axis + shape + (1,) * (3 - axis - len(shape))
    np.testing.assert_allclose(net.blobs[top].data.numpy(), x * s.reshape(bshape) + b.reshape(bshape), rtol=1e-5,
                               atol=1e-6)
    g = rs.randn(2, 3, 4).astype(np.float32)
    net.blobs[top].diff = torch.from_numpy(g)
    net.clear_param_diffs()
    net.backward()
    red = tuple(i for i in range(3) if not axis <= i < axis + len(shape))
    np.testing.assert_allclose(net.params_of("s")[0].diff.numpy(), (g * x).sum(axis=red).reshape(shape), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(net.params_of("s")[1].diff.numpy(), g.sum(axis=red).reshape(shape), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(net.blobs["x"].diff.numpy(), g * s.reshape(bshape), rtol=1e-5, atol=1e-6)


def test_bias_scalar_and_learned_accumulates(tmp_path):
    rs = np.random.RandomState(2)
    x = rs.randn(2, 3).astype(np.float32)
    net = _net_from(tmp_path, 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
                    'layer { name: "b" type: "Bias" bottom: "x" top: "y" bias_param { num_axes: 0 '
                    'filler { type: "constant" value: 0.5 } } }\n', {"x": x})
    net.forward()
    np.testing.assert_array_equal(net.blobs["y"].data.numpy(), x + np.float32(0.5))
    g = rs.randn(2, 3).astype(np.float32)
    net.clear_param_diffs()
    for _ in range(2):  # param diffs accumulate, as Caffe's
        net.blobs["y"].diff = torch.from_numpy(g)
        net.backward()
    np.testing.assert_allclose(net.params_of("b")[0].diff.numpy(), [2 * g.sum()], rtol=1e-5)


def test_shape_layers_small_rules(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    net = _net_from(tmp_path, 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 } } }\n'
                    'layer { name: "sl" type: "Slice" bottom: "x" top: "a" top: "b" slice_param { axis: -1 } }\n'
                    'layer { name: "t" type: "Tile" bottom: "a" top: "t" tile_param { axis: 0 tiles: 2 } }\n'
                    'layer { name: "r" type: "Reshape" bottom: "b" top: "r" reshape_param { shape { dim: -1 } '
                    'axis: 1 } }\n', {"x": x})
    net.forward()
    np.testing.assert_array_equal(net.blobs["t"].data.numpy(), np.concatenate([x[..., :2]] * 2))
    assert net.blobs["r"].data.shape == (2, 6)
    net.blobs["t"].diff = torch.ones(4, 3, 2)
    net.blobs["r"].diff = torch.full((2, 6), 3.0)
    net.backward()
    d = net.blobs["x"].diff.numpy()
    assert (d[..., :2] == 2).all() and (d[..., 2:] == 3).all()
    with pytest.raises(NetError, match="evenly divide"):
        _net_from(tmp_path, 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
                  'layer { name: "sl" type: "Slice" bottom: "x" top: "a" top: "b" }\n', {})
