"""Concat along ``concat_param.axis`` (legacy ``concat_dim``); backward hands each bottom its slice."""
from __future__ import annotations

import torch

from .base import Layer, axis_index


class Concat(Layer):
    type = "Concat"
    min_bottoms = 1

    def _axis(self, x):
        p = self.param.concat_param
        axis = p.concat_dim if p.HasField("concat_dim") else p.axis
        return axis_index(axis, x.dim(), self)

    def forward(self, bottoms):
        axis = self._axis(bottoms[0])
        for i, b in enumerate(bottoms[1:], 1):
            if b.dim() != bottoms[0].dim() or any(b.shape[d] != bottoms[0].shape[d]
                                                  for d in range(b.dim()) if d != axis):
                raise self.error(f"bottom {i} has shape {tuple(b.shape)}, incompatible with "
                                 f"{tuple(bottoms[0].shape)} outside axis {axis}")
        return [torch.cat(list(bottoms), dim=axis)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        axis = self._axis(bottoms[0])
        out, start = [], 0
        for b, pd in zip(bottoms, propagate_down):
            n = b.shape[axis]
            out.append(top_diffs[0].narrow(axis, start, n).contiguous() if pd else None)
            start += n
        return out


LAYER = Concat
