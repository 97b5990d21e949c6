"""Embed: rows of a learned input_dim x num_output table looked up by the (integer-valued float)
indices of the bottom, plus an optional bias (one K=1 GEMM over all rows), as Caffe's EmbedLayer.
Backward adds each top row into its table row with ``caffe_axpy(1, ...)`` in index order (alpha 1:
one rounding each, done as float adds) and sums the bias diff with a GEMV.  Caffe cannot
back-propagate to the indices: asking for it is an error."""
from __future__ import annotations

import torch

from .. import ops as R
from .base import Layer
from .bias import cpu_only, ones


class Embed(Layer):
    type = "Embed"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.embed_param
        self.N, self.K, self.bias_term = int(p.num_output), int(p.input_dim), bool(p.bias_term)
        if self.N <= 0:
            raise self.error("EmbedLayer num_output must be positive.")
        if self.K <= 0:
            raise self.error("EmbedLayer input_dim must be positive.")

    def setup(self, bottoms):
        p = self.param.embed_param
        specs = [((self.K, self.N), p.weight_filler, "weight")]
        if self.bias_term:
            specs.append(((self.N,), p.bias_filler, "bias"))
        self.params = self.make_params(specs)

    def _indices(self, x):
        flat = x.detach().reshape(-1).cpu()
        idx = flat.to(torch.int64)  # static_cast<int>: truncation toward zero
        bad = (idx < 0) | (idx >= self.K)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise self.error(f"index {flat[i].item()} at position {i} is outside [0, {self.K})")
        if not torch.equal(idx.to(flat.dtype), flat):
            i = int((idx.to(flat.dtype) != flat).nonzero()[0])
            raise self.error(f"non-integer input {flat[i].item()} at position {i}")
        return idx

    def forward(self, bottoms):
        x = bottoms[0]
        cpu_only(self, [x])
        shape = (*x.shape, self.N)
        if self.ctx.shape_only:
            return [x.new_empty(shape)]
        w = self.params[0].data
        idx = self._indices(x)
        top = w.reshape(self.K, self.N).index_select(0, idx).contiguous()
        if self.bias_term:
            M = idx.numel()
            R.gemm(False, False, M, self.N, 1, 1.0, ones(M, w), self.params[1].data.contiguous(), 1.0, top)
        return [top.reshape(shape)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if propagate_down[0]:
            raise self.error("Can't backpropagate to EmbedLayer input.")
        td = top_diffs[0].contiguous()
        cpu_only(self, [td])
        M = td.numel() // self.N
        rows = td.reshape(M, self.N)
        if self.param_propagate_down[0]:
            idx = self._indices(bottoms[0]).tolist()
            wd = self.params[0].diff.view(self.K, self.N)
            with torch.no_grad():
                for n, i in enumerate(idx):
                    wd[i] += rows[n]
        if self.bias_term and self.param_propagate_down[1]:
            R.gemv(True, M, self.N, 1.0, rows, ones(M, td), 1.0, self.params[1].diff)
        return [None]


LAYER = Embed
