"""MultinomialLogisticLoss on probabilities: ``-sum(log(max(p[label], 1e-20))) / N``; backward
``-w / N / max(p[label], 1e-20)`` at the label, 0 elsewhere (the same clamp in both passes)."""
from __future__ import annotations

import torch

from .base import Layer
from .euclidean_loss import check_same_num
from .sigmoid import require_cpu


class MultinomialLogisticLoss(Layer):
    type = "MultinomialLogisticLoss"
    loss_layer = True
    min_bottoms = max_bottoms = 2

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        prob, label = bottoms
        check_same_num(self, prob, label)
        if label.dim() > 4 or any(d != 1 for d in label.shape[1:]):
            raise self.error(f"the label must be N x 1 x 1 x 1 (one per sample), got {tuple(label.shape)}")
        return [torch.ops.replicate.multinomial_logistic_loss_forward(prob, label)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if propagate_down[1]:
            raise self.error("MultinomialLogisticLoss Layer cannot backpropagate to label inputs.")
        if not propagate_down[0]:
            return [None, None]
        d = torch.ops.replicate.multinomial_logistic_loss_backward(top_diffs[0], bottoms[0], bottoms[1])
        return [d.reshape(bottoms[0].shape), None]


LAYER = MultinomialLogisticLoss
