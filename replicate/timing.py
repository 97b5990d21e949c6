"""Per-layer forward/backward timing of a net, as ``caffe time`` measures it (shared by the
``time`` command and ``make bench``), and the opt-in start-up trace (:func:`mark`).

This module imports nothing heavy (torch is imported where it is used), so ``mark`` can be called
before torch is imported."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import List

# Opt-in start-up trace: with env REPLICATE_STARTUP_TRACE=FILE each mark() appends a line
# "<what> <time.monotonic()> <time.process_time()>" to FILE (bench/startup.py reads it: the
# monotonic clock is shared by all processes of the machine, so the parent's clock at spawn time is
# the zero; the process's CPU seconds move less on a shared machine).  Unset: nothing is written and
# the log is unchanged.
_TRACE = os.environ.get("REPLICATE_STARTUP_TRACE") or None


def mark(what: str) -> None:
    """Record that start-up reached ``what`` (see ``_TRACE``); a no-op unless tracing."""
    if _TRACE:
        t, cpu = time.monotonic(), time.process_time()
        # one O_APPEND write a line (processes share the file), not through a planted link
        fd = os.open(_TRACE, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            os.write(fd, f"{what} {t:.6f} {cpu:.6f}\n".encode())
        finally:
            os.close(fd)


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
    import torch
    cuda = net.ctx.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    n = len(net.layers)
    fwd, bwd, iters = [0.0] * n, [0.0] * n, []
    # a ReLU the net runs inside its convolution (Net.fused_layers) is timed with it: its own
    # entries read 0
    fused = getattr(net, "_fused", {})
    fused_into = {r: c for c, r in fused.items()}
    back_fused = fused if net.release_after_backward else {}  # see Net._plan_fusion
    back_into = fused_into if net.release_after_backward else {}
    for it in range(iterations):
        t_iter = time.perf_counter()
        for i in range(n):
            if i in fused_into:
                continue
            t = time.perf_counter()
            net.forward(i, fused.get(i, i))
            sync()
            fwd[i] += time.perf_counter() - t
        for i in range(n - 1, -1, -1):
            if i in back_fused:
                continue
            t = time.perf_counter()
            net.backward(i, back_into.get(i, i))
            sync()
            bwd[back_into.get(i, i)] += time.perf_counter() - t
        iters.append((time.perf_counter() - t_iter) * 1000)
        if on_iteration:
            on_iteration(it, iters[-1])
    k = 1000.0 / max(iterations, 1)
    return NetTiming([l.name for l in net.layers], [f * k for f in fwd], [b * k for b in bwd], iters)
