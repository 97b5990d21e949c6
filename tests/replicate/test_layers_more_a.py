"""Group A of ../shared/golden/layers_more, bit for bit in exact mode: the neuron layers (AbsVal, BNLL,
ELU, Exp, Log, Power, PReLU, Sigmoid, TanH, Threshold, Clip, Swish), the losses (EuclideanLoss,
HingeLoss, SigmoidCrossEntropyLoss, MultinomialLogisticLoss, ContrastiveLoss, InfogainLoss) and
Parameter: every blob after forward, and after backward every blob diff and parameter diff."""
from __future__ import annotations

import pytest
import torch

from prototxt_like import caffe_pb2
from prototxt_like.codec import parse_text
from replicate import ops as R
from replicate.layers import LayerError
from replicate.net import Net, NetError
from replicate.rng import CaffeRNG
from tests._shared import require
from tests.ops.golden import assert_golden_bits, assert_golden_close, exact_blas_ready, golden_net, run_golden

CASES = ["absval", "bnll", "elu", "exp", "log", "power", "prelu", "sigmoid", "tanh", "threshold", "clip", "swish",
         "euclidean_loss", "hinge_loss", "sigmoid_cross_entropy_loss", "multinomial_logistic_loss",
         "contrastive_loss", "infogain_loss", "parameter"]
# the cases whose kernels call the BLAS (scal, axpby, dot, asum, the softmax's gemm/gemv)
BLAS_CASES = ["exp", "log", "power", "swish", "euclidean_loss", "hinge_loss", "sigmoid_cross_entropy_loss",
              "contrastive_loss", "infogain_loss"]


def _run(case: str):
    return run_golden(require("golden", "layers_more", case))


@pytest.mark.parametrize("case", CASES)
def test_layers_more_a_exact(case):
    exact_blas_ready()
    with R.blas_mode("exact"):
        out, forward, backward = _run(case)
    assert_golden_bits(case, out, forward, backward)
    if backward:
        assert {k for k in out if k.startswith("param_diff/")} == {k for k in backward if k.startswith("param_diff/")}


@pytest.mark.parametrize("case", BLAS_CASES)
def test_layers_more_a_fast_close(case):
    with R.blas_mode("fast"):
        out, forward, backward = _run(case)
    assert_golden_close(case, out, forward, backward)


# ---- behaviours the golden cases do not reach --------------------------------------------------

def _layer_net(layer: str, shape=(2, 3, 4), force_backward=True) -> Net:
    text = (f"force_backward: {'true' if force_backward else 'false'}\n"
            f"layer {{ name: 'data' type: 'Input' top: 'x' input_param {{ shape {{ "
            + " ".join(f"dim: {d}" for d in shape) + " } } }\n" + layer)
    return Net(parse_text(text, caffe_pb2.NetParameter), caffe_pb2.TEST, rng=CaffeRNG(0))


def test_absval_refuses_in_place():
    with pytest.raises(NetError, match="in-place"):
        _layer_net("layer { name: 'a' type: 'AbsVal' bottom: 'x' top: 'x' }")


def test_threshold_has_no_backward():
    net = _layer_net("layer { name: 't' type: 'Threshold' bottom: 'x' top: 't' }")
    net.blobs["x"].data = torch.randn(2, 3, 4)
    net.forward()
    net.blobs["t"].diff = torch.ones(2, 3, 4)
    with pytest.raises(LayerError, match="NOT_IMPLEMENTED"):
        net.backward()


def test_prelu_in_place_matches_out_of_place():
    """In place, Caffe's PReLU keeps a copy of its bottom for Backward: same diffs as out of place."""
    x = torch.randn(2, 3, 4)
    td = torch.randn(2, 3, 4)
    diffs = []
    for top in ("x", "y"):
        net = _layer_net(f"layer {{ name: 'p' type: 'PReLU' bottom: 'x' top: '{top}' "
                         "prelu_param { filler { type: 'constant' value: 0.3 } } }")
        net.blobs["x"].data = x.clone()
        net.forward()
        net.blobs[top].diff = td.clone()
        net.backward()
        diffs.append((net.blobs["x"].diff.clone(), net.params_of("p")[0].diff.clone()))
    assert torch.equal(diffs[0][0], diffs[1][0]) and torch.equal(diffs[0][1], diffs[1][1])


def test_parameter_starts_at_zero_and_copies_its_top_diff():
    text = ("layer { name: 'p' type: 'Parameter' top: 'p' parameter_param { shape { dim: 2 dim: 3 } } }\n"
            "layer { name: 'd' type: 'Input' top: 't' input_param { shape { dim: 2 dim: 3 } } }\n"
            "layer { name: 'l' type: 'EuclideanLoss' bottom: 'p' bottom: 't' top: 'loss' }")
    net = Net(parse_text(text, caffe_pb2.NetParameter), caffe_pb2.TEST, rng=CaffeRNG(0))
    p = net.params_of("p")[0]
    assert torch.equal(p.data, torch.zeros(2, 3))
    net.blobs["t"].data = torch.ones(2, 3)
    net.forward()
    assert torch.equal(net.blobs["p"].data, p.data)
    net.backward()
    assert torch.equal(p.diff, net.blobs["p"].diff)
    assert torch.equal(p.diff, torch.full((2, 3), -0.5))  # (0 - 1) / N(2) per element


def test_infogain_refuses_a_diff_for_H():
    """force_backward asks InfogainLoss for a diff of H (bottom 2): Caffe aborts, so do we."""
    path = require("golden", "layers_more", "infogain_loss")
    text = "force_backward: true\n" + (path / "net.prototxt").read_text()
    net = golden_net(path, text)
    net.blobs["label"].data = torch.tensor([1.0, 4.0, 0.0, 1.0])
    net.blobs["H"].data = torch.eye(5)
    net.forward()
    with pytest.raises(LayerError, match="infogain inputs"):
        net.backward()


def test_losses_refuse_label_diffs():
    net = _layer_net("layer { name: 'l' type: 'Input' top: 'lab' input_param { shape { dim: 2 } } }\n"
                     "layer { name: 'h' type: 'HingeLoss' bottom: 'x' bottom: 'lab' top: 'loss' "
                     "propagate_down: true propagate_down: true }", shape=(2, 3))
    net.blobs["x"].data = torch.randn(2, 3)
    net.blobs["lab"].data = torch.tensor([0.0, 2.0])
    net.forward()
    with pytest.raises(LayerError, match="label inputs"):
        net.backward()


def test_float64_kernels_run():
    """Caffe instantiates every layer for double too: the kernels dispatch on float64."""
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    for op, args in (("sigmoid_forward", ()), ("tanh_forward", ()), ("bnll_forward", ()), ("elu_forward", (0.5,)),
                     ("exp_forward", (2.0, 0.5, 0.1)), ("power_forward", (2.0, 1.5, 0.5)),
                     ("clip_forward", (-0.5, 0.5)), ("threshold_forward", (0.1,)), ("absval_forward", ())):
        y = getattr(torch.ops.replicate, op)(x, *args)
        assert y.dtype == torch.float64 and y.shape == x.shape
    s = torch.ops.replicate.sigmoid_forward(x)
    assert torch.allclose(s, torch.sigmoid(x), rtol=1e-12, atol=0)


def test_cuda_blobs_are_refused_with_the_layer_name():
    """These types have CPU kernels only: a CUDA blob is a LayerError naming the layer (checked on a
    stand-in, so that it runs without a GPU)."""
    from types import SimpleNamespace

    from replicate.layers.sigmoid import require_cpu
    net = _layer_net("layer { name: 'sig' type: 'Sigmoid' bottom: 'x' top: 's' }")
    fake_cuda = SimpleNamespace(device=torch.device("cuda", 0))
    with pytest.raises(LayerError, match=r"layer 'sig' \(Sigmoid\): CPU only"):
        require_cpu(net.layer("sig"), [fake_cuda])
    require_cpu(net.layer("sig"), [torch.zeros(1), torch.zeros(1, device="meta")])
