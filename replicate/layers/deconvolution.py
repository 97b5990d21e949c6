"""Deconvolution: Caffe 1.0's DeconvolutionLayer, a convolution with its roles reversed
(``reverse_dimensions()``), on the convolution ops (csrc/cpu/convolution.cpp) with the roles swapped.

Caffe's calls per image and what makes them here (bottom x: N x C x H x W; weight: C x num_output/group
x kh x kw; top: N x num_output x H' x W' with H' = stride (H - 1) + dilation (kh - 1) + 1 - 2 pad):

* Forward: ``backward_cpu_gemm(x, w, top)`` (per group gemm Trans/NoTrans into the columns, col2im)
  is conv_backward's bottom-diff pass of a convolution whose input is top-shaped and whose output is
  x; then ``forward_cpu_bias`` (gemm K=1 against ones, beta 1) adds each bias once: ``top + bias``,
  one rounding, the bits of that gemm.
* Backward, per top: ``backward_cpu_bias`` (one gemv per image over the top's H' x W', accumulated in
  image order) is conv_backward's bias pass of a 1x1 convolution with top_diff as its output;
  ``weight_cpu_gemm(top_diff, x, w_diff)`` (im2col of top_diff, gemm NoTrans/Trans with beta 1 per
  image in order) is conv_backward's weight pass with input top_diff and output diff x; and
  ``forward_cpu_gemm(top_diff, w, x_diff)`` (im2col + gemm) is conv_forward of top_diff without bias.
The parameter diffs accumulate into what they hold (Caffe never clears them; the solver does).
The ops are registered for CPU and CUDA alike, so the layer runs wherever Convolution runs.
"""
from __future__ import annotations

import torch

from .convolution import Convolution
from .engine import honours_engine


@honours_engine
class Deconvolution(Convolution):
    type = "Deconvolution"

    def _top_size(self, h: int, w: int):
        out = []
        for size, k, s, p, d in zip((h, w), self.kernel, self.stride, self.pad, self.dilation):
            out.append(s * (size - 1) + d * (k - 1) + 1 - 2 * p)
        return out

    def setup(self, bottoms):
        x = self._check_bottoms(bottoms)
        oh, ow = self._top_size(x.shape[2], x.shape[3])
        if oh <= 0 or ow <= 0:
            raise self.error(f"output size {oh} x {ow} from a {x.shape[2]} x {x.shape[3]} bottom is not positive "
                             f"(kernel {self.kernel}, stride {self.stride}, pad {self.pad}, dilation {self.dilation})")
        # Caffe's weights for reverse_dimensions(): (conv_out_channels = C, conv_in_channels / group, kh, kw)
        self._make_weights((x.shape[1], self.num_output // self.group, *self.kernel))

    def forward(self, bottoms):
        w = self.params[0].data
        bias = self._bias()
        tops = []
        for x in bottoms:
            oh, ow = self._top_size(x.shape[2], x.shape[3])
            # the convolution whose input gradient is this top: only its shape is read
            like_top = x.new_empty((x.shape[0], self.num_output, oh, ow))
            top, _, _ = torch.ops.replicate.conv_backward(
                x, like_top, w, self.stride, self.pad, self.dilation, self.group, [True, False, False])
            if bias is not None:
                top.add_(bias.view(1, -1, 1, 1))  # forward_cpu_bias: gemm K=1, alpha 1, beta 1
            tops.append(top)
        return tops

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        w, b, want_w, want_b = self._params_wanted()
        out = []
        for i, x in enumerate(bottoms):  # Caffe: per top, the bias diff, then weight and bottom diffs
            td = top_diffs[i]
            if want_b:
                # backward_cpu_bias per image: a 1x1 convolution (group = num_output, so its input can be
                # top_diff itself, unread) whose output diff is top_diff: gemv over H' x W', beta 1
                ones_w = td.new_empty((self.num_output, 1, 1, 1))
                _, _, gb = torch.ops.replicate.conv_backward(
                    td, td, ones_w, [1, 1], [0, 0], [1, 1], self.num_output, [False, False, True], None, b.diff)
                b.diff = gb
            if want_w:
                # weight_cpu_gemm(top_diff as the input, x as the output)
                _, gw, _ = torch.ops.replicate.conv_backward(
                    x, td, w.data, self.stride, self.pad, self.dilation, self.group, [False, True, False],
                    w.diff, None)
                w.diff = gw
            if propagate_down[i]:
                # forward_cpu_gemm(top_diff, w, bottom_diff)
                out.append(torch.ops.replicate.conv_forward(td, w.data, None, self.stride, self.pad,
                                                             self.dilation, self.group))
            else:
                out.append(None)
        return out


LAYER = Deconvolution
