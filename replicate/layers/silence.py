"""Silence: no tops; backward sets the diff of every bottom that asks for one to zero."""
from __future__ import annotations

import torch

from .base import Layer


class Silence(Layer):
    type = "Silence"
    min_bottoms = 1

    def forward(self, bottoms):
        return []

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        return [torch.zeros_like(b) if pd else None for b, pd in zip(bottoms, propagate_down)]


LAYER = Silence
