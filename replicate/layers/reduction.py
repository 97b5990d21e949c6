"""Reduction (SUM, ASUM, SUMSQ, MEAN over the axes from ``axis`` on, times ``coeff``) as Caffe's
ReductionLayer: per output one ``caffe_cpu_dot`` (with a ones vector for SUM/MEAN, x.x for SUMSQ) or
``caffe_cpu_asum``, then ``caffe_scal(coeff)`` over the top when coeff != 1 (MEAN: coeff / dim in
float).  Backward: SUM/MEAN set ``top_diff * coeff``; ASUM ``sign(x)`` then scal; SUMSQ copy + scal by
``2 * top_diff * coeff``."""
from __future__ import annotations

import math

import numpy as np
import torch

from prototxt_like import caffe_pb2

from .. import ops as R
from .base import Layer, axis_index
from .bias import cpu_only, ones

_OP = caffe_pb2.ReductionParameter


class Reduction(Layer):
    type = "Reduction"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        self.op = param.reduction_param.operation
        if self.op not in (_OP.SUM, _OP.ASUM, _OP.SUMSQ, _OP.MEAN):
            raise self.error(f"Unknown reduction op: {self.op}")

    def _geom(self, x):
        axis = axis_index(self.param.reduction_param.axis, x.dim(), self)
        num, dim = math.prod(x.shape[:axis]), math.prod(x.shape[axis:])
        coeff = np.float32(self.param.reduction_param.coeff)
        if self.op == _OP.MEAN:
            coeff = np.float32(coeff / np.float32(dim))  # Dtype coeff_ /= int dim_
        return axis, num, dim, float(coeff)

    def forward(self, bottoms):
        x = bottoms[0]
        cpu_only(self, [x])
        axis, num, dim, coeff = self._geom(x)
        if self.ctx.shape_only:
            return [x.new_empty(x.shape[:axis])]
        xf = x.contiguous().view(num, dim)
        top = torch.empty(num, dtype=x.dtype)
        one = ones(dim, x) if self.op in (_OP.SUM, _OP.MEAN) else None
        for i in range(num):
            if self.op == _OP.ASUM:
                top[i] = R.asum(xf[i])
            elif self.op == _OP.SUMSQ:
                top[i] = R.dot(xf[i], xf[i])
            else:
                top[i] = R.dot(one, xf[i])
        if coeff != 1.0:
            R.scal(coeff, top)
        return [top.view(x.shape[:axis])]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        x = bottoms[0]
        cpu_only(self, [x, top_diffs[0]])
        _, num, dim, coeff = self._geom(x)
        xf = x.contiguous().view(num, dim)
        # Dtype bottom_coeff = top_diff * coeff_ (one float multiply per output)
        bc = (top_diffs[0].contiguous().view(num) * torch.tensor(coeff, dtype=x.dtype)).tolist()
        out = torch.empty((num, dim), dtype=x.dtype)
        for i in range(num):
            if self.op in (_OP.SUM, _OP.MEAN):
                out[i].fill_(bc[i])
            elif self.op == _OP.ASUM:
                out[i] = (xf[i] > 0).to(x.dtype) - (xf[i] < 0).to(x.dtype)  # caffe_cpu_sign; NaN -> 0
                R.scal(bc[i], out[i])
            else:
                out[i] = xf[i]
                two_bc = float(np.float32(2) * np.float32(bc[i])) if x.dtype == torch.float32 else 2 * bc[i]
                R.scal(two_bc, out[i])
        return [out.view(x.shape)]


LAYER = Reduction
