"""Input: blobs the caller fills (``input_param.shape``: one shape for all tops, or one each)."""
from __future__ import annotations

import torch

from .base import Layer


class Input(Layer):
    type = "Input"
    max_bottoms = 0

    def shapes(self):
        shapes = [tuple(int(d) for d in s.dim) for s in self.param.input_param.shape]
        n = self.n_tops
        if len(shapes) == 1:
            shapes = shapes * n
        if len(shapes) != n:
            raise self.error(f"input_param has {len(shapes)} shapes for {n} tops")
        return shapes

    def forward(self, bottoms):
        # the Net keeps whatever the caller put into the input blobs; these are the initial zeros
        device = "meta" if self.ctx.shape_only else self.ctx.device
        return [torch.zeros(s, dtype=self.ctx.dtype, device=device) for s in self.shapes()]


LAYER = Input
