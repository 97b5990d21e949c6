"""Pooling: MAX (first maximum, int mask) and AVE with Caffe's ceil output size (with any padding,
a last window starting in the padding is dropped on both axes, as PoolingLayer::Reshape does)."""
from __future__ import annotations

import torch

from prototxt_like import caffe_pb2

from .base import Layer, pair_param
from .engine import honours_engine

_P = caffe_pb2.PoolingParameter


@honours_engine
class Pooling(Layer):
    type = "Pooling"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.pooling_param
        self.method = p.pool
        if self.method not in (_P.MAX, _P.AVE):
            raise self.error("only MAX and AVE pooling exist on Caffe's CPU (STOCHASTIC is GPU-only)")
        self.global_pooling = p.global_pooling
        if self.global_pooling and any(p.HasField(f) for f in ("kernel_size", "kernel_h", "kernel_w")):
            raise self.error("with global_pooling the kernel size comes from the bottom; do not set it")
        self.stride = pair_param(p, "stride", self, 1)
        self.pad = pair_param(p, "pad", self, 0)
        self.kernel = None if self.global_pooling else pair_param(p, "kernel_size", self, 0)
        if self.kernel is not None and min(self.kernel) <= 0:
            raise self.error("kernel_size (or kernel_h and kernel_w) must be given and positive")
        if self.kernel is not None and (self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]):
            raise self.error(f"pad {self.pad} must be smaller than the kernel {self.kernel}")
        self.ceil_mode = p.round_mode == _P.CEIL
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise self.error("with global_pooling, pad must be 0 and stride 1")
        if len(param.top) > 1 and self.method != _P.MAX:
            raise self.error("a second top (the mask) exists only for MAX pooling")
        self.mask = None

    def forward(self, bottoms):
        x = bottoms[0]
        if x.dim() != 4:
            raise self.error(f"bottom must be N x C x H x W, got shape {tuple(x.shape)}")
        kernel = tuple(x.shape[2:]) if self.global_pooling else self.kernel
        self.kernel_used = kernel
        if self.method == _P.MAX:
            top, self.mask = torch.ops.replicate.pool_max_forward(x, kernel, self.stride, self.pad, self.ceil_mode)
            tops = [top]
            if self.n_tops > 1:
                tops.append(self.mask.to(top.dtype))
            return tops
        return [torch.ops.replicate.pool_ave_forward(x, kernel, self.stride, self.pad, self.ceil_mode)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        size = list(bottoms[0].shape)
        if self.method == _P.MAX:
            return [torch.ops.replicate.pool_max_backward(top_diffs[0], self.mask, size)]
        return [torch.ops.replicate.pool_ave_backward(top_diffs[0], size, self.kernel_used, self.stride, self.pad)]


LAYER = Pooling
