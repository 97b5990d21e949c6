"""Eltwise PROD / SUM (coefficients, sums through caffe_axpy; backward caffe_copy or copy + sscal) / MAX
(Caffe's tie rule; backward 0 + top diff at the winner), as Caffe."""
from __future__ import annotations

import torch

from prototxt_like import caffe_pb2

from .. import ops as R
from .base import Layer

_E = caffe_pb2.EltwiseParameter


class Eltwise(Layer):
    type = "Eltwise"
    min_bottoms = 2

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.eltwise_param
        self.op = p.operation
        n = len(param.bottom)
        if p.coeff and len(p.coeff) != n:
            raise self.error(f"{len(p.coeff)} coeffs for {n} bottoms")
        if p.coeff and self.op == _E.PROD:
            raise self.error("Eltwise layer only takes coefficients for summation.")
        self.coeff = [float(c) for c in p.coeff] or [1.0] * n
        self.stable = p.stable_prod_grad
        self.argmax = None

    def forward(self, bottoms):
        for i, b in enumerate(bottoms[1:], 1):
            if b.shape != bottoms[0].shape:
                raise self.error(f"bottom {i} has shape {tuple(b.shape)}, bottom 0 {tuple(bottoms[0].shape)}")
        if self.op == _E.PROD:
            top = bottoms[0] * bottoms[1]
            for b in bottoms[2:]:
                top = top * b
            return [top]
        if self.op == _E.SUM:
            top = torch.zeros_like(bottoms[0]).contiguous()
            for c, b in zip(self.coeff, bottoms):
                R.axpy(c, b, top)
            return [top]
        # MAX as Caffe: bottom 0 wins over bottom 1 only if strictly greater (a tie, or a NaN, goes
        # to bottom 1); each later bottom must be strictly greater than the running maximum
        a, b = bottoms[0], bottoms[1]
        first = a > b
        top = torch.where(first, a, b)
        idx = torch.where(first, torch.zeros((), dtype=torch.int32, device=a.device),
                          torch.ones((), dtype=torch.int32, device=a.device)).expand(a.shape).contiguous()
        for i, b in enumerate(bottoms[2:], 2):
            better = b > top
            top = torch.where(better, b, top)
            idx = torch.where(better, torch.full_like(idx, i), idx)
        self.argmax = idx
        return [top]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        td = top_diffs[0]
        out = []
        for i, pd in enumerate(propagate_down):
            if not pd:
                out.append(None)
            elif self.op == _E.PROD:
                if self.stable:
                    g = None
                    for j, b in enumerate(bottoms):
                        if j != i:
                            g = b.clone() if g is None else g * b
                else:
                    g = tops[0] / bottoms[i]
                out.append(g * td)
            elif self.op == _E.SUM:
                # coeff 1: caffe_copy (a memcpy); otherwise caffe_cpu_scale, i.e. cblas_scopy then
                # cblas_sscal (in exact mode the system BLAS's sscal: OpenBLAS 0.3.21 stores zeros
                # for alpha 0, NaN included)
                g = td.contiguous().clone()
                if self.coeff[i] != 1.0:
                    R.scal(self.coeff[i], g)
                out.append(g)
            else:
                # Caffe: gradient = 0, then gradient += top_diff where this bottom won: a -0.0 top
                # diff gives +0.0 (0 + -0 = +0), and a loser gets +0.0
                zero = torch.zeros_like(td)
                out.append(torch.where(self.argmax == i, zero + td, zero))
        return out


LAYER = Eltwise
