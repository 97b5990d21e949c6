"""Accuracy: top_k hits (a tie with the true class is a miss), ignore_label, optional per-class
top.  No backward, as in Caffe."""
from __future__ import annotations

import torch

from .base import Layer, axis_index


class Accuracy(Layer):
    type = "Accuracy"
    min_bottoms = max_bottoms = 2

    def forward(self, bottoms):
        x, label = bottoms
        p = self.param.accuracy_param
        axis = axis_index(p.axis, x.dim(), self)
        if p.top_k > x.shape[axis]:
            raise self.error(f"top_k {p.top_k} is larger than the {x.shape[axis]} classes")
        ignore = int(p.ignore_label) if p.HasField("ignore_label") else None
        acc, per_class = torch.ops.replicate.accuracy_forward(x, label, axis, int(p.top_k), ignore)
        return [acc, per_class][: self.n_tops]


LAYER = Accuracy
