"""Python face of the Caffe ops in ``torch.ops.replicate``.

The kernels live in ``csrc/`` (one file per Caffe layer) and are registered as torch ops by the
``replicate._C`` extension.  This module adds, for every op, a fake (meta) kernel so the ops trace
under torch.compile / FakeTensor, and autograd formulas that call Caffe's own backward kernels,
following PyTorch's extension-cpp pattern.  The layer-level helpers at the bottom take Caffe's
parameter names.

BLAS backend: ``exact`` (every BLAS call Caffe makes goes to the same routine of Debian's OpenBLAS
0.3.21, with Caffe's arguments, its Haswell kernels and one thread, set up and checked in-process:
Caffe 1.0's bits) or ``fast`` (the system CBLAS with the kernels it picks for this CPU, or torch's
matmul; not bit-for-bit).  The ``python -m replicate`` commands default to exact on CPU; this module
defaults to fast.  Chosen by env ``REPLICATE_BLAS`` at import or :func:`set_blas`; env
``REPLICATE_CBLAS`` names another library (refused by exact mode unless it passes the same checks
or ``REPLICATE_UNVERIFIED_BLAS=1``).
"""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from . import _C  # noqa: F401  (loads the kernels and registers the ops)

ops = torch.ops.replicate
IntPair = Union[int, Sequence[int]]

# ---------------------------------------------------------------------------------------------
# BLAS backend


def set_blas(mode: str) -> None:
    """Select ``"fast"`` or ``"exact"``.  Exact loads its CBLAS now with OpenBLAS's Haswell kernels
    and one thread, checks it (OpenBLAS 0.3.21, core Haswell, 1 thread) and raises RuntimeError,
    saying what is missing and how to install it, when it is anything else (unless env
    ``REPLICATE_UNVERIFIED_BLAS=1``)."""
    _C.set_blas(mode)


def get_blas() -> str:
    return _C.get_blas()


def blas_library() -> str:
    """The library the current mode computes with, as ``"path | config | core=C | threads=N |
    parallel=P | file=F | copy=shared|private | status=S"`` (S: ``verified``, ``unverified: why`` or
    ``fast``), or ``"torch | at::addmm | status=fast: why"``.  May load the library."""
    return _C.blas_library()


def blas_info() -> dict:
    """:func:`blas_library` of the current mode as a dict: mode, path, config, version, core,
    threads, parallel, file, copy, status, verified (exact mode's check passed)."""
    text = blas_library()
    parts = [p.strip() for p in text.split(" | ")]
    info = {"mode": get_blas(), "path": parts[0], "config": parts[1] if len(parts) > 1 else "",
            "version": None, "core": None, "threads": None, "parallel": None, "file": None, "copy": None,
            "status": None}
    for p in parts[2:]:
        k, _, v = p.partition("=")
        if k in info:
            info[k] = v
    if info["config"].startswith("OpenBLAS "):
        info["version"] = info["config"].split()[1]
        info["library"] = "OpenBLAS"
    else:
        info["library"] = "torch (at::addmm)" if info["path"] == "torch" else "unknown CBLAS"
    if info["threads"] is not None:
        info["threads"] = int(info["threads"])
    info["verified"] = info["status"] == "verified"
    return info


def enable_cpu_cache(max_cached_gb: float = 8.0) -> None:
    """Keep freed CPU blocks of 1 MB and more for reuse by the same size (csrc/cpu_cache.cpp), as
    Caffe's blobs keep their memory: a training loop then stops paying page faults for its fresh
    activations each iteration.  Process-wide and permanent; ``python -m replicate`` enables it
    unless env ``REPLICATE_CPU_CACHE=0``."""
    _C.enable_cpu_cache(int(max_cached_gb * (1 << 30)))


def cpu_cache_stats() -> dict:
    return dict(_C.cpu_cache_stats())


def reset_cpu_cache_peak() -> None:
    """``cpu_cache_stats()['peak_live_bytes']`` restarts from the bytes in use now."""
    _C.reset_cpu_cache_peak()


def empty_cpu_cache() -> None:
    _C.empty_cpu_cache()


def conv_algorithm(input: Tensor, weight: Tensor, stride: IntPair = 1, pad: IntPair = 0, dilation: IntPair = 1,
                   group: int = 1) -> str:
    """The kernel ``conv_forward`` / ``conv_backward`` run for these CPU operands from this thread:
    ``"caffe"`` (Caffe's calls in Caffe's order: exact mode, or a layer with ``engine: CAFFE``), or
    fast mode's ``"winograd"`` (F(2x2, 3x3): float32 3x3 stride-1 convolutions, at most 32x32 out,
    at least 16 channels a group each way, a batch filling its chunks of 16 images at least 3/4 on
    average; env ``REPLICATE_CONV_WINOGRAD``: ``0`` never, ``always`` any batch), ``"onednn"``
    (torch's own convolution) or ``"im2col"``.
    ``"cuda"`` for CUDA operands."""
    if input.device.type != "cpu":
        return "cuda"
    return _C.conv_algorithm(input, weight, list(pair(stride, "stride")), list(pair(pad, "pad")),
                             list(pair(dilation, "dilation")), group)


class blas_mode:
    """Context manager: ``with blas_mode("exact"): ...``."""

    def __init__(self, mode: str):
        self.mode, self.prev = mode, None

    def __enter__(self):
        self.prev = get_blas()
        set_blas(self.mode)
        return self

    def __exit__(self, *exc):
        set_blas(self.prev)


if os.environ.get("REPLICATE_BLAS"):
    set_blas(os.environ["REPLICATE_BLAS"])

# ---------------------------------------------------------------------------------------------
# Shape rules shared by the fake kernels and the layer helpers


def pair(v: IntPair, name: str = "value") -> Tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or an (h, w) pair, got {v!r}")
    return (v[0], v[1])


def conv_out(size, kernel: int, pad: int, stride: int, dilation: int = 1):
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def pooled_size(size, kernel: int, stride: int, pad: int, ceil_mode: bool = True, padded: Optional[bool] = None):
    """Caffe 1.0's pooled size: ceil (or floor) of (size + 2 pad - kernel) / stride, plus one;
    when the layer is padded (``padded``: pad_h or pad_w nonzero, on either axis; default: this
    axis's pad), a last window that would start inside the padding is dropped."""
    span = size + 2 * pad - kernel
    out = (-((-span) // stride) if ceil_mode else span // stride) + 1
    if (pad if padded is None else padded) and (out - 1) * stride >= size + pad:
        out = out - 1
    return out


def _empty(like: Tensor, shape, dtype=None) -> Tensor:
    return like.new_empty(shape, dtype=dtype if dtype is not None else like.dtype)


def _like(t: Tensor) -> Tensor:
    """The kernels return contiguous tensors whatever the input's strides."""
    return torch.empty_like(t, memory_format=torch.contiguous_format)


def _one_device(op: str, args: dict) -> None:
    """Fake kernels run when any argument is a meta/fake tensor: refuse a mix of devices there,
    as the real kernels do, instead of returning an uninitialised result."""
    devices = {name: t.device for name, t in args.items() if isinstance(t, Tensor)}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"'{n}' on {d}" for n, d in devices.items())
        raise RuntimeError(f"{op}: all tensor arguments must be on one device, got {listing}")


# ---------------------------------------------------------------------------------------------
# Fake kernels


@torch.library.register_fake("replicate::im2col")
def _(im, kernel, pad, stride, dilation):
    _one_device("im2col", locals())
    c, h, w = im.shape[-3:]
    oh = conv_out(h, kernel[0], pad[0], stride[0], dilation[0])
    ow = conv_out(w, kernel[1], pad[1], stride[1], dilation[1])
    return _empty(im, (*im.shape[:-3], c * kernel[0] * kernel[1], oh * ow))


@torch.library.register_fake("replicate::col2im")
def _(col, image_size, channels, kernel, pad, stride, dilation):
    _one_device("col2im", locals())
    return _empty(col, (*col.shape[:-2], channels, image_size[0], image_size[1]))


@torch.library.register_fake("replicate::conv_forward")
def _(input, weight, bias, stride, pad, dilation, group, relu_slope=None):
    _one_device("conv_forward", locals())
    oh = conv_out(input.shape[2], weight.shape[2], pad[0], stride[0], dilation[0])
    ow = conv_out(input.shape[3], weight.shape[3], pad[1], stride[1], dilation[1])
    return _empty(input, (input.shape[0], weight.shape[0], oh, ow))


def _param_grads(input, weight, bias_len, output_mask):
    gx = _empty(input, input.shape) if output_mask[0] else _empty(input, (0,))
    gw = _empty(input, weight.shape) if output_mask[1] else _empty(input, (0,))
    gb = _empty(input, (bias_len,)) if output_mask[2] else _empty(input, (0,))
    return gx, gw, gb


@torch.library.register_fake("replicate::conv_backward")
def _(grad_output, input, weight, stride, pad, dilation, group, output_mask, weight_diff=None, bias_diff=None,
      relu_top=None, relu_slope=0.0):
    _one_device("conv_backward", locals())
    return _param_grads(input, weight, weight.shape[0], output_mask)


@torch.library.register_fake("replicate::pool_max_forward")
def _(input, kernel, stride, pad, ceil_mode):
    _one_device("pool_max_forward", locals())
    n, c, h, w = input.shape
    padded = bool(pad[0] or pad[1])  # Caffe clips both axes when either is padded
    shape = (n, c, pooled_size(h, kernel[0], stride[0], pad[0], ceil_mode, padded),
             pooled_size(w, kernel[1], stride[1], pad[1], ceil_mode, padded))
    return _empty(input, shape), _empty(input, shape, torch.int32)


@torch.library.register_fake("replicate::pool_max_backward")
def _(grad_output, mask, input_size):
    _one_device("pool_max_backward", locals())
    return _empty(grad_output, input_size)


@torch.library.register_fake("replicate::pool_ave_forward")
def _(input, kernel, stride, pad, ceil_mode):
    _one_device("pool_ave_forward", locals())
    n, c, h, w = input.shape
    padded = bool(pad[0] or pad[1])  # Caffe clips both axes when either is padded
    return _empty(input, (n, c, pooled_size(h, kernel[0], stride[0], pad[0], ceil_mode, padded),
                          pooled_size(w, kernel[1], stride[1], pad[1], ceil_mode, padded)))


@torch.library.register_fake("replicate::pool_ave_backward")
def _(grad_output, input_size, kernel, stride, pad):
    _one_device("pool_ave_backward", locals())
    return _empty(grad_output, input_size)


@torch.library.register_fake("replicate::lrn_across_forward")
def _(input, size, alpha, beta, k):
    _one_device("lrn_across_forward", locals())
    return _like(input), _like(input), _like(input)


@torch.library.register_fake("replicate::lrn_within_forward")
def _(input, size, alpha, beta):
    _one_device("lrn_within_forward", locals())
    return _like(input), _like(input), _like(input)


@torch.library.register_fake("replicate::lrn_across_backward")
def _(grad_output, input, output, scale, scale_power, size, alpha, beta):
    _one_device("lrn_across_backward", locals())
    return _like(input)


@torch.library.register_fake("replicate::lrn_within_backward")
def _(grad_output, input, pool_output, power_output, size, alpha, beta):
    _one_device("lrn_within_backward", locals())
    return _like(input)


@torch.library.register_fake("replicate::inner_product_forward")
def _(input, weight, bias, transpose):
    _one_device("inner_product_forward", locals())
    return _empty(input, (input.shape[0], weight.shape[1] if transpose else weight.shape[0]))


@torch.library.register_fake("replicate::inner_product_backward")
def _(grad_output, input, weight, transpose, output_mask, weight_diff=None, bias_diff=None):
    _one_device("inner_product_backward", locals())
    return _param_grads(input, weight, grad_output.shape[1], output_mask)


@torch.library.register_fake("replicate::relu_forward")
def _(input, negative_slope):
    _one_device("relu_forward", locals())
    return _like(input)


@torch.library.register_fake("replicate::relu_backward")
def _(grad_output, input, negative_slope):
    _one_device("relu_backward", locals())
    return _like(input)


@torch.library.register_fake("replicate::relu_backward_")
def _(grad_output, input, negative_slope):
    _one_device("relu_backward_", locals())


@torch.library.register_fake("replicate::dropout_forward")
def _(input, mask, ratio):
    _one_device("dropout_forward", locals())
    return _like(input)


@torch.library.register_fake("replicate::dropout_backward")
def _(grad_output, mask, ratio):
    _one_device("dropout_backward", locals())
    return _like(grad_output)


@torch.library.register_fake("replicate::softmax_forward")
def _(input, axis):
    _one_device("softmax_forward", locals())
    return _like(input)


@torch.library.register_fake("replicate::softmax_backward")
def _(grad_output, output, axis):
    _one_device("softmax_backward", locals())
    return _like(output)


@torch.library.register_fake("replicate::softmax_loss_forward")
def _(input, label, axis, normalization, ignore_label):
    _one_device("softmax_loss_forward", locals())
    return _empty(input, ()), _like(input)


@torch.library.register_fake("replicate::softmax_loss_backward")
def _(grad_loss, prob, label, axis, normalization, ignore_label):
    _one_device("softmax_loss_backward", locals())
    return _like(prob)


@torch.library.register_fake("replicate::accuracy_forward")
def _(input, label, axis, top_k, ignore_label):
    _one_device("accuracy_forward", locals())
    return _empty(input, ()), _empty(input, (input.shape[axis],))


@torch.library.register_fake("replicate::sgd_update")
def _(data, diff, history, local_rate, momentum, local_decay, regularization, diff_scale):
    _one_device("sgd_update", locals())
    return None


@torch.library.register_fake("replicate::blas_axpy")
def _(alpha, x, y):
    _one_device("blas_axpy", locals())
    return None


@torch.library.register_fake("replicate::blas_scal")
def _(alpha, x):
    return None


@torch.library.register_fake("replicate::blas_dot")
def _(x, y):
    _one_device("blas_dot", locals())
    return _empty(x, ())


# ---------------------------------------------------------------------------------------------
# Autograd: each forward op's gradient is Caffe's backward kernel.


def _im2col_setup(ctx, inputs, output):
    im, kernel, pad, stride, dilation = inputs
    ctx.args = (tuple(im.shape[-2:]), im.shape[-3], kernel, pad, stride, dilation)


def _im2col_backward(ctx, grad):
    return ops.col2im(grad, *ctx.args), None, None, None, None


torch.library.register_autograd("replicate::im2col", _im2col_backward, setup_context=_im2col_setup)


def _col2im_setup(ctx, inputs, output):
    _, _, _, kernel, pad, stride, dilation = inputs
    ctx.args = (kernel, pad, stride, dilation)


def _col2im_backward(ctx, grad):
    return ops.im2col(grad, *ctx.args), None, None, None, None, None, None


torch.library.register_autograd("replicate::col2im", _col2im_backward, setup_context=_col2im_setup)


def _conv_setup(ctx, inputs, output):
    input, weight, bias, stride, pad, dilation, group = inputs[:7]
    relu_slope = inputs[7] if len(inputs) > 7 else None
    # with a fused ReLU the backward needs the rectified output
    ctx.save_for_backward(input, weight, output if relu_slope is not None else None)
    ctx.args = (stride, pad, dilation, group)
    ctx.relu_slope = relu_slope
    ctx.has_bias = bias is not None


def _conv_backward(ctx, grad):
    input, weight, top = ctx.saved_tensors
    mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
    relu = {} if ctx.relu_slope is None else {"relu_top": top, "relu_slope": ctx.relu_slope}
    gx, gw, gb = ops.conv_backward(grad, input, weight, *ctx.args, mask, **relu)
    return (gx if mask[0] else None, gw if mask[1] else None, gb if mask[2] else None,
            None, None, None, None, None)


torch.library.register_autograd("replicate::conv_forward", _conv_backward, setup_context=_conv_setup)


def _pool_max_setup(ctx, inputs, output):
    ctx.save_for_backward(output[1])
    ctx.input_size = inputs[0].shape


def _pool_max_backward(ctx, grad, _grad_mask):
    (mask,) = ctx.saved_tensors
    return ops.pool_max_backward(grad, mask, ctx.input_size), None, None, None, None


torch.library.register_autograd("replicate::pool_max_forward", _pool_max_backward, setup_context=_pool_max_setup)


def _pool_ave_setup(ctx, inputs, output):
    input, kernel, stride, pad, _ = inputs
    ctx.input_size, ctx.args = input.shape, (kernel, stride, pad)


def _pool_ave_backward(ctx, grad):
    return ops.pool_ave_backward(grad, ctx.input_size, *ctx.args), None, None, None, None


torch.library.register_autograd("replicate::pool_ave_forward", _pool_ave_backward, setup_context=_pool_ave_setup)


def _lrn_across_setup(ctx, inputs, output):
    input, size, alpha, beta, _ = inputs
    ctx.save_for_backward(input, *output)
    ctx.args = (size, alpha, beta)


def _lrn_across_backward(ctx, grad, _grad_scale, _grad_power):
    input, top, scale, power = ctx.saved_tensors
    return ops.lrn_across_backward(grad, input, top, scale, power, *ctx.args), None, None, None, None


torch.library.register_autograd("replicate::lrn_across_forward", _lrn_across_backward,
                                setup_context=_lrn_across_setup)


def _lrn_within_setup(ctx, inputs, output):
    input, size, alpha, beta = inputs
    ctx.save_for_backward(input, output[1], output[2])
    ctx.args = (size, alpha, beta)


def _lrn_within_backward(ctx, grad, _g_pool, _g_power):
    input, pooled, powered = ctx.saved_tensors
    return ops.lrn_within_backward(grad, input, pooled, powered, *ctx.args), None, None, None


torch.library.register_autograd("replicate::lrn_within_forward", _lrn_within_backward,
                                setup_context=_lrn_within_setup)


def _ip_setup(ctx, inputs, output):
    input, weight, bias, transpose = inputs
    ctx.save_for_backward(input, weight)
    ctx.transpose, ctx.has_bias = transpose, bias is not None


def _ip_backward(ctx, grad):
    input, weight = ctx.saved_tensors
    mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
    gx, gw, gb = ops.inner_product_backward(grad, input, weight, ctx.transpose, mask)
    return gx if mask[0] else None, gw if mask[1] else None, gb if mask[2] else None, None


torch.library.register_autograd("replicate::inner_product_forward", _ip_backward, setup_context=_ip_setup)


def _relu_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])
    ctx.slope = inputs[1]


def _relu_backward(ctx, grad):
    (input,) = ctx.saved_tensors
    return ops.relu_backward(grad, input, ctx.slope), None


torch.library.register_autograd("replicate::relu_forward", _relu_backward, setup_context=_relu_setup)


def _dropout_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.ratio = inputs[2]


def _dropout_backward(ctx, grad):
    (mask,) = ctx.saved_tensors
    return ops.dropout_backward(grad, mask, ctx.ratio), None, None


torch.library.register_autograd("replicate::dropout_forward", _dropout_backward, setup_context=_dropout_setup)


def _softmax_setup(ctx, inputs, output):
    ctx.save_for_backward(output)
    ctx.axis = inputs[1]


def _softmax_backward(ctx, grad):
    (output,) = ctx.saved_tensors
    return ops.softmax_backward(grad, output, ctx.axis), None


torch.library.register_autograd("replicate::softmax_forward", _softmax_backward, setup_context=_softmax_setup)


def _softmax_loss_setup(ctx, inputs, output):
    _, label, axis, normalization, ignore_label = inputs
    ctx.save_for_backward(output[1], label)
    ctx.args = (axis, normalization, ignore_label)


def _softmax_loss_backward(ctx, grad_loss, _grad_prob):
    prob, label = ctx.saved_tensors
    return ops.softmax_loss_backward(grad_loss, prob, label, *ctx.args), None, None, None, None


torch.library.register_autograd("replicate::softmax_loss_forward", _softmax_loss_backward,
                                setup_context=_softmax_loss_setup)

# ---------------------------------------------------------------------------------------------
# Layer-level helpers with Caffe's parameter names

NORMALIZATION = {"FULL": 0, "VALID": 1, "BATCH_SIZE": 2, "NONE": 3}


def convolution(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntPair = 1,
                pad: IntPair = 0, dilation: IntPair = 1, group: int = 1) -> Tensor:
    return ops.conv_forward(x, weight, bias, pair(stride, "stride"), pair(pad, "pad"),
                            pair(dilation, "dilation"), group)


def pooling(x: Tensor, pool: str = "MAX", kernel_size: IntPair = 2, stride: IntPair = 1, pad: IntPair = 0,
            global_pooling: bool = False, round_mode: str = "CEIL", return_mask: bool = False):
    """Caffe's Pooling layer (MAX or AVE); ``return_mask`` also gives MAX's argmax mask."""
    kernel = tuple(x.shape[2:]) if global_pooling else pair(kernel_size, "kernel_size")
    stride, pad = pair(stride, "stride"), pair(pad, "pad")
    if global_pooling and (pad != (0, 0) or stride != (1, 1)):
        raise ValueError("global pooling takes no pad and stride 1 (Caffe's rule)")
    ceil_mode = {"CEIL": True, "FLOOR": False}[round_mode.upper()]
    pool = pool.upper()
    if pool == "MAX":
        top, mask = ops.pool_max_forward(x, kernel, stride, pad, ceil_mode)
        return (top, mask) if return_mask else top
    if pool == "AVE":
        return ops.pool_ave_forward(x, kernel, stride, pad, ceil_mode)
    raise ValueError(f"pooling method {pool!r} is not available on the CPU (Caffe's CPU has MAX and AVE)")


def lrn(x: Tensor, local_size: int = 5, alpha: float = 1.0, beta: float = 0.75, k: float = 1.0,
        norm_region: str = "ACROSS_CHANNELS") -> Tensor:
    region = norm_region.upper()
    if region == "ACROSS_CHANNELS":
        return ops.lrn_across_forward(x, local_size, alpha, beta, k)[0]
    if region == "WITHIN_CHANNEL":  # Caffe's composition has shift 1: k is not used
        return ops.lrn_within_forward(x, local_size, alpha, beta)[0]
    raise ValueError(f"unknown LRN norm_region {norm_region!r}")


def inner_product(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, axis: int = 1,
                  transpose: bool = False) -> Tensor:
    """Caffe's InnerProduct: the axes before ``axis`` are the batch, the rest are flattened."""
    axis = axis % x.dim()
    lead = tuple(x.shape[:axis])
    out = ops.inner_product_forward(x.reshape(math.prod(lead), -1), weight, bias, transpose)
    return out.reshape(*lead, out.shape[-1])


def relu(x: Tensor, negative_slope: float = 0.0) -> Tensor:
    return ops.relu_forward(x, negative_slope)


def dropout(x: Tensor, mask: Optional[Tensor], ratio: float = 0.5, train: bool = True) -> Tensor:
    """TRAIN: x * mask / (1 - ratio) in Caffe's arithmetic (mask: 0/1 int32); TEST: x."""
    if not train:
        return x
    if mask is None:
        raise ValueError("dropout in TRAIN phase needs a mask (replicate.rng draws Caffe's)")
    return ops.dropout_forward(x, mask, ratio)


def softmax(x: Tensor, axis: int = 1) -> Tensor:
    return ops.softmax_forward(x, axis)


def softmax_with_loss(x: Tensor, label: Tensor, axis: int = 1, normalization: str = "VALID",
                      ignore_label: Optional[int] = None) -> Tuple[Tensor, Tensor]:
    return ops.softmax_loss_forward(x, label, axis, NORMALIZATION[normalization.upper()], ignore_label)


def accuracy(x: Tensor, label: Tensor, top_k: int = 1, axis: int = 1,
             ignore_label: Optional[int] = None) -> Tuple[Tensor, Tensor]:
    return ops.accuracy_forward(x, label, axis, top_k, ignore_label)


# ---------------------------------------------------------------------------------------------
# The solver's and the net's BLAS-level steps (in place; exact mode makes Caffe's calls)

REGULARIZATION = {"L2": 0, "L1": 1}


def sgd_update(data: Tensor, diff: Tensor, history: Tensor, local_rate: float, momentum: float,
               local_decay: float = 0.0, regularization: str = "L2", diff_scale: float = 1.0) -> None:
    """One learnable blob's SGD step as Caffe 1.0 does it: ``diff *= diff_scale`` (iter_size
    normalisation), regularise, ``history = local_rate * diff + momentum * history``,
    ``diff = history``, ``data -= diff``."""
    try:
        reg = REGULARIZATION[regularization]
    except KeyError:
        raise ValueError(f"Unknown regularization type: {regularization}") from None
    ops.sgd_update(data, diff, history, local_rate, momentum, local_decay, reg, diff_scale)


def axpy(alpha: float, x: Tensor, y: Tensor) -> None:
    """caffe_axpy: ``y += alpha * x`` in place."""
    ops.blas_axpy(alpha, x, y)


def scal(alpha: float, x: Tensor) -> None:
    """caffe_scal: ``x *= alpha`` in place."""
    ops.blas_scal(alpha, x)


def dot(x: Tensor, y: Tensor) -> Tensor:
    """caffe_cpu_dot, as a 0-dim tensor of x's dtype."""
    return ops.blas_dot(x, y)


# Caffe's other solvers' per-blob update steps (csrc/cpu/solver_updates.cpp; replicate/solvers.py)


@torch.library.register_fake("replicate::nesterov_update")
def _(data, diff, history, local_rate, momentum, local_decay, regularization, diff_scale):
    _one_device("nesterov_update", locals())
    return None


@torch.library.register_fake("replicate::adagrad_update")
def _(data, diff, history, local_rate, delta, local_decay, regularization, diff_scale):
    _one_device("adagrad_update", locals())
    return None


@torch.library.register_fake("replicate::rmsprop_update")
def _(data, diff, history, local_rate, rms_decay, delta, local_decay, regularization, diff_scale):
    _one_device("rmsprop_update", locals())
    return None


@torch.library.register_fake("replicate::adadelta_update")
def _(data, diff, history, history2, local_rate, momentum, delta, local_decay, regularization, diff_scale):
    _one_device("adadelta_update", locals())
    return None


@torch.library.register_fake("replicate::adam_update")
def _(data, diff, m, v, local_rate, beta1, beta2, delta, t, local_decay, regularization, diff_scale):
    _one_device("adam_update", locals())
    return None


# ---------------------------------------------------------------------------------------------
# group A: fake kernels of the neuron and loss layers' ops (csrc/cpu/neuron.cpp, csrc/cpu/losses.cpp)

def _fake_group_a(op: str, like: int, n_out: int = 1, extra=()):
    """A fake kernel returning ``n_out`` tensors like argument ``like`` followed by ``extra``:
    each a function of that argument giving another fake output (a 0-d loss, a vector ...)."""
    def fake(*args):
        _one_device(op, {f"argument {i}": a for i, a in enumerate(args)})
        outs = [_like(args[like]) for _ in range(n_out)] + [f(args[like]) for f in extra]
        return outs[0] if len(outs) == 1 else tuple(outs)
    torch.library.register_fake(f"replicate::{op}")(fake)


_scalar = lambda t: _empty(t, ())  # noqa: E731

for _op, _like_arg in (("absval_forward", 0), ("absval_backward", 1), ("bnll_forward", 0), ("bnll_backward", 1),
                       ("elu_forward", 0), ("elu_backward", 1), ("exp_forward", 0), ("exp_backward", 1),
                       ("log_forward", 0), ("log_backward", 1), ("power_forward", 0), ("power_backward", 1),
                       ("prelu_forward", 0), ("sigmoid_forward", 0), ("sigmoid_backward", 1), ("tanh_forward", 0),
                       ("tanh_backward", 1), ("threshold_forward", 0), ("clip_forward", 0), ("clip_backward", 1),
                       ("swish_backward", 1), ("euclidean_loss_backward", 1), ("hinge_loss_backward", 1),
                       ("multinomial_logistic_loss_backward", 1), ("contrastive_loss_backward", 1),
                       ("infogain_loss_backward", 1), ("sigmoid_cross_entropy_loss_backward", 1)):
    _fake_group_a(_op, _like_arg)
_fake_group_a("swish_forward", 0, 2)
_fake_group_a("multinomial_logistic_loss_forward", 0, 0, (_scalar,))
_fake_group_a("infogain_loss_forward", 0, 0, (_scalar,))
_fake_group_a("euclidean_loss_forward", 0, 0, (_scalar, _like))
_fake_group_a("hinge_loss_forward", 0, 0, (_scalar, _like))
_fake_group_a("sigmoid_cross_entropy_loss_forward", 0, 0, (_scalar, _like, _scalar))
_fake_group_a("contrastive_loss_forward", 0, 0, (_scalar, _like, lambda t: _empty(t, (t.shape[0],))))


@torch.library.register_fake("replicate::prelu_backward")
def _(grad_output, input, slope, channel_shared, output_mask, slope_diff=None):
    _one_device("prelu_backward", locals())
    return (_like(input) if output_mask[0] else _empty(input, (0,)),
            _like(slope) if output_mask[1] else _empty(input, (0,)))


# ---------------------------------------------------------------------------------------------
# group B layers (csrc/cpu/norm_layers.cpp): fake kernels and helpers with Caffe's arguments


@torch.library.register_fake("replicate::blas_gemm")
def _(trans_a, trans_b, M, N, K, alpha, A, B, beta, C):
    _one_device("blas_gemm", {"A": A, "B": B, "C": C})
    return None


@torch.library.register_fake("replicate::blas_gemv")
def _(trans_a, M, N, alpha, A, x, beta, y):
    _one_device("blas_gemv", {"A": A, "x": x, "y": y})
    return None


@torch.library.register_fake("replicate::blas_axpby")
def _(alpha, x, beta, y):
    _one_device("blas_axpby", {"x": x, "y": y})
    return None


@torch.library.register_fake("replicate::blas_asum")
def _(x):
    return _empty(x, ())


@torch.library.register_fake("replicate::powx")
def _(x, p):
    return _like(x)


@torch.library.register_fake("replicate::scale_chunks")
def _(x, scale, inner):
    _one_device("scale_chunks", {"x": x, "scale": scale})
    return _like(x)


def gemm(trans_a: bool, trans_b: bool, M: int, N: int, K: int, alpha: float, A: Tensor, B: Tensor, beta: float,
         C: Tensor) -> None:
    """caffe_cpu_gemm in place on ``C`` (contiguous operands with exactly M*K, K*N, M*N elements)."""
    ops.blas_gemm(int(trans_a), int(trans_b), M, N, K, alpha, A, B, beta, C)


def gemv(trans_a: bool, M: int, N: int, alpha: float, A: Tensor, x: Tensor, beta: float, y: Tensor) -> None:
    """caffe_cpu_gemv in place on ``y`` (A is M x N row-major)."""
    ops.blas_gemv(int(trans_a), M, N, alpha, A, x, beta, y)


def axpby(alpha: float, x: Tensor, beta: float, y: Tensor) -> None:
    """caffe_cpu_axpby in place on ``y``: scal(beta, y) then axpy(alpha, x, y)."""
    ops.blas_axpby(alpha, x, beta, y)


def asum(x: Tensor) -> Tensor:
    """caffe_cpu_asum, as a 0-dim tensor of x's dtype."""
    return ops.blas_asum(x)


def powx(x: Tensor, p: float) -> Tensor:
    """caffe_powx: std::pow(x, Dtype(p)) element by element (glibc's powf for float32)."""
    return ops.powx(x, p)


# group C: recurrent layers (csrc/cpu/recurrent.cpp)
@torch.library.register_fake("replicate::lstm_unit_forward")
def _(c_prev, x, cont):
    _one_device("lstm_unit_forward", {"c_prev": c_prev, "x": x, "cont": cont})
    return _like(c_prev), _like(c_prev)


@torch.library.register_fake("replicate::lstm_unit_backward")
def _(c_diff, h_diff, c_prev, x, cont, c):
    _one_device("lstm_unit_backward", {"c_diff": c_diff, "h_diff": h_diff, "c_prev": c_prev, "x": x, "cont": cont,
                                       "c": c})
    return _like(c_prev), _like(x)
