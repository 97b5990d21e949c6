"""Gradients and values of the replicate ops against independent references.

* float64 ``torch.autograd.gradcheck`` of every differentiable forward op through its autograd
  registration (the backward is Caffe's backward kernel; gradcheck compares it with finite
  differences of the forward kernel), in both BLAS modes.
* the forward kernels against torch's own implementations (F.conv2d, F.unfold, F.max_pool2d, ...)
  where the semantics coincide with Caffe's, so a forward that is wrong in a way its backward
  mirrors cannot pass.
* the backward kernels' own contract: accumulation into weight_diff / bias_diff, output_mask.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from replicate import ops as R

ops = torch.ops.replicate
f64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, dtype=f64, grad=True):
    return torch.randn(*shape, generator=_gen(seed), dtype=f64).to(dtype).requires_grad_(grad)


def distinct(*shape, seed=0, dtype=f64, grad=True):
    """Distinct values spaced 1/n apart: a finite-difference step never changes an argmax."""
    n = math.prod(shape)
    t = (torch.randperm(n, generator=_gen(seed)).to(f64) / n - 0.5).reshape(shape)
    return t.to(dtype).requires_grad_(grad)


def away_from_zero(*shape, seed=0):
    x = torch.randn(*shape, generator=_gen(seed), dtype=f64)
    return (x + 0.1 * x.sign()).requires_grad_(True)  # |x| >= 0.1


def int_mask(*shape, seed=0):
    return (torch.rand(*shape, generator=_gen(seed)) > 0.4).to(torch.int32)


@pytest.fixture(params=["fast", "exact"])
def blas(request):
    """Run the test in each BLAS mode; exact needs the system CBLAS (Debian's OpenBLAS)."""
    if request.param == "exact":
        prev = R.get_blas()
        try:
            R.set_blas("exact")
        except RuntimeError as e:
            pytest.skip(f"exact BLAS mode unavailable: R.set_blas('exact') raised: {e}")
        finally:
            R.set_blas(prev)
    with R.blas_mode(request.param):
        assert R.get_blas() == request.param
        yield request.param


class one_thread:
    """gradcheck calls an op hundreds of times on tiny tensors; the kernels' at::parallel_for over
    two or three images then costs an OpenMP fork/join each, which takes milliseconds as soon as
    another process holds one of the two cores.  The multi-threaded paths are checked by the
    reference tests below, which run with torch's default thread count."""

    def __enter__(self):
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.n)


def gc(fn, *inputs, **kw):
    with one_thread():
        assert gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5, **kw)


# ---------------------------------------------------------------------------------------------
# gradcheck through the autograd registrations

# (N, C, H, W, Cout, kernel, stride, pad, dilation, group, bias)
CONV = {
    "3x3_pad1_bias": (2, 3, 5, 5, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),
    "3x3_no_bias": (2, 3, 5, 4, 2, (3, 3), (1, 1), (0, 1), (1, 1), 1, False),
    "group2_stride2_nonsquare_bias": (3, 4, 6, 5, 6, (3, 2), (2, 1), (1, 0), (1, 1), 2, True),
    "group2_no_bias": (2, 4, 4, 4, 2, (2, 2), (1, 1), (0, 0), (1, 1), 2, False),
    "depthwise": (2, 3, 4, 4, 3, (3, 3), (1, 1), (1, 1), (1, 1), 3, True),
    "1x1": (3, 4, 3, 3, 3, (1, 1), (1, 1), (0, 0), (1, 1), 1, True),
    "1x1_single_image": (1, 4, 3, 3, 3, (1, 1), (1, 1), (0, 0), (1, 1), 1, True),
    "dilation": (2, 2, 7, 6, 2, (3, 2), (1, 2), (2, 1), (2, 3), 1, True),
}


def conv_inputs(name, dtype=f64, grad=True):
    n, c, h, w, cout, k, s, p, d, g, bias = CONV[name]
    x = randn(n, c, h, w, seed=1, dtype=dtype, grad=grad)
    wt = randn(cout, c // g, *k, seed=2, dtype=dtype, grad=grad)
    b = randn(cout, seed=3, dtype=dtype, grad=grad) if bias else None
    return x, wt, b, list(s), list(p), list(d), g


@pytest.mark.parametrize("name", list(CONV))
def test_gradcheck_conv(name, blas):
    x, w, b, s, p, d, g = conv_inputs(name)
    if b is None:
        gc(lambda x, w: ops.conv_forward(x, w, None, s, p, d, g), x, w)
    else:
        gc(lambda x, w, b: ops.conv_forward(x, w, b, s, p, d, g), x, w, b)


def test_gradcheck_conv_partial_requires_grad(blas):
    """Only some inputs need a gradient: the output_mask path of the autograd formula."""
    x, w, b, s, p, d, g = conv_inputs("group2_stride2_nonsquare_bias")
    w_c, b_c = w.detach(), b.detach()
    gc(lambda x: ops.conv_forward(x, w_c, b_c, s, p, d, g), x)
    x_c = x.detach()
    gc(lambda b: ops.conv_forward(x_c, w_c, b, s, p, d, g), b)
    gc(lambda w: ops.conv_forward(x_c, w, b_c, s, p, d, g), w)


@pytest.mark.parametrize("transpose", [False, True], ids=["plain", "transpose"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_gradcheck_inner_product(transpose, bias, blas):
    m, k, n = 4, 5, 3
    x = randn(m, k, seed=1)
    w = randn(*((k, n) if transpose else (n, k)), seed=2)
    if bias:
        gc(lambda x, w, b: ops.inner_product_forward(x, w, b, transpose), x, w, randn(n, seed=3))
    else:
        gc(lambda x, w: ops.inner_product_forward(x, w, None, transpose), x, w)


def test_gradcheck_inner_product_layer_axis(blas):
    """The layer helper flattens the axes after `axis` (Caffe's InnerProduct)."""
    x, w, b = randn(2, 3, 2, 2, seed=1), randn(4, 12, seed=2), randn(4, seed=3)
    gc(lambda x, w, b: R.inner_product(x, w, b, axis=1), x, w, b)
    gc(lambda x, w: R.inner_product(x, w, None, axis=2), randn(2, 3, 2, 2, seed=4), randn(5, 4, seed=5))


# (N, C, H, W, kernel, stride, pad, ceil_mode)
POOL = {
    "k3s2": (2, 2, 7, 7, (3, 3), (2, 2), (0, 0), True),
    "k3s2_partial_last": (1, 2, 6, 6, (3, 3), (2, 2), (0, 0), True),
    "k2s2_pad1_last_dropped": (1, 2, 5, 5, (2, 2), (2, 2), (1, 1), True),
    "nonsquare_pad": (1, 2, 7, 6, (3, 2), (2, 1), (1, 0), True),
    "overlap_stride1_pad": (1, 2, 4, 5, (3, 3), (1, 1), (1, 1), True),
    "floor": (2, 1, 6, 7, (3, 3), (2, 2), (1, 1), False),
    "global": (2, 3, 4, 5, (4, 5), (1, 1), (0, 0), True),
}


@pytest.mark.parametrize("name", list(POOL))
def test_gradcheck_pool_max(name):
    n, c, h, w, k, s, p, ceil = POOL[name]
    gc(lambda x: ops.pool_max_forward(x, list(k), list(s), list(p), ceil)[0], distinct(n, c, h, w))


@pytest.mark.parametrize("name", list(POOL))
def test_gradcheck_pool_ave(name):
    n, c, h, w, k, s, p, ceil = POOL[name]
    gc(lambda x: ops.pool_ave_forward(x, list(k), list(s), list(p), ceil), randn(n, c, h, w))


@pytest.mark.parametrize("size,alpha,beta,k,shape", [
    (5, 1e-4, 0.75, 1.0, (2, 7, 2, 3)),      # AlexNet's norm1/norm2 parameters
    (3, 0.5, 0.75, 2.0, (1, 4, 3, 3)),       # large alpha so the cross terms matter
    (5, 1.0, 0.6, 1.0, (2, 3, 2, 2)),        # window wider than the channels
    (1, 0.3, 0.5, 1.5, (1, 3, 2, 2)),
], ids=["alexnet", "k2", "size_gt_channels", "size1"])
def test_gradcheck_lrn_across(size, alpha, beta, k, shape, blas):
    gc(lambda x: ops.lrn_across_forward(x, size, alpha, beta, k)[0], randn(*shape))


@pytest.mark.parametrize("size,alpha,beta,shape", [
    (3, 0.5, 0.75, (2, 2, 4, 5)),
    (5, 1.0, 0.75, (1, 2, 3, 3)),            # window wider than the plane
    (1, 0.2, 0.6, (1, 2, 3, 2)),
], ids=["size3", "size5_small_plane", "size1"])
def test_gradcheck_lrn_within(size, alpha, beta, shape, blas):
    gc(lambda x: ops.lrn_within_forward(x, size, alpha, beta)[0], randn(*shape))


@pytest.mark.parametrize("slope", [0.0, 0.1, -0.5], ids=["relu", "leaky", "negative_slope"])
def test_gradcheck_relu(slope):
    gc(lambda x: ops.relu_forward(x, slope), away_from_zero(2, 3, 4))


@pytest.mark.parametrize("ratio", [0.5, 0.3, 0.0])
def test_gradcheck_dropout(ratio):
    mask = int_mask(3, 4, 5)
    assert 0 < int(mask.sum()) < mask.numel()
    gc(lambda x: ops.dropout_forward(x, mask, ratio), randn(3, 4, 5))


@pytest.mark.parametrize("shape,axis", [((3, 5), 1), ((2, 4, 3, 2), 1), ((3, 4), 0), ((2, 3, 4), -1)],
                         ids=["2d", "4d_axis1", "axis0", "axis_neg1"])
def test_gradcheck_softmax(shape, axis, blas):
    gc(lambda x: ops.softmax_forward(x, axis), randn(*shape))


def loss_labels(shape, axis, ignore):
    axis = axis % len(shape)
    lab = torch.randint(0, shape[axis], shape[:axis] + shape[axis + 1:], generator=_gen(7))
    if ignore is not None:
        flat = lab.view(-1)
        flat[0], flat[1] = ignore, (ignore + 1) % shape[axis]  # some ignored, some not
        flat[-1] = ignore
    return lab


@pytest.mark.parametrize("normalization", [0, 1, 2, 3], ids=["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore_label", [None, 2], ids=["all", "ignore2"])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 2, 3)], ids=["2d", "4d"])
def test_gradcheck_softmax_loss(shape, normalization, ignore_label, blas):
    lab = loss_labels(shape, 1, ignore_label)
    gc(lambda x: ops.softmax_loss_forward(x, lab, 1, normalization, ignore_label)[0], randn(*shape))


def test_gradcheck_softmax_loss_float_labels_and_loss_weight():
    """Caffe's labels are float blobs; a loss weight (grad of the loss) scales the gradient."""
    lab = loss_labels((6, 3), 1, None).to(torch.float32)
    gc(lambda x: 2.5 * ops.softmax_loss_forward(x, lab, 1, 1, None)[0], randn(6, 3))


IM2COL = {  # (shape, kernel, pad, stride, dilation)
    "4d_nonsquare_stride_pad": ((2, 2, 5, 4), (3, 2), (1, 0), (2, 1), (1, 1)),
    "3d_dilation": ((2, 6, 5), (2, 2), (0, 1), (1, 1), (2, 1)),
    "overlapping": ((1, 2, 4, 4), (3, 3), (1, 1), (1, 1), (1, 1)),
}


@pytest.mark.parametrize("name", list(IM2COL))
def test_gradcheck_im2col_col2im(name):
    shape, *geometry = IM2COL[name]
    k, p, s, d = (list(v) for v in geometry)
    x = randn(*shape)
    gc(lambda x: ops.im2col(x, k, p, s, d), x)
    col = ops.im2col(x.detach(), k, p, s, d)
    gc(lambda c: ops.col2im(c, list(shape[-2:]), shape[-3], k, p, s, d), randn(*col.shape, seed=4))


# ---------------------------------------------------------------------------------------------
# Forward values against torch's implementations


@pytest.mark.parametrize("dtype", [torch.float32, f64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(CONV))
def test_conv_matches_torch(name, dtype, blas):
    x, w, b, s, p, d, g = conv_inputs(name, dtype, grad=False)
    got = ops.conv_forward(x, w, b, s, p, d, g)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got, F.conv2d(x, w, b, s, p, d, g), **tol)
    # the backward kernel against torch's autograd of F.conv2d
    go = randn(*got.shape, seed=9, dtype=dtype, grad=False)
    gx, gw, gb = ops.conv_backward(go, x, w, s, p, d, g, [True, True, b is not None])
    leaves = [t.clone().requires_grad_(True) for t in (x, w) + ((b,) if b is not None else ())]
    ref = torch.autograd.grad(F.conv2d(leaves[0], leaves[1], leaves[2] if b is not None else None, s, p, d, g),
                              leaves, go)
    torch.testing.assert_close(gx, ref[0], **tol)
    torch.testing.assert_close(gw, ref[1], **tol)
    if b is not None:
        torch.testing.assert_close(gb, ref[2], **tol)
    else:
        assert gb.shape == (0,)


def test_conv_fast_mode_partial_last_chunk():
    """Fast mode runs a chunk of images per GEMM; with 3 images of ~7M column entries the chunk is
    2 images and the last chunk holds 1: both against F.conv2d, forward and backward."""
    x = randn(3, 1, 884, 884, seed=1, dtype=torch.float32, grad=False)
    w = randn(2, 1, 3, 3, seed=2, dtype=torch.float32, grad=False)
    b = randn(2, seed=3, dtype=torch.float32, grad=False)
    with R.blas_mode("fast"):
        got = ops.conv_forward(x, w, b, [1, 1], [1, 1], [1, 1], 1)
        torch.testing.assert_close(got, F.conv2d(x, w, b, 1, 1), rtol=1e-5, atol=1e-5)
        go = torch.ones_like(got)
        gx, gw, gb = ops.conv_backward(go, x, w, [1, 1], [1, 1], [1, 1], 1, [True, True, True])
    xl, wl = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    rx, rw = torch.autograd.grad(F.conv2d(xl, wl, b, 1, 1), (xl, wl), go)
    torch.testing.assert_close(gx, rx, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw, rw, rtol=1e-4, atol=1e-1)  # sums of 2.3M terms in float32
    torch.testing.assert_close(gb, go.sum((0, 2, 3)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(IM2COL))
def test_im2col_col2im_match_unfold_fold(name):
    shape, k, p, s, d = IM2COL[name]
    x = randn(*shape, grad=False)
    col = ops.im2col(x, list(k), list(p), list(s), list(d))
    batched = x if x.dim() == 4 else x.unsqueeze(0)
    ref = F.unfold(batched, k, dilation=d, padding=p, stride=s)
    torch.testing.assert_close(col, ref if x.dim() == 4 else ref.squeeze(0), rtol=0, atol=0)
    c = randn(*col.shape, seed=4, grad=False)
    im = ops.col2im(c, list(shape[-2:]), shape[-3], list(k), list(p), list(s), list(d))
    cb = c if c.dim() == 3 else c.unsqueeze(0)
    ref = F.fold(cb, shape[-2:], k, dilation=d, padding=p, stride=s)
    torch.testing.assert_close(im, ref if c.dim() == 3 else ref.squeeze(0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("transpose", [False, True], ids=["plain", "transpose"])
def test_inner_product_matches_torch(transpose, blas):
    x, w, b = randn(5, 7, seed=1, grad=False), randn(3, 7, seed=2, grad=False), randn(3, seed=3, grad=False)
    wk = w.t().contiguous() if transpose else w
    torch.testing.assert_close(ops.inner_product_forward(x, wk, b, transpose), F.linear(x, w, b))
    go = randn(5, 3, seed=4, grad=False)
    gx, gw, gb = ops.inner_product_backward(go, x, wk, transpose, [True, True, True])
    torch.testing.assert_close(gx, go @ w)
    torch.testing.assert_close(gw, (go.t() @ x).t() if transpose else go.t() @ x)
    torch.testing.assert_close(gb, go.sum(0))


def _torch_pool_ok(k, s, p):
    return all(pi <= ki // 2 for pi, ki in zip(p, k)) and (any(p) or all(ki >= si for ki, si in zip(k, s)))


@pytest.mark.parametrize("name", list(POOL))
def test_pool_matches_torch(name):
    n, c, h, w, k, s, p, ceil = POOL[name]
    assert _torch_pool_ok(k, s, p), "torch and Caffe agree on the output size only here"
    x = distinct(n, c, h, w, grad=False)
    top, mask = ops.pool_max_forward(x, list(k), list(s), list(p), ceil)
    ref, idx = F.max_pool2d(x, k, s, p, ceil_mode=ceil, return_indices=True)
    torch.testing.assert_close(top, ref, rtol=0, atol=0)
    assert mask.dtype == torch.int32
    assert torch.equal(mask.long(), idx)
    ave = ops.pool_ave_forward(x, list(k), list(s), list(p), ceil)
    torch.testing.assert_close(ave, F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=True))
    go = randn(*ave.shape, seed=5, grad=False)
    xl = x.clone().requires_grad_(True)
    (ref_ave,) = torch.autograd.grad(F.avg_pool2d(xl, k, s, p, ceil_mode=ceil, count_include_pad=True), xl, go)
    torch.testing.assert_close(ops.pool_ave_backward(go, list(x.shape), list(k), list(s), list(p)), ref_ave)


@pytest.mark.parametrize("name", ["k3s2", "overlap_stride1_pad", "nonsquare_pad", "floor"])
def test_pool_max_ties_take_the_first_in_row_major_order(name):
    """With many ties Caffe's argmax is the first maximum of the window in row-major order (strict >),
    as torch's CPU max_pool2d; the backward sends each output's gradient to that element only."""
    n, c, h, w, k, s, p, ceil = POOL[name]
    for dtype in (torch.float32, f64):
        x = torch.randint(0, 3, (n, c, h, w), generator=_gen(3)).to(dtype)
        top, mask = ops.pool_max_forward(x, list(k), list(s), list(p), ceil)
        ref, idx = F.max_pool2d(x, k, s, p, ceil_mode=ceil, return_indices=True)
        assert torch.equal(top, ref) and torch.equal(mask.long(), idx)
        go = randn(*top.shape, seed=5, dtype=dtype, grad=False)
        xl = x.clone().requires_grad_(True)
        (ref_g,) = torch.autograd.grad(F.max_pool2d(xl, k, s, p, ceil_mode=ceil), xl, go)
        torch.testing.assert_close(ops.pool_max_backward(go, mask, list(x.shape)), ref_g)


def test_pool_max_window_in_padding_only():
    """All-negative input: the padded border never wins (Caffe does not read the padding)."""
    x = -1 - distinct(1, 1, 5, 5, grad=False).abs()
    top, mask = ops.pool_max_forward(x, [3, 3], [2, 2], [1, 1], True)
    ref, idx = F.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    assert torch.equal(top, ref) and torch.equal(mask.long(), idx)


@pytest.mark.parametrize("size,alpha,beta,k,shape", [
    (5, 1e-4, 0.75, 1.0, (2, 7, 2, 3)), (3, 0.5, 0.75, 2.0, (1, 4, 3, 3)), (5, 1.0, 0.5, 1.0, (2, 3, 2, 2))])
def test_lrn_across_matches_torch(size, alpha, beta, k, shape, blas):
    x = randn(*shape, grad=False)
    top, scale, power = ops.lrn_across_forward(x, size, alpha, beta, k)
    a = float(torch.tensor(alpha, dtype=torch.float32))  # Caffe's parameters are protobuf floats
    torch.testing.assert_close(top, F.local_response_norm(x, size, a, beta, k))
    sq = F.pad(x.pow(2).unsqueeze(1), (0, 0, 0, 0, size // 2, size // 2)).squeeze(1)
    window = torch.stack([sq[:, i:i + size].sum(1) for i in range(shape[1])], 1)
    torch.testing.assert_close(scale, k + a / size * window)
    go = randn(*shape, seed=3, grad=False)
    xl = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(F.local_response_norm(xl, size, a, beta, k), xl, go)
    torch.testing.assert_close(ops.lrn_across_backward(go, x, top, scale, power, size, alpha, beta), ref)


@pytest.mark.parametrize("size,alpha,beta,shape", [(3, 0.5, 0.75, (2, 2, 4, 5)), (5, 1.0, 0.75, (1, 2, 3, 3))])
def test_lrn_within_matches_reference(size, alpha, beta, shape):
    """WITHIN_CHANNEL is Caffe's composition with shift 1: k is not a parameter (intentional)."""
    x = randn(*shape, grad=False)
    top, pooled, powered = ops.lrn_within_forward(x, size, alpha, beta)
    ref_pool = F.avg_pool2d(x * x, size, 1, (size - 1) // 2, ceil_mode=True, count_include_pad=True)
    torch.testing.assert_close(pooled, ref_pool)
    torch.testing.assert_close(powered, (1 + alpha * ref_pool).pow(-beta))
    torch.testing.assert_close(top, x * (1 + alpha * ref_pool).pow(-beta))
    go = randn(*shape, seed=3, grad=False)
    xl = x.clone().requires_grad_(True)
    ref_top = xl * (1 + alpha * F.avg_pool2d(xl * xl, size, 1, (size - 1) // 2, ceil_mode=True,
                                             count_include_pad=True)).pow(-beta)
    (ref,) = torch.autograd.grad(ref_top, xl, go)
    torch.testing.assert_close(ops.lrn_within_backward(go, x, pooled, powered, size, alpha, beta), ref)
    for k in (1.0, 5.0):  # the layer helper ignores k for WITHIN_CHANNEL
        torch.testing.assert_close(R.lrn(x, size, alpha, beta, k=k, norm_region="WITHIN_CHANNEL"), top,
                                   rtol=0, atol=0)


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_relu_matches_torch(slope):
    x = randn(4, 5, grad=False)
    slope = float(torch.tensor(slope, dtype=torch.float32))  # Caffe's parameters are protobuf floats
    torch.testing.assert_close(ops.relu_forward(x, slope), F.leaky_relu(x, slope), rtol=0, atol=0)
    go = randn(4, 5, seed=2, grad=False)
    torch.testing.assert_close(ops.relu_backward(go, x, slope), torch.where(x > 0, go, slope * go))


@pytest.mark.parametrize("dtype", [torch.float32, f64], ids=["f32", "f64"])
@pytest.mark.parametrize("ratio", [0.5, 0.3])
def test_dropout_matches_reference(ratio, dtype):
    x, mask = randn(3, 8, dtype=dtype, grad=False), int_mask(3, 8)
    scale = torch.tensor(1.0 / (1.0 - float(torch.tensor(ratio, dtype=torch.float32))), dtype=dtype)
    expected = x * mask.to(dtype) * scale
    torch.testing.assert_close(ops.dropout_forward(x, mask, ratio), expected, rtol=0, atol=0)
    torch.testing.assert_close(ops.dropout_backward(x, mask, ratio), expected, rtol=0, atol=0)


@pytest.mark.parametrize("shape,axis", [((3, 5), 1), ((2, 4, 3, 2), 1), ((2, 3, 4), -1), ((3, 4), 0)])
def test_softmax_matches_torch(shape, axis, blas):
    x = randn(*shape, grad=False) * 5
    y = ops.softmax_forward(x, axis)
    torch.testing.assert_close(y, torch.softmax(x, axis))
    go = randn(*shape, seed=2, grad=False)
    xl = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(torch.softmax(xl, axis), xl, go)
    torch.testing.assert_close(ops.softmax_backward(go, y, axis), ref)


@pytest.mark.parametrize("normalization", [0, 1, 2, 3], ids=["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore_label", [None, 2], ids=["all", "ignore2"])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 2, 3)], ids=["2d", "4d"])
def test_softmax_loss_matches_cross_entropy(shape, normalization, ignore_label, blas):
    x, lab = randn(*shape, grad=False), loss_labels(shape, 1, ignore_label)
    loss, prob = ops.softmax_loss_forward(x, lab, 1, normalization, ignore_label)
    total = F.cross_entropy(x, lab, reduction="sum", ignore_index=-100 if ignore_label is None else ignore_label)
    outer, inner = shape[0], math.prod(shape[2:])
    valid = int((lab != ignore_label).sum()) if ignore_label is not None else outer * inner
    norm = {0: outer * inner, 1: valid, 2: outer, 3: 1}[normalization]
    torch.testing.assert_close(loss, total / max(1, norm))
    torch.testing.assert_close(prob, torch.softmax(x, 1))
    xl = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(F.cross_entropy(xl, lab, reduction="sum",
                                                 ignore_index=-100 if ignore_label is None else ignore_label)
                                 / max(1, norm) * 0.7, xl)
    got = ops.softmax_loss_backward(torch.tensor(0.7, dtype=f64), prob, lab, 1, normalization, ignore_label)
    torch.testing.assert_close(got, ref)


def test_softmax_loss_all_ignored_is_zero():
    x, lab = randn(3, 4, grad=False), torch.full((3,), 1)
    loss, prob = ops.softmax_loss_forward(x, lab, 1, 1, 1)
    assert loss.item() == 0.0
    assert torch.count_nonzero(ops.softmax_loss_backward(torch.tensor(1.0, dtype=f64), prob, lab, 1, 1, 1)) == 0


def _accuracy_reference(x, lab, axis, top_k, ignore):
    """Caffe: correct when fewer than top_k classes score >= the true class, the true one excepted."""
    xm = x.movedim(axis, -1).reshape(-1, x.shape[axis])
    lab = lab.reshape(-1)
    keep = torch.ones_like(lab, dtype=torch.bool) if ignore is None else lab != ignore
    xm, lab = xm[keep], lab[keep]
    truth = xm.gather(1, lab[:, None])
    correct = ((xm >= truth).sum(1) - 1) < top_k
    per_class = torch.zeros(x.shape[axis], dtype=x.dtype)
    for c in range(x.shape[axis]):
        sel = lab == c
        per_class[c] = correct[sel].to(x.dtype).mean() if sel.any() else 0
    acc = correct.to(x.dtype).mean() if len(lab) else torch.tensor(0.0, dtype=x.dtype)
    return acc, per_class


@pytest.mark.parametrize("shape,axis,top_k,ignore", [((12, 5), 1, 1, None), ((12, 5), 1, 3, None),
                                                     ((2, 4, 3, 2), 1, 2, 1), ((3, 2, 6), -1, 1, None),
                                                     ((3, 2, 6), 2, 2, 0)])
def test_accuracy_matches_reference(shape, axis, top_k, ignore):
    x = torch.randint(0, 4, shape, generator=_gen(2)).to(torch.float32)  # many ties
    lab = loss_labels(shape, axis, ignore)
    acc, per_class = ops.accuracy_forward(x, lab, axis, top_k, ignore)
    ref_acc, ref_pc = _accuracy_reference(x, lab, axis % len(shape), top_k, ignore)
    torch.testing.assert_close(acc, ref_acc)
    torch.testing.assert_close(per_class, ref_pc)


def test_accuracy_tie_counts_against_the_true_class():
    x = torch.tensor([[1.0, 1.0, 0.0], [2.0, 1.0, 1.0], [0.0, 3.0, 1.0]])
    acc, per_class = ops.accuracy_forward(x, torch.tensor([0, 0, 2]), 1, 1, None)
    assert acc.item() == pytest.approx(1 / 3)
    assert per_class.tolist() == [0.5, 0.0, 0.0]
    acc2, _ = ops.accuracy_forward(x, torch.tensor([0, 0, 2]), 1, 2, None)
    assert acc2.item() == 1.0


# ---------------------------------------------------------------------------------------------
# Backward-kernel contract


def test_conv_backward_accumulates_into_given_diffs(blas):
    x, w, b, s, p, d, g = conv_inputs("group2_stride2_nonsquare_bias", grad=False)
    go = randn(*ops.conv_forward(x, w, b, s, p, d, g).shape, seed=5, grad=False)
    w0, b0 = randn(*w.shape, seed=6, grad=False), randn(*b.shape, seed=7, grad=False)
    gx, gw, gb = ops.conv_backward(go, x, w, s, p, d, g, [True, True, True])
    gx2, gw2, gb2 = ops.conv_backward(go, x, w, s, p, d, g, [True, True, True], w0, b0)
    torch.testing.assert_close(gx2, gx, rtol=0, atol=0)
    torch.testing.assert_close(gw2, w0 + gw)
    torch.testing.assert_close(gb2, b0 + gb)
    assert not torch.equal(w0, gw2), "weight_diff must not be modified in place"
    _, gw3, gb3 = ops.conv_backward(go, x, w, s, p, d, g, [False, True, False])
    assert gw3.shape == w.shape and gb3.shape == (0,)
    torch.testing.assert_close(gw3, gw, rtol=0, atol=0)


def test_inner_product_backward_accumulates_into_given_diffs(blas):
    x, w, go = randn(4, 5, seed=1, grad=False), randn(3, 5, seed=2, grad=False), randn(4, 3, seed=3, grad=False)
    w0, b0 = randn(3, 5, seed=6, grad=False), randn(3, seed=7, grad=False)
    w0_copy = w0.clone()
    gx, gw, gb = ops.inner_product_backward(go, x, w, False, [True, True, True], w0, b0)
    torch.testing.assert_close(gw, w0 + go.t() @ x)
    torch.testing.assert_close(gb, b0 + go.sum(0))
    assert torch.equal(w0, w0_copy)
    gx, gw, gb = ops.inner_product_backward(go, x, w, False, [True, False, False])
    assert gw.shape == (0,) and gb.shape == (0,)
    torch.testing.assert_close(gx, go @ w)


def test_exact_and_fast_modes_agree():
    x, w, b, s, p, d, g = conv_inputs("group2_stride2_nonsquare_bias", torch.float32, grad=False)
    x2, w2 = x.reshape(3, -1), randn(4, 120, seed=8, dtype=torch.float32, grad=False)
    try:
        with R.blas_mode("exact"):
            exact = ops.conv_forward(x, w, b, s, p, d, g), ops.inner_product_forward(x2, w2, None, False)
    except RuntimeError as e:
        pytest.skip(f"exact BLAS mode unavailable: {e}")
    with R.blas_mode("fast"):
        fast = ops.conv_forward(x, w, b, s, p, d, g), ops.inner_product_forward(x2, w2, None, False)
    torch.testing.assert_close(exact, fast, rtol=1e-5, atol=1e-5)
