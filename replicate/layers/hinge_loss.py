"""HingeLoss (one-vs-all): ``t = max(0, 1 + x * (-1 at the label, else 1))``; L1 ``asum(t) / N``,
L2 ``dot(t, t) / N``.  Backward flips the label entries back and scales (L1: ``sign(t) * w / N``;
L2: ``t * 2w / N``).  Caffe keeps ``t`` in the bottom's diff between the passes; here the layer keeps it."""
from __future__ import annotations

import torch

from .base import Layer
from .euclidean_loss import check_same_num
from .sigmoid import require_cpu


class HingeLoss(Layer):
    type = "HingeLoss"
    loss_layer = True
    min_bottoms = max_bottoms = 2

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        self.norm = int(param.hinge_loss_param.norm)
        self.diff = None

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        x, label = bottoms
        check_same_num(self, x, label)
        loss, self.diff = torch.ops.replicate.hinge_loss_forward(x, label, self.norm)
        return [loss]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if propagate_down[1]:
            raise self.error("HingeLoss Layer cannot backpropagate to label inputs.")
        if not propagate_down[0]:
            return [None, None]
        d = torch.ops.replicate.hinge_loss_backward(top_diffs[0], self.diff, bottoms[1], self.norm)
        return [d.reshape(bottoms[0].shape), None]


LAYER = HingeLoss
