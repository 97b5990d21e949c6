"""SigmoidCrossEntropyLoss: ``-sum(x * (t - (x >= 0)) - log(1 + exp(x - 2x(x >= 0))))`` over the
elements whose ``int(t)`` is not ``ignore_label``, divided by the normaliser (default BATCH_SIZE;
legacy ``normalize: true`` is VALID); backward ``(sigmoid(x) - t) * w / normaliser`` (0 where ignored)."""
from __future__ import annotations

import torch

from prototxt_like import caffe_pb2

from .base import Layer
from .euclidean_loss import check_same_num
from .sigmoid import require_cpu

_N = caffe_pb2.LossParameter


class SigmoidCrossEntropyLoss(Layer):
    type = "SigmoidCrossEntropyLoss"
    loss_layer = True
    min_bottoms = max_bottoms = 2

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        lp = param.loss_param
        if lp.HasField("normalization"):
            self.normalization = lp.normalization
        elif lp.HasField("normalize"):
            self.normalization = _N.VALID if lp.normalize else _N.BATCH_SIZE
        else:
            self.normalization = _N.BATCH_SIZE
        self.ignore_label = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.sigmoid_output = self.normalizer = None

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        x, target = bottoms
        check_same_num(self, x, target)
        if x.numel() != target.numel():
            raise self.error(f"SIGMOID_CROSS_ENTROPY_LOSS layer inputs must have the same count "
                             f"({tuple(x.shape)} and {tuple(target.shape)})")
        loss, self.sigmoid_output, self.normalizer = torch.ops.replicate.sigmoid_cross_entropy_loss_forward(
            x, target, self.normalization, self.ignore_label)
        return [loss]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if propagate_down[1]:
            raise self.error("SigmoidCrossEntropyLoss Layer cannot backpropagate to label inputs.")
        if not propagate_down[0]:
            return [None, None]
        d = torch.ops.replicate.sigmoid_cross_entropy_loss_backward(
            top_diffs[0], self.sigmoid_output, bottoms[1], self.normalizer, self.ignore_label)
        return [d.reshape(bottoms[0].shape), None]


LAYER = SigmoidCrossEntropyLoss
