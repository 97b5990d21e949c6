"""Reshape (``reshape_param.shape`` with 0 = copy the bottom's axis and one -1 = inferred, applied
to axes ``axis`` .. ``axis + num_axes``): the top shares the bottom's data and diff."""
from __future__ import annotations

import math

from .base import Layer


class Reshape(Layer):
    type = "Reshape"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        if param.bottom and param.top and param.bottom[0] == param.top[0]:
            raise self.error("Reshape Layer does not allow in-place computation.")
        dims = [int(d) for d in param.reshape_param.shape.dim]
        if dims.count(-1) > 1:
            raise self.error("new shape contains multiple -1 dims; at most a single (1) value of -1 may be specified")
        for d in dims:
            if d < -1:
                raise self.error(f"new shape has dimension {d}")
        self.dims = dims

    def top_shape(self, shape):
        p = self.param.reshape_param
        n = len(shape)
        start = p.axis if p.axis >= 0 else n + p.axis + 1
        if not 0 <= start <= n:
            raise self.error(f"axis {p.axis} out of range for {n}-D input blob")
        if p.num_axes < -1:
            raise self.error("num_axes must be >= 0, or -1 for all")
        end = n if p.num_axes == -1 else start + p.num_axes
        if end > n:
            raise self.error("end_axis = axis + num_axes is out of range")
        top = list(shape[:start]) + list(self.dims) + list(shape[end:])
        inferred = None
        for i, d in enumerate(self.dims):
            if d == 0:
                if start + i >= n:
                    raise self.error("new shape contains a 0, but there was no corresponding bottom axis to copy")
                top[start + i] = shape[start + i]
            elif d == -1:
                inferred = start + i
        count = math.prod(shape)
        if inferred is not None:
            explicit = math.prod(d for i, d in enumerate(top) if i != inferred)
            if explicit == 0 or count % explicit:
                raise self.error(f"bottom count ({count}) must be divisible by the product of the specified "
                                 f"dimensions ({explicit})")
            top[inferred] = count // explicit
        if math.prod(top) != count:
            raise self.error(f"output count {math.prod(top)} must match input count {count}")
        return top

    def forward(self, bottoms):
        x = bottoms[0]
        return [x.reshape(self.top_shape(tuple(x.shape)))]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        return [top_diffs[0].reshape(bottoms[0].shape) if propagate_down[0] else None]


LAYER = Reshape
