"""EuclideanLoss: ``dot(a - b, a - b) / N / 2`` (sdot); backward ``+-(loss_weight / N) * (a - b)`` by
axpby.  Both bottoms may be forced to back-propagate (Caffe's AllowForceBackward is true)."""
from __future__ import annotations

import torch

from .base import Layer
from .sigmoid import require_cpu


def check_same_num(layer: Layer, a, b) -> None:
    """LossLayer::Reshape: the data and label share their first dimension."""
    if a.dim() == 0 or b.dim() == 0 or a.shape[0] != b.shape[0]:
        raise layer.error(f"The data and label should have the same first dimension ({tuple(a.shape)} and "
                          f"{tuple(b.shape)})")


class EuclideanLoss(Layer):
    type = "EuclideanLoss"
    loss_layer = True
    min_bottoms = max_bottoms = 2

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        self.diff = None

    def allow_force_backward(self, bottom_index: int) -> bool:
        return True

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        a, b = bottoms
        check_same_num(self, a, b)
        if a[0].numel() != b[0].numel():
            raise self.error(f"Inputs must have the same dimension ({tuple(a.shape)} and {tuple(b.shape)})")
        loss, self.diff = torch.ops.replicate.euclidean_loss_forward(a, b)
        return [loss]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        out = []
        for i, (need, sign) in enumerate(zip(propagate_down, (1.0, -1.0))):
            if not need:
                out.append(None)
                continue
            b = bottoms[i]
            d = torch.ops.replicate.euclidean_loss_backward(top_diffs[0], self.diff, sign, b.shape[0])
            out.append(d.reshape(b.shape))
        return out


LAYER = EuclideanLoss
