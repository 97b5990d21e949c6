"""CaffeNet (BVLC reference, batch-256 shapes) chained by hand from replicate.ops, for the GPU
test and bench/gpu.py: conv1..fc8 + SoftmaxWithLoss, forward and backward through the ops'
autograd (Caffe's backward kernels)."""
from __future__ import annotations

import torch

from replicate import ops as R

# name: (num_output, in_channels/group, kernel, stride, pad, group)
CONVS = {
    "conv1": (96, 3, 11, 4, 0, 1),
    "conv2": (256, 48, 5, 1, 2, 2),
    "conv3": (384, 256, 3, 1, 1, 1),
    "conv4": (384, 192, 3, 1, 1, 2),
    "conv5": (256, 192, 3, 1, 1, 2),
}
FCS = {"fc6": (4096, 9216), "fc7": (4096, 4096), "fc8": (1000, 4096)}


def make_params(device, dtype=torch.float32, seed=0):
    """Gaussian weights (std 0.01, fc6/fc7 0.005) and CaffeNet's constant biases."""
    g = torch.Generator().manual_seed(seed)
    p = {}
    for name, (cout, cin, k, _, _, _) in CONVS.items():
        p[name + "_w"] = torch.randn(cout, cin, k, k, generator=g, dtype=dtype) * 0.01
        p[name + "_b"] = torch.full((cout,), 0.0 if name in ("conv1", "conv3") else 1.0, dtype=dtype)
    for name, (cout, cin) in FCS.items():
        p[name + "_w"] = torch.randn(cout, cin, generator=g, dtype=dtype) * (0.01 if name == "fc8" else 0.005)
        p[name + "_b"] = torch.full((cout,), 0.0 if name == "fc8" else 1.0, dtype=dtype)
    return {k: v.to(device).requires_grad_() for k, v in p.items()}


def make_batch(batch, device, dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(batch, 3, 227, 227, generator=g, dtype=dtype) * 50).to(device)
    labels = torch.randint(0, 1000, (batch,), generator=g).to(device)
    masks = [(torch.rand(batch, 4096, generator=g) >= 0.5).to(torch.int32).to(device) for _ in range(2)]
    return x, labels, masks


def forward(p, x, labels, masks):
    def conv(name, h):
        _, _, _, stride, pad, group = CONVS[name]
        return R.relu(R.convolution(h, p[name + "_w"], p[name + "_b"], stride=stride, pad=pad, group=group))

    h = conv("conv1", x)
    h = R.lrn(R.pooling(h, "MAX", 3, 2), 5, 1e-4, 0.75)
    h = conv("conv2", h)
    h = R.lrn(R.pooling(h, "MAX", 3, 2), 5, 1e-4, 0.75)
    h = conv("conv5", conv("conv4", conv("conv3", h)))
    h = R.pooling(h, "MAX", 3, 2)
    h = R.dropout(R.relu(R.inner_product(h, p["fc6_w"], p["fc6_b"])), masks[0], 0.5)
    h = R.dropout(R.relu(R.inner_product(h, p["fc7_w"], p["fc7_b"])), masks[1], 0.5)
    h = R.inner_product(h, p["fc8_w"], p["fc8_b"])
    loss, _ = R.softmax_with_loss(h, labels)
    return loss


def step(p, x, labels, masks, lr=None):
    """Forward + backward; with lr, a plain SGD update of the parameters.  Returns the loss."""
    for t in p.values():
        t.grad = None
    loss = forward(p, x, labels, masks)
    loss.backward()
    if lr is not None:
        with torch.no_grad():
            for t in p.values():
                t.add_(t.grad, alpha=-lr)
    return loss
