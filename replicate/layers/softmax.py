"""Softmax along ``softmax_param.axis`` (Caffe's max/exp/sum order, sums through the BLAS seam)."""
from __future__ import annotations

import torch

from .base import Layer, axis_index
from .engine import honours_engine


@honours_engine
class Softmax(Layer):
    type = "Softmax"
    min_bottoms = max_bottoms = 1

    def _axis(self, x):
        return axis_index(self.param.softmax_param.axis, x.dim(), self)

    def forward(self, bottoms):
        return [torch.ops.replicate.softmax_forward(bottoms[0], self._axis(bottoms[0]))]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        return [torch.ops.replicate.softmax_backward(top_diffs[0], tops[0], self._axis(tops[0]))]


LAYER = Softmax
