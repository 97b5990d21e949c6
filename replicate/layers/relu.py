"""ReLU: ``max(x, 0) + slope * min(x, 0)`` (in place in CaffeNet)."""
from __future__ import annotations

import torch

from .base import Layer
from .engine import honours_engine


@honours_engine
class ReLU(Layer):
    type = "ReLU"
    min_bottoms = max_bottoms = 1
    fusable_into_conv = True  # Net._plan_fusion: a Convolution may apply it (csrc/cpu/relu.h's arithmetic)

    def forward(self, bottoms):
        return [torch.ops.replicate.relu_forward(bottoms[0], self.param.relu_param.negative_slope)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        return [torch.ops.replicate.relu_backward(top_diffs[0], bottoms[0], self.param.relu_param.negative_slope)]


LAYER = ReLU
