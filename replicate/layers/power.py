"""Power: ``(shift + scale * x)^power`` (powf), with Caffe's special cases (a constant when
``power * scale == 0``) and its four backward branches (constant, power 2, shift 0, general)."""
from __future__ import annotations

import torch

from .base import Layer
from .sigmoid import require_cpu


class Power(Layer):
    type = "Power"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.power_param
        self.args = (p.power, p.scale, p.shift)

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        return [torch.ops.replicate.power_forward(bottoms[0], *self.args)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        return [torch.ops.replicate.power_backward(top_diffs[0], bottoms[0], tops[0], *self.args)]


LAYER = Power
