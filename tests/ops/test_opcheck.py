"""torch.library.opcheck for every op of the ``replicate`` namespace.

opcheck runs test_schema (no hidden mutation or aliasing), test_autograd_registration (the
autograd formula is registered at the Autograd key), test_faketensor (the fake kernels in
replicate/ops.py give the real kernel's sizes, strides and dtypes) and test_aot_dispatch_dynamic
(eager and compiled outputs and gradients agree under dynamic shapes).

Forward ops that are differentiable take inputs with requires_grad so their autograd
registration is exercised; backward ops (and accuracy_forward, which has no backward in Caffe)
take plain tensors.  ``test_every_op_has_a_case`` fails when an op is added to the namespace
without a case here.
"""
from __future__ import annotations

import pytest
import torch

from replicate import ops as R  # registers the ops, their fake kernels and autograd formulas

ops = torch.ops.replicate

DTYPES = [torch.float32, torch.float64]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(dtype, *shape, seed=0, grad=False):
    t = torch.randn(*shape, generator=_gen(seed), dtype=torch.float64).to(dtype)
    return t.requires_grad_(grad)


def distinct(dtype, *shape, seed=0, grad=False):
    """Values with distinct magnitudes (no ties for max pooling / accuracy)."""
    n = 1
    for s in shape:
        n *= s
    t = (torch.randperm(n, generator=_gen(seed)).to(torch.float64) / n - 0.5).reshape(shape).to(dtype)
    return t.requires_grad_(grad)


def mask01(*shape, seed=0):
    return (torch.rand(*shape, generator=_gen(seed)) > 0.4).to(torch.int32)


def labels(n_classes, *shape, seed=0, dtype=torch.int64):
    return torch.randint(0, n_classes, shape, generator=_gen(seed)).to(dtype)


# ---------------------------------------------------------------------------------------------
# Geometries shared by forward and backward cases.
# conv: (N, C, H, W, Cout, kernel, stride, pad, dilation, group, bias)
CONV = {
    "3x3_pad1_bias": (2, 3, 6, 5, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),
    "group2_stride2_nonsquare": (2, 4, 7, 6, 6, (3, 2), (2, 1), (1, 0), (1, 1), 2, False),
    "1x1_bias": (3, 5, 4, 4, 2, (1, 1), (1, 1), (0, 0), (1, 1), 1, True),
    "1x1_stride2": (1, 3, 5, 5, 2, (1, 1), (2, 2), (0, 0), (1, 1), 1, True),
    "dilation2_pad2": (2, 2, 7, 7, 3, (3, 3), (1, 1), (2, 2), (2, 2), 1, True),
    "dilation_hw_stride": (1, 2, 9, 8, 2, (2, 3), (2, 3), (1, 2), (3, 1), 1, True),
    "depthwise": (2, 4, 5, 5, 4, (3, 3), (1, 1), (1, 1), (1, 1), 4, True),
    "single_image": (1, 3, 5, 5, 3, (2, 2), (1, 1), (0, 0), (1, 1), 1, False),
}

# pooling: (N, C, H, W, kernel, stride, pad, ceil_mode)
POOL = {
    "k3s2_ceil": (2, 3, 7, 7, (3, 3), (2, 2), (0, 0), True),
    "k3s2_ceil_partial_last": (1, 2, 6, 6, (3, 3), (2, 2), (0, 0), True),
    # ceil gives 4 outputs, but the last window would start in the padding: Caffe drops it (3)
    "k2s2_pad1_last_dropped": (2, 2, 5, 5, (2, 2), (2, 2), (1, 1), True),
    "nonsquare_pad": (1, 3, 7, 6, (3, 2), (2, 1), (1, 0), True),
    "floor": (2, 2, 6, 7, (3, 3), (2, 2), (1, 1), False),
    "global": (2, 3, 4, 5, (4, 5), (1, 1), (0, 0), True),
}


def test_pool_geometry_drops_last_window():
    """The 'last window dropped' case really exercises Caffe's rule (ceil would give 4)."""
    n, c, h, w, k, s, p, ceil = POOL["k2s2_pad1_last_dropped"]
    out = ops.pool_max_forward(torch.randn(n, c, h, w), list(k), list(s), list(p), ceil)[0]
    assert out.shape[-2:] == (3, 3)
    assert R.pooled_size(h, k[0], s[0], p[0], True) == 3
    assert -(-(h + 2 * p[0] - k[0]) // s[0]) + 1 == 4


def conv_args(name, dtype, grad):
    n, c, h, w, cout, k, s, p, d, g, bias = CONV[name]
    x = randn(dtype, n, c, h, w, seed=1, grad=grad)
    wt = randn(dtype, cout, c // g, *k, seed=2, grad=grad)
    b = randn(dtype, cout, seed=3, grad=grad) if bias else None
    return x, wt, b, list(s), list(p), list(d), g


def conv_out_shape(name):
    n, c, h, w, cout, k, s, p, d, g, _ = CONV[name]
    return (n, cout, R.conv_out(h, k[0], p[0], s[0], d[0]), R.conv_out(w, k[1], p[1], s[1], d[1]))


def pool_args(name, dtype, grad):
    n, c, h, w, k, s, p, ceil = POOL[name]
    return distinct(dtype, n, c, h, w, seed=4, grad=grad), list(k), list(s), list(p), ceil


# ---------------------------------------------------------------------------------------------
# Cases: op name -> list of (id, builder(dtype) -> args)

CASES: dict[str, list] = {}


def case(op_name, case_id):
    def deco(fn):
        CASES.setdefault(op_name, []).append((case_id, fn))
        return fn
    return deco


IM2COL = {  # (shape, kernel, pad, stride, dilation)
    "4d_nonsquare_stride_pad": ((2, 3, 6, 5), (3, 2), (1, 0), (2, 1), (1, 1)),
    "3d_dilation": ((2, 7, 6), (2, 2), (0, 1), (1, 1), (2, 1)),
    "1x1": ((1, 4, 3, 3), (1, 1), (0, 0), (1, 1), (1, 1)),
}


def im2col_out(shape, k, p, s, d):
    c, h, w = shape[-3:]
    oh, ow = R.conv_out(h, k[0], p[0], s[0], d[0]), R.conv_out(w, k[1], p[1], s[1], d[1])
    return (*shape[:-3], c * k[0] * k[1], oh * ow)


for _name, (_shape, _k, _p, _s, _d) in IM2COL.items():
    case("im2col", _name)(lambda dt, sh=_shape, k=_k, p=_p, s=_s, d=_d:
                          (randn(dt, *sh, grad=True), list(k), list(p), list(s), list(d)))
    case("col2im", _name)(lambda dt, sh=_shape, k=_k, p=_p, s=_s, d=_d:
                          (randn(dt, *im2col_out(sh, k, p, s, d), grad=True), list(sh[-2:]), sh[-3],
                           list(k), list(p), list(s), list(d)))

for _name in CONV:
    case("conv_forward", _name)(lambda dt, n=_name: conv_args(n, dt, True))

for _name, _mask in [("3x3_pad1_bias", [True, True, True]), ("group2_stride2_nonsquare", [True, True, False]),
                     ("1x1_bias", [True, False, True]), ("1x1_stride2", [False, True, True]),
                     ("dilation2_pad2", [True, True, True]), ("dilation_hw_stride", [False, False, True]),
                     ("depthwise", [True, True, True])]:
    def _conv_bwd(dt, n=_name, m=_mask):
        x, w, _, s, p, d, g = conv_args(n, dt, False)
        return (randn(dt, *conv_out_shape(n), seed=5), x, w, s, p, d, g, m)
    case("conv_backward", _name)(_conv_bwd)


@case("conv_backward", "accumulate_into_diffs")
def _(dt):
    x, w, _, s, p, d, g = conv_args("group2_stride2_nonsquare", dt, False)
    go = randn(dt, *conv_out_shape("group2_stride2_nonsquare"), seed=5)
    return (go, x, w, s, p, d, g, [True, True, True], randn(dt, *w.shape, seed=6), randn(dt, w.shape[0], seed=7))


for _name in POOL:
    case("pool_max_forward", _name)(lambda dt, n=_name: pool_args(n, dt, True))
    case("pool_ave_forward", _name)(lambda dt, n=_name: pool_args(n, dt, True))

    def _max_bwd(dt, n=_name):
        x, k, s, p, ceil = pool_args(n, dt, False)
        top, mask = ops.pool_max_forward(x, k, s, p, ceil)
        return randn(dt, *top.shape, seed=8), mask, list(x.shape)

    def _ave_bwd(dt, n=_name):
        x, k, s, p, ceil = pool_args(n, dt, False)
        top = ops.pool_ave_forward(x, k, s, p, ceil)
        return randn(dt, *top.shape, seed=8), list(x.shape), k, s, p

    case("pool_max_backward", _name)(_max_bwd)
    case("pool_ave_backward", _name)(_ave_bwd)

LRN_ACROSS = {  # (shape, size, alpha, beta, k)
    "alexnet_like": ((2, 7, 3, 4), 5, 1e-4, 0.75, 1.0),
    "k2_size3": ((1, 4, 3, 3), 3, 0.5, 0.75, 2.0),
    "size_gt_channels": ((2, 3, 2, 2), 5, 1.0, 0.75, 1.0),
    "size1": ((1, 3, 2, 3), 1, 0.3, 0.5, 1.5),
}
for _name, (_shape, _size, _a, _b, _k) in LRN_ACROSS.items():
    case("lrn_across_forward", _name)(lambda dt, sh=_shape, n=_size, a=_a, b=_b, k=_k:
                                      (randn(dt, *sh, grad=True), n, a, b, k))

    def _lrn_across_bwd(dt, sh=_shape, n=_size, a=_a, b=_b, k=_k):
        x = randn(dt, *sh)
        top, scale, power = ops.lrn_across_forward(x, n, a, b, k)
        return randn(dt, *sh, seed=9), x, top, scale, power, n, a, b

    case("lrn_across_backward", _name)(_lrn_across_bwd)

LRN_WITHIN = {  # (shape, size, alpha, beta)
    "size3": ((2, 2, 5, 4), 3, 0.5, 0.75),
    "size5_on_small_plane": ((1, 3, 3, 3), 5, 1.0, 0.75),
    "size1": ((1, 2, 3, 2), 1, 0.2, 0.6),
}
for _name, (_shape, _size, _a, _b) in LRN_WITHIN.items():
    case("lrn_within_forward", _name)(lambda dt, sh=_shape, n=_size, a=_a, b=_b:
                                      (randn(dt, *sh, grad=True), n, a, b))

    def _lrn_within_bwd(dt, sh=_shape, n=_size, a=_a, b=_b):
        x = randn(dt, *sh)
        _, pooled, powered = ops.lrn_within_forward(x, n, a, b)
        return randn(dt, *sh, seed=9), x, pooled, powered, n, a, b

    case("lrn_within_backward", _name)(_lrn_within_bwd)

IP = {  # (M, K, N, transpose, bias)
    "bias": (4, 6, 3, False, True),
    "no_bias": (3, 5, 2, False, False),
    "transpose_bias": (2, 7, 4, True, True),
    "transpose_no_bias": (5, 3, 6, True, False),
}


def ip_args(name, dt, grad):
    m, k, n, t, bias = IP[name]
    w = randn(dt, *((k, n) if t else (n, k)), seed=2, grad=grad)
    b = randn(dt, n, seed=3, grad=grad) if bias else None
    return randn(dt, m, k, seed=1, grad=grad), w, b, t


for _name in IP:
    case("inner_product_forward", _name)(lambda dt, n=_name: ip_args(n, dt, True))

for _name, _mask in [("bias", [True, True, True]), ("no_bias", [True, True, False]),
                     ("transpose_bias", [False, True, True]), ("transpose_no_bias", [True, False, False])]:
    def _ip_bwd(dt, n=_name, mask=_mask):
        x, w, _, t = ip_args(n, dt, False)
        return randn(dt, IP[n][0], IP[n][2], seed=5), x, w, t, mask
    case("inner_product_backward", _name)(_ip_bwd)


@case("inner_product_backward", "accumulate_into_diffs")
def _(dt):
    x, w, _, t = ip_args("transpose_bias", dt, False)
    n = IP["transpose_bias"][2]
    return (randn(dt, x.shape[0], n, seed=5), x, w, t, [True, True, True], randn(dt, *w.shape, seed=6),
            randn(dt, n, seed=7))


for _name, _shape, _slope in [("relu_4d", (2, 3, 4, 5), 0.0), ("leaky_3d", (3, 4, 5), 0.1),
                              ("leaky_1d", (7,), 0.25)]:
    case("relu_forward", _name)(lambda dt, sh=_shape, sl=_slope: (randn(dt, *sh, grad=True), sl))
    case("relu_backward", _name)(lambda dt, sh=_shape, sl=_slope: (randn(dt, *sh, seed=5), randn(dt, *sh), sl))
    case("relu_backward_", _name)(lambda dt, sh=_shape, sl=_slope: (randn(dt, *sh, seed=5), randn(dt, *sh), sl))

for _name, _shape, _ratio in [("half", (2, 3, 4, 4), 0.5), ("ratio0.3_2d", (5, 6), 0.3), ("ratio0", (4,), 0.0)]:
    case("dropout_forward", _name)(lambda dt, sh=_shape, r=_ratio: (randn(dt, *sh, grad=True), mask01(*sh), r))
    case("dropout_backward", _name)(lambda dt, sh=_shape, r=_ratio: (randn(dt, *sh, seed=5), mask01(*sh), r))

for _name, _shape, _axis in [("2d_axis1", (4, 10), 1), ("4d_axis1", (2, 5, 3, 2), 1), ("axis0", (3, 4), 0),
                             ("axis_neg1", (2, 3, 6), -1)]:
    case("softmax_forward", _name)(lambda dt, sh=_shape, a=_axis: (randn(dt, *sh, grad=True), a))

    def _softmax_bwd(dt, sh=_shape, a=_axis):
        return randn(dt, *sh, seed=5), ops.softmax_forward(randn(dt, *sh), a), a

    case("softmax_backward", _name)(_softmax_bwd)

# (shape, axis, normalization, ignore_label, label dtype)
SOFTMAX_LOSS = {
    "2d_valid": ((6, 5), 1, 1, None, torch.int64),
    "2d_full_float_labels": ((6, 5), 1, 0, None, torch.float32),
    "4d_spatial_batch_size": ((2, 4, 3, 2), 1, 2, None, torch.int64),
    "4d_none_ignore": ((2, 4, 3, 2), 1, 3, 2, torch.int32),
    "valid_ignore": ((8, 3), 1, 1, 0, torch.int64),
    "full_ignore": ((8, 3), 1, 0, 1, torch.int64),
}


def loss_labels(shape, axis, ignore, ldtype):
    axis = axis % len(shape)
    lshape = shape[:axis] + shape[axis + 1:]
    lab = labels(shape[axis], *lshape, seed=10, dtype=torch.int64)
    if ignore is not None:  # make sure some are ignored and some are not
        lab.view(-1)[0] = ignore
        lab.view(-1)[1] = (ignore + 1) % shape[axis]
    return lab.to(ldtype)


for _name, (_shape, _axis, _norm, _ign, _ldt) in SOFTMAX_LOSS.items():
    case("softmax_loss_forward", _name)(lambda dt, sh=_shape, a=_axis, n=_norm, i=_ign, l=_ldt:
                                        (randn(dt, *sh, grad=True), loss_labels(sh, a, i, l), a, n, i))

    def _sl_bwd(dt, sh=_shape, a=_axis, n=_norm, i=_ign, l=_ldt):
        lab = loss_labels(sh, a, i, l)
        _, prob = ops.softmax_loss_forward(randn(dt, *sh), lab, a, n, i)
        return torch.tensor(0.7, dtype=dt), prob, lab, a, n, i

    case("softmax_loss_backward", _name)(_sl_bwd)

for _name, _shape, _axis, _k, _ign in [("top1", (8, 5), 1, 1, None), ("top3", (8, 5), 1, 3, None),
                                       ("spatial_ignore", (2, 4, 3, 2), 1, 2, 1), ("axis_last", (3, 2, 6), -1, 1, None)]:
    case("accuracy_forward", _name)(lambda dt, sh=_shape, a=_axis, k=_k, i=_ign:
                                    (distinct(dt, *sh), loss_labels(sh, a, i, torch.int64), a, k, i))


# The solver's in-place BLAS steps.
for _name, _shape, _decay, _reg, _scale in [("l2", (4, 3, 2), 0.0005, 0, 1.0), ("l1_iter_size", (7,), 0.01, 1, 0.5),
                                            ("no_decay", (40,), 0.0, 0, 1.0)]:
    case("sgd_update", _name)(lambda dt, sh=_shape, d=_decay, r=_reg, s=_scale:
                              (randn(dt, *sh), randn(dt, *sh, seed=1), randn(dt, *sh, seed=2), 0.01, 0.9, d, r, s))
case("blas_axpy", "vec")(lambda dt: (-0.5, randn(dt, 37), randn(dt, 37, seed=1)))
case("blas_axpy", "4d")(lambda dt: (2.0, randn(dt, 2, 3, 4, 5), randn(dt, 2, 3, 4, 5, seed=1)))
case("blas_scal", "vec")(lambda dt: (0.25, randn(dt, 33)))
case("blas_dot", "vec")(lambda dt: (randn(dt, 70), randn(dt, 70, seed=1)))
case("blas_dot", "scalar")(lambda dt: (randn(dt, 1), randn(dt, 1, seed=1)))


# ---------------------------------------------------------------------------------------------
# Ops whose layers call the backward op directly (no op-level autograd registration): their
# forward cases take plain tensors, and opcheck's autograd-registration test is skipped for them
# (it needs an input with requires_grad).

def pos(dtype, *shape, seed=0, lo=0.5):
    """Positive values (log / fractional power / solver histories)."""
    return randn(dtype, *shape, seed=seed).abs() + lo


NEURON_SHAPES = [("4d", (2, 3, 2, 2)), ("1d", (7,))]

for _name, _shape in NEURON_SHAPES:
    for _op in ("absval", "bnll", "sigmoid", "tanh"):
        case(f"{_op}_forward", _name)(lambda dt, sh=_shape: (randn(dt, *sh),))
    for _op in ("absval", "bnll"):  # backward(grad_output, input)
        case(f"{_op}_backward", _name)(lambda dt, sh=_shape: (randn(dt, *sh, seed=5), randn(dt, *sh)))
    case("sigmoid_backward", _name)(lambda dt, sh=_shape: (randn(dt, *sh, seed=5),
                                                          ops.sigmoid_forward(randn(dt, *sh))))
    case("tanh_backward", _name)(lambda dt, sh=_shape: (randn(dt, *sh, seed=5), ops.tanh_forward(randn(dt, *sh))))

for _name, _alpha in [("alpha1", 1.0), ("alpha0.5", 0.5)]:
    case("elu_forward", _name)(lambda dt, a=_alpha: (randn(dt, 2, 3, 4), a))

    def _elu_bwd(dt, a=_alpha):
        x = randn(dt, 2, 3, 4)
        return randn(dt, 2, 3, 4, seed=5), x, ops.elu_forward(x, a), a

    case("elu_backward", _name)(_elu_bwd)

# (base, scale, shift): base -1 is e
for _name, _p in [("natural", (-1.0, 1.0, 0.0)), ("base2_scale_shift", (2.0, 0.5, 1.0))]:
    case("exp_forward", _name)(lambda dt, p=_p: (randn(dt, 3, 5), *p))

    def _exp_bwd(dt, p=_p):
        return randn(dt, 3, 5, seed=5), ops.exp_forward(randn(dt, 3, 5), *p), *p

    case("exp_backward", _name)(_exp_bwd)
    case("log_forward", _name)(lambda dt, p=_p: (pos(dt, 3, 5), *p))
    case("log_backward", _name)(lambda dt, p=_p: (randn(dt, 3, 5, seed=5), pos(dt, 3, 5), *p))

# (power, scale, shift): each of power_backward's branches
for _name, _p in [("square", (2.0, 1.5, 0.5)), ("power1", (1.0, 2.0, 1.0)), ("sqrt_no_shift", (0.5, 1.0, 0.0)),
                  ("general", (1.5, 0.5, 1.0)), ("constant", (3.0, 0.0, 2.0))]:
    case("power_forward", _name)(lambda dt, p=_p: (pos(dt, 2, 3, 2), *p))

    def _power_bwd(dt, p=_p):
        x = pos(dt, 2, 3, 2)
        return randn(dt, 2, 3, 2, seed=5), x, ops.power_forward(x, *p), *p

    case("power_backward", _name)(_power_bwd)

for _name, _shared in [("per_channel", False), ("channel_shared", True)]:
    _slope = lambda dt, shared: randn(dt, *((1,) if shared else (3,)), seed=3) * 0.25  # noqa: E731
    case("prelu_forward", _name)(lambda dt, s=_shared: (randn(dt, 2, 3, 2, 2), _slope(dt, s), s))
    for _mask in ([True, True], [True, False], [False, True]):
        case("prelu_backward", f"{_name}_{int(_mask[0])}{int(_mask[1])}")(
            lambda dt, s=_shared, m=_mask: (randn(dt, 2, 3, 2, 2, seed=5), randn(dt, 2, 3, 2, 2), _slope(dt, s), s, m))
    case("prelu_backward", f"{_name}_accumulate")(
        lambda dt, s=_shared: (randn(dt, 2, 3, 2, 2, seed=5), randn(dt, 2, 3, 2, 2), _slope(dt, s), s, [True, True],
                               randn(dt, *((1,) if s else (3,)), seed=6)))

case("threshold_forward", "t0")(lambda dt: (randn(dt, 2, 3, 4), 0.0))
case("threshold_forward", "t0.3_1d")(lambda dt: (randn(dt, 9), 0.3))
case("clip_forward", "sym")(lambda dt: (randn(dt, 2, 3, 4), -0.5, 0.5))
case("clip_backward", "sym")(lambda dt: (randn(dt, 2, 3, 4, seed=5), randn(dt, 2, 3, 4), -0.5, 0.5))
case("clip_backward", "asym_1d")(lambda dt: (randn(dt, 9, seed=5), randn(dt, 9), -1.0, 0.2))

for _name, _beta in [("beta1", 1.0), ("beta0.5", 0.5)]:
    case("swish_forward", _name)(lambda dt, b=_beta: (randn(dt, 2, 3, 4), b))

    def _swish_bwd(dt, b=_beta):
        top, sig = ops.swish_forward(randn(dt, 2, 3, 4), b)
        return randn(dt, 2, 3, 4, seed=5), top, sig, b

    case("swish_backward", _name)(_swish_bwd)

# losses
case("euclidean_loss_forward", "2d")(lambda dt: (randn(dt, 4, 3), randn(dt, 4, 3, seed=1)))
case("euclidean_loss_forward", "4d")(lambda dt: (randn(dt, 2, 3, 2, 1), randn(dt, 2, 3, 2, 1, seed=1)))
case("euclidean_loss_backward", "plus")(lambda dt: (torch.tensor(0.7, dtype=dt), randn(dt, 4, 3), 1.0, 4))
case("euclidean_loss_backward", "minus")(lambda dt: (torch.tensor(1.0, dtype=dt), randn(dt, 2, 3, 2), -1.0, 2))

for _norm in (1, 2):
    case("hinge_loss_forward", f"L{_norm}")(lambda dt, n=_norm: (randn(dt, 5, 4), labels(4, 5, seed=10), n))

    def _hinge_bwd(dt, n=_norm):
        lab = labels(4, 5, seed=10)
        _, diff = ops.hinge_loss_forward(randn(dt, 5, 4), lab, n)
        return torch.tensor(0.7, dtype=dt), diff, lab, n

    case("hinge_loss_backward", f"L{_norm}")(_hinge_bwd)


def _sce_target(dt, shape, ignore):
    t = (torch.rand(*shape, generator=_gen(12)) > 0.5).to(dt)
    if ignore is not None:
        t.view(-1)[0] = ignore
    return t


for _name, _shape, _norm, _ign in [("valid", (4, 3), 1, None), ("full_ignore", (2, 3, 2), 0, -1),
                                   ("batch_size", (3, 4), 2, None), ("valid_ignore", (4, 3), 1, -1)]:
    case("sigmoid_cross_entropy_loss_forward", _name)(
        lambda dt, sh=_shape, n=_norm, i=_ign: (randn(dt, *sh), _sce_target(dt, sh, i), n, i))

    def _sce_bwd(dt, sh=_shape, n=_norm, i=_ign):
        tg = _sce_target(dt, sh, i)
        _, sig, norm = ops.sigmoid_cross_entropy_loss_forward(randn(dt, *sh), tg, n, i)
        return torch.tensor(0.7, dtype=dt), sig, tg, norm, i

    case("sigmoid_cross_entropy_loss_backward", _name)(_sce_bwd)

for _name, _ldt in [("int_labels", torch.int64), ("float_labels", torch.float32)]:
    def _mll(dt, l=_ldt):
        return randn(dt, 5, 4).softmax(1), labels(4, 5, seed=10, dtype=l)

    case("multinomial_logistic_loss_forward", _name)(_mll)
    case("multinomial_logistic_loss_backward", _name)(lambda dt, f=_mll: (torch.tensor(0.7, dtype=dt), *f(dt)))


def _contrastive_y(dt):
    return torch.tensor([1, 0, 0, 1, 0], dtype=dt)


for _name, _margin, _legacy in [("margin1", 1.0, False), ("legacy", 2.0, True)]:
    # small b - a so some dissimilar pairs are inside the margin and some outside
    def _pair(dt):
        a = randn(dt, 5, 3, 1, 1)
        return a, a + 0.3 * randn(dt, 5, 3, 1, 1, seed=1)

    case("contrastive_loss_forward", _name)(lambda dt, m=_margin, lg=_legacy, p=_pair:
                                            (*p(dt), _contrastive_y(dt), m, lg))
    for _sign in (1.0, -1.0):
        def _con_bwd(dt, m=_margin, lg=_legacy, sg=_sign, p=_pair):
            _, diff, d2 = ops.contrastive_loss_forward(*p(dt), _contrastive_y(dt), m, lg)
            return torch.tensor(0.7, dtype=dt), diff, d2, _contrastive_y(dt), m, lg, sg

        case("contrastive_loss_backward", f"{_name}_sign{int(_sign)}")(_con_bwd)

# (prob shape, axis, normalization, ignore_label)
INFOGAIN = {
    "2d_valid": ((5, 4), 1, 1, None),
    "4d_spatial_full": ((2, 3, 2, 2), 1, 0, None),
    "ignore_batch": ((6, 3), 1, 2, 0),
    "axis_last_none": ((2, 2, 4), -1, 3, None),
}


def _infogain_args(dt, sh, a, n, i):
    prob = randn(dt, *sh).softmax(a)
    k = sh[a]
    H = (torch.eye(k, dtype=torch.float64) + 0.1 * torch.rand(k, k, generator=_gen(13), dtype=torch.float64)).to(dt)
    return prob, loss_labels(sh, a, i, torch.int64), H, a, n, i


for _name, (_shape, _axis, _norm, _ign) in INFOGAIN.items():
    case("infogain_loss_forward", _name)(lambda dt, sh=_shape, a=_axis, n=_norm, i=_ign:
                                         _infogain_args(dt, sh, a, n, i))
    case("infogain_loss_backward", _name)(lambda dt, sh=_shape, a=_axis, n=_norm, i=_ign:
                                          (torch.tensor(0.7, dtype=dt), *_infogain_args(dt, sh, a, n, i)))


# LSTMUnit: c_prev (1, N, D), x (1, N, 4D), cont (1, N) (one sequence start: cont 0)
def _lstm_args(dt, n=3, d=2):
    cont = torch.ones(1, n, dtype=dt)
    cont[0, 0] = 0
    return randn(dt, 1, n, d), randn(dt, 1, n, 4 * d, seed=1), cont


case("lstm_unit_forward", "n3_d2")(lambda dt: _lstm_args(dt))
case("lstm_unit_forward", "n1_d1")(lambda dt: _lstm_args(dt, 1, 1))


def _lstm_bwd(dt, n=3, d=2):
    c_prev, x, cont = _lstm_args(dt, n, d)
    c, _ = ops.lstm_unit_forward(c_prev, x, cont)
    return randn(dt, 1, n, d, seed=5), randn(dt, 1, n, d, seed=6), c_prev, x, cont, c


case("lstm_unit_backward", "n3_d2")(_lstm_bwd)
case("lstm_unit_backward", "n1_d1")(lambda dt: _lstm_bwd(dt, 1, 1))

# group B's BLAS-level steps (Caffe's arguments; row-major contiguous operands), in place
for _ta, _tb in [(0, 0), (1, 0), (0, 1), (1, 1)]:
    def _gemm(dt, ta=_ta, tb=_tb, M=3, N=4, K=5):
        A = randn(dt, *((K, M) if ta else (M, K)), seed=1)
        B = randn(dt, *((N, K) if tb else (K, N)), seed=2)
        return ta, tb, M, N, K, 0.5, A, B, 0.25, randn(dt, M, N, seed=3)

    case("blas_gemm", f"t{_ta}{_tb}")(_gemm)
case("blas_gemm", "beta0_flat")(lambda dt: (0, 0, 2, 3, 4, 1.0, randn(dt, 8, seed=1), randn(dt, 12, seed=2), 0.0,
                                            randn(dt, 6, seed=3)))
case("blas_gemv", "notrans")(lambda dt: (0, 3, 4, 0.5, randn(dt, 3, 4, seed=1), randn(dt, 4, seed=2), 0.25,
                                         randn(dt, 3, seed=3)))
case("blas_gemv", "trans_beta0")(lambda dt: (1, 3, 4, 1.0, randn(dt, 3, 4, seed=1), randn(dt, 3, seed=2), 0.0,
                                             randn(dt, 4, seed=3)))
case("blas_axpby", "vec")(lambda dt: (-0.5, randn(dt, 37), 0.25, randn(dt, 37, seed=1)))
case("blas_axpby", "4d_beta0")(lambda dt: (2.0, randn(dt, 2, 3, 2, 2), 0.0, randn(dt, 2, 3, 2, 2, seed=1)))
case("blas_asum", "vec")(lambda dt: (randn(dt, 33),))
case("blas_asum", "4d")(lambda dt: (randn(dt, 2, 3, 2, 2),))
case("powx", "square")(lambda dt: (randn(dt, 2, 3, 4), 2.0))
case("powx", "sqrt")(lambda dt: (pos(dt, 7), 0.5))
case("powx", "neg_power")(lambda dt: (pos(dt, 3, 4), -0.75))
case("scale_chunks", "per_channel")(lambda dt: (randn(dt, 2, 3, 2, 2), randn(dt, 3, seed=1), 4))
case("scale_chunks", "one_scale")(lambda dt: (randn(dt, 3, 5), randn(dt, 1, seed=1), 5))
case("scale_chunks", "inner1")(lambda dt: (randn(dt, 4, 3), randn(dt, 3, seed=1), 1))

# Caffe's other solvers' per-blob updates (histories non-negative where the solver takes a root)
SOLVER_REG = [("l2", (4, 3, 2), 0.0005, 0, 1.0), ("l1_iter_size", (7,), 0.01, 1, 0.5), ("no_decay", (40,), 0.0, 0, 1.0)]
for _name, _shape, _decay, _reg, _scale in SOLVER_REG:
    def _wdh(dt, sh=_shape):
        return randn(dt, *sh), randn(dt, *sh, seed=1), pos(dt, *sh, seed=2, lo=0.0)

    case("nesterov_update", _name)(lambda dt, w=_wdh, d=_decay, r=_reg, s=_scale: (*w(dt), 0.01, 0.9, d, r, s))
    case("adagrad_update", _name)(lambda dt, w=_wdh, d=_decay, r=_reg, s=_scale: (*w(dt), 0.01, 1e-8, d, r, s))
    case("rmsprop_update", _name)(lambda dt, w=_wdh, d=_decay, r=_reg, s=_scale:
                                  (*w(dt), 0.01, 0.98, 1e-8, d, r, s))
    case("adadelta_update", _name)(lambda dt, w=_wdh, sh=_shape, d=_decay, r=_reg, s=_scale:
                                   (*w(dt), pos(dt, *sh, seed=3, lo=0.0), 1.0, 0.95, 1e-6, d, r, s))
    for _t in (1, 5):
        case("adam_update", f"{_name}_t{_t}")(lambda dt, w=_wdh, sh=_shape, d=_decay, r=_reg, s=_scale, t=_t:
                                              (*w(dt), pos(dt, *sh, seed=3, lo=0.0), 0.001, 0.9, 0.999, 1e-8, t,
                                               d, r, s))


# ---------------------------------------------------------------------------------------------
# Tests

ALL_CASES = [(op_name, cid, fn) for op_name, cases in CASES.items() for cid, fn in cases]


def _ids():
    return [f"{op_name}-{cid}" for op_name, cid, _ in ALL_CASES]


def replicate_ops() -> set[str]:
    """Every op defined in the namespace, from the dispatcher (not only those Python touched)."""
    return {name.split("::", 1)[1] for name in torch._C._dispatch_get_all_op_names()
            if name.startswith("replicate::")}


def test_every_op_has_a_case():
    defined = replicate_ops()
    assert len(defined) >= 23, f"only {sorted(defined)} registered: is the extension loaded?"
    missing = defined - set(CASES)
    assert not missing, f"ops without an opcheck case: {sorted(missing)}"
    stale = set(CASES) - defined
    assert not stale, f"opcheck cases for ops that do not exist: {sorted(stale)}"


NOT_DIFFERENTIABLE = {"accuracy_forward"}


def _layer_level_ops() -> set:
    """The forward ops of the CPU-only layer types (csrc/cpu/neuron.cpp, losses.cpp, norm_layers.cpp,
    recurrent.cpp): their layers call their backward ops directly (and replicate.torch_module wraps
    each layer in one autograd.Function), so no op-level autograd formula is registered for them."""
    import re
    from pathlib import Path
    cpu = Path(__file__).resolve().parents[2] / "csrc" / "cpu"
    names = set()
    for f in ("neuron.cpp", "losses.cpp", "norm_layers.cpp", "recurrent.cpp"):
        names |= set(re.findall(r'm\.impl\("(\w+_forward)"', (cpu / f).read_text()))
    return names


def test_autograd_registrations_are_the_forward_ops():
    """Exactly the differentiable forward ops carry an Autograd kernel (register_autograd)."""
    registered = {n.split("::", 1)[1] for n in torch._C._dispatch_get_registrations_for_dispatch_key("Autograd")
                  if n.startswith("replicate::")}
    expected = {n for n in replicate_ops()
                if (n.endswith("_forward") or n in ("im2col", "col2im")) and n not in NOT_DIFFERENTIABLE
                and n not in _layer_level_ops()}
    assert len(_layer_level_ops()) >= 15
    assert registered == expected


def test_every_op_has_a_fake_kernel():
    for name in sorted(replicate_ops()):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"replicate::{name}", "Meta"), name


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op_name,case_id,build", ALL_CASES, ids=_ids())
def test_opcheck(op_name, case_id, build, dtype):
    args = build(dtype)
    # the layer-level forward ops have no op-level autograd: plain inputs, so opcheck skips
    # test_autograd_registration for them (it needs an input with requires_grad)
    differentiable = op_name not in NOT_DIFFERENTIABLE | _layer_level_ops() and (
        op_name.endswith("_forward") or op_name in ("im2col", "col2im"))
    grads = [a.requires_grad for a in args if isinstance(a, torch.Tensor)]
    assert any(grads) == differentiable, "forward cases take requires_grad inputs, backward cases do not"
    torch.library.opcheck(getattr(ops, op_name).default, args)


# Non-contiguous inputs: the kernels compute on input.contiguous() and return contiguous tensors;
# the fake kernels must say so (strides are part of what test_faketensor compares).
def _nc(dtype, *shape, grad=False):
    """A permuted (non-contiguous) tensor of the given shape."""
    t = randn(dtype, *shape[:-2], shape[-1], shape[-2], seed=11).transpose(-1, -2)
    assert not t.is_contiguous()
    return t.requires_grad_(grad)


NONCONTIG = {
    "conv_forward": lambda dt: (_nc(dt, 2, 3, 5, 4, grad=True), randn(dt, 4, 3, 3, 2, grad=True), None,
                                [1, 1], [1, 0], [1, 1], 1),
    "pool_max_forward": lambda dt: (_nc(dt, 2, 3, 5, 4, grad=True), [2, 2], [2, 2], [1, 0], True),
    "pool_ave_forward": lambda dt: (_nc(dt, 2, 3, 5, 4, grad=True), [2, 2], [2, 2], [1, 0], True),
    "inner_product_forward": lambda dt: (_nc(dt, 4, 3, grad=True), randn(dt, 2, 3, grad=True), None, False),
    "im2col": lambda dt: (_nc(dt, 2, 3, 5, 4, grad=True), [2, 2], [0, 0], [1, 1], [1, 1]),
    "relu_forward": lambda dt: (_nc(dt, 2, 3, 5, 4, grad=True), 0.1),
    "dropout_forward": lambda dt: (_nc(dt, 2, 3, 5, 4, grad=True), mask01(2, 3, 5, 4), 0.5),
    "softmax_forward": lambda dt: (_nc(dt, 2, 3, 5, 4, grad=True), 1),
    "softmax_loss_forward": lambda dt: (_nc(dt, 2, 3, 5, 4, grad=True), labels(3, 2, 5, 4), 1, 1, None),
    "lrn_across_forward": lambda dt: (_nc(dt, 2, 3, 5, 4, grad=True), 3, 0.5, 0.75, 1.0),
    "lrn_within_forward": lambda dt: (_nc(dt, 2, 3, 5, 4, grad=True), 3, 0.5, 0.75),
    "relu_backward": lambda dt: (randn(dt, 2, 3, 5, 4), _nc(dt, 2, 3, 5, 4), 0.0),
    "dropout_backward": lambda dt: (_nc(dt, 2, 3, 5, 4), mask01(2, 3, 5, 4), 0.5),
    "softmax_backward": lambda dt: (randn(dt, 2, 3, 5, 4), _nc(dt, 2, 3, 5, 4).softmax(1).transpose(-1, -2)
                                    .contiguous().transpose(-1, -2), 1),
    "softmax_loss_backward": lambda dt: (torch.tensor(1.0, dtype=dt), _nc(dt, 2, 3, 5, 4), labels(3, 2, 5, 4),
                                         1, 1, None),
    "lrn_across_backward": lambda dt: _lrn_across_nc(dt),
    "lrn_within_backward": lambda dt: _lrn_within_nc(dt),
}


def _lrn_across_nc(dt):
    x = _nc(dt, 2, 3, 5, 4)
    top, scale, power = ops.lrn_across_forward(x, 3, 0.5, 0.75, 1.0)
    return randn(dt, *x.shape, seed=5), x, top, scale, power, 3, 0.5, 0.75


def _lrn_within_nc(dt):
    x = _nc(dt, 2, 3, 5, 4)
    _, pooled, powered = ops.lrn_within_forward(x, 3, 0.5, 0.75)
    return randn(dt, *x.shape, seed=5), x, pooled, powered, 3, 0.5, 0.75

# The kernels return contiguous tensors whatever the input's strides; the fake kernels must agree.
@pytest.mark.parametrize("op_name", list(NONCONTIG))
def test_opcheck_noncontiguous(op_name):
    torch.library.opcheck(getattr(ops, op_name).default, NONCONTIG[op_name](torch.float32),
                          test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("op_name", list(NONCONTIG))
def test_noncontiguous_values_match_contiguous(op_name):
    """A permuted input gives the same values as its contiguous copy (the kernels read strides)."""
    args = NONCONTIG[op_name](torch.float64)
    plain = [a.detach().contiguous() if isinstance(a, torch.Tensor) else a for a in args]
    out = getattr(ops, op_name)(*[a.detach() if isinstance(a, torch.Tensor) else a for a in args])
    ref = getattr(ops, op_name)(*plain)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
