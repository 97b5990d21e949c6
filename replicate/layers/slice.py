"""Slice along ``slice_param.axis`` (legacy ``slice_dim``) at ``slice_point`` (or into equal parts);
backward writes each top's diff into its slice of the bottom diff.  With one top the top shares the
bottom's data and diff, as Caffe's ShareData/ShareDiff."""
from __future__ import annotations

import torch

from .base import Layer, axis_index


class Slice(Layer):
    type = "Slice"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.slice_param
        if p.HasField("axis") and p.HasField("slice_dim"):
            raise self.error("Either axis or slice_dim should be specified; not both.")

    def _sizes(self, x):
        p = self.param.slice_param
        n = x.dim()
        if p.HasField("slice_dim"):
            axis = int(p.slice_dim)
            if not 0 <= axis < n:
                raise self.error(f"slice_dim {axis} out of range for a {n}-axis blob")
        else:
            axis = axis_index(p.axis, n, self)
        length = x.shape[axis]
        ntop = self.n_tops
        points = list(p.slice_point)
        if points:
            if len(points) != ntop - 1:
                raise self.error(f"{len(points)} slice points for {ntop} tops (need {ntop - 1})")
            if ntop > length:
                raise self.error(f"{ntop} tops for a slice axis of size {length}")
            sizes, prev = [], 0
            for sp in points:
                if sp <= prev:
                    raise self.error(f"slice points must increase: {points}")
                sizes.append(sp - prev)
                prev = sp
            sizes.append(length - prev)
            if sizes[-1] < 0:
                raise self.error(f"slice point {prev} beyond the axis size {length}")
        else:
            if length % ntop:
                raise self.error(f"Number of top blobs ({ntop}) should evenly divide input slice axis ({length})")
            sizes = [length // ntop] * ntop
        return axis, sizes

    def forward(self, bottoms):
        x = bottoms[0]
        axis, sizes = self._sizes(x)
        if self.n_tops == 1:
            return [x]
        return [t.contiguous() for t in torch.split(x, sizes, dim=axis)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        if self.n_tops == 1:
            return [top_diffs[0]]
        axis, _ = self._sizes(bottoms[0])
        return [torch.cat(list(top_diffs), dim=axis)]


LAYER = Slice
