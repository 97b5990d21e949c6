"""ELU: ``max(x, 0) + alpha * (exp(min(x, 0)) - 1)``; backward
``top_diff * ((x > 0) + (alpha + y) * (x <= 0))``."""
from __future__ import annotations

import torch

from .base import Layer
from .sigmoid import require_cpu


class ELU(Layer):
    type = "ELU"
    min_bottoms = max_bottoms = 1

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        return [torch.ops.replicate.elu_forward(bottoms[0], self.param.elu_param.alpha)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        return [torch.ops.replicate.elu_backward(top_diffs[0], bottoms[0], tops[0], self.param.elu_param.alpha)]


LAYER = ELU
