"""Argument errors of the replicate ops: a RuntimeError whose message names the op, the argument
and what was expected (dtype, device, shape), raised by the CPU kernels before any work.

The generic tests take one valid call per op from test_opcheck.CASES and spoil one tensor argument
at a time, so a new op is covered as soon as it has an opcheck case; the argument name in the
message must be the schema's.  The specific tests cover the shape rules.
"""
from __future__ import annotations

import re

import pytest
import torch

from replicate import ops as R  # noqa: F401  (registers the ops)
from tests.ops.test_opcheck import CASES

ops = torch.ops.replicate
CPU_ONLY = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)


def first_case(op_name):
    """A valid float32 call of op_name: (OpOverload, args, schema argument names)."""
    op = getattr(ops, op_name).default
    _, build = CASES[op_name][0]
    return op, list(build(torch.float32)), [a.name for a in op._schema.arguments]


def tensor_slots(op_name, floating_only):
    op, args, names = first_case(op_name)
    return [(op_name, i, names[i]) for i, a in enumerate(args)
            if isinstance(a, torch.Tensor) and (a.is_floating_point() or not floating_only)]


# Arguments of today's CPU-only layer ops whose checks name another argument than the schema's (or
# miss a dtype check), found by these tests and not yet fixed in csrc/cpu/neuron.cpp and losses.cpp.
# Named here so that the list can only shrink: test_misnamed_arguments_still_misnamed fails once one
# is fixed and must be removed from it.
MISNAMED = {("clip_backward", "input"), ("clip_forward", "input"), ("contrastive_loss_backward", "diff"),
            ("contrastive_loss_backward", "y"), ("contrastive_loss_forward", "a"), ("contrastive_loss_forward", "y"),
            ("elu_backward", "input"), ("elu_forward", "input"), ("euclidean_loss_forward", "a"),
            ("hinge_loss_backward", "diff"), ("multinomial_logistic_loss_backward", "prob"),
            ("multinomial_logistic_loss_forward", "prob"), ("sigmoid_cross_entropy_loss_backward", "normalizer"),
            ("swish_backward", "output"), ("threshold_forward", "input")}


def slot_params(floating_only, *, misnamed=False):
    return [pytest.param(op_name_, i, name, id=f"{op_name}-{name}")
            for op_name in sorted(CASES) for op_name_, i, name in tensor_slots(op_name, floating_only)
            if ((op_name_, name) in MISNAMED) == misnamed]


@pytest.mark.parametrize("op_name,i,name", slot_params(True, misnamed=True))
def test_misnamed_arguments_still_misnamed(op_name, i, name):
    """Each entry of MISNAMED still fails the naming rule (remove it from MISNAMED once fixed)."""
    op, args = call(op_name, i, lambda t: t.detach().to(torch.int32))
    try:
        op(*args)
    except RuntimeError as e:
        assert not re.match(rf"^{op_name}: argument '{name}' has dtype Int", str(e)), "fixed: drop it from MISNAMED"
    assert len(MISNAMED) == 15


def call(op_name, i, replacement):
    op, args, _ = first_case(op_name)
    args[i] = replacement(args[i])
    return op, args


# ---------------------------------------------------------------------------------------------
# dtype


C10_NAMES = {torch.int32: "Int", torch.int64: "Long", torch.float16: "Half", torch.bfloat16: "BFloat16"}


@pytest.mark.parametrize("bad", list(C10_NAMES), ids=["int32", "int64", "float16", "bfloat16"])
@pytest.mark.parametrize("op_name,i,name", slot_params(True))
def test_wrong_dtype_names_the_argument(op_name, i, name, bad):
    op, args = call(op_name, i, lambda t: t.detach().to(bad))
    pattern = (rf"^{op_name}: argument '{name}' has dtype {C10_NAMES[bad]}; expected "
               rf"(float32 or float64 of shape \S.*|(Float|Double) like the input)")
    with pytest.raises(RuntimeError, match=pattern):
        op(*args)


def _two_float_slots(op_name):
    return len(tensor_slots(op_name, True)) >= 2


@pytest.mark.parametrize("op_name,i,name", [p for p in slot_params(True)
                                            if _two_float_slots(p.values[0])])
def test_mixed_float_dtypes_are_rejected(op_name, i, name):
    """float64 among float32 arguments: one of them is named, with the dtype it should have."""
    op, args = call(op_name, i, lambda t: t.detach().to(torch.float64))
    _, _, names = first_case(op_name)
    floating = {names[j] for j, a in enumerate(args) if isinstance(a, torch.Tensor) and a.is_floating_point()}
    with pytest.raises(RuntimeError, match=rf"^{op_name}: argument '(\w+)' has dtype (Float|Double); "
                                           rf"expected (Float|Double) like the input") as info:
        op(*args)
    named = re.search(r"argument '(\w+)'", str(info.value)).group(1)
    assert named in floating


# ---------------------------------------------------------------------------------------------
# device


@pytest.mark.parametrize("op_name,i,name", slot_params(False))
def test_wrong_device_names_the_argument(op_name, i, name):
    """A meta tensor handed to the CPU kernel (redispatched past the Meta/fake kernel)."""
    op, args = call(op_name, i, lambda t: t.detach().to("meta"))
    args = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
    with pytest.raises(RuntimeError, match=rf"^{op_name}: argument '{name}' (is on meta; this kernel expects "
                                           rf"a CPU tensor of shape \S|must be a CPU tensor)"):
        op.redispatch(CPU_ONLY, *args)


def test_mixed_cpu_and_meta_arguments_raise():
    x = torch.randn(2, 3, 5, 5)
    w = torch.randn(4, 3, 3, 3, device="meta")
    with pytest.raises(RuntimeError, match="weight"):
        ops.conv_forward(x, w, None, [1, 1], [0, 0], [1, 1], 1)


# ---------------------------------------------------------------------------------------------
# shapes and values, op by op

f32 = torch.float32


def r(*shape, dtype=f32):
    return torch.randn(*shape, dtype=dtype)


def msg(*parts):
    """A regex matching the literal parts in order, anything between them."""
    return ".*".join(re.escape(p) for p in parts)


X = r(2, 4, 6, 6)
W = r(6, 2, 3, 3)          # group 2
S1, P0, D1 = [1, 1], [0, 0], [1, 1]
GO = r(2, 6, 4, 4)          # conv(X, W) output shape


def mask_of(x, k, s, p):
    return ops.pool_max_forward(x, k, s, p, True)[1]


SHAPE_CASES = {
    # convolution
    "conv_weight_channels_vs_group": (
        lambda: ops.conv_forward(X, r(6, 4, 3, 3), None, S1, P0, D1, 2),
        msg("conv_forward: argument 'weight' has shape (6, 4, 3, 3); expected (6, 2, kh, kw) for 4 input channels "
            "and group 2")),
    "conv_weight_channels_vs_input": (
        lambda: ops.conv_forward(X, r(6, 3, 3, 3), None, S1, P0, D1, 1),
        msg("argument 'weight' has shape (6, 3, 3, 3); expected (6, 4, kh, kw)")),
    "conv_channels_not_multiple_of_group": (
        lambda: ops.conv_forward(r(1, 3, 5, 5), r(4, 1, 3, 3), None, S1, P0, D1, 2),
        msg("input channels (3) and num_output (4) must be multiples of group (2)")),
    "conv_num_output_not_multiple_of_group": (
        lambda: ops.conv_forward(X, r(5, 2, 3, 3), None, S1, P0, D1, 2),
        msg("num_output (5) must be multiples of group (2)")),
    "conv_group_zero": (
        lambda: ops.conv_forward(X, W, None, S1, P0, D1, 0), msg("conv_forward: group must be positive, got 0")),
    "conv_weight_3d": (
        lambda: ops.conv_forward(X, r(6, 2, 3), None, S1, P0, D1, 2),
        msg("argument 'weight' has shape (6, 2, 3); expected (num_output, C / group, kh, kw)")),
    "conv_input_3d": (
        lambda: ops.conv_forward(r(4, 6, 6), W, None, S1, P0, D1, 2),
        msg("argument 'input' has shape (4, 6, 6); expected (N, C, H, W)")),
    "conv_bias_wrong_length": (
        lambda: ops.conv_forward(X, W, r(5), S1, P0, D1, 2),
        msg("conv_forward: argument 'bias' has shape (5); expected (6)")),
    "conv_bias_2d": (
        lambda: ops.conv_forward(X, W, r(6, 1), S1, P0, D1, 2),
        msg("argument 'bias' has shape (6, 1); expected (num_output,)")),
    "conv_kernel_larger_than_input": (
        lambda: ops.conv_forward(r(1, 2, 4, 4), r(1, 2, 5, 5), None, S1, P0, D1, 1),
        msg("conv_forward: kernel (5, 5) with dilation (1, 1) does not fit the padded 4x4 input")),
    "conv_dilated_kernel_larger_than_input": (
        lambda: ops.conv_forward(r(1, 2, 4, 4), r(1, 2, 3, 3), None, S1, [1, 1], [3, 3], 1),
        msg("kernel (3, 3) with dilation (3, 3) does not fit the padded 4x4 input")),
    "conv_stride_zero": (
        lambda: ops.conv_forward(X, W, None, [0, 1], P0, D1, 2),
        msg("argument 'stride' must be positive, got (0, 1)")),
    "conv_pad_negative": (
        lambda: ops.conv_forward(X, W, None, S1, [-1, 0], D1, 2),
        msg("argument 'pad' must be non-negative, got (-1, 0)")),
    "conv_dilation_zero": (
        lambda: ops.conv_forward(X, W, None, S1, P0, [1, 0], 2),
        msg("argument 'dilation' must be positive, got (1, 0)")),
    "conv_stride_one_value": (
        lambda: ops.conv_forward(X, W, None, [1], P0, D1, 2),
        msg("argument 'stride' must have 2 values (h, w), got 1")),
    "conv_backward_grad_output_shape": (
        lambda: ops.conv_backward(r(2, 6, 5, 4), X, W, S1, P0, D1, 2, [True, True, True]),
        msg("conv_backward: argument 'grad_output' has shape (2, 6, 5, 4); expected (2, 6, 4, 4)")),
    "conv_backward_grad_output_channels": (
        lambda: ops.conv_backward(r(2, 5, 4, 4), X, W, S1, P0, D1, 2, [True, False, False]),
        msg("argument 'grad_output' has shape (2, 5, 4, 4); expected (2, 6, 4, 4)")),
    "conv_backward_weight_diff_shape": (
        lambda: ops.conv_backward(GO, X, W, S1, P0, D1, 2, [True, True, True], r(6, 2, 3, 2), r(6)),
        msg("argument 'weight_diff' has shape (6, 2, 3, 2); expected (6, 2, 3, 3)")),
    "conv_backward_bias_diff_shape": (
        lambda: ops.conv_backward(GO, X, W, S1, P0, D1, 2, [True, True, True], r(6, 2, 3, 3), r(4)),
        msg("argument 'bias_diff' has shape (4); expected (6)")),
    # im2col / col2im
    "im2col_2d_input": (
        lambda: ops.im2col(r(3, 4), [2, 2], P0, S1, D1),
        msg("im2col: argument 'im' has shape (3, 4); expected (C, H, W) or (N, C, H, W)")),
    "im2col_kernel_larger_than_input": (
        lambda: ops.im2col(r(2, 3, 3), [4, 2], P0, S1, D1),
        msg("im2col: kernel (4, 2) with dilation (1, 1) does not fit the padded 3x3 input")),
    "col2im_col_shape": (
        lambda: ops.col2im(r(2, 17, 9), [5, 5], 2, [3, 3], [1, 1], [2, 2], D1),
        msg("col2im: argument 'col' has shape (2, 17, 9); expected (2, 18, 9)")),
    "col2im_col_1d": (
        lambda: ops.col2im(r(18), [5, 5], 2, [3, 3], [1, 1], [2, 2], D1),
        msg("argument 'col' has shape (18); expected (C*kh*kw, out_h*out_w) or (N, C*kh*kw, out_h*out_w)")),
    "col2im_channels_zero": (
        lambda: ops.col2im(r(18, 9), [5, 5], 0, [3, 3], [1, 1], [2, 2], D1),
        msg("col2im: channels must be positive, got 0")),
    # inner product
    "ip_weight_features": (
        lambda: ops.inner_product_forward(r(4, 5), r(3, 6), None, False),
        msg("inner_product_forward: argument 'weight' has shape (3, 6); expected (num_output, 5) for an input "
            "of 5 features")),
    "ip_weight_features_transpose": (
        lambda: ops.inner_product_forward(r(4, 5), r(3, 6), None, True),
        msg("argument 'weight' has shape (3, 6); expected (5, num_output) for an input of 5 features")),
    "ip_bias_wrong_length": (
        lambda: ops.inner_product_forward(r(4, 5), r(3, 5), r(4), False),
        msg("inner_product_forward: argument 'bias' has shape (4); expected (3)")),
    "ip_input_3d": (
        lambda: ops.inner_product_forward(r(4, 5, 1), r(3, 5), None, False),
        msg("argument 'input' has shape (4, 5, 1); expected (M, K)")),
    "ip_backward_grad_output_shape": (
        lambda: ops.inner_product_backward(r(4, 2), r(4, 5), r(3, 5), False, [True, True, True]),
        msg("inner_product_backward: argument 'grad_output' has shape (4, 2); expected (4, 3)")),
    "ip_backward_weight_diff_shape": (
        lambda: ops.inner_product_backward(r(4, 3), r(4, 5), r(3, 5), False, [False, True, False], r(5, 3)),
        msg("argument 'weight_diff' has shape (5, 3); expected (3, 5)")),
    "ip_backward_bias_diff_shape": (
        lambda: ops.inner_product_backward(r(4, 3), r(4, 5), r(3, 5), False, [False, False, True], None, r(2)),
        msg("argument 'bias_diff' has shape (2); expected (3)")),
    # pooling
    "pool_max_pad_equals_kernel": (
        lambda: ops.pool_max_forward(X, [2, 2], [2, 2], [2, 0], True),
        msg("pool_max_forward: pad (2, 0) must be smaller than kernel (2, 2)")),
    "pool_ave_pad_larger_than_kernel": (
        lambda: ops.pool_ave_forward(X, [3, 2], [1, 1], [1, 3], True),
        msg("pool_ave_forward: pad (1, 3) must be smaller than kernel (3, 2)")),
    "pool_max_kernel_larger_than_input": (
        lambda: ops.pool_max_forward(r(1, 2, 3, 3), [5, 2], [1, 1], [0, 0], True),
        msg("pool_max_forward: kernel (5, 2) is larger than the padded input (1, 2, 3, 3)")),
    "pool_ave_kernel_larger_than_input": (
        lambda: ops.pool_ave_forward(r(1, 2, 3, 3), [2, 6], [1, 1], [0, 1], False),
        msg("pool_ave_forward: kernel (2, 6) is larger than the padded input (1, 2, 3, 3)")),
    "pool_input_3d": (
        lambda: ops.pool_max_forward(r(2, 6, 6), [2, 2], [2, 2], [0, 0], True),
        msg("argument 'input' has shape (2, 6, 6); expected (N, C, H, W)")),
    "pool_stride_zero": (
        lambda: ops.pool_ave_forward(X, [2, 2], [0, 2], [0, 0], True),
        msg("argument 'stride' must be positive, got (0, 2)")),
    "pool_max_backward_mask_dtype": (
        lambda: ops.pool_max_backward(r(2, 4, 3, 3), mask_of(X, [2, 2], [2, 2], [0, 0]).long(), [2, 4, 6, 6]),
        msg("pool_max_backward: argument 'mask' must be a CPU tensor of dtype Int, got Long")),
    "pool_max_backward_mask_shape": (
        lambda: ops.pool_max_backward(r(2, 4, 3, 3), mask_of(X, [4, 4], [2, 2], [0, 0]), [2, 4, 6, 6]),
        msg("argument 'mask' has shape (2, 4, 2, 2); expected (2, 4, 3, 3)")),
    "pool_max_backward_mask_out_of_plane": (
        lambda: ops.pool_max_backward(r(1, 1, 2, 2), torch.full((1, 1, 2, 2), 16, dtype=torch.int32), [1, 1, 4, 4]),
        msg("pool_max_backward: argument 'mask' holds an index outside [-1, 16) of the 4x4 input plane")),
    "pool_max_backward_input_size": (
        lambda: ops.pool_max_backward(r(2, 4, 3, 3), mask_of(X, [2, 2], [2, 2], [0, 0]), [2, 3, 6, 6]),
        msg("input_size (2, 3, 6, 6) must be (N, C, H, W) matching grad_output (2, 4, 3, 3)")),
    "pool_ave_backward_input_size": (
        lambda: ops.pool_ave_backward(r(2, 4, 3, 3), [4, 4, 6, 6], [2, 2], [2, 2], [0, 0]),
        msg("pool_ave_backward: input_size (4, 4, 6, 6) must be (N, C, H, W) matching grad_output (2, 4, 3, 3)")),
    # LRN
    "lrn_across_even_size": (
        lambda: ops.lrn_across_forward(X, 4, 1e-4, 0.75, 1.0),
        msg("lrn_across_forward: size must be a positive odd number (Caffe's rule), got 4")),
    "lrn_within_even_size": (
        lambda: ops.lrn_within_forward(X, 2, 1e-4, 0.75),
        msg("lrn_within_forward: size must be a positive odd number (Caffe's rule), got 2")),
    "lrn_across_backward_even_size": (
        lambda: ops.lrn_across_backward(X, X, X, X, X, 6, 1e-4, 0.75),
        msg("lrn_across_backward: size must be a positive odd number")),
    "lrn_across_input_3d": (
        lambda: ops.lrn_across_forward(r(4, 6, 6), 3, 1e-4, 0.75, 1.0),
        msg("argument 'input' has shape (4, 6, 6); expected (N, C, H, W)")),
    "lrn_across_backward_scale_shape": (
        lambda: ops.lrn_across_backward(X, X, X, r(2, 4, 6, 5), X, 3, 1e-4, 0.75),
        msg("lrn_across_backward: argument 'scale' has shape (2, 4, 6, 5); expected (2, 4, 6, 6)")),
    "lrn_across_backward_grad_output_shape": (
        lambda: ops.lrn_across_backward(r(2, 4, 6), X, X, X, X, 3, 1e-4, 0.75),
        msg("argument 'grad_output' has shape (2, 4, 6); expected (N, C, H, W) like input")),
    "lrn_within_backward_pool_output_shape": (
        lambda: ops.lrn_within_backward(X, X, r(1, 4, 6, 6), X, 3, 1e-4, 0.75),
        msg("lrn_within_backward: argument 'pool_output' has shape (1, 4, 6, 6); expected (2, 4, 6, 6)")),
    "lrn_within_backward_power_output_shape": (
        lambda: ops.lrn_within_backward(X, X, X, r(2, 4, 6, 7), 3, 1e-4, 0.75),
        msg("argument 'power_output' has shape (2, 4, 6, 7); expected (2, 4, 6, 6)")),
    # ReLU / dropout
    "relu_backward_grad_output_shape": (
        lambda: ops.relu_backward(r(2, 3), r(3, 2), 0.0),
        msg("relu_backward: argument 'grad_output' has shape (2, 3); expected (3, 2)")),
    "dropout_mask_dtype_int64": (
        lambda: ops.dropout_forward(r(2, 3), torch.ones(2, 3, dtype=torch.int64), 0.5),
        msg("dropout_forward: argument 'mask' must be a CPU tensor of dtype Int, got Long")),
    "dropout_mask_dtype_bool": (
        lambda: ops.dropout_forward(r(2, 3), torch.ones(2, 3, dtype=torch.bool), 0.5),
        msg("argument 'mask' must be a CPU tensor of dtype Int, got Bool")),
    "dropout_mask_dtype_float": (
        lambda: ops.dropout_backward(r(2, 3), torch.ones(2, 3), 0.5),
        msg("dropout_backward: argument 'mask' must be a CPU tensor of dtype Int, got Float")),
    "dropout_mask_shape": (
        lambda: ops.dropout_forward(r(2, 3), torch.ones(3, 2, dtype=torch.int32), 0.5),
        msg("dropout_forward: argument 'mask' has shape (3, 2); expected (2, 3)")),
    "dropout_backward_mask_shape": (
        lambda: ops.dropout_backward(r(2, 3), torch.ones(6, dtype=torch.int32), 0.5),
        msg("dropout_backward: argument 'mask' has shape (6); expected (2, 3)")),
    "dropout_ratio_one": (
        lambda: ops.dropout_forward(r(2, 3), torch.ones(2, 3, dtype=torch.int32), 1.0),
        msg("dropout_forward: dropout ratio must be in [0, 1), got 1")),
    "dropout_ratio_negative": (
        lambda: ops.dropout_backward(r(2, 3), torch.ones(2, 3, dtype=torch.int32), -0.5),
        msg("dropout ratio must be in [0, 1), got -0.5")),
    # softmax
    "softmax_axis_out_of_range": (
        lambda: ops.softmax_forward(r(3, 4), 2),
        msg("softmax_forward: axis 2 is out of range for shape (3, 4)")),
    "softmax_negative_axis_out_of_range": (
        lambda: ops.softmax_forward(r(3, 4), -3),
        msg("axis -3 is out of range for shape (3, 4)")),
    "softmax_backward_grad_output_shape": (
        lambda: ops.softmax_backward(r(4, 3), r(3, 4).softmax(1), 1),
        msg("softmax_backward: argument 'grad_output' has shape (4, 3); expected (3, 4)")),
    "softmax_loss_label_count": (
        lambda: ops.softmax_loss_forward(r(5, 3), torch.zeros(4, dtype=torch.int64), 1, 1, None),
        msg("softmax_loss_forward: argument 'label' has shape (4); expected 5 labels (outer x inner of the input)")),
    "softmax_loss_label_count_spatial": (
        lambda: ops.softmax_loss_forward(r(2, 3, 2, 2), torch.zeros(2, 2, dtype=torch.int64), 1, 1, None),
        msg("argument 'label' has shape (2, 2); expected 8 labels")),
    "softmax_loss_label_too_large": (
        lambda: ops.softmax_loss_forward(r(4, 3), torch.tensor([0, 1, 3, 2]), 1, 1, None),
        msg("softmax_loss_forward: label 3 at index 2 is outside [0, 3)")),
    "softmax_loss_label_negative": (
        lambda: ops.softmax_loss_forward(r(4, 3), torch.tensor([0, -1, 1, 2]), 1, 1, 2),
        msg("label -1 at index 1 is outside [0, 3)")),
    "softmax_loss_backward_label_out_of_range": (
        lambda: ops.softmax_loss_backward(torch.tensor(1.0), r(4, 3).softmax(1), torch.tensor([0, 5, 1, 2]), 1, 1,
                                          None),
        msg("softmax_loss_backward: label 5 at index 1 is outside [0, 3)")),
    "softmax_loss_backward_label_count": (
        lambda: ops.softmax_loss_backward(torch.tensor(1.0), r(4, 3).softmax(1), torch.tensor([0, 1]), 1, 1, None),
        msg("softmax_loss_backward: argument 'label' has shape (2); expected 4 labels")),
    "softmax_loss_normalization": (
        lambda: ops.softmax_loss_forward(r(4, 3), torch.tensor([0, 1, 1, 2]), 1, 7, None),
        msg("softmax_loss_forward: unknown normalization mode 7 (FULL 0, VALID 1, BATCH_SIZE 2, NONE 3)")),
    "softmax_loss_grad_loss_not_scalar": (
        lambda: ops.softmax_loss_backward(r(2), r(4, 3).softmax(1), torch.tensor([0, 1, 1, 2]), 1, 1, None),
        msg("softmax_loss_backward: argument 'grad_loss' has shape (2); expected () holding the loss weight")),
    # accuracy
    "accuracy_top_k_too_large": (
        lambda: ops.accuracy_forward(r(4, 3), torch.tensor([0, 1, 1, 2]), 1, 4, None),
        msg("accuracy_forward: top_k must be in [1, 3], got 4")),
    "accuracy_top_k_zero": (
        lambda: ops.accuracy_forward(r(4, 3), torch.tensor([0, 1, 1, 2]), 1, 0, None),
        msg("top_k must be in [1, 3], got 0")),
    "accuracy_label_count": (
        lambda: ops.accuracy_forward(r(4, 3), torch.tensor([0, 1, 2]), 1, 1, None),
        msg("accuracy_forward: argument 'label' has shape (3); expected 4 labels")),
    "accuracy_label_out_of_range": (
        lambda: ops.accuracy_forward(r(4, 3), torch.tensor([0, 1, 3, 2]), 1, 1, None),
        msg("accuracy_forward: label 3 at index 2 is outside [0, 3)")),
    "accuracy_axis_out_of_range": (
        lambda: ops.accuracy_forward(r(4, 3), torch.tensor([0, 1, 1, 2]), 3, 1, None),
        msg("accuracy_forward: axis 3 is out of range for shape (4, 3)")),
}


@pytest.mark.parametrize("case", list(SHAPE_CASES))
def test_shape_and_value_errors(case):
    fn, pattern = SHAPE_CASES[case]
    with pytest.raises(RuntimeError, match=pattern):
        fn()


def test_errors_through_the_autograd_path():
    """Inputs that require grad go through the Autograd kernel first; the message is the same."""
    with pytest.raises(RuntimeError, match=msg("argument 'weight' has shape (6, 4, 3, 3); expected (6, 2, kh, kw)")):
        ops.conv_forward(X.clone().requires_grad_(), r(6, 4, 3, 3).requires_grad_(), None, S1, P0, D1, 2)
    with pytest.raises(RuntimeError, match=msg("argument 'bias' has shape (4); expected (3)")):
        ops.inner_product_forward(r(4, 5).requires_grad_(), r(3, 5).requires_grad_(), r(4).requires_grad_(), False)
    with pytest.raises(RuntimeError, match=msg("argument 'mask' must be a CPU tensor of dtype Int, got Long")):
        ops.dropout_forward(r(2, 3).requires_grad_(), torch.ones(2, 3, dtype=torch.int64), 0.5)
    with pytest.raises(RuntimeError, match=msg("label 3 at index 2 is outside [0, 3)")):
        ops.softmax_loss_forward(r(4, 3).requires_grad_(), torch.tensor([0, 1, 3, 2]), 1, 1, None)


def test_ignored_label_may_be_out_of_range():
    """Caffe skips an ignored label before the range check (e.g. ignore_label 255)."""
    loss, _ = ops.softmax_loss_forward(r(4, 3), torch.tensor([0, 255, 1, 2]), 1, 1, 255)
    assert torch.isfinite(loss)
    acc, _ = ops.accuracy_forward(r(4, 3), torch.tensor([0, 255, 1, 2]), 1, 1, 255)
    assert 0 <= acc.item() <= 1


# The backward of average pooling checks grad_output against the pooling geometry.
def test_pool_ave_backward_grad_output_pooled_shape():
    with pytest.raises(RuntimeError, match="grad_output"):
        ops.pool_ave_backward(r(1, 1, 5, 5), [1, 1, 4, 4], [2, 2], [2, 2], [0, 0])


def test_pool_ave_backward_pad_not_smaller_than_kernel():
    with pytest.raises(RuntimeError, match=msg("pad (2, 2) must be smaller than kernel (2, 2)")):
        ops.pool_ave_backward(r(1, 1, 4, 4), [1, 1, 4, 4], [2, 2], [2, 2], [2, 2])
