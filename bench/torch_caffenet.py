"""CaffeNet (../shared/golden/perf/caffenet_train_b256.prototxt) written the natural PyTorch way:
grouped ``conv2d``, ``nn.LocalResponseNorm``, ``max_pool2d(ceil_mode=True)``, ``linear``,
``dropout``, ``cross_entropy`` and ``torch.optim.SGD`` (momentum 0.9, weight decay 0.0005): the
torch-native training step ``make bench`` measures ours against, in the same run on the same machine.

Also the GEMM arithmetic of one training iteration (:func:`gemm_gflop`), counted from the layer
shapes as Caffe's im2col + GEMM computes it, for GFLOP/s against the machine's measured sgemm.
"""
from __future__ import annotations

import math
from typing import Dict, List, Tuple

# CaffeNet's learned layers (the prototxt's parameters): name -> (in, out, kernel, stride, pad, group)
CONVS = [("conv1", 3, 96, 11, 4, 0, 1), ("conv2", 96, 256, 5, 1, 2, 2), ("conv3", 256, 384, 3, 1, 1, 1),
         ("conv4", 384, 384, 3, 1, 1, 2), ("conv5", 384, 256, 3, 1, 1, 2)]
FCS = [("fc6", 256 * 6 * 6, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000)]
POOL_AFTER = {"conv1", "conv2", "conv5"}  # MAX 3x3 stride 2, ceil mode
LRN_AFTER = {"conv1", "conv2"}            # after the pooling: norm1, norm2 (5, 1e-4, 0.75)
SIDE = 227


def _pooled(h: int) -> int:
    return int(math.ceil((h - 3) / 2)) + 1


def gemm_gflop(batch: int = 256) -> Dict[str, Tuple[float, float]]:
    """{layer: (forward GFLOP, backward GFLOP)} of the GEMMs of one iteration: forward M*N*K*2 per
    image and group; backward the weight diff (the same count) plus the bottom diff (the same count,
    except conv1, whose bottom is the data: Caffe skips it)."""
    out: Dict[str, Tuple[float, float]] = {}
    h = SIDE
    for name, cin, cout, k, s, p, g in CONVS:
        h = (h + 2 * p - k) // s + 1
        fwd = 2.0 * batch * cout * h * h * (cin // g) * k * k / 1e9
        out[name] = (fwd, fwd * (1 if name == "conv1" else 2))
        if name in POOL_AFTER:
            h = _pooled(h)
    for name, cin, cout in FCS:
        fwd = 2.0 * batch * cin * cout / 1e9
        out[name] = (fwd, 2 * fwd)
    return out


def build():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class CaffeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleDict({n: nn.Conv2d(cin, cout, k, stride=s, padding=p, groups=g)
                                        for n, cin, cout, k, s, p, g in CONVS})
            self.fcs = nn.ModuleDict({n: nn.Linear(cin, cout) for n, cin, cout in FCS})
            self.lrn = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)

        def forward(self, x):
            for name, conv in self.convs.items():
                x = F.relu(conv(x))
                if name in POOL_AFTER:
                    x = F.max_pool2d(x, 3, 2, ceil_mode=True)
                if name in LRN_AFTER:
                    x = self.lrn(x)
            x = x.flatten(1)
            for name, fc in self.fcs.items():
                x = fc(x)
                if name != "fc8":
                    x = F.dropout(F.relu(x), 0.5, self.training)
            return x

    return CaffeNet()


def train_step_times(iterations: int, batch: int = 256) -> Dict[str, object]:
    """Mean forward, backward and SGD-step ms over ``iterations`` after one untimed iteration."""
    import time

    import torch
    import torch.nn.functional as F
    torch.manual_seed(0)
    net = build().train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, SIDE, SIDE, generator=g) * 50
    y = torch.randint(0, 1000, (batch,), generator=g)
    fwd: List[float] = []
    bwd: List[float] = []
    upd: List[float] = []
    for it in range(iterations + 1):
        t0 = time.perf_counter()
        loss = F.cross_entropy(net(x), y)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if it:
            fwd.append((t1 - t0) * 1e3)
            bwd.append((t2 - t1) * 1e3)
            upd.append((t3 - t2) * 1e3)
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return {"forward_ms": mean(fwd), "backward_ms": mean(bwd), "update_ms": mean(upd),
            "total_ms": mean(fwd) + mean(bwd) + mean(upd),
            "iteration_ms": [a + b + c for a, b, c in zip(fwd, bwd, upd)]}
