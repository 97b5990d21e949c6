"""PReLU: ``max(x, 0) + a_c * min(x, 0)`` with one learned slope per channel (axis 1) or one shared
slope (a 0-axis blob); default filler constant 0.25.  Backward accumulates the slope diff in index
order and, in place, reads the bottom Caffe saved in forward."""
from __future__ import annotations

import torch

from prototxt_like import caffe_pb2

from .base import Layer
from .sigmoid import require_cpu


class PReLU(Layer):
    type = "PReLU"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        self.channel_shared = param.prelu_param.channel_shared
        self.in_place = bool(param.top) and bool(param.bottom) and param.top[0] == param.bottom[0]
        self.bottom_memory = None

    def setup(self, bottoms):
        x = bottoms[0]
        if x.dim() < 2:
            raise self.error(f"Number of axes of bottom blob must be >=2, got shape {tuple(x.shape)}")
        pp = self.param.prelu_param
        if pp.HasField("filler"):
            filler = pp.filler
        else:
            filler = caffe_pb2.FillerParameter(type="constant", value=0.25)
        channels = int(x.shape[1])
        shape = () if self.channel_shared else (channels,)
        # Caffe checks only the count of a given blob (1, or one per channel)
        self.params = self.make_params([(shape, filler, "slope")], check_shapes=False)
        want = 1 if self.channel_shared else channels
        if self.params[0].data.numel() != want:
            raise self.error(f"Negative slope size is inconsistent with prototxt config: the blob has "
                             f"{self.params[0].data.numel()} values, the layer needs {want}")

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        x = bottoms[0]
        if x.dim() < 2:
            raise self.error(f"Number of axes of bottom blob must be >=2, got shape {tuple(x.shape)}")
        if self.in_place and not self.ctx.shape_only:
            self.bottom_memory = x
        return [torch.ops.replicate.prelu_forward(x, self.params[0].data, self.channel_shared)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        x = self.bottom_memory if self.in_place else bottoms[0]
        slope = self.params[0]
        want_slope = bool(self.param_propagate_down and self.param_propagate_down[0])
        if not (propagate_down[0] or want_slope):
            return [None]
        gx, gs = torch.ops.replicate.prelu_backward(top_diffs[0], x, slope.data, self.channel_shared,
                                                    [bool(propagate_down[0]), want_slope],
                                                    slope.diff if want_slope else None)
        if want_slope:
            slope.diff = gs.reshape(slope.data.shape)
        return [gx if propagate_down[0] else None]


LAYER = PReLU
