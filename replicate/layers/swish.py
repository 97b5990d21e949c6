"""Swish: ``x * sigmoid(beta * x)`` through an internal Sigmoid (Caffe's double-tanh sigmoid);
backward ``top_diff * (beta * y + s * (1 - beta * y))`` with the kept sigmoid output ``s``."""
from __future__ import annotations

import torch

from .base import Layer
from .sigmoid import require_cpu


class Swish(Layer):
    type = "Swish"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        self.sigmoid_output = None

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        top, self.sigmoid_output = torch.ops.replicate.swish_forward(bottoms[0], self.param.swish_param.beta)
        return [top]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        return [torch.ops.replicate.swish_backward(top_diffs[0], tops[0], self.sigmoid_output,
                                                   self.param.swish_param.beta)]


LAYER = Swish
