"""SoftmaxWithLoss: Caffe's LossLayer (loss_weight 1 on top 0 unless given), normalization
FULL / VALID / BATCH_SIZE / NONE (legacy ``normalize``), ignore_label; optional prob top."""
from __future__ import annotations

import torch

from prototxt_like import caffe_pb2

from .base import Layer, axis_index
from .engine import honours_engine

_N = caffe_pb2.LossParameter


@honours_engine
class SoftmaxWithLoss(Layer):
    type = "SoftmaxWithLoss"
    loss_layer = True
    min_bottoms = max_bottoms = 2

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        lp = param.loss_param
        if lp.HasField("normalize") and not lp.HasField("normalization"):
            self.normalization = _N.VALID if lp.normalize else _N.BATCH_SIZE
        else:
            self.normalization = lp.normalization
        self.ignore_label = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.prob = None

    def forward(self, bottoms):
        x, label = bottoms
        self.axis = axis_index(self.param.softmax_param.axis, x.dim(), self)
        if label.dim() == 0 or x.shape[0] != label.shape[0]:
            raise self.error(f"The data and label should have the same first dimension (scores {tuple(x.shape)}, "
                             f"label {tuple(label.shape)})")
        outer = x.numel() // x.shape[self.axis]
        if label.numel() != outer:
            raise self.error(f"label count {label.numel()} must equal the outer count {outer} of the scores "
                             f"{tuple(x.shape)} (N x H x W with the class axis {self.axis} removed)")
        loss, self.prob = torch.ops.replicate.softmax_loss_forward(x, label, self.axis, self.normalization,
                                                                   self.ignore_label)
        return [loss, self.prob][: self.n_tops]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if propagate_down[1]:
            raise self.error("cannot backpropagate to label inputs")
        if not propagate_down[0]:
            return [None, None]
        return [torch.ops.replicate.softmax_loss_backward(top_diffs[0], self.prob, bottoms[1], self.axis,
                                                          self.normalization, self.ignore_label), None]


LAYER = SoftmaxWithLoss
