"""Tile: each ``count(0, axis)`` block of the bottom repeated ``tiles`` times; backward copies the
first tile's diff and adds the others with ``caffe_axpy(1, ...)`` in tile order (an axpy with
alpha 1 is one rounding per element, ``y + x``, fused or not: done as float adds in that order)."""
from __future__ import annotations

import math

from .base import Layer, axis_index


class Tile(Layer):
    type = "Tile"
    min_bottoms = max_bottoms = 1

    def _geom(self, x):
        p = self.param.tile_param
        axis = axis_index(p.axis, x.dim(), self)
        if not p.HasField("tiles"):
            raise self.error("Number of tiles must be specified")
        if p.tiles <= 0:
            raise self.error("Number of tiles must be positive.")
        return axis, int(p.tiles), math.prod(x.shape[:axis]), math.prod(x.shape[axis:])

    def forward(self, bottoms):
        x = bottoms[0]
        axis, tiles, outer, inner = self._geom(x)
        shape = list(x.shape)
        shape[axis] *= tiles
        return [x.reshape(outer, 1, inner).expand(outer, tiles, inner).reshape(shape)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        x = bottoms[0]
        axis, tiles, outer, inner = self._geom(x)
        td = top_diffs[0].reshape(outer, tiles, inner)
        out = td[:, 0].clone()
        for t in range(1, tiles):
            out = out + td[:, t]
        return [out.reshape(x.shape)]


LAYER = Tile
