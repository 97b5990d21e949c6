"""AbsVal: ``|x|``; backward ``sign(x) * top_diff`` (sign 0 at +-0).  Not in place (Caffe checks)."""
from __future__ import annotations

import torch

from .base import Layer
from .sigmoid import require_cpu


class AbsVal(Layer):
    type = "AbsVal"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        if param.top and param.bottom and param.top[0] == param.bottom[0]:
            raise self.error("AbsVal Layer does not allow in-place computation.")

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        return [torch.ops.replicate.absval_forward(bottoms[0])]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        return [torch.ops.replicate.absval_backward(top_diffs[0], bottoms[0])]


LAYER = AbsVal
