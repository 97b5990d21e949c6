"""Sigmoid: Caffe's ``0.5 * tanh(0.5 * x) + 0.5`` (a double tanh on float blobs); backward
``top_diff * y * (1 - y)``.  Also holds :func:`require_cpu`, the check of the CPU-only layer types."""
from __future__ import annotations

import torch

from .base import Layer
from .engine import honours_engine


def require_cpu(layer: Layer, tensors) -> None:
    """These layer types have CPU kernels only: refuse CUDA blobs with an error naming the layer."""
    for t in tensors:
        if t is not None and t.device.type not in ("cpu", "meta"):
            raise layer.error(f"CPU only: this layer type has no kernel for {t.device.type} blobs yet")


@honours_engine
class Sigmoid(Layer):
    type = "Sigmoid"
    min_bottoms = max_bottoms = 1

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        return [torch.ops.replicate.sigmoid_forward(bottoms[0])]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        return [torch.ops.replicate.sigmoid_backward(top_diffs[0], tops[0])]


LAYER = Sigmoid
