"""Fast mode's Winograd convolution (csrc/cpu/conv_winograd.cpp): F(2x2, 3x3) for float32 3x3
stride-1 convolutions.

No bits are promised in fast mode, so these tests compare against float64 (torch's convolution on
doubles), with a tolerance that float32 rounding meets by a wide margin (measured about 2e-7 in
relative L2) and that a wrong transform coefficient, a lost tile or an overlap added twice breaks by
orders of magnitude.  Also: which kernel runs where (``conv_algorithm``), the chunking of images
(batches of 1 to 33, the last chunk partial), the fused ReLU, the given diffs accumulated, every
backward mask, an empty batch, the batch rule (Winograd takes a batch that fills its chunks of 16
images at least 3/4 on average), and the switch (``REPLICATE_CONV_WINOGRAD``: 0 off, ``always``
for any batch, which these tests use to reach partial and near-empty chunks)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from replicate import ops as R
from tests.ops.golden import exact_blas_ready

ops = torch.ops.replicate

# (N, C, H, W), num_output, pad, group
SHAPES = [
    ((7, 16, 13, 13), 16, 1, 1),    # fewer images than a chunk of 16
    ((33, 32, 13, 13), 48, 1, 2),   # three chunks, the last of one image; groups
    ((18, 16, 8, 11), 24, 0, 1),    # no padding, odd output sizes (6 x 9): partial tiles
    ((5, 20, 9, 8), 16, 2, 1),      # pad 2: whole tiles of padding
    ((3, 16, 1, 1), 16, 1, 1),      # a 1 x 1 image
    ((2, 16, 32, 32), 16, 1, 1),    # the largest output it takes (32 x 32)
]
REL_L2 = 1e-5  # measured 0.6e-7 to 7e-7
MAX_ABS = 1e-5  # of the largest reference value


@pytest.fixture(autouse=True)
def always(monkeypatch):
    """Winograd for every batch the shape rule allows (read at each call), so that small batches
    and partial chunks are tested too."""
    monkeypatch.setenv("REPLICATE_CONV_WINOGRAD", "always")


@pytest.fixture
def fast():
    before = R.get_blas()
    R.set_blas("fast")
    yield
    R.set_blas(before)


def _case(shape, seed=0):
    (n, c, h, w), m, pad, group = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g)
    weight = torch.randn(m, c // group, 3, 3, generator=g) * 0.2
    bias = torch.randn(m, generator=g)
    args = ([1, 1], [pad, pad], [1, 1], group)
    return x, weight, bias, args


def _close(got, want, what):
    want = want.double()
    err = (got.double() - want).norm() / max(want.norm().item(), 1e-30)
    assert err.item() <= REL_L2, f"{what}: relative L2 error {err.item():.3g}"
    worst = (got.double() - want).abs().max().item() if want.numel() else 0.0
    assert worst <= MAX_ABS * max(want.abs().max().item(), 1.0), f"{what}: largest error {worst:.3g}"


@pytest.mark.parametrize("slope", [None, 0.0, 0.1])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[0])) + f"-{s[1]}-p{s[2]}-g{s[3]}")
def test_matches_float64(shape, slope, fast):
    x, w, b, args = _case(shape)
    pad, group = args[1][0], args[3]
    assert R.conv_algorithm(x, w, 1, pad, 1, group) == "winograd"
    top = ops.conv_forward(x, w, b, *args, relu_slope=slope)
    ref = F.conv2d(x.double(), w.double(), b.double(), padding=pad, groups=group)
    if slope is not None:
        ref = F.leaky_relu(ref, slope)
    _close(top, ref, "forward")

    g = torch.Generator().manual_seed(1)
    diff = torch.randn(top.shape, generator=g)
    wd, bd = torch.randn(w.shape, generator=g), torch.randn(b.shape, generator=g)
    # the reference's top diff through the ReLU's backward on our own top (a float64 top could put a
    # value near 0 on the other side)
    dy = diff.double() if slope is None else diff.double() * torch.where(top > 0, 1.0, slope).double()
    xd, wdd = x.double().requires_grad_(), w.double().requires_grad_()
    rx, rw = torch.autograd.grad(F.conv2d(xd, wdd, padding=pad, groups=group), (xd, wdd), dy)
    rb = dy.sum((0, 2, 3))
    relu = {} if slope is None else {"relu_top": top, "relu_slope": slope}
    for mask in ([True, True, True], [False, True, True], [True, False, False], [False, False, True]):
        gx, gw, gb = ops.conv_backward(diff, x, w, *args, mask, wd, bd, **relu)
        assert [t.numel() > 0 for t in (gx, gw, gb)] == mask
        if mask[0]:
            _close(gx, rx, f"bottom diff {mask}")
        if mask[1]:
            _close(gw, wd.double() + rw, f"weight diff {mask}")
        if mask[2]:
            _close(gb, bd.double() + rb, f"bias diff {mask}")
    # without given diffs: the diffs themselves
    _, gw, gb = ops.conv_backward(diff, x, w, *args, [False, True, True], **relu)
    _close(gw, rw, "weight diff")
    _close(gb, rb, "bias diff")


def test_through_autograd(fast):
    """The registered autograd formula reaches the same kernel (conv_forward's backward)."""
    x, w, b, args = _case(SHAPES[1])
    xs, ws, bs = (t.clone().requires_grad_() for t in (x, w, b))
    out = ops.conv_forward(xs, ws, bs, *args)
    diff = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    gx, gw, gb = torch.autograd.grad(out, (xs, ws, bs), diff)
    xd, wdd, bdd = (t.double().requires_grad_() for t in (x, w, b))
    rx, rw, rb = torch.autograd.grad(F.conv2d(xd, wdd, bdd, padding=1, groups=2), (xd, wdd, bdd), diff.double())
    for got, want, what in ((gx, rx, "bottom"), (gw, rw, "weight"), (gb, rb, "bias")):
        _close(got, want, what)


def test_empty_batch(fast):
    x, w, b, args = _case(SHAPES[0])
    x = x[:0]
    assert R.conv_algorithm(x, w, 1, 1, 1, 1) == "winograd"
    top = ops.conv_forward(x, w, b, *args)
    assert top.shape == (0, 16, 13, 13)
    wd, bd = torch.randn(w.shape), torch.randn(b.shape)
    gx, gw, gb = ops.conv_backward(top, x, w, *args, [True, True, True], wd, bd)
    assert gx.shape == x.shape and torch.equal(gw, wd) and torch.equal(gb, bd)


def test_which_kernel_runs(fast):
    x = torch.randn(2, 32, 13, 13)
    w = torch.randn(32, 32, 3, 3)
    assert R.conv_algorithm(x, w, 1, 1) == "winograd"
    assert R.conv_algorithm(x, w[:, :16], 1, 1, 1, 2) == "winograd"       # 16 a group
    assert R.conv_algorithm(x, w[:, :8], 1, 1, 1, 4) != "winograd"        # 8 a group
    assert R.conv_algorithm(x, w[:8], 1, 1) != "winograd"                 # 8 outputs
    assert R.conv_algorithm(x, w, 2, 1) != "winograd"                     # stride 2
    assert R.conv_algorithm(x, w, 1, 2, 2) != "winograd"                  # dilation 2
    assert R.conv_algorithm(x, torch.randn(32, 32, 5, 5), 1, 2) != "winograd"
    assert R.conv_algorithm(torch.randn(1, 32, 33, 32), w, 1, 1) != "winograd"  # 33 rows out
    assert R.conv_algorithm(x.double(), w.double(), 1, 1) == "im2col"
    # a layer with engine: CAFFE asks for Caffe's order on its thread
    prev = R._C.set_thread_caffe_order(True)
    try:
        assert R.conv_algorithm(x, w, 1, 1) == "caffe"
    finally:
        R._C.set_thread_caffe_order(prev)


def test_exact_mode_is_caffes():
    exact_blas_ready()
    with R.blas_mode("exact"):
        assert R.conv_algorithm(torch.randn(2, 32, 13, 13), torch.randn(32, 32, 3, 3), 1, 1) == "caffe"


def test_batch_rule(fast, monkeypatch):
    """By default Winograd takes a batch that fills its chunks of 16 images at least 3/4 on average
    (12 images a chunk): a chunk costs as much with one image as with 16 (CaffeNet's conv3 at batch
    1: 18 ms against oneDNN's 1.6 ms). The rule reads the batch only: the thread count never
    changes which kernel runs, so it changes no bit."""
    monkeypatch.delenv("REPLICATE_CONV_WINOGRAD")
    w = torch.randn(32, 32, 3, 3)
    takes = {0, 12, 13, 16, 24, 32, 36, 48, 50, 256}
    prev = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for n in (0, 1, 2, 8, 11, 12, 13, 16, 17, 23, 24, 32, 33, 35, 36, 48, 50, 256):
                got = R.conv_algorithm(torch.empty(n, 32, 13, 13), w, 1, 1)
                assert (got == "winograd") == (n in takes), (threads, n, got)
    finally:
        torch.set_num_threads(prev)


def test_switched_off():
    """REPLICATE_CONV_WINOGRAD=0 sends these convolutions back to oneDNN (or im2col without it);
    ``always`` takes a batch of 2, which the default leaves to oneDNN."""
    code = ("import torch; from replicate import ops as R; R.set_blas('fast'); "
            "print(R.conv_algorithm(torch.randn(2, 32, 13, 13), torch.randn(32, 32, 3, 3), 1, 1), "
            "R.conv_algorithm(torch.randn(32, 32, 13, 13), torch.randn(32, 32, 3, 3), 1, 1))")
    for value, want in (("0", {"onednn onednn", "im2col im2col"}), ("always", {"winograd winograd"}),
                        ("", {"onednn winograd", "im2col winograd"})):
        env = dict(os.environ, REPLICATE_CONV_WINOGRAD=value)
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.strip() in want, (value, r.stdout)
