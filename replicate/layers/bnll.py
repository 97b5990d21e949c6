"""BNLL: ``log(1 + exp(x))`` (``x + log(1 + exp(-x))`` for x > 0), a float exp inside a double log;
backward ``top_diff * e / (e + 1)`` with ``e = exp(min(x, 50))``."""
from __future__ import annotations

import torch

from .base import Layer
from .sigmoid import require_cpu


class BNLL(Layer):
    type = "BNLL"
    min_bottoms = max_bottoms = 1

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        return [torch.ops.replicate.bnll_forward(bottoms[0])]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        return [torch.ops.replicate.bnll_backward(top_diffs[0], bottoms[0])]


LAYER = BNLL
