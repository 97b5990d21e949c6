"""Exp: ``base^(shift + scale * x)``, computed as Caffe factors it: ``outer * exp(inner * x)`` with
``inner = log(base) * scale`` and ``outer = base^shift`` (``exp(shift)`` for base e, the default -1);
backward ``top_diff * y * inner``."""
from __future__ import annotations

import numpy as np
import torch

from .base import Layer
from .sigmoid import require_cpu


def check_base(layer: Layer, base: float, reciprocal: bool = False) -> None:
    """Exp's and Log's LayerSetUp checks on ``base`` (-1 means e): positive, with a finite float
    ``log(base)`` (Log: and a finite ``1 / log(base)``, so not 1)."""
    if base == -1:
        return
    if not base > 0:
        raise layer.error(f"base must be strictly positive, got {base}")
    log_base = np.log(np.float32(base))
    if not np.isfinite(log_base) or (reciprocal and log_base == 0):
        raise layer.error(f"log(base) = log({base}) = {log_base} gives a NaN/Inf scale")


class Exp(Layer):
    type = "Exp"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.exp_param
        check_base(self, p.base)
        self.args = (p.base, p.scale, p.shift)

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        return [torch.ops.replicate.exp_forward(bottoms[0], *self.args)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        return [torch.ops.replicate.exp_backward(top_diffs[0], tops[0], *self.args)]


LAYER = Exp
