"""Filter: keeps the items (first-axis rows) of bottoms 0..k-1 whose selector (the last bottom,
N x 1 x ...) is nonzero.  As Caffe, the top shapes known at net set-up have the full first axis
(FilterLayer's first Reshape); the filtered count appears at the first forward.  Backward: zero
diff for dropped items, the top diff for kept ones.  Caffe cannot back-propagate to the
selector: asking for it is an error."""
from __future__ import annotations

import torch

from .base import Layer


class Filter(Layer):
    type = "Filter"
    min_bottoms = 2

    def _check(self, bottoms):
        if self.n_tops != len(bottoms) - 1:
            raise self.error(f"needs one top per filtered bottom: {len(bottoms) - 1} bottoms, {self.n_tops} tops")
        sel = bottoms[-1]
        if any(d != 1 for d in sel.shape[1:]):
            raise self.error("Selector blob dimensions must be singletons (1), except the first")
        for i, b in enumerate(bottoms[:-1]):
            if b.shape[0] != sel.shape[0]:
                raise self.error(f"Each bottom should have the same 0th dimension as the selector blob "
                                 f"(bottom {i}: {b.shape[0]}, selector: {sel.shape[0]})")

    def forward(self, bottoms):
        self._check(bottoms)
        if self.ctx.shape_only:
            return [b.new_empty(b.shape) for b in bottoms[:-1]]
        sel = bottoms[-1].detach().reshape(-1)
        self.indices = (sel != 0).nonzero().reshape(-1)
        return [b.index_select(0, self.indices.to(b.device)).contiguous() for b in bottoms[:-1]]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if propagate_down[-1]:
            raise self.error("Layer cannot backpropagate to filter index inputs")
        out = []
        for b, td, pd in zip(bottoms[:-1], top_diffs, propagate_down):
            if not pd:
                out.append(None)
                continue
            diff = torch.zeros(b.shape, dtype=td.dtype, device=td.device)
            diff.index_copy_(0, self.indices.to(td.device), td.contiguous())
            out.append(diff)
        return out + [None]


LAYER = Filter
