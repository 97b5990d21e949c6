"""Log: ``log_base(shift + scale * x)`` in Caffe's steps (scale, add shift, log, times
``1 / log(base)``); backward ``top_diff * (scale / log(base)) * (shift + scale * x)^-1`` (powf)."""
from __future__ import annotations

import torch

from .base import Layer
from .exp import check_base
from .sigmoid import require_cpu


class Log(Layer):
    type = "Log"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.log_param
        check_base(self, p.base, reciprocal=True)
        self.args = (p.base, p.scale, p.shift)

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        return [torch.ops.replicate.log_forward(bottoms[0], *self.args)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        return [torch.ops.replicate.log_backward(top_diffs[0], bottoms[0], *self.args)]


LAYER = Log
