"""TanH: the float tanh; backward ``top_diff * (1 - y * y)``."""
from __future__ import annotations

import torch

from .base import Layer
from .sigmoid import require_cpu
from .engine import honours_engine


@honours_engine
class TanH(Layer):
    type = "TanH"
    min_bottoms = max_bottoms = 1

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        return [torch.ops.replicate.tanh_forward(bottoms[0])]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        return [torch.ops.replicate.tanh_backward(top_diffs[0], tops[0])]


LAYER = TanH
