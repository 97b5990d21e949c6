"""Clip: ``max(min, min(x, max))``; the diff passes where ``min <= x <= max`` (inclusive)."""
from __future__ import annotations

import torch

from .base import Layer
from .sigmoid import require_cpu


class Clip(Layer):
    type = "Clip"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.clip_param
        if param.HasField("clip_param") and not (p.HasField("min") and p.HasField("max")):
            raise self.error("clip_param needs both min and max (required fields)")
        self.lo, self.hi = p.min, p.max

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        return [torch.ops.replicate.clip_forward(bottoms[0], self.lo, self.hi)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        return [torch.ops.replicate.clip_backward(top_diffs[0], bottoms[0], self.lo, self.hi)]


LAYER = Clip
