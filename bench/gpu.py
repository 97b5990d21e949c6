"""GPU section of `make bench`: our CUDA kernels vs torch's native (cuDNN) ops at CaffeNet's
batch-256 shapes, a whole CaffeNet training iteration (forward + backward + SGD update, ops
chained by hand as tests/cuda/caffenet.py) in images/s, and the projected hours of one
450,000-iteration network.  ``run(repeats)`` returns a dict ({"skipped": reason} without a GPU).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from replicate import ops as R  # noqa: E402

ops = torch.ops.replicate
ITERATIONS = 450_000
TARGET_IMAGES_PER_S = 3000


def _skip_reason():
    if not torch.cuda.is_available():
        return "no CUDA device"
    if not torch._C._dispatch_has_kernel_for_dispatch_key("replicate::relu_forward", "CUDA"):
        return "replicate._C built without CUDA kernels"
    return None


def _modes():
    """fast, and exact where the CPU seam's CBLAS loads (selecting exact loads it)."""
    try:
        with R.blas_mode("exact"):
            pass
        return ("fast", "exact")
    except RuntimeError:
        return ("fast",)


def _time(fn, repeats: int) -> float:
    """Best of `repeats` in ms (CUDA events), after 2 warm-up calls."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end))
    return best


def _layers(dev):
    g = torch.Generator().manual_seed(0)

    def t(*shape, s=1.0):
        return (torch.randn(*shape, generator=g) * s).to(dev)

    cases = {}
    x, dy = t(256, 96, 27, 27, s=20), t(256, 96, 27, 27)
    st = {}
    cases["norm1"] = (
        "nn.LocalResponseNorm",
        lambda: st.__setitem__("l", ops.lrn_across_forward(x, 5, 1e-4, 0.75, 1.0)),
        lambda: ops.lrn_across_backward(dy, x, *st["l"], 5, 1e-4, 0.75),
        torch.nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0), x, [])
    xp, dyp = t(256, 96, 55, 55), t(256, 96, 27, 27)
    cases["pool1"] = (
        "max_pool2d(ceil_mode=True)",
        lambda: st.__setitem__("p", ops.pool_max_forward(xp, [3, 3], [2, 2], [0, 0], True)),
        lambda: ops.pool_max_backward(dyp, st["p"][1], list(xp.shape)),
        lambda z: F.max_pool2d(z, 3, 2, ceil_mode=True), xp, [])
    xc, w, b, dyc = t(256, 96, 27, 27), t(256, 48, 5, 5, s=0.01), t(256), t(256, 256, 27, 27)
    wt, bt = w.clone().requires_grad_(), b.clone().requires_grad_()  # torch's side computes all grads
    cases["conv2"] = (
        "conv2d(groups=2), cuDNN",
        lambda: ops.conv_forward(xc, w, b, [1, 1], [2, 2], [1, 1], 2),
        lambda: ops.conv_backward(dyc, xc, w, [1, 1], [2, 2], [1, 1], 2, [True, True, True]),
        lambda z: F.conv2d(z, wt, bt, padding=2, groups=2), xc, [wt, bt])
    xf, wf, bf, dyf = t(256, 9216), t(4096, 9216, s=0.005), t(4096), t(256, 4096)
    wft, bft = wf.clone().requires_grad_(), bf.clone().requires_grad_()
    cases["fc6"] = (
        "F.linear",
        lambda: ops.inner_product_forward(xf, wf, bf, False),
        lambda: ops.inner_product_backward(dyf, xf, wf, False, [True, True, True]),
        lambda z: F.linear(z, wft, bft), xf, [wft, bft])
    return cases, {"norm1": dy, "pool1": dyp, "conv2": dyc, "fc6": dyf}


def run(repeats: int = 5) -> dict:
    reason = _skip_reason()
    if reason:
        return {"skipped": reason}
    from tests.cuda.caffenet import make_batch, make_params, step

    dev = "cuda"
    prev_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # the paper is fp32
    torch.backends.cudnn.benchmark = True
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "repeats": repeats, "tf32": False, "layers": {}, "iteration": {}}
    try:
        cases, grads = _layers(dev)
        for mode in _modes():
            with R.blas_mode(mode):
                for name, (native, of, ob, tf, x, _) in cases.items():
                    row = out["layers"].setdefault(name, {"native": native})
                    row[f"ours_{mode}_forward_ms"] = _time(of, repeats)
                    row[f"ours_{mode}_backward_ms"] = _time(ob, repeats)
        for name, (native, of, ob, tf, x, params) in cases.items():
            xt = x.clone().requires_grad_()
            st = {}
            row = out["layers"][name]
            row["torch_forward_ms"] = _time(lambda: st.__setitem__("y", tf(xt)), repeats)
            row["torch_backward_ms"] = _time(
                lambda: torch.autograd.grad(st["y"], [xt, *params], grads[name], retain_graph=True), repeats)
            ours = row["ours_fast_forward_ms"] + row["ours_fast_backward_ms"]
            row["speedup_vs_torch_fast"] = (row["torch_forward_ms"] + row["torch_backward_ms"]) / ours
        del cases, grads
        p = make_params(dev)
        x, labels, masks = make_batch(256, dev)
        for mode in _modes():
            with R.blas_mode(mode):
                ms = _time(lambda: step(p, x, labels, masks, lr=1e-3), max(2, repeats // 2))
            ips = 256 / (ms / 1e3)
            out["iteration"][mode] = {
                "ms": ms, "images_per_s": ips,
                "projected_hours_450k": ITERATIONS * ms / 3.6e6,
                "meets_target": ips >= TARGET_IMAGES_PER_S,
            }
        out["iteration"]["target_images_per_s"] = TARGET_IMAGES_PER_S
        out["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev_tf32
    return out


if __name__ == "__main__":
    import json

    t = time.time()
    print(json.dumps(run(3), indent=1))
    print(f"({time.time() - t:.0f} s)")
