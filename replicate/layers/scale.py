"""Scale: ``top = bottom 0 * scale`` broadcast (scale = bottom 1 or a learned blob, default filler
constant 1), plus an optional learned bias (Caffe's internal Bias layer, set up on bottom 0).
As Caffe's ScaleLayer (CPU): forward is ``caffe_cpu_scale`` (copy + BLAS scal) per (outer, scale)
chunk, then the bias GEMMs; backward runs the bias GEMVs first, then the scale diff from the
product top_diff * bottom (GEMV / dot sums in Caffe's branches, which *overwrite* a learned scale's
diff when the scale covers the whole bottom or when outer_dim is 1), then the bottom diff."""
from __future__ import annotations

import numpy as np
import torch

from prototxt_like import caffe_pb2

from .. import ops as R
from .base import Layer
from .bias import bias_backward, bias_forward, broadcast_dims, cpu_only, learned_shape, ones


class Scale(Layer):
    type = "Scale"
    min_bottoms, max_bottoms = 1, 2

    def setup(self, bottoms):
        p = self.param.scale_param
        x = bottoms[0]
        specs = []
        if len(bottoms) == 1:
            filler = p.filler if p.HasField("filler") else caffe_pb2.FillerParameter(type="constant", value=1.0)
            specs.append((learned_shape(self, x, p.axis, p.num_axes, "scale"), filler, "scale"))
        self.bias_id = None
        if p.bias_term:
            bias_axes = bottoms[1].dim() if len(bottoms) > 1 else p.num_axes
            self.bias_id = len(specs)
            specs.append((learned_shape(self, x, p.axis, bias_axes, "bias"), p.bias_filler, "bias"))
        self.params = self.make_params(specs)
        self.in_place = bool(self.param.bottom) and self.param.top and self.param.bottom[0] == self.param.top[0]

    def _scale(self, bottoms):
        return bottoms[1] if len(bottoms) > 1 else self.params[0].data

    def forward(self, bottoms):
        cpu_only(self, bottoms)
        x, s = bottoms[0], self._scale(bottoms)
        outer, sdim, inner = broadcast_dims(self, x, tuple(s.shape), self.param.scale_param.axis, "scale")
        if self.bias_id is not None:
            b = self.params[self.bias_id].data
            self.bias_dims = broadcast_dims(self, x, tuple(b.shape), self.param.scale_param.axis, "bias")
        if self.ctx.shape_only:
            return [torch.empty_like(x)]
        if self.in_place:
            self.saved_bottom = x.clone()
        if x.numel() == 0:
            top = x.clone()
        else:
            top = torch.ops.replicate.scale_chunks(x, s, inner)
        if self.bias_id is not None:
            bias_forward(top, self.params[self.bias_id].data, *self.bias_dims)
        return [top]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        td = top_diffs[0].contiguous()
        cpu_only(self, [td])
        learned = len(bottoms) == 1
        if self.bias_id is not None and self.param_propagate_down[-1]:
            bias_backward(td, self.params[self.bias_id].diff, True, *self.bias_dims)
        x = self.saved_bottom if self.in_place else bottoms[0]
        s = self._scale(bottoms)
        outer, sdim, inner = broadcast_dims(self, x, tuple(s.shape), self.param.scale_param.axis, "scale")
        out_scale = None
        if (not learned and propagate_down[1]) or (learned and self.param_propagate_down[0]):
            dt = td.dtype
            T = np.float32 if dt == torch.float32 else np.float64
            sdiff = self.params[0].diff if learned else torch.zeros(s.shape, dtype=dt)
            flat = sdiff.view(-1)
            product = td * x.contiguous()
            if x.numel() == s.numel():  # Caffe writes the product straight into the scale diff
                flat.copy_(product.reshape(-1))
            else:
                sum_result = None
                if inner == 1:
                    sum_result = product.reshape(-1)
                elif outer * sdim == 1:
                    r = R.dot(product.reshape(-1), ones(inner, td))
                    flat[0] = float(T(flat[0].item()) + T(r.item())) if learned else r
                else:
                    sum_result = flat if outer == 1 else torch.empty(outer * sdim, dtype=dt)
                    R.gemv(False, outer * sdim, inner, 1.0, product, ones(inner, td), 0.0, sum_result)
                if outer != 1:
                    if sdim == 1:
                        r = R.dot(ones(outer, td), sum_result.contiguous())
                        flat[0] = float(T(flat[0].item()) + T(r.item())) if learned else r
                    else:
                        R.gemv(True, outer, sdim, 1.0, sum_result.contiguous(), ones(outer, td),
                               1.0 if learned else 0.0, flat)
            out_scale = None if learned else sdiff
        out = [None]
        if propagate_down[0]:
            out[0] = td.clone() if td.numel() == 0 else torch.ops.replicate.scale_chunks(td, s, inner)
        if not learned:
            out.append(out_scale)
        return out


LAYER = Scale
