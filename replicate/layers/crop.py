"""Crop: bottom 0 cropped to the shape of bottom 1 from ``crop_param.axis`` on, at ``offset`` (one
value for every cropped axis, or one per axis); backward zeroes bottom 0's diff and copies the top
diff into the cropped window.  The reference bottom gets no diff (Caffe never writes it)."""
from __future__ import annotations

import torch

from .base import Layer, axis_index


class Crop(Layer):
    type = "Crop"
    min_bottoms = max_bottoms = 2

    def _window(self, x, ref):
        p = self.param.crop_param
        n = x.dim()
        start = axis_index(p.axis, n, self)
        offs = list(p.offset)
        if len(offs) > 1 and start + len(offs) != n:
            raise self.error("number of offset values specified must be equal to the number of dimensions "
                             f"following axis ({len(offs)} offsets, axis {start}, {n}-axis bottom)")
        if ref.dim() < n:
            raise self.error(f"reference bottom has {ref.dim()} axes, bottom 0 has {n}")
        window = []
        for i in range(n):
            if i < start:
                window.append((0, x.shape[i]))
                continue
            off = offs[0] if len(offs) == 1 else (offs[i - start] if offs else 0)
            size = ref.shape[i]
            if x.shape[i] - off < size:
                raise self.error(f"the crop for dimension {i} is out-of-bounds with size {size} and offset {off}")
            window.append((off, size))
        return window

    def forward(self, bottoms):
        x, ref = bottoms
        self.window = self._window(x, ref)
        top = x
        for d, (off, size) in enumerate(self.window):
            top = top.narrow(d, off, size)
        return [top.contiguous() if not self.ctx.shape_only else x.new_empty([s for _, s in self.window])]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None, None]
        x = bottoms[0]
        diff = torch.zeros(x.shape, dtype=top_diffs[0].dtype, device=top_diffs[0].device)
        view = diff
        for d, (off, size) in enumerate(self._window(x, bottoms[1])):
            view = view.narrow(d, off, size)
        view.copy_(top_diffs[0])
        return [diff, None]


LAYER = Crop
