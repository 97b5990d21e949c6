"""Im2col: each image's (C, H, W) as Caffe's im2col matrix, shaped N x (C*kh*kw) x out_h x out_w;
backward is col2im (Caffe zeroes the image, then adds every column entry in its order)."""
from __future__ import annotations

import torch

from .base import Layer, axis_index, pair_param


class Im2col(Layer):
    type = "Im2col"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.convolution_param
        if p.force_nd_im2col:
            raise self.error("force_nd_im2col is not supported (only Caffe's 2-D im2col)")
        self.kernel = pair_param(p, "kernel_size", self, 0)
        if min(self.kernel) <= 0:
            raise self.error("Filter dimensions must be nonzero.")
        self.stride = pair_param(p, "stride", self, 1)
        if min(self.stride) <= 0:
            raise self.error("Stride dimensions must be nonzero.")
        self.pad = pair_param(p, "pad", self, 0)
        dil = [int(d) for d in p.dilation]
        if len(dil) > 2:
            raise self.error("only 2-D dilation is supported")
        self.dilation = tuple((dil * 2)[:2]) if dil else (1, 1)

    def _check(self, x):
        if axis_index(self.param.convolution_param.axis, x.dim(), self) != 1 or x.dim() != 4:
            raise self.error(f"only N x C x H x W bottoms with axis 1 are supported, got shape {tuple(x.shape)}")

    def forward(self, bottoms):
        x = bottoms[0]
        self._check(x)
        col = torch.ops.replicate.im2col(x.contiguous(), self.kernel, self.pad, self.stride, self.dilation)
        n, c = x.shape[0], x.shape[1]
        oh = (x.shape[2] + 2 * self.pad[0] - (self.dilation[0] * (self.kernel[0] - 1) + 1)) // self.stride[0] + 1
        ow = (x.shape[3] + 2 * self.pad[1] - (self.dilation[1] * (self.kernel[1] - 1) + 1)) // self.stride[1] + 1
        return [col.reshape(n, c * self.kernel[0] * self.kernel[1], oh, ow)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        x, td = bottoms[0], top_diffs[0]
        col = td.contiguous().reshape(td.shape[0], td.shape[1], -1)
        return [torch.ops.replicate.col2im(col, tuple(x.shape[2:]), x.shape[1], self.kernel, self.pad, self.stride,
                                           self.dilation)]


LAYER = Im2col
