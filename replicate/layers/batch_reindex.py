"""BatchReindex: ``top[i] = bottom0[index[i]]`` along the first axis (bottom 1: a 1-D blob of
float indices, truncated to int); backward zeroes bottom 0's diff and adds each top row into its
source row in top order.  Caffe cannot back-propagate to the indices: asking for it is an error."""
from __future__ import annotations

import math

import torch

from .base import Layer


class BatchReindex(Layer):
    type = "BatchReindex"
    min_bottoms = max_bottoms = 2

    def _indices(self, x, perm):
        if perm.dim() != 1:
            raise self.error(f"the index bottom must be 1-D, got shape {tuple(perm.shape)}")
        vals = perm.detach().cpu()
        if bool((vals < 0).any()):
            raise self.error("Index specified for reindex layer was negative.")
        if bool((vals >= x.shape[0]).any()):
            raise self.error("Index specified for reindex layer was greater than batch size.")
        return vals.to(torch.int64)

    def forward(self, bottoms):
        x, perm = bottoms
        if perm.dim() != 1:
            raise self.error(f"the index bottom must be 1-D, got shape {tuple(perm.shape)}")
        shape = (perm.shape[0], *x.shape[1:])
        if self.ctx.shape_only:
            return [x.new_empty(shape)]
        idx = self._indices(x, perm)
        return [x.index_select(0, idx.to(x.device)).contiguous()]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if propagate_down[1]:
            raise self.error("Cannot backprop to index.")
        if not propagate_down[0]:
            return [None, None]
        x, perm = bottoms
        idx = self._indices(x, perm).tolist()
        td = top_diffs[0]
        diff = torch.zeros(x.shape, dtype=td.dtype, device=td.device)
        if math.prod(x.shape[1:]) and idx:
            with torch.no_grad():
                for j, i in enumerate(idx):  # in top order, as Caffe's loop adds them
                    diff[i] += td[j]
        return [diff, None]


LAYER = BatchReindex
