"""LSTMUnit (Caffe 1.0's lstm_unit_layer.cpp): one LSTM step on bottoms c_{t-1} (1 x N x D), the gate
pre-activations X (1 x N x 4D, gates i, f, o, g) and cont (1 x N); tops c_t and h_t (1 x N x D).

    i = sigmoid(X_i), f = cont == 0 ? 0 : cont * sigmoid(X_f), o = sigmoid(X_o), g = tanh(X_g)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

with the layer's own activations (``sigmoid(x) = 1. / (1. + exp(-x))``, ``tanh(x) = 2. * sigmoid(2. * x)
- 1.``, see csrc/cpu/recurrent.cpp).  Backward gives c_{t-1} and X their diffs (both, whenever either is
asked for) and refuses one for cont (Caffe: "Cannot backpropagate to sequence indicators")."""
from __future__ import annotations

import torch

from .base import Layer
from .sigmoid import require_cpu


class LSTMUnit(Layer):
    type = "LSTMUnit"
    min_bottoms = max_bottoms = 3

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 2

    def _check(self, bottoms):
        c_prev, x, cont = bottoms
        n = c_prev.shape[1] if c_prev.dim() > 1 else None
        for i, b in enumerate(bottoms):
            want = 2 if i == 2 else 3
            if b.dim() != want:
                raise self.error(f"bottom {i} must have {want} axes, got shape {tuple(b.shape)}")
            if b.shape[0] != 1:
                raise self.error(f"bottom {i} must hold a single timestep (shape(0) == 1), got {tuple(b.shape)}")
            if b.shape[1] != n:
                raise self.error(f"bottom {i} has {b.shape[1]} instances, bottom 0 has {n}")
        if x.shape[2] != 4 * c_prev.shape[2]:
            raise self.error(f"bottom 1 must have 4 x {c_prev.shape[2]} = {4 * c_prev.shape[2]} channels "
                             f"(the gates i, f, o, g), got {x.shape[2]}")

    def forward(self, bottoms):
        self._check(bottoms)
        require_cpu(self, bottoms)
        c, h = torch.ops.replicate.lstm_unit_forward(*bottoms)
        return [c, h]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if propagate_down[2]:
            raise self.error("Cannot backpropagate to sequence indicators.")
        if not (propagate_down[0] or propagate_down[1]):
            return [None, None, None]
        require_cpu(self, list(bottoms) + list(top_diffs))
        c_prev_diff, x_diff = torch.ops.replicate.lstm_unit_backward(top_diffs[0], top_diffs[1], bottoms[0],
                                                                     bottoms[1], bottoms[2], tops[0])
        # Caffe writes both bottom diffs; the net keeps those it asked for
        return [c_prev_diff if propagate_down[0] else None, x_diff if propagate_down[1] else None, None]


LAYER = LSTMUnit
