"""CaffeModule (replicate.torch_module): a Caffe net as a torch module.  Its outputs are Caffe's
bits, and the gradients torch's autograd delivers (inputs and nn.Parameters) are the diffs Caffe
recorded in ../shared/golden/layers, bit for bit in exact mode (each layer's own backward runs,
in Caffe's order); torch.optim updates the net's own weights."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from replicate import caffe
from replicate import ops as R
from replicate.torch_module import TEST, TRAIN, CaffeModule
from tests._shared import require
from tests.ops.golden import LAYERS_MORE_CASES, assert_bits, assert_close, exact_blas_ready

# every case: forward bits; backward from the loss or from Caffe's recorded top diffs
CASES = ["caffenet_narrow", "caffenet_head_train_dropout", "conv1_like", "conv_group2", "innerproduct",
         "lrn_across", "lrn_across_k2", "lrn_within", "pool_ave_pad", "pool_max_ceil", "pool_max_ties", "relu",
         "softmax_loss_accuracy"]


def _load(case):
    path = require("golden", "layers", case)
    meta = json.loads((path / "case.json").read_text())
    phase = TRAIN if meta["phase"] == "TRAIN" else TEST
    w = str(path / "weights.caffemodel") if (path / "weights.caffemodel").exists() else None
    return path, meta, CaffeModule(str(path / "net.prototxt"), w, phase)


def _run(case):
    """forward with Caffe's inputs (requires_grad on the non-label inputs), then autograd from the
    loss (the nets Caffe ran backward(start='loss') on) or from the recorded top diffs."""
    path, meta, m = _load(case)
    inputs = {k: torch.from_numpy(v) for k, v in np.load(path / "inputs.npz").items()}
    for k, v in inputs.items():
        if k != "label":
            v.requires_grad_(True)
    if meta["phase"] == "TRAIN":
        caffe.set_random_seed(meta["seed"])
    out = m(**inputs)
    bwd = dict(np.load(path / "backward.npz"))
    if "start='loss'" in meta["backward_call"]:
        out["loss"].backward()
    else:
        tops = {k[len("top_diff/"):]: torch.from_numpy(v) for k, v in bwd.items() if k.startswith("top_diff/")}
        torch.autograd.backward([out[k] for k in tops], [tops[k] for k in tops])
    return path, m, inputs, out, bwd


@pytest.mark.parametrize("case", CASES)
def test_forward_and_autograd_are_caffes(case):
    exact_blas_ready()
    with R.blas_mode("exact"):
        path, m, inputs, out, bwd = _run(case)
    fwd = dict(np.load(path / "forward.npz"))
    for k, v in out.items():
        assert_bits(out[k].detach(), fwd[k], f"{case} output {k}")
    for k, v in fwd.items():
        assert_bits(m.blobs[k], v, f"{case} blob {k}")
    for k, v in inputs.items():
        if v.requires_grad:
            assert_bits(v.grad, bwd[f"diff/{k}"], f"{case} grad of input {k}")
    params = dict(m.named_parameters())
    n = 0
    for k, v in bwd.items():
        if k.startswith("param_diff/"):
            _, layer, i = k.split("/")
            assert_bits(params[f"{layer}.{i}"].grad, v, f"{case} {k}")
            n += 1
    assert n == len(params)


@pytest.mark.parametrize("case", ["caffenet_narrow", "lrn_across"])
def test_fast_mode_close(case):
    with R.blas_mode("fast"):
        path, m, inputs, out, bwd = _run(case)
    fwd = dict(np.load(path / "forward.npz"))
    for k, v in out.items():
        assert_close(v.detach(), fwd[k], f"{case} {k}", rel=2e-5)
    assert_close(inputs["data"].grad, bwd["diff/data"], f"{case} data grad", rel=2e-5)


def test_same_gradients_as_the_nets_backward():
    """Autograd's gradients equal the underlying net's own Net.backward diffs (same kernels), here
    with a loss weight and in-place layers on CaffeNet's topology."""
    exact_blas_ready()
    with R.blas_mode("exact"):
        path, m, inputs, out, _ = _run("caffenet_narrow")
        net = caffe.Net(str(path / "net.prototxt"), caffe.TEST, weights=str(path / "weights.caffemodel"))
        net.forward(**{k: v.detach().numpy() for k, v in inputs.items()})
        net.clear_param_diffs()
        net.backward(start="loss")
    params = dict(m.named_parameters())
    for name, blobs in net.params.items():
        for i, b in enumerate(blobs):
            assert np.array_equal(params[f"{name}.{i}"].grad.numpy().view(np.uint32), b.diff.view(np.uint32))
    assert np.array_equal(inputs["data"].grad.numpy().view(np.uint32), net.blobs["data"].diff.view(np.uint32))


def test_optimizer_updates_the_nets_weights():
    path, meta, m = _load("caffenet_narrow")
    x = {k: torch.from_numpy(v) for k, v in np.load(path / "inputs.npz").items()}
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    loss0 = m(**x)["loss"]
    loss0.backward()
    before = m.net.layer("fc8").params[0].data.clone()
    opt.step()
    w = dict(m.named_parameters())["fc8.0"]
    assert torch.equal(m.net.layer("fc8").params[0].data, w.detach())  # the layer computes with them
    assert not torch.equal(before, w.detach())
    assert float(m(**x)["loss"].detach()) < float(loss0.detach())
    assert m.loss(m(**x)).shape == ()


def test_backward_through_an_older_pass_raises():
    path, meta, m = _load("caffenet_head_train_dropout")
    x = {k: torch.from_numpy(v) for k, v in np.load(path / "inputs.npz").items()}
    first = m(**x)["loss"]
    m(**x)
    with pytest.raises(RuntimeError, match="older forward"):
        first.backward()


def test_parameter_names_and_frozen_blobs(tmp_path):
    """Parameters are named <layer>.<i>; lr_mult 0 blobs do not require grad (Caffe computes no
    diff for them); a shared blob (param { name }) is one Parameter."""
    proto = tmp_path / "net.prototxt"
    proto.write_text("""
name: "t"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 5 } } }
layer { name: "ip.a" type: "InnerProduct" bottom: "data" top: "a"
        param { name: "shared_w" } param { lr_mult: 0 }
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "ipb" type: "InnerProduct" bottom: "a" top: "b" param { name: "shared_w" }
        inner_product_param { num_output: 5 bias_term: false weight_filler { type: "gaussian" std: 0.1 } } }
""")
    caffe.set_random_seed(3)
    m = CaffeModule(str(proto))
    names = [n for n, _ in m.named_parameters()]
    assert names == ["ip_a_.0", "ip_a_.1"]  # ipb.0 is ip.a's weight (shared), listed once
    assert m.param_name == {"ip.a/0": "ip_a_.0", "ip.a/1": "ip_a_.1", "ipb/0": "ipb.0"}
    assert m.ipb[0] is m.ip_a_[0]
    assert not m.ip_a_[1].requires_grad
    out = m(data=torch.randn(2, 5))
    out["b"].sum().backward()
    assert m.ip_a_[0].grad is not None and m.ip_a_[1].grad is None


@pytest.mark.parametrize("case", LAYERS_MORE_CASES)
def test_layers_more_through_autograd(case):
    """Every layers_more case through CaffeModule: forward bits; autograd from Caffe's top diffs
    gives Caffe's parameter diffs and (where Caffe computed them: force_backward nets, non-zero
    diffs) input diffs, bit for bit -- every layer type, with or without an autograd op."""
    exact_blas_ready()
    path = require("golden", "layers_more", case)
    meta = json.loads((path / "case.json").read_text())
    phase = TRAIN if meta["phase"] == "TRAIN" else TEST
    w = str(path / "weights.caffemodel") if (path / "weights.caffemodel").exists() else None
    bwd = dict(np.load(path / "backward.npz")) if (path / "backward.npz").exists() else {}
    with R.blas_mode("exact"):
        m = CaffeModule(str(path / "net.prototxt"), w, phase)
        x = {k: torch.from_numpy(v) for k, v in np.load(path / "inputs.npz").items()} \
            if (path / "inputs.npz").exists() else {}
        for k, v in x.items():
            d = bwd.get(f"diff/{k}")
            if meta.get("force_backward", True) and d is not None and np.any(d != 0):
                v.requires_grad_(True)
        out = m(**x)
        for k, v in np.load(path / "forward.npz").items():
            assert_bits(m.blobs[k], v, f"{case} blob {k}")
        if not bwd:
            return
        tops = {k[len("top_diff/"):]: torch.from_numpy(v) for k, v in bwd.items() if k.startswith("top_diff/")}
        keys = [k for k in tops if out[k].requires_grad]
        if keys:
            torch.autograd.backward([out[k] for k in keys], [tops[k].expand_as(out[k]) for k in keys])
    for k, v in x.items():
        if v.requires_grad:
            assert_bits(v.grad, bwd[f"diff/{k}"], f"{case} grad of input {k}")
    params = dict(m.named_parameters())
    for k, v in bwd.items():
        if k.startswith("param_diff/"):
            _, layer, i = k.split("/")
            p = params[m.param_name[f"{layer}/{i}"]]
            assert_bits(p.grad if p.grad is not None else torch.zeros_like(p), v, f"{case} {k}")
