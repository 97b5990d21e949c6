"""Split (inserted by the Net for blobs with several consumers): the tops share the bottom's data;
the bottom diff is ``top0 + top1`` then ``axpy(1, top_j)`` for the rest, as Caffe sums them."""
from __future__ import annotations

from .. import ops as R
from .base import Layer


class Split(Layer):
    type = "Split"
    min_bottoms = max_bottoms = 1

    def forward(self, bottoms):
        return [bottoms[0]] * self.n_tops

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        if len(top_diffs) == 1:
            return [top_diffs[0].clone()]
        out = (top_diffs[0] + top_diffs[1]).contiguous()
        for d in top_diffs[2:]:
            R.axpy(1.0, d, out)
        return [out]


LAYER = Split
