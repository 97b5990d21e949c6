"""InnerProduct: one GEMM over the batch (axes before ``axis``), weights N x K (K x N when
``transpose``), bias through a GEMM with a ones vector, as Caffe."""
from __future__ import annotations

import math

import torch

from .base import Layer, axis_index


class InnerProduct(Layer):
    type = "InnerProduct"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.inner_product_param
        self.num_output = int(p.num_output)
        if self.num_output <= 0:
            raise self.error("num_output must be positive")
        self.transpose = p.transpose

    def _split(self, x):
        axis = axis_index(self.param.inner_product_param.axis, x.dim(), self)
        return axis, math.prod(x.shape[:axis]), math.prod(x.shape[axis:])

    def setup(self, bottoms):
        _, _, k = self._split(bottoms[0])
        p = self.param.inner_product_param
        shape = (k, self.num_output) if self.transpose else (self.num_output, k)
        specs = [(shape, p.weight_filler, "weight")]
        if p.bias_term:
            specs.append(((self.num_output,), p.bias_filler, "bias"))
        self.params = self.make_params(specs, check_shapes=False)
        # the shapes the kernels compute with (blobs given in the prototxt keep their own shape)
        self._shapes = [s for s, _, _ in specs]

    def _data(self, i):
        return self.params[i].data.reshape(self._shapes[i])

    def forward(self, bottoms):
        x = bottoms[0]
        axis, m, k = self._split(x)
        if k != self.params[0].data.numel() // self.num_output:
            raise self.error(f"input has {k} features per item, the weights expect "
                             f"{self.params[0].data.numel() // self.num_output}")
        b = self._data(1) if len(self.params) > 1 else None
        top = torch.ops.replicate.inner_product_forward(x.reshape(m, k), self._data(0), b, self.transpose)
        return [top.reshape(*x.shape[:axis], self.num_output)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        x = bottoms[0]
        _, m, k = self._split(x)
        w = self.params[0]
        b = self.params[1] if len(self.params) > 1 else None
        want_w = self.param_propagate_down[0]
        want_b = b is not None and self.param_propagate_down[1]
        # diffs known to be zero are not passed: the op adds into fresh zeros (the same bits) and
        # fc6's 151 MB diff is not copied while the old one is alive
        # (the bias first: a bias that is a view of the weight reads, and so keeps, the weight's diff)
        acc_b = want_b and not b.release_zeroed_diff()
        bdiff = b.diff.reshape(self._shapes[1]) if acc_b else None
        acc_w = want_w and not w.release_zeroed_diff()
        wdiff = w.diff.reshape(self._shapes[0]) if acc_w else None
        try:
            gx, gw, gb = torch.ops.replicate.inner_product_backward(
                top_diffs[0].reshape(m, self.num_output), x.reshape(m, k), self._data(0), self.transpose,
                [bool(propagate_down[0]), want_w, want_b], wdiff, bdiff)
        except BaseException:
            for p, acc, want in ((w, acc_w, want_w), (b, acc_b, want_b)):
                if want and not acc:
                    p.diff = torch.zeros_like(p.data)
            raise
        if want_w:
            w.diff = gw.reshape(w.data.shape)
        if want_b:
            b.diff = gb.reshape(b.data.shape)
        return [gx.reshape(x.shape) if propagate_down[0] else None]


LAYER = InnerProduct
