"""LRN: ACROSS_CHANNELS (Caffe's sliding axpy sums) and WITHIN_CHANNEL (its Power/AVE-pool/Eltwise
composition, which ignores k)."""
from __future__ import annotations

import torch

from prototxt_like import caffe_pb2

from .base import Layer
from .engine import honours_engine

_L = caffe_pb2.LRNParameter


@honours_engine
class LRN(Layer):
    type = "LRN"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.lrn_param
        self.size, self.alpha, self.beta, self.k = int(p.local_size), p.alpha, p.beta, p.k
        if self.size % 2 == 0:
            raise self.error(f"local_size must be odd, got {self.size}")
        self.region = p.norm_region
        self.saved = None

    def forward(self, bottoms):
        x = bottoms[0]
        if x.dim() != 4:
            raise self.error(f"bottom must be N x C x H x W, got shape {tuple(x.shape)}")
        if self.region == _L.ACROSS_CHANNELS:
            top, scale, power = torch.ops.replicate.lrn_across_forward(x, self.size, self.alpha, self.beta, self.k)
        else:
            top, scale, power = torch.ops.replicate.lrn_within_forward(x, self.size, self.alpha, self.beta)
        self.saved = (scale, power)
        return [top]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        a, b = self.saved
        if self.region == _L.ACROSS_CHANNELS:
            return [torch.ops.replicate.lrn_across_backward(top_diffs[0], bottoms[0], tops[0], a, b, self.size,
                                                            self.alpha, self.beta)]
        return [torch.ops.replicate.lrn_within_backward(top_diffs[0], bottoms[0], a, b, self.size, self.alpha,
                                                        self.beta)]


LAYER = LRN
