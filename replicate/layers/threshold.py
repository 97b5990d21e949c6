"""Threshold: 1 where ``x > threshold`` (strict), else 0.  Caffe has no Backward for it
(NOT_IMPLEMENTED): asking for a bottom diff is an error."""
from __future__ import annotations

import torch

from .base import Layer
from .sigmoid import require_cpu


class Threshold(Layer):
    type = "Threshold"
    min_bottoms = max_bottoms = 1

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        return [torch.ops.replicate.threshold_forward(bottoms[0], self.param.threshold_param.threshold)]


LAYER = Threshold
