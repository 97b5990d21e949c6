"""CUDA twins (csrc/cuda) against the CPU ops.  Skipped without a GPU, or when the extension was
built without CUDA (then no op has a CUDA kernel).

Bit-identical: im2col, pooling (MAX values, masks and backward; AVE forward and backward),
ReLU, dropout, accuracy, blas_scal, and in fast BLAS mode sgd_update and blas_axpy.  These do
the same arithmetic in the same order on both backends.

col2im: Caffe's GPU kernel gathers each pixel's terms in ascending output position, its CPU
loop in ascending kernel offset (the reverse), so the sums of 3+ terms may round differently,
in Caffe as here.  It is bit-identical to the CPU op on inputs whose sums are exact (small
integers), and bit-identical to a reference of the GPU order on random inputs.

Within a few ulps, with the reasons:
  * LRN across channels, forward: the GPU's scale is k + (running sum of squares) * alpha/size
    per pixel, the CPU's a running sum of alpha/size-scaled squares (axpy rows); with k >= 1
    the two scales differ by about an ulp.  scale^-beta is CUDA's powf (max error 2 ulp per the
    CUDA math documentation) against the C library's powf (< 1 ulp); the product adds half an
    ulp.  Bound used: 8 ulps on output, 4 on scale.
  * LRN within channel, forward: the only differing step is pow (CUDA powf for x^2 and for
    (1 + alpha * avg)^-beta): 8 ulps.
  * softmax forward: CUDA expf (max 2 ulp) against the C library's expf, and a sequential
    channel sum against BLAS's gemv (another order): over C channels each output is off by
    about (2 + C * eps-order) ulps; with C <= 100 the bound used is 16 ulps.
  * Backward passes (LRN, softmax) subtract nearly equal terms, so ulps of the result are the
    wrong unit: the bound is 16 ulps of the larger term's magnitude, elementwise.
Convolution and inner product go through cuBLAS / torch matmul (other summation orders than
OpenBLAS): relative 1e-4 on the output.  sgd_update and blas_axpy in exact mode (cuBLAS and
OpenBLAS fuse different products) and blas_dot (another summation order): bounds and reasons
in their tests' docstrings.
"""
from __future__ import annotations

import pytest
import torch

import replicate.ops as R

ops = torch.ops.replicate


def _cuda_ready() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False)"
    if not torch._C._dispatch_has_kernel_for_dispatch_key("replicate::relu_forward", "CUDA"):
        return "replicate._C was built without CUDA kernels (REPLICATE_WITH_CUDA=0 or no nvcc at build time)"
    return None


pytestmark = pytest.mark.skipif(_cuda_ready() is not None, reason=_cuda_ready() or "")

DEV = "cuda"


@pytest.fixture(autouse=True)
def _no_tf32():
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = prev


def _exact_available() -> bool:
    try:
        with R.blas_mode("exact"):
            return True
    except RuntimeError:
        return False


MODES = ["fast", pytest.param("exact", marks=pytest.mark.skipif(not _exact_available(),
                                                                 reason="exact mode's CBLAS is not installed"))]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def same_bits(gpu: torch.Tensor, cpu: torch.Tensor):
    g = gpu.cpu()
    assert g.shape == cpu.shape and g.dtype == cpu.dtype
    assert torch.equal(g, cpu), f"max |diff| {(g.double() - cpu.double()).abs().max().item()}"


def ulp(x: torch.Tensor) -> torch.Tensor:
    a = x.abs()
    return torch.nextafter(a, torch.full_like(a, float("inf"))) - a


def within_ulps(gpu: torch.Tensor, cpu: torch.Tensor, n: int, scale: torch.Tensor | None = None):
    g = gpu.cpu()
    ref = cpu.abs() if scale is None else scale
    bound = n * ulp(torch.maximum(ref, g.abs() if scale is None else ref))
    diff = (g - cpu).abs()
    bad = diff > bound
    assert not bad.any(), (f"{int(bad.sum())} of {bad.numel()} elements beyond {n} ulps; "
                           f"worst {(diff / bound.clamp_min(1e-45)).max().item() * n:.1f} ulps")


# --------------------------------------------------------------------------------------------
# Bit-identical ops

GEOMS = [  # (C, H, W, kernel, pad, stride, dilation)
    (3, 227, 227, (11, 11), (0, 0), (4, 4), (1, 1)),
    (48, 27, 27, (5, 5), (2, 2), (1, 1), (1, 1)),
    (5, 13, 17, (3, 2), (1, 0), (2, 3), (2, 1)),
]


@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_im2col(geom, dtype):
    C, H, W, k, p, s, d = geom
    x = torch.randn(2, C, H, W, generator=gen(), dtype=dtype)
    same_bits(ops.im2col(x.to(DEV), k, p, s, d), ops.im2col(x, k, p, s, d))


def col2im_gpu_order(col, C, H, W, k, p, s, d):
    """Caffe's GPU col2im order for every pixel: output rows, then columns, ascending, i.e.
    kernel offsets descending; each (kh, kw) pass adds at most one term per pixel."""
    N = col.shape[0]
    oh = (H + 2 * p[0] - (d[0] * (k[0] - 1) + 1)) // s[0] + 1
    ow = (W + 2 * p[1] - (d[1] * (k[1] - 1) + 1)) // s[1] + 1
    c = col.view(N, C, k[0], k[1], oh, ow)
    out = torch.zeros(N, C, H + 2 * p[0] + s[0] * oh, W + 2 * p[1] + s[1] * ow, dtype=col.dtype)
    for i in reversed(range(k[0])):
        for j in reversed(range(k[1])):
            r0, c0 = i * d[0], j * d[1]
            out[:, :, r0:r0 + s[0] * oh:s[0], c0:c0 + s[1] * ow:s[1]] += c[:, :, i, j]
    return out[:, :, p[0]:p[0] + H, p[1]:p[1] + W].contiguous()


@pytest.mark.parametrize("geom", GEOMS)
def test_col2im(geom):
    C, H, W, k, p, s, d = geom
    shape = ops.im2col(torch.zeros(1, C, H, W), k, p, s, d).shape
    exact_sums = torch.randint(-8, 8, (2, *shape[1:]), generator=gen()).float()
    same_bits(ops.col2im(exact_sums.to(DEV), (H, W), C, k, p, s, d), ops.col2im(exact_sums, (H, W), C, k, p, s, d))
    col = torch.randn(2, *shape[1:], generator=gen(1))
    got = ops.col2im(col.to(DEV), (H, W), C, k, p, s, d)
    same_bits(got, col2im_gpu_order(col, C, H, W, k, p, s, d))
    torch.testing.assert_close(got.cpu(), ops.col2im(col, (H, W), C, k, p, s, d), rtol=1e-5, atol=1e-5)


POOLS = [  # (shape, kernel, stride, pad, ceil)
    ((4, 96, 55, 55), (3, 3), (2, 2), (0, 0), True),
    ((2, 8, 13, 11), (3, 2), (2, 1), (1, 1), True),
    ((2, 8, 12, 12), (2, 2), (2, 2), (0, 0), False),
]


@pytest.mark.parametrize("case", POOLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pooling(case, dtype):
    shape, k, s, p, ceil = case
    x = torch.randn(*shape, generator=gen(), dtype=dtype).round(decimals=1)  # ties exercise first-max
    top, mask = ops.pool_max_forward(x, k, s, p, ceil)
    gtop, gmask = ops.pool_max_forward(x.to(DEV), k, s, p, ceil)
    same_bits(gtop, top)
    same_bits(gmask, mask)
    dy = torch.randn(top.shape, generator=gen(2), dtype=dtype)
    same_bits(ops.pool_max_backward(dy.to(DEV), gmask, list(shape)), ops.pool_max_backward(dy, mask, list(shape)))
    ave = ops.pool_ave_forward(x, k, s, p, ceil)
    same_bits(ops.pool_ave_forward(x.to(DEV), k, s, p, ceil), ave)
    same_bits(ops.pool_ave_backward(dy.to(DEV), list(shape), k, s, p), ops.pool_ave_backward(dy, list(shape), k, s, p))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relu_and_dropout(dtype):
    x = torch.randn(64, 4096, generator=gen(), dtype=dtype)
    dy = torch.randn(64, 4096, generator=gen(1), dtype=dtype)
    for slope in (0.0, 0.1):
        same_bits(ops.relu_forward(x.to(DEV), slope), ops.relu_forward(x, slope))
        same_bits(ops.relu_backward(dy.to(DEV), x.to(DEV), slope), ops.relu_backward(dy, x, slope))
    mask = (torch.rand(64, 4096, generator=gen(3)) >= 0.5).to(torch.int32)
    if dtype == torch.float32:  # Caffe's GPU kernel takes the scale as a float; for double it differs
        same_bits(ops.dropout_forward(x.to(DEV), mask.to(DEV), 0.5), ops.dropout_forward(x, mask, 0.5))
        same_bits(ops.dropout_backward(dy.to(DEV), mask.to(DEV), 0.3), ops.dropout_backward(dy, mask, 0.3))


def test_accuracy():
    x = torch.randn(50, 10, 3, generator=gen()).round(decimals=1)
    label = torch.randint(0, 10, (50, 3), generator=gen(1)).float()
    for top_k, ignore in ((1, None), (3, None), (2, 4)):
        acc, pc = ops.accuracy_forward(x, label, 1, top_k, ignore)
        gacc, gpc = ops.accuracy_forward(x.to(DEV), label.to(DEV), 1, top_k, ignore)
        same_bits(gacc, acc)
        same_bits(gpc, pc)


# --------------------------------------------------------------------------------------------
# Within ulps

@pytest.mark.parametrize("k", [1.0, 2.0])
def test_lrn_across(k):
    x = torch.randn(4, 96, 27, 27, generator=gen()) * 20
    top, scale, power = ops.lrn_across_forward(x, 5, 1e-4, 0.75, k)
    gtop, gscale, gpower = ops.lrn_across_forward(x.to(DEV), 5, 1e-4, 0.75, k)
    within_ulps(gscale, scale, 4)
    within_ulps(gtop, top, 8)
    dy = torch.randn(x.shape, generator=gen(1))
    dx = ops.lrn_across_backward(dy, x, top, scale, power, 5, 1e-4, 0.75)
    gdx = ops.lrn_across_backward(dy.to(DEV), x.to(DEV), gtop, gscale, gpower, 5, 1e-4, 0.75)
    # Caffe's LRNComputeDiff (GPU) keeps one running window sum per pixel column, adding the
    # channel entering and subtracting the one leaving, so its rounding error carries down the
    # channels: after c channels it is up to about (c + size) ulps of the largest ratio term of
    # the column.  The CPU's axpy rows slide the same way.  Bound: 2 * (C + size) ulps of the
    # larger of top_diff * scale^-beta and the window term at the column's largest ratio.
    C, size = x.shape[1], 5
    ratio_max = (dy * top / scale).abs().amax(1, keepdim=True)
    terms = torch.maximum((dy * power).abs(), 2 * 1e-4 * 0.75 / size * x.abs() * ratio_max * size)
    within_ulps(gdx, dx, 2 * (C + size), scale=terms)


def test_lrn_within():
    x = torch.randn(2, 16, 13, 13, generator=gen()) * 5
    top, pooled, powered = ops.lrn_within_forward(x, 3, 1e-2, 0.75)
    gtop, gpooled, gpowered = ops.lrn_within_forward(x.to(DEV), 3, 1e-2, 0.75)
    within_ulps(gpooled, pooled, 8)
    within_ulps(gtop, top, 8)
    dy = torch.randn(x.shape, generator=gen(1))
    dx = ops.lrn_within_backward(dy, x, pooled, powered, 3, 1e-2, 0.75)
    gdx = ops.lrn_within_backward(dy.to(DEV), x.to(DEV), gpooled, gpowered, 3, 1e-2, 0.75)
    terms = (dy * powered).abs() + (2 * x.abs() * (dy * x).abs().max())
    within_ulps(gdx, dx, 16, scale=terms)


@pytest.mark.parametrize("shape,axis", [((64, 100), 1), ((4, 10, 5, 7), 1), ((3, 6, 20), 2)])
def test_softmax(shape, axis):
    x = torch.randn(*shape, generator=gen()) * 4
    y = ops.softmax_forward(x, axis)
    gy = ops.softmax_forward(x.to(DEV), axis)
    # exp: CUDA's expf (2 ulp) against glibc's (1 ulp); the normaliser: a sequential channel sum
    # against BLAS's gemv, two orders of C terms, up to C ulps apart; the division half an ulp.
    within_ulps(gy, y, 4 + shape[axis])
    dy = torch.randn(*shape, generator=gen(1))
    dot = (dy * y).sum(axis, keepdim=True)
    terms = (dy.abs() + dot.abs()) * y
    # backward from each backend's own forward: y differs by up to 4 + C ulps (above) and the
    # dot product of C terms sums in another order (up to C ulps more)
    within_ulps(ops.softmax_backward(dy.to(DEV), gy, axis), ops.softmax_backward(dy, y, axis),
                2 * (4 + shape[axis]), scale=terms)


@pytest.mark.parametrize("normalization", [0, 1, 2, 3])
@pytest.mark.parametrize("ignore", [None, 3])
def test_softmax_loss(normalization, ignore):
    x = torch.randn(16, 10, 4, generator=gen()) * 3
    label = torch.randint(0, 10, (16, 4), generator=gen(1)).float()
    loss, prob = ops.softmax_loss_forward(x, label, 1, normalization, ignore)
    gloss, gprob = ops.softmax_loss_forward(x.to(DEV), label.to(DEV), 1, normalization, ignore)
    within_ulps(gprob, prob, 16)
    torch.testing.assert_close(gloss.cpu(), loss, rtol=1e-5, atol=0)
    w = torch.tensor(1.5)
    dx = ops.softmax_loss_backward(w, prob, label, 1, normalization, ignore)
    gdx = ops.softmax_loss_backward(w.to(DEV), gprob, label.to(DEV), 1, normalization, ignore)
    torch.testing.assert_close(gdx.cpu(), dx, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------------
# GEMM layers, both BLAS modes

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", [((2, 96, 27, 27), (256, 48, 5, 5), 1, 2, 2), ((3, 8, 9, 9), (6, 8, 1, 1), 1, 0, 1),
                                  ((2, 3, 35, 35), (16, 3, 11, 11), 4, 0, 1)])
def test_convolution(mode, case):
    xs, ws, stride, pad, group = case
    x = torch.randn(*xs, generator=gen())
    w = torch.randn(*ws, generator=gen(1)) * 0.1
    b = torch.randn(ws[0], generator=gen(2))
    args = ([stride, stride], [pad, pad], [1, 1], group)
    with R.blas_mode(mode):
        y = ops.conv_forward(x, w, b, *args)
        gy = ops.conv_forward(x.to(DEV), w.to(DEV), b.to(DEV), *args)
        torch.testing.assert_close(gy.cpu(), y, rtol=1e-4, atol=1e-4 * y.abs().max().item())
        dy = torch.randn(y.shape, generator=gen(3))
        acc = torch.randn(ws, generator=gen(4))
        ref = ops.conv_backward(dy, x, w, *args, [True, True, True], weight_diff=acc)
        got = ops.conv_backward(dy.to(DEV), x.to(DEV), w.to(DEV), *args, [True, True, True], weight_diff=acc.to(DEV))
        for g, r in zip(got, ref):
            torch.testing.assert_close(g.cpu(), r, rtol=1e-4, atol=1e-4 * r.abs().max().item())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transpose", [False, True])
def test_inner_product(mode, transpose):
    x = torch.randn(32, 300, generator=gen())
    w = torch.randn(*((300, 50) if transpose else (50, 300)), generator=gen(1)) * 0.1
    b = torch.randn(50, generator=gen(2))
    with R.blas_mode(mode):
        y = ops.inner_product_forward(x, w, b, transpose)
        gy = ops.inner_product_forward(x.to(DEV), w.to(DEV), b.to(DEV), transpose)
        torch.testing.assert_close(gy.cpu(), y, rtol=1e-4, atol=1e-4)
        dy = torch.randn(32, 50, generator=gen(3))
        ref = ops.inner_product_backward(dy, x, w, transpose, [True, True, True])
        got = ops.inner_product_backward(dy.to(DEV), x.to(DEV), w.to(DEV), transpose, [True, True, True])
        for g, r in zip(got, ref):
            torch.testing.assert_close(g.cpu(), r, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------
# A whole CaffeNet training step

def test_caffenet_step_batch256():
    from tests.cuda.caffenet import make_batch, make_params, step

    p = make_params(DEV)
    x, labels, masks = make_batch(256, DEV)
    loss = step(p, x, labels, masks)
    assert torch.isfinite(loss).item()
    for name, t in p.items():
        assert t.grad is not None and torch.isfinite(t.grad).all().item(), name


@pytest.mark.parametrize("mode", MODES)
def test_caffenet_step_matches_cpu(mode):
    from tests.cuda.caffenet import make_batch, make_params, step

    """Float32 on the GPU is about as close to a float64 reference as float32 on the CPU: eight
    layers of other summation orders (cuBLAS, CUDA's expf/powf) amplify rounding differently per
    parameter, so the yardstick is the CPU's own float32 error, not a fixed tolerance."""
    x, labels, masks = make_batch(4, "cpu")
    with R.blas_mode(mode):
        p_cpu, p_gpu = make_params("cpu"), make_params(DEV)
        p64 = {k: v.detach().double().requires_grad_() for k, v in p_cpu.items()}
        step(p64, x.double(), labels, masks)
        loss = step(p_cpu, x, labels, masks)
        gloss = step(p_gpu, x.to(DEV), labels.to(DEV), [m.to(DEV) for m in masks])
    torch.testing.assert_close(gloss.cpu(), loss, rtol=1e-4, atol=0)
    for name in p_cpu:
        ref = p64[name].grad
        err = lambda t: ((t.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()  # noqa: E731
        e_gpu, e_cpu = err(p_gpu[name].grad.cpu()), err(p_cpu[name].grad)
        assert e_gpu <= 8 * e_cpu + 1e-5, f"{name}: GPU error {e_gpu:.2e} vs the CPU's {e_cpu:.2e} (float64 reference)"


# --------------------------------------------------------------------------------------------
# The solver's update and level-1 BLAS ops (csrc/cuda/solver_ops.cpp)

SGD_CASES = [  # (local_decay, regularization, diff_scale)
    (0.0, "L2", 1.0),
    (5e-4, "L2", 1.0),
    (5e-4, "L1", 1.0),
    (1e-3, "L2", 0.5),
]


def _sgd_inputs(dtype, n=10007):
    w = torch.randn(n, generator=gen(), dtype=dtype) * 0.05
    w[::97] = 0  # sign(0) = 0 for L1
    g = torch.randn(n, generator=gen(1), dtype=dtype) * 1e-2
    h = torch.randn(n, generator=gen(2), dtype=dtype) * 1e-3
    return w, g, h


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", SGD_CASES)
def test_sgd_update(mode, dtype, case):
    """One SGD step of one blob on both backends, from the same data, diff and history.

    The GPU op follows Caffe's GPU path: caffe_gpu_scal, caffe_gpu_axpy (L2) or caffe_gpu_sign +
    axpy (L1), then Caffe's fused SGDUpdate kernel ``g = h = momentum * h + local_rate * g``, then
    Blob::Update's caffe_gpu_axpy(-1, diff, data).  The CPU op runs ComputeUpdateValue as Caffe's
    CPU code does, caffe_cpu_axpby = scal(momentum, h) followed by axpy(local_rate, g, h).

    fast mode: both products of SGDUpdate are rounded on their own (--fmad=false) and our GPU
    axpy is unfused like the CPU seam's fast axpy, so the kernel computes
    RN(RN(momentum * h) + RN(local_rate * g)), exactly what the CPU's scal then unfused axpy
    computes: the same bits.

    exact mode: OpenBLAS's axpy fuses local_rate * g into the add (one rounding), SGDUpdate
    rounds it first; cuBLAS and OpenBLAS may also differ in fusing the decay axpy.  With S the
    sum of the magnitudes of the terms a result is made of (for history = diff:
    |momentum * h| + local_rate * |scaled g| + local_rate * |decay term|; for data: that + |w|),
    every intermediate is at most S, so each step's rounding differs by at most an ulp of S:
    the decay step's difference is scaled by local_rate (< 1), the update value's is at most
    half an ulp (the extra rounding of local_rate * g) plus one, the data update adds one more.
    Bound used: 4 ulps of S (a float32 simulation of both orders peaks at 2).
    """
    decay, reg, scale = case
    rate, momentum = 0.01, 0.9
    w, g, h = _sgd_inputs(dtype)
    gw, gg, gh = w.to(DEV), g.to(DEV), h.to(DEV)
    with R.blas_mode(mode):
        R.sgd_update(w, g, h, rate, momentum, decay, reg, scale)
        R.sgd_update(gw, gg, gh, rate, momentum, decay, reg, scale)
    if mode == "fast":
        for got, ref in ((gw, w), (gg, g), (gh, h)):
            same_bits(got, ref)
        return
    w0, g0, h0 = _sgd_inputs(dtype)
    decay_term = (w0 if reg == "L2" else w0.sign()).abs() * decay
    terms = (momentum * h0).abs() + rate * (scale * g0).abs() + rate * decay_term
    within_ulps(gh, h, 4, scale=terms)
    within_ulps(gg, g, 4, scale=terms)
    within_ulps(gw, w, 4, scale=terms + w0.abs())
    same_bits(gg, gh.cpu())  # diff = history after the update, as Caffe's kernel writes both


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blas_axpy_scal_dot(mode, dtype):
    """caffe_gpu_axpy / caffe_gpu_scal / caffe_gpu_dot against the CPU ops.

    scal is one rounded product per element on both backends (cuBLAS, torch's mul_, CBLAS, the
    CPU loop): the same bits.  axpy: the same bits in fast mode (unfused on both backends); in
    exact mode cuBLAS and OpenBLAS may differ in fusing the product (half an ulp of alpha * x, and
    the sum's rounding), so within 2 ulps of |y| + |alpha * x|.  dot: another summation order (cuBLAS's tree or torch's
    against OpenBLAS's blocks or the CPU's loop), so within the usual bound n * eps * sum|x y|."""
    n = 4099
    x = torch.randn(n, generator=gen(), dtype=dtype)
    y = torch.randn(n, generator=gen(1), dtype=dtype)
    xt = torch.randn(3, 50, generator=gen(2), dtype=dtype).t()  # non-contiguous x
    yt = torch.randn(50, 3, generator=gen(3), dtype=dtype)
    with R.blas_mode(mode):
        s, gs = y.clone(), y.to(DEV)
        R.scal(0.37, s)
        R.scal(0.37, gs)
        same_bits(gs, s)
        for xa, ya in ((x, y), (xt, yt)):
            a, ga = ya.clone(), ya.to(DEV)
            R.axpy(-0.3, xa, a)
            R.axpy(-0.3, xa.to(DEV), ga)
            if mode == "fast":
                same_bits(ga, a)
            else:
                within_ulps(ga, a, 2, scale=ya.abs() + 0.3 * xa.abs())
            d, gd = R.dot(xa, ya), R.dot(xa.to(DEV), ya.to(DEV))
            assert gd.dim() == 0 and gd.device.type == torch.device(DEV).type and gd.dtype == dtype
            bound = xa.numel() * torch.finfo(dtype).eps * (xa * ya).abs().sum()
            assert (gd.cpu() - d).abs() <= bound, f"dot {gd.item()} vs {d.item()} (bound {bound.item()})"


def test_solver_ops_errors():
    x = torch.randn(8, device=DEV)
    with pytest.raises(RuntimeError, match="blas_axpy: argument 'x' is on cpu"):
        R.axpy(1.0, x.cpu(), x)
    with pytest.raises(RuntimeError, match="must be contiguous"):
        R.scal(2.0, torch.randn(4, 4, device=DEV).t())
    with pytest.raises(RuntimeError, match="sgd_update: argument 'history' has dtype"):
        R.sgd_update(x, x.clone(), x.double(), 0.1, 0.9)
    with pytest.raises(RuntimeError, match="regularization must be 0"):
        ops.sgd_update(x, x.clone(), x.clone(), 0.1, 0.9, 0.0, 2, 1.0)
