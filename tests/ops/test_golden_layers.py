"""Every single-layer case of ../shared/golden/layers through our ops, against Caffe's bits.

exact BLAS mode: every output, diff and parameter diff bit-identical to Caffe 1.0.
fast mode: the BLAS-free layers (pooling, ReLU, LRN within channel, dropout, accuracy) still
bit-identical; the rest within 1e-5 relative (max |diff| / max |Caffe|).
"""
import numpy as np
import pytest
import torch

import prototxt_like
from replicate import ops as R
from replicate.rng import CaffeRNG
from tests.ops.golden import (assert_bits, assert_close, conv_args, exact_blas_ready, load_case,
                              pool_args)

pb = prototxt_like.caffe_pb2
ops = torch.ops.replicate


@pytest.fixture(params=["exact", "fast"])
def mode(request):
    if request.param == "exact":
        exact_blas_ready()
    with R.blas_mode(request.param):
        yield request.param


def check(results, case, mode, blas_free):
    """results: {golden key: our tensor}; keys are 'forward:<blob>' or 'backward:<key>'."""
    assert results, "nothing compared"
    for key, ours in results.items():
        part, name = key.split(":", 1)
        theirs = (case.forward if part == "forward" else case.backward)[name]
        if mode == "exact" or blas_free:
            assert_bits(ours, theirs, f"{case.name} {key} ({mode})")
        else:
            assert_close(ours, theirs, f"{case.name} {key} ({mode})")


@pytest.mark.parametrize("name", ["conv1_like", "conv_group2"])
def test_convolution(name, mode):
    case = load_case(name)
    layer = case.layer("conv")
    p = layer.convolution_param
    kernel, pad, stride, dilation = conv_args(p)
    w, b = (case.t(a) for a in case.weights["conv"])
    assert tuple(w.shape[2:]) == kernel
    x = case.t(case.inputs["data"])
    top = ops.conv_forward(x, w, b, stride, pad, dilation, p.group)
    gx, gw, gb = ops.conv_backward(case.t(case.backward["top_diff/conv"]), x, w, stride, pad, dilation,
                                   p.group, [True, True, True])
    check({"forward:conv": top, "backward:diff/data": gx, "backward:param_diff/conv/0": gw,
           "backward:param_diff/conv/1": gb}, case, mode, blas_free=False)


def test_inner_product(mode):
    case = load_case("innerproduct")
    p = case.layer("fc").inner_product_param
    w, b = (case.t(a) for a in case.weights["fc"])
    x = case.t(case.inputs["data"])
    x2 = x.reshape(x.shape[0], -1)
    top = ops.inner_product_forward(x2, w, b, p.transpose)
    gx, gw, gb = ops.inner_product_backward(case.t(case.backward["top_diff/fc"]), x2, w, p.transpose,
                                            [True, True, True])
    check({"forward:fc": top, "backward:diff/data": gx.reshape(x.shape), "backward:param_diff/fc/0": gw,
           "backward:param_diff/fc/1": gb}, case, mode, blas_free=False)


@pytest.mark.parametrize("name", ["lrn_across", "lrn_across_k2", "lrn_within"])
def test_lrn(name, mode):
    case = load_case(name)
    p = case.layer("norm").lrn_param
    x = case.t(case.inputs["data"])
    td = case.t(case.backward["top_diff/norm"])
    if p.norm_region == pb.LRNParameter.ACROSS_CHANNELS:
        top, scale, power = ops.lrn_across_forward(x, p.local_size, p.alpha, p.beta, p.k)
        gx = ops.lrn_across_backward(td, x, top, scale, power, p.local_size, p.alpha, p.beta)
    else:
        top, pooled, powered = ops.lrn_within_forward(x, p.local_size, p.alpha, p.beta)
        gx = ops.lrn_within_backward(td, x, pooled, powered, p.local_size, p.alpha, p.beta)
    check({"forward:norm": top, "backward:diff/data": gx}, case, mode,
          blas_free=p.norm_region == pb.LRNParameter.WITHIN_CHANNEL)


@pytest.mark.parametrize("name", ["pool_ave_pad", "pool_max_ceil", "pool_max_ties"])
def test_pooling(name, mode):
    case = load_case(name)
    p = case.layer("pool").pooling_param
    kernel, pad, stride = pool_args(p)
    x = case.t(case.inputs["data"])
    td = case.t(case.backward["top_diff/pool"])
    if p.pool == pb.PoolingParameter.MAX:
        top, mask = ops.pool_max_forward(x, kernel, stride, pad, True)
        gx = ops.pool_max_backward(td, mask, list(x.shape))
    else:
        top = ops.pool_ave_forward(x, kernel, stride, pad, True)
        gx = ops.pool_ave_backward(td, list(x.shape), kernel, stride, pad)
    check({"forward:pool": top, "backward:diff/data": gx}, case, mode, blas_free=True)


def test_relu(mode):
    case = load_case("relu")
    results = {}
    for layer in case.net.layer:
        if layer.type != "ReLU":
            continue
        x = case.t(case.inputs[layer.bottom[0]])
        slope = layer.relu_param.negative_slope
        results[f"forward:{layer.top[0]}"] = ops.relu_forward(x, slope)
        results[f"backward:diff/{layer.bottom[0]}"] = ops.relu_backward(
            case.t(case.backward[f"top_diff/{layer.top[0]}"]), x, slope)
    assert len(results) == 4
    check(results, case, mode, blas_free=True)


def test_softmax_loss_and_accuracy(mode):
    case = load_case("softmax_loss_accuracy")
    x, label = case.t(case.inputs["fc"]), case.t(case.inputs["label"])
    loss, prob = ops.softmax_loss_forward(x, label, 1, 1, None)
    grad = ops.softmax_loss_backward(case.t(case.backward["top_diff/loss"]), prob, label, 1, 1, None)
    check({"forward:loss": loss, "backward:diff/fc": grad, "backward:diff/fc_data_0_split_0": grad},
          case, mode, blas_free=False)
    acc = {}
    for name in ("accuracy", "accuracy_top5"):
        p = case.layer(name).accuracy_param
        acc[f"forward:{name}"] = ops.accuracy_forward(x, label, p.axis, p.top_k, None)[0]
    check(acc, case, mode, blas_free=True)


def test_dropout_head_train(mode):
    """The TRAIN-phase CaffeNet head: Caffe's own dropout masks (drawn by our CaffeRNG from the
    case's seed), the dropout op, and the fc/ReLU/loss chain forward and backward."""
    case = load_case("caffenet_head_train_dropout")
    masks = dict(np.load(case.path / "masks.npz"))
    layers_fw = dict(np.load(case.path / "forward_layers.npz"))
    import json
    seed = json.loads((case.path / "case.json").read_text())["seed"]
    rng = CaffeRNG(seed)
    ours = {name: rng.dropout_mask(masks[f"dropout_mask/{name}"].shape, case.layer(name).dropout_param.dropout_ratio)
            for name in ("drop6", "drop7")}  # drop6 draws first, then drop7
    for name, m in ours.items():
        assert np.array_equal(m, masks[f"dropout_mask/{name}"].astype(np.int32)), f"{name} mask differs"
    mask = {k: torch.from_numpy(v) for k, v in ours.items()}
    ratio = 0.5
    # forward
    x = case.t(case.inputs["data"])
    label = case.t(case.inputs["label"])
    w = {k: [case.t(a) for a in v] for k, v in case.weights.items()}
    fc6 = ops.inner_product_forward(x, *w["fc6"], False)
    r6 = ops.relu_forward(fc6, 0.0)
    d6 = ops.dropout_forward(r6, mask["drop6"], ratio)
    fc7 = ops.inner_product_forward(d6, *w["fc7"], False)
    r7 = ops.relu_forward(fc7, 0.0)
    d7 = ops.dropout_forward(r7, mask["drop7"], ratio)
    fc8 = ops.inner_product_forward(d7, *w["fc8"], False)
    loss, prob = ops.softmax_loss_forward(fc8, label, 1, 1, None)
    # backward (in-place ReLU/Dropout: Caffe's ReLU backward sees its rectified output)
    g8 = ops.softmax_loss_backward(case.t(case.backward["top_diff/loss"]), prob, label, 1, 1, None)
    gd7, gw8, gb8 = ops.inner_product_backward(g8, d7, w["fc8"][0], False, [True, True, True])
    g7 = ops.relu_backward(ops.dropout_backward(gd7, mask["drop7"], ratio), r7, 0.0)
    gd6, gw7, gb7 = ops.inner_product_backward(g7, d6, w["fc7"][0], False, [True, True, True])
    g6 = ops.relu_backward(ops.dropout_backward(gd6, mask["drop6"], ratio), r6, 0.0)
    gx, gw6, gb6 = ops.inner_product_backward(g6, x, w["fc6"][0], False, [True, True, True])
    results = {"forward:fc6": d6, "forward:fc7": d7, "forward:fc8": fc8, "forward:loss": loss,
               "backward:diff/fc8": g8, "backward:diff/fc7": g7, "backward:diff/fc6": g6,
               "backward:diff/data": gx}
    for n, (gw, gb) in {"fc6": (gw6, gb6), "fc7": (gw7, gb7), "fc8": (gw8, gb8)}.items():
        results[f"backward:param_diff/{n}/0"], results[f"backward:param_diff/{n}/1"] = gw, gb
    check(results, case, mode, blas_free=False)
    # ReLU and dropout alone, on Caffe's own recorded inputs: BLAS-free, so bits in either mode.
    for fc, relu, drop in (("fc6", "relu6", "drop6"), ("fc7", "relu7", "drop7")):
        pre = case.t(layers_fw[f"layer/{fc}/{fc}"])
        assert_bits(ops.relu_forward(pre, 0.0), layers_fw[f"layer/{relu}/{fc}"], f"{relu} on Caffe's {fc}")
        assert_bits(ops.dropout_forward(case.t(layers_fw[f"layer/{relu}/{fc}"]), mask[drop], ratio),
                    case.forward[fc], f"{drop} on Caffe's {relu} output")


def test_autograd_matches_caffe_bits():
    """The autograd path (layer helpers + .backward) runs the same kernels: Caffe's bits."""
    exact_blas_ready()
    with R.blas_mode("exact"):
        case = load_case("conv_group2")
        p = case.layer("conv").convolution_param
        kernel, pad, stride, dilation = conv_args(p)
        w, b = (case.t(a).clone().requires_grad_() for a in case.weights["conv"])
        x = case.t(case.inputs["data"]).clone().requires_grad_()
        top = R.convolution(x, w, b, stride, pad, dilation, p.group)
        top.backward(case.t(case.backward["top_diff/conv"]))
        assert_bits(top, case.forward["conv"], "autograd conv forward")
        assert_bits(x.grad, case.backward["diff/data"], "autograd conv diff/data")
        assert_bits(w.grad, case.backward["param_diff/conv/0"], "autograd conv weight diff")
        assert_bits(b.grad, case.backward["param_diff/conv/1"], "autograd conv bias diff")

        case = load_case("lrn_across")
        p = case.layer("norm").lrn_param
        x = case.t(case.inputs["data"]).clone().requires_grad_()
        top = R.lrn(x, p.local_size, p.alpha, p.beta, p.k)
        top.backward(case.t(case.backward["top_diff/norm"]))
        assert_bits(top, case.forward["norm"], "autograd lrn forward")
        assert_bits(x.grad, case.backward["diff/data"], "autograd lrn diff/data")
