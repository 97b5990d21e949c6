"""ArgMax (forward only): the ``top_k`` largest values along ``axis`` (or over each item's flattened
``count(1)`` values) and/or their indices.  Caffe sorts ``(value, index)`` pairs with
``std::partial_sort(..., std::greater<pair>)``: among equal values the larger index comes first.
Without ``axis`` the top is N x (1, or 2 with ``out_max_val``: indices then values) x top_k (x 1 ...
up to the bottom's axes, at least 3)."""
from __future__ import annotations

import math

import numpy as np
import torch

from .base import Layer, axis_index


class ArgMax(Layer):
    type = "ArgMax"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.argmax_param
        self.top_k, self.out_max_val, self.has_axis = int(p.top_k), bool(p.out_max_val), p.HasField("axis")
        if self.top_k < 1:
            raise self.error("top k must not be less than 1.")

    def forward(self, bottoms):
        x = bottoms[0]
        k = self.top_k
        if self.has_axis:
            axis = axis_index(self.param.argmax_param.axis, x.dim(), self)
            if k > x.shape[axis]:
                raise self.error("top_k must be less than or equal to the dimension of the axis.")
            shape = list(x.shape)
            shape[axis] = k
        else:
            if k > math.prod(x.shape[1:]):
                raise self.error("top_k must be less than or equal to the dimension of the flattened bottom "
                                 "blob per instance.")
            shape = [1] * max(x.dim(), 3)
            shape[0], shape[1], shape[2] = x.shape[0], 2 if self.out_max_val else 1, k
        if self.ctx.shape_only:
            return [x.new_empty(shape)]
        a = x.detach().cpu().numpy()
        if self.has_axis:
            outer, dim = math.prod(x.shape[:axis]), x.shape[axis]
            v = a.reshape(outer, dim, -1).transpose(0, 2, 1).reshape(-1, dim)  # rows: (outer, inner)
        else:
            v = a.reshape(x.shape[0], -1)
            dim = v.shape[1]
        idx = np.broadcast_to(np.arange(dim), v.shape)
        # descending by value, then by index (std::greater on (value, index) pairs)
        order = np.lexsort((-idx, -v.astype(np.float64)), axis=-1)[:, :k]
        vals = np.take_along_axis(v, order, axis=-1)
        if self.has_axis:
            res = vals if self.out_max_val else order.astype(a.dtype)
            res = res.reshape(outer, -1, k).transpose(0, 2, 1)
        else:
            res = np.concatenate([order.astype(a.dtype), vals], axis=1) if self.out_max_val else order.astype(a.dtype)
        out = torch.from_numpy(np.ascontiguousarray(res, dtype=a.dtype)).reshape(shape)
        return [out.to(x.device)]


LAYER = ArgMax
