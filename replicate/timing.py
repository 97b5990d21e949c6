"""Per-layer forward/backward timing of a net, as ``caffe time`` measures it (shared by the
``time`` command and ``make bench``)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import List

import torch


@dataclass
class NetTiming:
    layers: List[str]
    forward_ms: List[float]   # per layer, averaged over iterations
    backward_ms: List[float]
    iteration_ms: List[float] = field(default_factory=list)

    @property
    def forward_total_ms(self) -> float:
        return sum(self.forward_ms)

    @property
    def backward_total_ms(self) -> float:
        return sum(self.backward_ms)


def time_net(net, iterations: int, on_iteration=None) -> NetTiming:
    """Time ``iterations`` forward+backward passes layer by layer (after one untimed pass)."""
    cuda = net.ctx.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    n = len(net.layers)
    fwd, bwd, iters = [0.0] * n, [0.0] * n, []
    for it in range(iterations):
        t_iter = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            net.forward(i, i)
            sync()
            fwd[i] += time.perf_counter() - t
        for i in range(n - 1, -1, -1):
            t = time.perf_counter()
            net.backward(i, i)
            sync()
            bwd[i] += time.perf_counter() - t
        iters.append((time.perf_counter() - t_iter) * 1000)
        if on_iteration:
            on_iteration(it, iters[-1])
    k = 1000.0 / max(iterations, 1)
    return NetTiming([l.name for l in net.layers], [f * k for f in fwd], [b * k for b in bwd], iters)
