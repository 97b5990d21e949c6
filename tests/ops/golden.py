"""Loading the single-layer golden cases of ../shared/golden/layers and reading their Caffe
layer parameters the way Caffe's layers read them; running the whole-net cases (layers,
layers_more) through ``run_blobs``; the solver messages of a training log."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch

import prototxt_like
from replicate import ops as R
from tests._shared import require, require_exact_blas


@dataclass
class Case:
    name: str
    path: Path
    net: object
    inputs: Dict[str, np.ndarray]
    forward: Dict[str, np.ndarray]
    backward: Dict[str, np.ndarray]
    weights: Dict[str, list] = field(default_factory=dict)

    def layer(self, name):
        for l in self.net.layer:
            if l.name == name:
                return l
        raise KeyError(name)

    def t(self, arr) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arr))


def load_case(name: str) -> Case:
    path = require("golden", "layers", name)
    npz = lambda f: dict(np.load(path / f)) if (path / f).exists() else {}
    weights = {}
    if (path / "weights.caffemodel").exists():
        weights = prototxt_like.caffemodel_weights(str(path / "weights.caffemodel"))
    return Case(name, path, prototxt_like.load_net(str(path / "net.prototxt")), npz("inputs.npz"),
                npz("forward.npz"), npz("backward.npz"), weights)


def bits_equal(ours, theirs) -> bool:
    a = ours.detach().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    b = np.asarray(theirs)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def assert_bits(ours, theirs, what: str):
    a = ours.detach().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    b = np.asarray(theirs, dtype=np.float32)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != Caffe's {b.shape}"
    diff = a.view(np.uint32) != b.view(np.uint32)
    assert not diff.any(), (f"{what}: {int(diff.sum())} of {diff.size} values differ from Caffe's bits, "
                            f"max |diff| {np.abs(a.astype(np.float64) - b).max():.3g}")


def assert_close(ours, theirs, what: str, rel: float = 1e-5):
    """Fast-mode tolerance: max |ours - Caffe| <= rel * max |Caffe| over the array."""
    a = (ours.detach().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)).astype(np.float64)
    b = np.asarray(theirs, dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != Caffe's {b.shape}"
    scale = max(np.abs(b).max(), np.finfo(np.float32).tiny)
    err = np.abs(a - b).max() / scale
    assert err <= rel, f"{what}: relative error {err:.3g} > {rel}"


# Skips (fails in CI) unless exact mode loads the CBLAS the fixtures were made with: tests/_shared.py.
exact_blas_ready = require_exact_blas


# ---- whole-net golden cases (../shared/golden/layers, layers_more) through run_blobs --------

# every case of ../shared/golden/layers_more
LAYERS_MORE_CASES = ["absval", "argmax", "batch_reindex", "batchnorm_batchstats", "batchnorm_global", "bias",
                     "bnll", "clip", "concat", "contrastive_loss", "conv_dilation2", "conv_rect", "crop",
                     "deconv_group2", "eltwise", "elu", "embed", "euclidean_loss", "exp", "filter", "flatten",
                     "hinge_loss", "im2col", "infogain_loss", "innerproduct_transpose_axis2", "input", "log",
                     "lstm", "lstm_unit", "multinomial_logistic_loss", "mvn", "parameter", "power", "prelu",
                     "reduction", "reshape", "rnn", "scale", "sigmoid", "sigmoid_cross_entropy_loss", "silence",
                     "slice", "softmax", "softmax_loss_axis2", "softmax_loss_valid_ignore", "split", "spp",
                     "swish", "tanh", "threshold", "tile"]

def golden_net(path: Path, text=None):
    """The case's Net in its case.json phase, RNG seed 0, its weights.caffemodel (if any) loaded;
    from the case's net.prototxt, or from the NetParameter ``text`` given."""
    import json
    from prototxt_like import caffe_pb2
    from prototxt_like.codec import parse_text
    from replicate.net import Net
    from replicate.rng import CaffeRNG
    meta = json.loads((path / "case.json").read_text())
    phase = caffe_pb2.TRAIN if meta.get("phase") == "TRAIN" else caffe_pb2.TEST
    param = str(path / "net.prototxt") if text is None else parse_text(text, caffe_pb2.NetParameter)
    net = Net(param, phase, rng=CaffeRNG(0))
    if (path / "weights.caffemodel").exists():
        net.copy_trained_layers_from(str(path / "weights.caffemodel"))
    return net


def run_golden(path: Path, net=None):
    """``run_blobs`` (as ``python -m replicate blobs``) over the case's inputs.npz, one iteration:
    backward when the case has a backward.npz, from the net's loss or (without one) from the
    recorded top diffs; a TRAIN case with its case.json seed.  Returns (ours, Caffe's forward,
    Caffe's backward)."""
    import json
    from prototxt_like import caffe_pb2
    from replicate.__main__ import run_blobs
    if net is None:
        net = golden_net(path)
    meta = json.loads((path / "case.json").read_text())
    train = meta.get("phase") == "TRAIN"
    backward = dict(np.load(path / "backward.npz")) if (path / "backward.npz").exists() else {}
    has_loss = any(net._top_loss(i, t) for i, tops in enumerate(net.tops) for t in tops)
    top_diff = None if has_loss else {k: v for k, v in backward.items() if k.startswith("top_diff/")}
    out = run_blobs(net, dict(np.load(path / "inputs.npz")), backward=bool(backward), top_diff=top_diff,
                    iterations=1, seed=meta["seed"] if train else None)
    return out, dict(np.load(path / "forward.npz")), backward


def assert_golden_bits(case: str, out, forward, backward):
    """Every blob of Caffe's forward and every diff of its backward (not the top diffs it was given)
    bit for bit, and no net blob Caffe's net does not hold."""
    for k, v in forward.items():
        assert_bits(out[k], v, f"{case} blob {k}")
    for k, v in backward.items():
        if not k.startswith("top_diff/"):
            assert_bits(out[k], v, f"{case} {k}")
    assert set(forward) == {k for k in out if "/" not in k}, "the net holds other blobs than Caffe's"


def assert_golden_close(case: str, out, forward, backward, rel: float = 2e-5):
    """Fast mode: every blob and diff of Caffe's within ``rel`` (assert_close)."""
    for k, v in {**forward, **{k: v for k, v in backward.items() if not k.startswith("top_diff/")}}.items():
        assert_close(out[k], v, f"{case} {k}", rel=rel)


# ---- Caffe's parameter rules ---------------------------------------------------------------

def conv_args(p):
    """ConvolutionParameter -> (kernel, pad, stride, dilation) as BaseConvolutionLayer reads it."""
    def hw(repeated, h, w, has_h, default):
        if has_h:
            return (h, w)
        vals = list(repeated)
        if not vals:
            return (default, default)
        return (vals[0], vals[0]) if len(vals) == 1 else (vals[0], vals[1])
    kernel = hw(p.kernel_size, p.kernel_h, p.kernel_w, p.HasField("kernel_h"), None)
    pad = hw(p.pad, p.pad_h, p.pad_w, p.HasField("pad_h"), 0)
    stride = hw(p.stride, p.stride_h, p.stride_w, p.HasField("stride_h"), 1)
    dilation = hw(p.dilation, 0, 0, False, 1)
    return kernel, pad, stride, dilation


def pool_args(p):
    kernel = (p.kernel_h, p.kernel_w) if p.HasField("kernel_h") else (p.kernel_size, p.kernel_size)
    pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad, p.pad)
    stride = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride, p.stride)
    return kernel, pad, stride


# ---- the solver's messages in a training log (../shared/golden/solver*, ours) --------------

_TIMING = re.compile(r"\(([-0-9.e+naif]+) iter/s, [-0-9.e+]+s/(\d+) iters\)")


def solver_messages(log_text: str):
    """The solver's messages (iteration, loss, lr, train/test outputs, snapshots, restore), without
    glog heads and with the wall-clock timing masked; Caffe's tool lines (caffe.cpp) are left out."""
    out = []
    for line in log_text.splitlines():
        m = re.match(r"^[IWEF]\d+ [\d:.]+\s+\d+ ([\w.]+):\d+\] (.*)$", line)
        if not m or m.group(1) not in ("solver.cpp", "sgd_solver.cpp"):
            continue
        msg = _TIMING.sub(r"(T iter/s, Ts/\2 iters)", m.group(2))
        if msg.startswith(("Iteration", "    Test net output", "    Train net output", "Snapshotting",
                           "Test loss", "Optimization", "SGDSolver: restoring")):
            out.append(msg)
    return out
