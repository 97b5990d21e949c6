"""Parameter: a learned blob as the layer's top (``parameter_param.shape``; no filler: a new blob
is zeros, as Caffe's fresh SyncedMemory).  Caffe's top shares data *and* diff with the param blob,
so whatever the consumers write into the top's diff is the param diff: Backward copies it over
(overwriting, never accumulating, as the shared memory would)."""
from __future__ import annotations

import torch

from .base import Layer, Param


class Parameter(Layer):
    type = "Parameter"
    min_bottoms = max_bottoms = 0

    def setup(self, bottoms):
        shape = tuple(int(d) for d in self.param.parameter_param.shape.dim)
        given = list(self.param.blobs)
        if given:
            self.params = self.make_params([(shape, None, "parameter")], check_shapes=False)
        else:
            self.params = [Param(torch.zeros(shape, dtype=self.ctx.dtype, device=self.ctx.device))]
        self.shape = shape

    def forward(self, bottoms):
        data = self.params[0].data
        return [data if tuple(data.shape) == self.shape else data.view(self.shape)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        p = self.params[0]
        with torch.no_grad():
            p.diff.copy_(top_diffs[0].reshape(p.diff.shape))
        return []


LAYER = Parameter
