"""Convolution: Caffe's im2col + GEMM per image and per group (csrc/cpu/convolution.cpp)."""
from __future__ import annotations

import torch

from .base import Layer, pair_param
from .engine import honours_engine


@honours_engine
class Convolution(Layer):
    type = "Convolution"
    min_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.convolution_param
        if p.axis != 1:
            raise self.error("only axis 1 (N x C x H x W) is supported")
        self.kernel = pair_param(p, "kernel_size", self, 0)
        if min(self.kernel) <= 0:
            raise self.error("kernel_size (or kernel_h and kernel_w) must be given and positive")
        self.stride = pair_param(p, "stride", self, 1)
        self.pad = pair_param(p, "pad", self, 0)
        dil = list(p.dilation)
        if len(dil) > 2:
            raise self.error("only 2-D dilation is supported")
        self.dilation = (dil * 2)[:2] if dil else [1, 1]
        self.group = int(p.group)
        self.num_output = int(p.num_output)
        if self.num_output <= 0 or self.num_output % self.group:
            raise self.error(f"num_output {self.num_output} must be positive and divisible by group {self.group}")

    def _check_bottoms(self, bottoms):
        """Set-up's checks: N x C x H x W bottoms, all of one shape, C divisible by group.  Returns
        bottom 0."""
        x = bottoms[0]
        if x.dim() != 4:
            raise self.error(f"bottom must be N x C x H x W, got shape {tuple(x.shape)}")
        for b in bottoms[1:]:
            if b.shape != x.shape:
                raise self.error("all bottoms must have the same shape")
        if x.shape[1] % self.group:
            raise self.error(f"{x.shape[1]} input channels are not divisible by group {self.group}")
        return x

    def _make_weights(self, weight_shape) -> None:
        """The weight (``weight_shape``, weight_filler) and, with bias_term, the bias (num_output,
        bias_filler), filled in that order."""
        p = self.param.convolution_param
        specs = [(weight_shape, p.weight_filler, "weight")]
        if p.bias_term:
            specs.append(((self.num_output,), p.bias_filler, "bias"))
        self.params = self.make_params(specs)

    def setup(self, bottoms):
        x = self._check_bottoms(bottoms)
        self._make_weights((self.num_output, x.shape[1] // self.group, *self.kernel))

    def _bias(self):
        return self.params[1].data if len(self.params) > 1 else None

    def _params_wanted(self):
        """(weight, bias or None, whether the weight diff is wanted, whether the bias diff is)."""
        w = self.params[0]
        b = self.params[1] if len(self.params) > 1 else None
        return w, b, self.param_propagate_down[0], b is not None and self.param_propagate_down[1]

    # the net may run an in-place ReLU on the top inside this layer (replicate/net.py _plan_fusion):
    # forward/backward then get its negative_slope as ``relu_slope``
    fuses_relu = True

    def forward(self, bottoms, relu_slope=None):
        w = self.params[0].data
        return [torch.ops.replicate.conv_forward(x, w, self._bias(), self.stride, self.pad, self.dilation, self.group,
                                                 relu_slope)
                for x in bottoms]

    def backward(self, tops, top_diffs, propagate_down, bottoms, relu_slope=None, relu_in_place=False):
        """``relu_in_place``: the net allows the fused ReLU's bottom diff to overwrite the top diff
        (Caffe's in-place ReLU does; no second buffer of the top's size), else the convolution
        applies the ReLU's derivative to its own copy."""
        relu = {} if relu_slope is None else {"relu_slope": relu_slope}
        if relu and relu_in_place:
            for t, d in zip(tops, top_diffs):  # Caffe: the ReLU's backward over the batch, then the convolution's
                torch.ops.replicate.relu_backward_(d, t, relu_slope)
            relu = {}
        w, b, want_w, want_b = self._params_wanted()
        out = []
        for i, x in enumerate(bottoms):  # Caffe: per top, bias diff then weight/bottom diffs
            if not (want_w or want_b or propagate_down[i]):
                out.append(None)
                continue
            gx, gw, gb = torch.ops.replicate.conv_backward(
                top_diffs[i], x, w.data, self.stride, self.pad, self.dilation, self.group,
                [bool(propagate_down[i]), want_w, want_b], w.diff if want_w else None,
                b.diff if want_b else None, relu_top=tops[i] if relu else None, **relu)
            if want_w:
                w.diff = gw
            if want_b:
                b.diff = gb
            out.append(gx if propagate_down[i] else None)
        return out


LAYER = Convolution
