"""MVN (mean-variance normalisation per N x C, or per N with ``across_channels``) as Caffe's
MVNLayer (CPU): means and variances by GEMV, broadcasts by K=1 GEMM, ``caffe_powx`` (glibc powf)
for the squares and the square root, and ``eps`` added to the standard deviation (not to the
variance).  The top has Caffe's legacy 4-D shape (num, channels, height, width)."""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import ops as R
from .base import Layer
from .bias import cpu_only, ones


class MVN(Layer):
    type = "MVN"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.mvn_param
        self.norm_var, self.across, self.eps = p.normalize_variance, p.across_channels, float(np.float32(p.eps))

    def _geom(self, x):
        if x.dim() > 4:
            raise self.error(f"takes at most 4 axes (Caffe's legacy num/channels/height/width), got {tuple(x.shape)}")
        shape4 = list(x.shape) + [1] * (4 - x.dim())
        num = shape4[0] if self.across else shape4[0] * shape4[1]
        dim = x.numel() // num if num else 0
        return shape4, num, dim

    def forward(self, bottoms):
        x = bottoms[0]
        cpu_only(self, [x])
        shape4, num, dim = self._geom(x)
        if self.ctx.shape_only:
            return [x.new_empty(shape4)]
        xc = x.contiguous().reshape(shape4)
        dt = x.dtype
        one = ones(dim, x)
        mean = torch.empty(num, dtype=dt)
        temp = torch.empty(shape4, dtype=dt)
        R.gemv(False, num, dim, 1.0 / dim, xc, one, 0.0, mean)
        R.gemm(False, False, num, dim, 1, -1.0, mean, one, 0.0, temp)
        top = xc + temp
        if self.norm_var:
            sq = R.powx(top, 2.0)
            var = torch.empty(num, dtype=dt)
            R.gemv(False, num, dim, 1.0 / dim, sq, one, 0.0, var)
            var = R.powx(var, 0.5) + torch.tensor(self.eps, dtype=dt)
            R.gemm(False, False, num, dim, 1, 1.0, var, one, 0.0, temp)
            top = top / temp
            self.var = var
        return [top]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        x = bottoms[0]
        td = top_diffs[0].contiguous()
        cpu_only(self, [x, td])
        shape4, num, dim = self._geom(x)
        dt = td.dtype
        one = ones(dim, td)
        mean = torch.empty(num, dtype=dt)
        temp = torch.empty(shape4, dtype=dt)
        if self.norm_var:
            y = tops[0].contiguous()
            bd = y * td
            R.gemv(False, num, dim, 1.0, bd, one, 0.0, mean)
            R.gemm(False, False, num, dim, 1, 1.0, mean, one, 0.0, bd)
            bd = y * bd
            R.gemv(False, num, dim, 1.0, td, one, 0.0, mean)
            R.gemm(False, False, num, dim, 1, 1.0, mean, one, 1.0, bd)
            R.axpby(1.0, td, -1.0 / dim, bd)
            R.gemm(False, False, num, dim, 1, 1.0, self.var, one, 0.0, temp)
            bd = bd / temp
        else:
            R.gemv(False, num, dim, 1.0 / dim, td, one, 0.0, mean)
            R.gemm(False, False, num, dim, 1, -1.0, mean, one, 0.0, temp)
            bd = td + temp
        return [bd.reshape(x.shape)]


LAYER = MVN
