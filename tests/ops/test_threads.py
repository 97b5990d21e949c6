"""Parallelism never changes a result bit: every op gives the same bits on 1 thread as on 2.

Exact mode for every op (each image's BLAS calls are Caffe's, single-threaded OpenBLAS); fast
mode for the ops whose arithmetic is ours alone (the matmul's own threading is torch's affair).
"""
import os

import pytest
import torch

from replicate import ops as R
from tests.ops.golden import exact_blas_ready

ops = torch.ops.replicate


def _cases():
    g = torch.Generator().manual_seed(7)
    r = lambda *s: torch.randn(*s, generator=g)
    x = r(5, 12, 15, 15) * 3
    w, b = r(8, 6, 3, 3), r(8)
    conv_top = ops.conv_forward(x, w, b, [2, 2], [1, 1], [1, 1], 2)
    pooled, mask = ops.pool_max_forward(x, [3, 3], [2, 2], [0, 0], True)
    lrn = ops.lrn_across_forward(x, 5, 1e-2, 0.75, 1.0)
    within = ops.lrn_within_forward(x, 3, 1e-2, 0.75)
    fc, lab = r(9, 10), torch.arange(9) % 10
    prob = ops.softmax_loss_forward(fc, lab, 1, 1, None)[1]
    conv_diff, ip_diff, ip_w = r(*conv_top.shape), r(5, 8), r(8, 12 * 15 * 15)
    # 3x3 stride 1 with 16 channels a group: fast mode's Winograd kernel, 40 images in 3 chunks (the
    # last of 8; a batch must fill its chunks 3/4 on average for Winograd to take it)
    wx, ww, wb = r(40, 32, 9, 9), r(32, 16, 3, 3), r(32)
    wtop = ops.conv_forward(wx, ww, wb, [1, 1], [1, 1], [1, 1], 2, relu_slope=0.1)
    wdiff = r(*wtop.shape)
    # one chunk of 16 images: its phases (transforms, the 16 GEMMs) split over the threads
    ox, ow, ob = r(16, 16, 11, 11), r(24, 16, 3, 3), r(24)
    otop = ops.conv_forward(ox, ow, ob, [1, 1], [1, 1], [1, 1], 1)
    odiff = r(*otop.shape)
    cases = {
        "conv_forward": (True, lambda: ops.conv_forward(x, w, b, [2, 2], [1, 1], [1, 1], 2)),
        "conv_backward": (True, lambda: ops.conv_backward(conv_diff, x, w, [2, 2], [1, 1], [1, 1], 2,
                                                          [True, True, True])),
        "conv_winograd": (True, lambda: (
            ops.conv_forward(wx, ww, wb, [1, 1], [1, 1], [1, 1], 2, relu_slope=0.1),
            ops.conv_backward(wdiff, wx, ww, [1, 1], [1, 1], [1, 1], 2, [True, True, True], relu_top=wtop,
                              relu_slope=0.1))),
        "conv_winograd_one_chunk": (True, lambda: (
            ops.conv_forward(ox, ow, ob, [1, 1], [1, 1], [1, 1], 1),
            ops.conv_backward(odiff, ox, ow, [1, 1], [1, 1], [1, 1], 1, [True, True, True]))),
        "inner_product_backward": (True, lambda: ops.inner_product_backward(
            ip_diff, x.reshape(5, -1), ip_w, False, [True, True, True])),
        "lrn_across": (True, lambda: ops.lrn_across_backward(x, x, *lrn, 5, 1e-2, 0.75)),
        "lrn_within": (False, lambda: ops.lrn_within_backward(x, x, within[1], within[2], 3, 1e-2, 0.75)),
        "pool_max": (False, lambda: (ops.pool_max_forward(x, [3, 3], [2, 2], [0, 0], True),
                                     ops.pool_max_backward(pooled, mask, list(x.shape)))),
        "pool_ave": (False, lambda: ops.pool_ave_backward(pooled, list(x.shape), [3, 3], [2, 2], [0, 0])),
        "im2col": (False, lambda: ops.col2im(ops.im2col(x, [3, 3], [1, 1], [2, 2], [1, 1]), [15, 15], 12,
                                              [3, 3], [1, 1], [2, 2], [1, 1])),
        "softmax": (True, lambda: (ops.softmax_loss_forward(fc, lab, 1, 1, None),
                                   ops.softmax_loss_backward(torch.tensor(1.0), prob, lab, 1, 1, None))),
        "relu": (False, lambda: ops.relu_backward(x, x, 0.1)),
    }
    return cases


def _flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _flat(o)]


def _bits(ts):
    return [t.contiguous().view(torch.int32 if t.dtype == torch.float32 else t.dtype) for t in ts]


@pytest.mark.parametrize("mode", ["exact", "fast"])
@pytest.mark.parametrize("name", sorted(_cases()))
def test_thread_count_does_not_change_bits(name, mode):
    if mode == "exact":
        exact_blas_ready()
    uses_matmul, fn = _cases()[name]
    if mode == "fast" and uses_matmul:
        if os.environ.get("REPLICATE_FAST_GEMM") == "torch":
            pytest.skip("REPLICATE_FAST_GEMM=torch: fast mode's matmul is torch's; its threading is not ours to pin")
        exact_blas_ready()  # fast mode's GEMMs go to the same CBLAS when it loads
    prev = torch.get_num_threads()
    try:
        with R.blas_mode(mode):
            torch.set_num_threads(1)
            one = _bits(_flat(fn()))
            torch.set_num_threads(2)
            two = _bits(_flat(fn()))
    finally:
        torch.set_num_threads(prev)
    assert len(one) == len(two)
    for i, (a, b) in enumerate(zip(one, two)):
        assert torch.equal(a, b), f"{name} output {i}: 1 thread and 2 threads differ"
