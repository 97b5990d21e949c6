"""Dropout: in TRAIN a 0/1 mask from Caffe's RNG (boost bernoulli on mt19937) and
``x * mask * scale``; in TEST the identity."""
from __future__ import annotations

import torch

from prototxt_like import caffe_pb2

from .base import Layer


class Dropout(Layer):
    type = "Dropout"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        self.ratio = param.dropout_param.dropout_ratio
        if not 0.0 <= self.ratio < 1.0:
            raise self.error(f"dropout_ratio must be in [0, 1), got {self.ratio}")
        self.mask = None

    def forward(self, bottoms):
        x = bottoms[0]
        if self.param.phase != caffe_pb2.TRAIN or self.ctx.shape_only:
            return [x]
        mask = self.ctx.rng.dropout_mask(tuple(x.shape), self.ratio)
        self.mask = torch.from_numpy(mask).to(x.device)
        return [torch.ops.replicate.dropout_forward(x, self.mask, self.ratio)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        if self.param.phase != caffe_pb2.TRAIN:
            return [top_diffs[0]]
        return [torch.ops.replicate.dropout_backward(top_diffs[0], self.mask, self.ratio)]


LAYER = Dropout
