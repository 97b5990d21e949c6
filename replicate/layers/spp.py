"""SPP (spatial pyramid pooling) as Caffe's SPPLayer: for pyramid level l (2^l bins per axis) a
Pooling with kernel ceil(size / bins), stride = kernel and pad (kernel * bins - size + 1) / 2 on each
axis, run on a Split of the bottom, each result flattened and concatenated on axis 1.  Backward:
Concat slices, the poolings' backward, and the Split's sum (d0 + d1, then + d2 ...).  With
pyramid_height 1 it is the single pooling (a 4-D N x C x 1 x 1 top)."""
from __future__ import annotations

import math

import torch

from prototxt_like import caffe_pb2

from .base import Layer

_S = caffe_pb2.SPPParameter


def level_geometry(level: int, h: int, w: int):
    bins = 2 ** level
    kh, kw = math.ceil(h / bins), math.ceil(w / bins)
    ph, pw = (kh * bins - h + 1) // 2, (kw * bins - w + 1) // 2
    return (kh, kw), (ph, pw)


class SPP(Layer):
    type = "SPP"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.spp_param
        if p.pool not in (_S.MAX, _S.AVE):
            raise self.error("only MAX and AVE pooling exist on Caffe's CPU (STOCHASTIC is GPU-only)")
        self.method, self.height = p.pool, int(p.pyramid_height)
        if self.height < 1:
            raise self.error("pyramid_height must be at least 1")

    def _levels(self, x):
        if x.dim() != 4:
            raise self.error(f"Input must have 4 axes, corresponding to (num, channels, height, width); got "
                             f"{tuple(x.shape)}")
        h, w = x.shape[2], x.shape[3]
        if h <= 0 or w <= 0:
            raise self.error("Input dimensions cannot be zero.")
        levels = [level_geometry(l, h, w) for l in range(self.height)]
        for kernel, pad in levels:
            if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
                raise self.error(f"pooling pad {pad} must be smaller than the kernel {kernel} (Caffe's PoolingLayer "
                                 "check)")
        return levels

    def forward(self, bottoms):
        x = bottoms[0]
        ops = torch.ops.replicate
        self.masks, self.pooled_shapes = [], []
        outs = []
        for kernel, pad in self._levels(x):
            if self.method == _S.MAX:
                top, mask = ops.pool_max_forward(x, kernel, kernel, pad, True)
                self.masks.append(mask)
            else:
                top = ops.pool_ave_forward(x, kernel, kernel, pad, True)
            self.pooled_shapes.append(tuple(top.shape))
            outs.append(top)
        if self.height == 1:
            return [outs[0]]
        return [torch.cat([o.reshape(o.shape[0], -1) for o in outs], dim=1)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        x = bottoms[0]
        ops = torch.ops.replicate
        size = list(x.shape)
        levels = self._levels(x)
        td = top_diffs[0]
        diffs, start = [], 0
        for i, (kernel, pad) in enumerate(levels):
            shape = self.pooled_shapes[i]
            if self.height == 1:
                d = td.contiguous()
            else:
                n = math.prod(shape[1:])
                d = td.narrow(1, start, n).contiguous().reshape(shape)
                start += n
            if self.method == _S.MAX:
                diffs.append(ops.pool_max_backward(d, self.masks[i], size))
            else:
                diffs.append(ops.pool_ave_backward(d, size, kernel, kernel, pad))
        if len(diffs) == 1:
            return [diffs[0]]
        out = diffs[0] + diffs[1]  # SplitLayer: caffe_add, then axpy(1, ...) (one rounding each)
        for d in diffs[2:]:
            out = out + d
        return [out]


LAYER = SPP
