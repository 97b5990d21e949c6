"""The convolution's fused in-place ReLU and fast mode's several-images-per-GEMM path.

* With ``relu_slope`` / ``relu_top`` the op gives the same bits as the convolution and the ReLU op
  run apart, in exact mode (Caffe's order) and in fast mode alike: the ReLU is Caffe's expression
  element by element, applied at another moment.
* A net runs an in-place ReLU inside the convolution before it (replicate/net.py _plan_fusion); in
  a training net every output and parameter diff is bit-identical with the fusion turned off, and
  ``forward(end=conv)`` still leaves the convolution's own output.
* Fast mode multiplies several images at once when an image has few output pixels; its results
  stay within the fast-mode tolerance of exact mode's (no bits promised there).
"""
from __future__ import annotations

import pytest
import torch

from replicate import ops as R
from tests.ops.golden import exact_blas_ready

ops = torch.ops.replicate

# (N, C, H, W), (num_output, kh, kw), stride, pad, group: output pixels from 4 to 400 (fast mode's
# batching: images with fewer than 512 output pixels go several to a GEMM), a 1x1 and a grouped one
SHAPES = [
    ((7, 6, 13, 13), (8, 3, 3), 1, 1, 2),     # 169 pixels: 4 images per GEMM in fast mode
    ((5, 4, 20, 20), (6, 3, 3), 1, 1, 1),     # 400 pixels: 2 per GEMM
    ((9, 3, 6, 5), (4, 2, 2), 2, 0, 1),       # 6 pixels: 16 per GEMM (more than the 9 images)
    ((3, 5, 24, 24), (4, 5, 5), 1, 2, 1),     # 576 pixels: one image per GEMM
    ((6, 8, 7, 7), (4, 1, 1), 1, 0, 2),       # 1x1, grouped: the image is its own columns
    ((18, 4, 9, 9), (6, 3, 3), 2, 1, 2),      # 25 pixels, 18 images: two fixed blocks of 16
]


def _case(shape, seed=0, dtype=torch.float32):
    (n, c, h, w), (m, kh, kw), stride, pad, group = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=dtype)
    weight = torch.randn(m, c // group, kh, kw, generator=g, dtype=dtype) * 0.3
    bias = torch.randn(m, generator=g, dtype=dtype)
    args = ([stride, stride], [pad, pad], [1, 1], group)
    return x, weight, bias, args


def _bits(t):
    return t.contiguous().view(torch.int32 if t.dtype == torch.float32 else torch.int64)


@pytest.fixture(params=["exact", "fast"])
def mode(request):
    if request.param == "exact":
        exact_blas_ready()
    before = R.get_blas()
    R.set_blas(request.param)
    yield request.param
    R.set_blas(before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("slope", [0.0, 0.1])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[0])) + f"_k{s[1][1]}_g{s[4]}")
def test_fused_relu_same_bits_as_apart(mode, shape, slope, dtype):
    x, w, b, args = _case(shape, dtype=dtype)
    top = ops.conv_forward(x, w, b, *args)
    apart = ops.relu_forward(top, slope)
    fused = ops.conv_forward(x, w, b, *args, relu_slope=slope)
    assert torch.equal(_bits(fused), _bits(apart))
    assert (fused < 0).any() == (slope != 0)

    g = torch.Generator().manual_seed(1)
    diff = torch.randn(top.shape, generator=g, dtype=dtype)
    mask = [True, True, True]
    ref = ops.conv_backward(ops.relu_backward(diff, apart, slope), x, w, *args, mask)
    got = ops.conv_backward(diff, x, w, *args, mask, relu_top=fused, relu_slope=slope)
    for a, r in zip(got, ref):
        assert torch.equal(_bits(a), _bits(r))
    # accumulating into given diffs, and the bottom diff alone
    wd, bd = torch.randn(w.shape, generator=g, dtype=dtype), torch.randn(b.shape, generator=g, dtype=dtype)
    ref = ops.conv_backward(ops.relu_backward(diff, apart, slope), x, w, *args, mask, wd.clone(), bd.clone())
    got = ops.conv_backward(diff, x, w, *args, mask, wd.clone(), bd.clone(), relu_top=fused, relu_slope=slope)
    for a, r in zip(got, ref):
        assert torch.equal(_bits(a), _bits(r))
    only_x = ops.conv_backward(diff, x, w, *args, [True, False, False], relu_top=fused, relu_slope=slope)
    assert torch.equal(_bits(only_x[0]), _bits(ref[0]))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[0])) + f"_k{s[1][1]}_g{s[4]}")
def test_fast_batched_within_tolerance_of_exact(shape):
    exact_blas_ready()
    before = R.get_blas()
    x, w, b, args = _case(shape, seed=3, dtype=torch.float64)  # float64: the sums' order hardly shows
    diff = torch.randn(ops.conv_forward(x, w, b, *args).shape, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(4))
    out = {}
    try:
        for m in ("exact", "fast"):
            R.set_blas(m)
            out[m] = (ops.conv_forward(x, w, b, *args, relu_slope=0.0),
                      *ops.conv_backward(diff, x, w, *args, [True, True, True]))
    finally:
        R.set_blas(before)
    for a, e in zip(out["fast"], out["exact"]):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


def test_relu_top_shape_checked():
    x, w, b, args = _case(SHAPES[0])
    top = ops.conv_forward(x, w, b, *args)
    with pytest.raises(RuntimeError, match="relu_top"):
        ops.conv_backward(top, x, w, *args, [True, True, True], relu_top=top[:, :1], relu_slope=0.0)


NET = """
name: "fuse"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 6 dim: 3 dim: 12 dim: 12 } } }
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 6 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 }
                      bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 6 kernel_size: 3 stride: 2 group: 2 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" relu_param { negative_slope: 0.2 } }
layer { name: "conv3" type: "Convolution" bottom: "conv2" top: "conv3"
  convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "relu3" }
layer { name: "fc" type: "InnerProduct" bottom: "relu3" top: "fc"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""


def _net(tmp_path, fuse: bool, monkeypatch):
    from prototxt_like import caffe_pb2
    from replicate.net import Net
    from replicate.rng import CaffeRNG
    monkeypatch.setenv("REPLICATE_FUSE_RELU", "1" if fuse else "0")
    path = tmp_path / "net.prototxt"
    path.write_text(NET)
    net = Net(str(path), caffe_pb2.TRAIN, rng=CaffeRNG(5))
    g = torch.Generator().manual_seed(2)
    net.blobs["data"].data = torch.randn(6, 3, 12, 12, generator=g)
    net.blobs["label"].data = (torch.arange(6) % 5).float()
    return net


def test_net_fuses_in_place_relus_only(tmp_path, monkeypatch):
    net = _net(tmp_path, True, monkeypatch)
    # relu3 writes another blob: not in place, not fused
    assert net.fused_layers() == [("conv1", "relu1"), ("conv2", "relu2")]
    assert _net(tmp_path, False, monkeypatch).fused_layers() == []


@pytest.mark.parametrize("blas", ["exact", "fast"])
def test_net_training_pass_same_bits_fused_or_not(tmp_path, monkeypatch, blas):
    if blas == "exact":
        exact_blas_ready()
    before = R.get_blas()
    R.set_blas(blas)
    try:
        results = []
        for fuse in (True, False):
            net = _net(tmp_path, fuse, monkeypatch)
            net.release_after_backward = True  # as the solver's train net: backward fuses too
            loss = net.forward()
            net.backward()
            results.append((loss, [p.diff.clone() for p in net.learnable], [p.data.clone() for p in net.learnable]))
    finally:
        R.set_blas(before)
    (l1, d1, _), (l2, d2, _) = results
    assert l1 == l2
    for a, b in zip(d1, d2):
        assert torch.equal(_bits(a), _bits(b))


def test_partial_forward_keeps_the_convolutions_own_output(tmp_path, monkeypatch):
    net = _net(tmp_path, True, monkeypatch)
    conv1 = net.layer_names.index("conv1")
    net.forward(0, conv1)
    raw = net.blobs["conv1"].data.clone()
    assert (raw < 0).any()  # the ReLU has not run
    net.forward(conv1 + 1, conv1 + 1)
    assert torch.equal(net.blobs["conv1"].data, torch.relu(raw))
    # a whole pass: rectified in place, as Caffe's blob holds it
    net.forward()
    assert not (net.blobs["conv1"].data < 0).any()


def test_pycaffe_style_backward_keeps_caffes_blob_diffs(tmp_path, monkeypatch):
    """Outside a training loop that frees diffs, backward does not fuse: the in-place blob's diff
    after backward is the ReLU's bottom diff, as in Caffe."""
    diffs = []
    for fuse in (True, False):
        net = _net(tmp_path, fuse, monkeypatch)
        net.forward()
        net.backward()
        diffs.append(net.blobs["conv1"].diff.clone())
    assert torch.equal(_bits(diffs[0]), _bits(diffs[1]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("slope", [0.0, 0.25, -0.5])
def test_relu_grad_special_values(dtype, slope):
    """relu.h reads x > 0 and x <= 0 off x's bits (no branch): Caffe's expression for zeros of both
    signs, subnormals, infinities and NaNs of both signs (numpy computes it with float compares)."""
    import numpy as np
    tiny = 1e-45 if dtype == torch.float32 else 5e-324
    one = torch.tensor([0., -0., 1., -1., tiny, -tiny, float("inf"), -float("inf"), float("nan"), -float("nan"),
                        3e38, -3e38], dtype=dtype)
    # 12 values rotated through 67 places: each lands in every lane of the AVX2 loop and its tail
    v = torch.cat([one.roll(k) for k in range(6)])[:67]
    t = torch.linspace(-3, 3, len(v), dtype=dtype)
    got = torch.ops.replicate.relu_backward(t, v, slope).numpy()
    n, T = v.numpy(), v.numpy().dtype.type
    ref = t.numpy() * ((n > 0).astype(n.dtype) + T(slope) * (n <= 0).astype(n.dtype))
    view = np.uint32 if dtype == torch.float32 else np.uint64
    assert np.array_equal(got.view(view), ref.view(view))
    # forward, Caffe's max(x, 0) + slope * min(x, 0) (std::max/min: the first argument on NaN)
    got = torch.ops.replicate.relu_forward(v, slope).numpy()
    with np.errstate(invalid="ignore"):
        ref = np.where(n < 0, T(0), n) + T(slope) * np.where(T(0) < n, T(0), n)
    assert np.array_equal(got.view(view), ref.view(view))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("slope", [0.0, 0.25, -0.5])
def test_relu_backward_in_place_same_bits(dtype, slope):
    """relu_backward_ (the fused convolution's in-place ReLU derivative, as Caffe's in-place ReLU
    overwrites the one blob's diff) gives relu_backward's bits, in the tensor it was given."""
    tiny = 1e-45 if dtype == torch.float32 else 5e-324
    special = torch.tensor([0., -0., 1., -1., tiny, -tiny, float("inf"), -float("inf"), float("nan"), 3e38],
                           dtype=dtype)
    g = torch.Generator().manual_seed(4)
    v = torch.cat([special, torch.randn(50000, generator=g, dtype=dtype)])
    t = torch.randn(v.shape, generator=g, dtype=dtype)
    want = torch.ops.replicate.relu_backward(t, v, slope)
    got = t.clone()
    torch.ops.replicate.relu_backward_(got, v, slope)
    assert torch.equal(_bits(got), _bits(want))
    with pytest.raises(RuntimeError, match="contiguous"):
        torch.ops.replicate.relu_backward_(t.view(2, -1).t(), v.view(2, -1).t(), slope)


SHARED_DIFF_NET = """
name: "shared_diff"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 2 dim: 6 dim: 6 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" relu_param { negative_slope: 0.2 } }
layer { name: "flat" type: "Flatten" bottom: "conv1" top: "flat" loss_weight: 2 }
"""


@pytest.mark.parametrize("blas", ["exact", "fast"])
def test_fused_backward_leaves_a_diff_it_shares_alone(tmp_path, monkeypatch, blas):
    """Flatten hands down a view of its top's diff, and a top with a loss weight keeps its diff (the
    weights) after backward: the fused ReLU must not write its derivative over it; the parameter
    diffs are those of the layers run apart."""
    from prototxt_like import caffe_pb2
    from replicate.net import Net
    from replicate.rng import CaffeRNG
    if blas == "exact":
        exact_blas_ready()
    before = R.get_blas()
    R.set_blas(blas)
    path = tmp_path / "net.prototxt"
    path.write_text(SHARED_DIFF_NET)
    try:
        results = []
        for fuse in ("1", "0"):
            monkeypatch.setenv("REPLICATE_FUSE_RELU", fuse)
            net = Net(str(path), caffe_pb2.TRAIN, rng=CaffeRNG(3))
            assert bool(net.fused_layers()) == (fuse == "1")
            net.release_after_backward = True
            net.blobs["data"].data = torch.randn(4, 2, 6, 6, generator=torch.Generator().manual_seed(1))
            net.forward()
            weights = net.blobs["flat"].diff.clone()
            net.backward()
            assert torch.equal(_bits(net.blobs["flat"].diff), _bits(weights))  # still the loss weights
            results.append([p.diff.clone() for p in net.learnable])
    finally:
        R.set_blas(before)
    for a, b in zip(*results):
        assert torch.equal(_bits(a), _bits(b))


def test_fast_onednn_slices_a_large_batch():
    """Fast mode hands a float32 batch whose output passes 80 MB (backward: input + output past
    128 MB) to oneDNN in slices of images (csrc/cpu/convolution.cpp); 9 images of 32 x 380 x 380
    (159 MB out, 164 MB in + out) go as 5 + 4 both ways.  The slices' results and the parameter
    diffs summed over slices agree with torch's one call on the whole batch (not a bit promise: the
    sums' order differs), the fused ReLU and the given diffs included, for each backward mask
    CaffeNet uses (conv1: no bottom diff)."""
    import torch.nn.functional as F
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        pytest.skip("torch has no oneDNN: fast mode uses the im2col path")
    g = torch.Generator().manual_seed(8)
    x = torch.randn(9, 1, 382, 382, generator=g)
    w = torch.randn(32, 1, 3, 3, generator=g) * 0.3
    b = torch.randn(32, generator=g)
    diff = torch.randn(9, 32, 380, 380, generator=g)
    wd, bd = torch.randn(32, 1, 3, 3, generator=g), torch.randn(32, generator=g)
    args = ([1, 1], [0, 0], [1, 1], 1)
    xt, wt, bt = x.clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_()
    ref = F.leaky_relu(F.conv2d(xt, wt, bt), 0.1)
    rx, rw, rb = torch.autograd.grad(ref, (xt, wt, bt), diff)
    before = R.get_blas()
    R.set_blas("fast")
    try:
        top = ops.conv_forward(x, w, b, *args, relu_slope=0.1)
        torch.testing.assert_close(top, ref.detach(), rtol=1e-5, atol=1e-5)
        for mask in ([True, True, True], [False, True, True], [True, False, False]):
            gx, gw, gb = ops.conv_backward(diff, x, w, *args, mask, wd, bd, relu_top=top, relu_slope=0.1)
            assert [t.numel() > 0 for t in (gx, gw, gb)] == mask
            if mask[0]:
                torch.testing.assert_close(gx, rx, rtol=1e-5, atol=1e-5)
            # sums of 1.3 million products in float32, in another order: relative to the whole diff
            for want, got, exp in ((mask[1], gw, wd + rw), (mask[2], gb, bd + rb)):
                if want:
                    assert ((got - exp).norm() / exp.norm()).item() < 1e-4
    finally:
        R.set_blas(before)


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_empty_batch_gives_the_given_diffs(mode):
    """A batch of no images: no output, no bottom diff, the parameter diffs as given."""
    if mode == "exact":
        exact_blas_ready()
    x, w, b, args = _case(SHAPES[0])
    x = x[:0]
    wd, bd = torch.randn(w.shape), torch.randn(b.shape)
    before = R.get_blas()
    R.set_blas(mode)
    try:
        top = ops.conv_forward(x, w, b, *args, relu_slope=0.0)
        gx, gw, gb = ops.conv_backward(top, x, w, *args, [True, True, True], wd, bd, relu_top=top, relu_slope=0.0)
        gx2, gw2, gb2 = ops.conv_backward(top, x, w, *args, [True, True, True])
    finally:
        R.set_blas(before)
    assert top.shape[0] == 0 and gx.shape == x.shape
    assert torch.equal(gw, wd) and torch.equal(gb, bd)
    assert torch.equal(gw2, torch.zeros_like(w)) and torch.equal(gb2, torch.zeros_like(b)) and gx2.shape == x.shape


def test_diff_owned_and_the_in_place_derivative(tmp_path, monkeypatch):
    """Net._diff_owned: a contiguous diff no other blob's diff shares; the convolution then writes
    the ReLU's bottom diff over the top diff it was given (the one blob, as Caffe's in-place ReLU)."""
    net = _net(tmp_path, True, monkeypatch)
    net.forward()
    d = torch.randn(net.blobs["conv1"].data.shape, generator=torch.Generator().manual_seed(6))
    net.blobs["conv1"].diff = d
    assert net._diff_owned("conv1")
    net.blobs["conv2"].diff = d.view(-1)[:10]  # another blob holding a view of the same memory
    assert not net._diff_owned("conv1")
    net.blobs["conv2"].diff = None
    net.blobs["conv1"].diff = d.transpose(2, 3)
    assert not net._diff_owned("conv1")
    conv = net.layers[net.layer_names.index("conv1")]
    top, given = net.blobs["conv1"].data, d.clone()
    want = ops.relu_backward(given, top, 0.0)
    conv.backward([top], [given], [False], [net.blobs["data"].data], relu_slope=0.0, relu_in_place=True)
    assert torch.equal(_bits(given), _bits(want))
    kept = d.clone()
    conv.backward([top], [kept], [False], [net.blobs["data"].data], relu_slope=0.0)
    assert torch.equal(kept, d)  # not in place: the given diff stays


@pytest.mark.parametrize("group", [1, 2])
def test_exact_weight_diffs_without_bottom_diff_same_bits(group):
    """Exact mode, no bottom diff wanted (CaffeNet's conv1): the weight GEMMs run in Caffe's order
    while a helper thread makes the next image's columns.  The parameter diffs, accumulated into
    given ones, have the bits of the path that also computes the bottom diff (which the goldens
    check), over enough images that the buffers are reused many times."""
    exact_blas_ready()
    g = torch.Generator().manual_seed(11)
    x = torch.randn(23, 4, 19, 17, generator=g)
    w = torch.randn(6, 4 // group, 5, 3, generator=g)
    diff = torch.randn(23, 6, 9, 15, generator=g)
    wd, bd = torch.randn(w.shape, generator=g), torch.randn(6, generator=g)
    args = ([2, 1], [1, 0], [1, 1], group)
    before = R.get_blas()
    R.set_blas("exact")
    try:
        _, gw, gb = ops.conv_backward(diff, x, w, *args, [False, True, True], wd.clone(), bd.clone())
        _, rw, rb = ops.conv_backward(diff, x, w, *args, [True, True, True], wd.clone(), bd.clone())
        _, ow, _ = ops.conv_backward(diff, x, w, *args, [False, True, False], wd.clone(), None)
    finally:
        R.set_blas(before)
    assert torch.equal(_bits(gw), _bits(rw)) and torch.equal(_bits(gb), _bits(rb))
    assert torch.equal(_bits(ow), _bits(rw))
