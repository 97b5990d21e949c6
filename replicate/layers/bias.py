"""Bias: ``top = bottom 0 + bias`` broadcast over the axes around it; the bias is bottom 1 or a
learned blob (``bias_param.axis`` / ``num_axes`` / ``filler``).  As Caffe's BiasLayer: forward is
one K=1 GEMM per outer index (bias x ones), backward copies the top diff and sums the bias diff
with one GEMV per outer index (accumulating into a learned bias's diff, overwriting bottom 1's)."""
from __future__ import annotations

import math

import torch

from .. import ops as R
from .base import Layer, axis_index


def cpu_only(layer: Layer, tensors) -> None:
    """Group B's BLAS-composed layers run Caffe's CPU code only: name the layer for CUDA tensors."""
    for t in tensors:
        if t is not None and t.device.type not in ("cpu", "meta"):
            raise layer.error(f"runs on the CPU only (Caffe's CPU code through the BLAS seam); got a tensor on "
                              f"{t.device}")


def ones(n: int, like) -> torch.Tensor:
    return torch.ones(n, dtype=like.dtype, device=like.device)


def broadcast_dims(layer: Layer, x, blob_shape, axis_param: int, what: str):
    """(outer, dim, inner) of bottom 0 around a ``blob_shape`` blob applied at ``axis_param``
    (axis 0 when the blob is a scalar), with Caffe's shape checks."""
    nb = len(blob_shape)
    axis = 0 if nb == 0 else axis_index(axis_param, x.dim(), layer)
    if x.dim() < axis + nb:
        raise layer.error(f"{what} blob's shape extends past bottom[0]'s shape when applied starting with "
                          f"bottom[0] axis = {axis}")
    for i in range(nb):
        if x.shape[axis + i] != blob_shape[i]:
            raise layer.error(f"dimension mismatch between bottom[0]->shape({axis + i}) and "
                              f"{what}->shape({i}): {x.shape[axis + i]} vs {blob_shape[i]}")
    return math.prod(x.shape[:axis]), math.prod(blob_shape), math.prod(x.shape[axis + nb:])


def learned_shape(layer: Layer, x, axis_param: int, num_axes: int, what: str):
    axis = axis_index(axis_param, x.dim(), layer)
    if num_axes < -1:
        raise layer.error("num_axes must be non-negative, or -1 to extend to the end of bottom[0]")
    if num_axes >= 0 and x.dim() < axis + num_axes:
        raise layer.error(f"{what} blob's shape extends past bottom[0]'s shape when applied starting with "
                          f"bottom[0] axis = {axis}")
    return tuple(x.shape[axis:] if num_axes == -1 else x.shape[axis:axis + num_axes])


def bias_forward(top: torch.Tensor, bias: torch.Tensor, outer: int, bdim: int, inner: int) -> None:
    """In place on contiguous ``top``: per outer index, gemm(bdim, inner, 1, 1, bias, ones, 1, top)."""
    if top.numel() == 0:
        return
    flat = top.view(outer, bdim * inner)
    b = bias.contiguous().reshape(-1)
    one = ones(inner, top)
    for n in range(outer):
        R.gemm(False, False, bdim, inner, 1, 1.0, b, one, 1.0, flat[n])


def bias_backward(top_diff: torch.Tensor, diff: torch.Tensor, accumulate: bool, outer: int, bdim: int,
                  inner: int) -> None:
    """In place on contiguous ``diff``: gemv(bdim, inner, 1, top_diff[n], ones, accum, diff) per n."""
    td = top_diff.contiguous().view(outer, bdim * inner)
    one = ones(inner, top_diff)
    d = diff.view(-1)
    for n in range(outer):
        R.gemv(False, bdim, inner, 1.0, td[n], one, 1.0 if (accumulate or n > 0) else 0.0, d)


class Bias(Layer):
    type = "Bias"
    min_bottoms, max_bottoms = 1, 2

    def setup(self, bottoms):
        if len(bottoms) == 1:
            p = self.param.bias_param
            shape = learned_shape(self, bottoms[0], p.axis, p.num_axes, "bias")
            self.params = self.make_params([(shape, p.filler, "bias")])

    def _bias(self, bottoms):
        return bottoms[1] if len(bottoms) > 1 else self.params[0].data

    def forward(self, bottoms):
        cpu_only(self, bottoms)
        x, b = bottoms[0], self._bias(bottoms)
        outer, bdim, inner = broadcast_dims(self, x, tuple(b.shape), self.param.bias_param.axis, "bias")
        if self.ctx.shape_only:
            return [torch.empty_like(x)]
        top = x.clone(memory_format=torch.contiguous_format)
        bias_forward(top, b, outer, bdim, inner)
        return [top]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        cpu_only(self, [top_diffs[0]])
        x, td = bottoms[0], top_diffs[0]
        out = [td.clone(memory_format=torch.contiguous_format) if propagate_down[0] else None]
        learned = len(bottoms) == 1
        if (learned and self.param_propagate_down[0]) or (not learned and propagate_down[1]):
            b = self._bias(bottoms)
            outer, bdim, inner = broadcast_dims(self, x, tuple(b.shape), self.param.bias_param.axis, "bias")
            if learned:
                bias_backward(td, self.params[0].diff, True, outer, bdim, inner)
            else:
                d = torch.empty(b.shape, dtype=td.dtype, device=td.device)
                bias_backward(td, d, False, outer, bdim, inner)
                out.append(d)
        elif not learned:
            out.append(None)
        return out


LAYER = Bias
