"""Deconvolution (Caffe 1.0's DeconvolutionLayer) against real Caffe:

* ../shared/golden/layers_more/deconv_group2 through ``python -m replicate blobs ... --blas exact``:
  every blob, blob diff and param diff bit for bit;
* ../shared/golden/fillers ``bilinear_deconv``: the bilinear (and gaussian bias) fillers of two
  Deconvolution layers built through a whole Net from Caffe's seed, bit for bit;
plus the layer's arithmetic against torch's conv_transpose2d (stride, pad, dilation, group, 1x1,
rectangular kernels, several bottoms) and its set-up errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from prototxt_like import caffe_pb2
from replicate import ops as R
from replicate.net import Net
from replicate.rng import CaffeRNG
from tests._shared import REPO, bit_compare, require
from tests.ops.golden import assert_close, exact_blas_ready

GOLDEN_CASES = ["deconv_group2"]


def _blobs_cli(path, out, blas):
    cmd = [sys.executable, "-m", "replicate", "blobs", "--model", "net.prototxt", "--weights", "weights.caffemodel",
           "--inputs", "inputs.npz", "--top_diff", "backward.npz", "--backward", "--out", str(out), "--blas", blas]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(cmd, cwd=path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return dict(np.load(out))


def _golden(path):
    want = dict(np.load(path / "forward.npz"))
    want.update({k: v for k, v in np.load(path / "backward.npz").items() if not k.startswith("top_diff/")})
    return want


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_deconv_golden_exact_cli(case, tmp_path):
    exact_blas_ready()
    path = require("golden", "layers_more", case)
    got = _blobs_cli(path, tmp_path / "out.npz", "exact")
    want = _golden(path)
    assert set(got) == set(want), f"arrays: ours {sorted(got)}, Caffe's {sorted(want)}"
    for k in sorted(want):  # data, deconv, diff/data, diff/deconv, param_diff/deconv/0 and /1
        bit_compare(f"{case} {k}", got[k], want[k])


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_deconv_golden_fast_close(case, tmp_path):
    path = require("golden", "layers_more", case, bitlevel=False)
    got = _blobs_cli(path, tmp_path / "out.npz", "fast")
    for k, v in _golden(path).items():
        assert_close(got[k], v, f"{case} {k}", rel=2e-5)


def test_bilinear_deconv_fillers_through_net(tmp_path):
    """Both Deconvolution layers of the fillers case, built by Net from Caffe's seed: bilinear
    weights 3x1x4x4 (group 3) and 3x6x5x5, and the gaussian bias that follows them (bilinear draws
    nothing, so the bias starts on the untouched generator)."""
    root = require("golden", "fillers")
    spec = next(c for c in json.loads((root / "cases.json").read_text())["cases"] if c["case"] == "bilinear_deconv")
    golden = np.load(root / "fillers.npz")
    rng = CaffeRNG(spec["seed"])
    seen = set()
    for i, text in enumerate(spec["nets"]):
        p = tmp_path / f"net{i}.prototxt"
        p.write_text(text)
        net = Net(str(p), caffe_pb2.TEST, rng=rng)
        try:
            for layer in net.layers:
                for j, param in enumerate(layer.params):
                    key = f"bilinear_deconv/{layer.name}/{j}"
                    bit_compare(key, param.data.numpy(), golden[key])
                    seen.add(key)
        finally:
            net.close()
    assert seen == set(spec["blobs"])


# --- against torch's transposed convolution ---------------------------------------------------------

def _net_text(conv: str, shape, n_bottoms=1):
    tops = "".join(f' top: "x{i}"' for i in range(n_bottoms))
    shapes = "".join(f" shape {{ {' '.join(f'dim: {d}' for d in shape)} }}" for _ in range(n_bottoms))
    bottoms = "".join(f' bottom: "x{i}"' for i in range(n_bottoms))
    outs = "".join(f' top: "y{i}"' for i in range(n_bottoms))
    return (f'name: "t" force_backward: true\n'
            f'layer {{ name: "in" type: "Input"{tops} input_param {{{shapes} }} }}\n'
            f'layer {{ name: "deconv" type: "Deconvolution"{bottoms}{outs} convolution_param {{ {conv} '
            f'weight_filler {{ type: "gaussian" std: 0.3 }} bias_filler {{ type: "gaussian" std: 0.3 }} }} }}\n')


CONFIGS = [
    # (convolution_param, bottom shape, torch kwargs)
    ("num_output: 4 group: 2 kernel_size: 4 stride: 2 pad: 1", (2, 4, 5, 5), dict(stride=2, padding=1, groups=2)),
    ("num_output: 3 kernel_size: 1", (2, 5, 4, 3), dict()),  # is_1x1: no im2col/col2im
    ("num_output: 6 kernel_h: 2 kernel_w: 3 stride_h: 3 stride_w: 1 pad_h: 0 pad_w: 1", (1, 2, 4, 5),
     dict(stride=(3, 1), padding=(0, 1))),
    ("num_output: 2 kernel_size: 3 dilation: 2 pad: 2 stride: 2", (3, 3, 4, 4),
     dict(stride=2, padding=2, dilation=2)),
    ("num_output: 3 kernel_size: 3 stride: 2 bias_term: false", (1, 2, 3, 3), dict(stride=2)),
]


@pytest.mark.parametrize("blas", ["exact", "fast"])
@pytest.mark.parametrize("conv,shape,kw", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_deconv_matches_conv_transpose(tmp_path, blas, conv, shape, kw):
    if blas == "exact":
        exact_blas_ready()
    n_bottoms = 2 if "kernel_size: 4" in conv else 1  # several bottoms: the param diffs add up
    p = tmp_path / "net.prototxt"
    p.write_text(_net_text(conv, shape, n_bottoms))
    gen = torch.Generator().manual_seed(7)
    with R.blas_mode(blas):
        net = Net(str(p), caffe_pb2.TEST, rng=CaffeRNG(3))
        try:
            layer = next(l for l in net.layers if l.type == "Deconvolution")
            w = layer.params[0].data.double().requires_grad_()
            b = layer.params[1].data.double().requires_grad_() if len(layer.params) > 1 else None
            xs = [torch.randn(shape, generator=gen) for _ in range(n_bottoms)]
            for i, x in enumerate(xs):
                net.blobs[f"x{i}"].data = x.clone()
            net.forward()
            xd = [x.double().requires_grad_() for x in xs]
            refs = [torch.nn.functional.conv_transpose2d(x, w, b, **kw) for x in xd]
            gs = [torch.randn(r.shape, generator=gen) for r in refs]
            net.clear_param_diffs()
            for i, g in enumerate(gs):
                net.blobs[f"y{i}"].diff = g.clone()
            net.backward()
            torch.autograd.backward(refs, [g.double() for g in gs])
            for i, r in enumerate(refs):
                assert_close(net.blobs[f"y{i}"].data, r.detach().float(), f"y{i}")
                assert_close(net.blobs[f"x{i}"].diff, xd[i].grad.float(), f"diff x{i}")
            assert_close(layer.params[0].diff, w.grad.float(), "weight diff")
            if b is not None:
                assert_close(layer.params[1].diff, b.grad.float(), "bias diff")
        finally:
            net.close()


def test_deconv_weight_shape_and_errors(tmp_path):
    p = tmp_path / "net.prototxt"
    p.write_text(_net_text("num_output: 6 group: 3 kernel_size: 3 stride: 2", (1, 3, 4, 4)))
    net = Net(str(p), caffe_pb2.TEST, rng=CaffeRNG(1))
    try:
        layer = next(l for l in net.layers if l.type == "Deconvolution")
        assert layer.params[0].shape == (3, 2, 3, 3) and layer.params[1].shape == (6,)
        net.forward()
        assert tuple(net.blobs["y0"].data.shape) == (1, 6, 9, 9)  # 2 * (4 - 1) + 3
    finally:
        net.close()
    for conv, msg in [("num_output: 4 group: 3 kernel_size: 3", "divisible by group"),
                      ("num_output: 2 kernel_size: 2 pad: 3", "not positive")]:
        p.write_text(_net_text(conv, (1, 3, 2, 2)))
        with pytest.raises(Exception, match=msg):
            Net(str(p), caffe_pb2.TEST, rng=CaffeRNG(1))
