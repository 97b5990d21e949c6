"""Flatten axes ``axis`` .. ``end_axis`` into one (shares data, as Caffe's ShareData)."""
from __future__ import annotations

import math

from .base import Layer, axis_index


class Flatten(Layer):
    type = "Flatten"
    min_bottoms = max_bottoms = 1

    def forward(self, bottoms):
        x = bottoms[0]
        p = self.param.flatten_param
        a = axis_index(p.axis, x.dim(), self, "axis")
        e = axis_index(p.end_axis, x.dim(), self, "end_axis")
        return [x.reshape(*x.shape[:a], math.prod(x.shape[a:e + 1]), *x.shape[e + 1:])]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        return [top_diffs[0].reshape(bottoms[0].shape) if propagate_down[0] else None]


LAYER = Flatten
