"""BatchNorm as Caffe's BatchNormLayer (CPU): three stored blobs (mean sum, variance sum, scale
factor), ``use_global_stats`` (default: TEST phase) normalises with blob0/blob2 and blob1/blob2,
otherwise with the batch statistics, which also update the stored blobs *during forward*:
blob2 = blob2 * maf + 1, blob0 = mean + maf * blob0, blob1 = m/(m-1) * var + maf * blob1.
Every sum and broadcast is Caffe's GEMV/GEMM through the BLAS seam, in Caffe's order.  The blobs
get learning rate 0 (Caffe adds ``param { lr_mult: 0 }`` for each; a given one must say 0)."""
from __future__ import annotations

import math

import numpy as np
import torch

from prototxt_like import caffe_pb2

from .. import ops as R
from .base import Layer
from .bias import cpu_only, ones


class BatchNorm(Layer):
    type = "BatchNorm"
    min_bottoms = max_bottoms = 1

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.batch_norm_param
        self.maf = float(np.float32(p.moving_average_fraction))
        self.eps = float(np.float32(p.eps))
        self.use_global = p.use_global_stats if p.HasField("use_global_stats") else param.phase == caffe_pb2.TEST
        for i, spec in enumerate(param.param):
            if spec.lr_mult != 0:
                raise self.error("Cannot configure batch normalization statistics as layer parameters.")
        while len(param.param) < 3:  # Caffe's LayerSetUp masks the statistics from the solver
            param.param.add().lr_mult = 0.0

    def setup(self, bottoms):
        x = bottoms[0]
        c = 1 if x.dim() == 1 else x.shape[1]
        zero = caffe_pb2.FillerParameter(type="constant", value=0.0)
        self.channels = c
        self.params = self.make_params([((c,), zero, "mean"), ((c,), zero, "variance"),
                                        ((1,), zero, "moving average factor")])

    def _geom(self, x):
        if x.dim() > 1 and x.shape[1] != self.channels:
            raise self.error(f"bottom has {x.shape[1]} channels, the layer {self.channels}")
        num = x.shape[0]
        spatial = x.numel() // (num * self.channels) if num * self.channels else 0
        return num, self.channels, spatial

    def forward(self, bottoms):
        x = bottoms[0]
        cpu_only(self, [x])
        if self.ctx.shape_only:
            return [torch.empty_like(x)]
        N, C, S = self._geom(x)
        dt = x.dtype
        top = x.clone(memory_format=torch.contiguous_format)
        ones_s, ones_n = ones(S, x), ones(N, x)
        nbc = torch.empty(N * C, dtype=dt)
        mean, var = torch.empty(C, dtype=dt), torch.empty(C, dtype=dt)
        b0, b1, b2 = (p.data for p in self.params)
        if self.use_global:
            s = b2.reshape(-1)[0].item()
            T = np.float32 if dt == torch.float32 else np.float64
            factor = 0.0 if s == 0 else float(T(1) / T(s))
            mean.copy_(b0.reshape(-1)); R.scal(factor, mean)   # caffe_cpu_scale: copy + scal
            var.copy_(b1.reshape(-1)); R.scal(factor, var)
        else:
            R.gemv(False, C * N, S, 1.0 / (N * S), x.contiguous(), ones_s, 0.0, nbc)
            R.gemv(True, N, C, 1.0, nbc, ones_n, 0.0, mean)
        # subtract the mean
        R.gemm(False, False, N, C, 1, 1.0, ones_n, mean, 0.0, nbc)
        R.gemm(False, False, C * N, S, 1, -1.0, nbc, ones_s, 1.0, top)
        if not self.use_global:
            temp = top * top
            R.gemv(False, C * N, S, 1.0 / (N * S), temp, ones_s, 0.0, nbc)
            R.gemv(True, N, C, 1.0, nbc, ones_n, 0.0, var)
            with torch.no_grad():
                b2.mul_(self.maf).add_(1)
            R.axpby(1.0, mean, self.maf, b0)
            m = x.numel() // C
            bias_correction = float(np.float32(m) / np.float32(m - 1)) if m > 1 else 1.0
            if dt != torch.float32 and m > 1:
                bias_correction = m / (m - 1)
            R.axpby(bias_correction, var, self.maf, b1)
        # caffe_add_scalar then caffe_sqrt (std::sqrt, correctly rounded): numpy's sqrt is the IEEE
        # instruction; torch's CPU float32 sqrt is not correctly rounded (it differs in ~15% of values)
        var = torch.from_numpy(np.sqrt((var + torch.tensor(self.eps, dtype=dt)).numpy()))
        R.gemm(False, False, N, C, 1, 1.0, ones_n, var, 0.0, nbc)
        temp = torch.empty_like(top)
        R.gemm(False, False, C * N, S, 1, 1.0, nbc, ones_s, 0.0, temp)
        top = top / temp
        self.temp, self.x_norm = temp, top
        return [top]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        td = top_diffs[0].contiguous()
        cpu_only(self, [td])
        if self.use_global:
            return [td / self.temp]
        x = bottoms[0]
        N, C, S = self._geom(x)
        dt = td.dtype
        y = self.x_norm
        ones_s, ones_n = ones(S, td), ones(N, td)
        nbc, mean = torch.empty(N * C, dtype=dt), torch.empty(C, dtype=dt)
        bd = y * td
        R.gemv(False, C * N, S, 1.0, bd, ones_s, 0.0, nbc)
        R.gemv(True, N, C, 1.0, nbc, ones_n, 0.0, mean)
        R.gemm(False, False, N, C, 1, 1.0, ones_n, mean, 0.0, nbc)
        R.gemm(False, False, C * N, S, 1, 1.0, nbc, ones_s, 0.0, bd)
        bd = y * bd
        R.gemv(False, C * N, S, 1.0, td, ones_s, 0.0, nbc)
        R.gemv(True, N, C, 1.0, nbc, ones_n, 0.0, mean)
        R.gemm(False, False, N, C, 1, 1.0, ones_n, mean, 0.0, nbc)
        R.gemm(False, False, N * C, S, 1, 1.0, nbc, ones_s, 1.0, bd)
        R.axpby(1.0, td, -1.0 / (N * S), bd)
        return [bd / self.temp]


LAYER = BatchNorm
