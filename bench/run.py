"""make bench: our Caffe kernels vs torch's nearest native ops at CaffeNet's shapes (batch 256),
forward and backward, measured in one run, with Caffe 1.0's own per-layer times on these machines
(../shared/golden/perf) as the anchor.  Writes JSON.

Ratios are what matter: absolute times move by ~20% between runs on shared machines.
"""
from __future__ import annotations

import argparse
import json
import os

# Fresh multi-hundred-MB activations page-fault on first touch, which costs ours and torch's
# ops alike more than the arithmetic (Caffe reuses its blobs); torch's THP allocator avoids it.
# It is read once, at torch's first allocation, so it is set before torch is imported.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
import platform
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from replicate import ops as R  # noqa: E402
from tests._shared import shared_dir  # noqa: E402

ops = torch.ops.replicate


def caffe_anchor() -> dict:
    """Per-layer (forward, backward) ms from Caffe's `caffe time` log, if shared/ is present."""
    f = shared_dir() / "golden" / "perf" / "caffe_time_caffenet_b256.txt"
    if not f.exists():
        return {}
    out = {}
    for m in re.finditer(r"\]\s+(\w+)\s+(forward|backward): ([\d.]+) ms", f.read_text()):
        out.setdefault(m.group(1), {})[m.group(2)] = float(m.group(3))
    return out


def timeit(fn, repeats: int) -> float:
    """Best of `repeats` after 3 warm-up calls (the kernel's huge-page supply settles over the first
    large allocations), in ms: on a shared machine the minimum is the stable statistic."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return min(times)


def case_norm1(g):
    x = torch.randn(256, 96, 27, 27, generator=g) * 20
    dy = torch.randn_like(x)
    st = {}

    def ours_f():
        st["o"] = ops.lrn_across_forward(x, 5, 1e-4, 0.75, 1.0)

    def ours_b():
        ops.lrn_across_backward(dy, x, *st["o"], 5, 1e-4, 0.75)

    lrn = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
    xt = x.clone().requires_grad_()

    def torch_f():
        st["t"] = lrn(xt)

    def torch_b():
        torch.autograd.grad(st["t"], xt, dy, retain_graph=True)

    return "norm1", "nn.LocalResponseNorm", ours_f, ours_b, torch_f, torch_b, 5.0


def case_pool1(g):
    x = torch.randn(256, 96, 55, 55, generator=g)
    dy = torch.randn(256, 96, 27, 27, generator=g)
    st = {}

    def ours_f():
        st["o"] = ops.pool_max_forward(x, [3, 3], [2, 2], [0, 0], True)

    def ours_b():
        ops.pool_max_backward(dy, st["o"][1], list(x.shape))

    xt = x.clone().requires_grad_()

    def torch_f():
        st["t"] = F.max_pool2d(xt, 3, 2, ceil_mode=True)

    def torch_b():
        torch.autograd.grad(st["t"], xt, dy, retain_graph=True)

    return "pool1", "max_pool2d(ceil_mode=True)", ours_f, ours_b, torch_f, torch_b, 2.5


def case_conv2(g):
    x = torch.randn(256, 96, 27, 27, generator=g)
    w = torch.randn(256, 48, 5, 5, generator=g) * 0.01
    b = torch.randn(256, generator=g)
    dy = torch.randn(256, 256, 27, 27, generator=g)

    def ours_f():
        ops.conv_forward(x, w, b, [1, 1], [2, 2], [1, 1], 2)

    def ours_b():
        ops.conv_backward(dy, x, w, [1, 1], [2, 2], [1, 1], 2, [True, True, True])

    xt, wt, bt = (t.clone().requires_grad_() for t in (x, w, b))
    st = {}

    def torch_f():
        st["t"] = F.conv2d(xt, wt, bt, padding=2, groups=2)

    def torch_b():
        torch.autograd.grad(st["t"], (xt, wt, bt), dy, retain_graph=True)

    return "conv2", "conv2d(groups=2)", ours_f, ours_b, torch_f, torch_b, 1.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="bench/results.json")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--blas", default=os.environ.get("REPLICATE_BLAS", "fast"), choices=["fast", "exact"])
    args = ap.parse_args(argv)
    R.set_blas(args.blas)
    try:
        with R.blas_mode("exact"):
            exact_lib = R.blas_library()
    except RuntimeError as e:
        exact_lib = f"unavailable: {e}"
    g = torch.Generator().manual_seed(0)
    anchor = caffe_anchor()
    result = {
        "what": "forward/backward ms (best of repeats) at CaffeNet shapes, batch 256; ours vs torch native, one run",
        "blas": args.blas, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS")},
        "machine": platform.processor() or platform.machine(), "repeats": args.repeats,
        "anchor": "Caffe 1.0 caffe time, ../shared/golden/perf (OpenBLAS, 2 threads, same kind of machine)",
        "exact_blas_library": exact_lib,
        "layers": {},
    }
    for make in (case_norm1, case_pool1, case_conv2):
        name, native, of, ob, tf, tb, target = make(g)
        print(f"{name}: timing ours and {native} ...", flush=True)
        row = {"native": native}
        row["ours_forward_ms"] = timeit(of, args.repeats)
        row["ours_backward_ms"] = timeit(ob, args.repeats)
        row["torch_forward_ms"] = timeit(tf, args.repeats)
        row["torch_backward_ms"] = timeit(tb, args.repeats)
        try:  # the same kernels with exact BLAS (Caffe's calls), as parity runs use them
            with R.blas_mode("exact"):
                row["ours_exact_forward_ms"] = timeit(of, args.repeats)
                row["ours_exact_backward_ms"] = timeit(ob, args.repeats)
        except RuntimeError as e:
            row["ours_exact"] = f"unavailable: {e}"
        ours = row["ours_forward_ms"] + row["ours_backward_ms"]
        native_t = row["torch_forward_ms"] + row["torch_backward_ms"]
        row["speedup_vs_torch"] = native_t / ours
        row["target_speedup_vs_torch"] = target
        row["meets_target"] = row["speedup_vs_torch"] >= target
        if name in anchor:
            caffe = anchor[name]["forward"] + anchor[name]["backward"]
            row["caffe_forward_ms"], row["caffe_backward_ms"] = anchor[name]["forward"], anchor[name]["backward"]
            row["speedup_vs_caffe_anchor"] = caffe / ours
        result["layers"][name] = row
        print(json.dumps({name: row}, indent=1), flush=True)
    from bench import data_layer  # Data layer images/s per worker count (replicate.data)
    print("data_layer: timing ...", flush=True)
    result["data_layer"] = data_layer.run(args.repeats)
    print(json.dumps({"data_layer": result["data_layer"]}, indent=1), flush=True)
    from bench import train_iter  # a whole CaffeNet training iteration, fast and exact, peak RSS
    print("caffenet_train_iteration: timing (each mode in its own process) ...", flush=True)
    result["caffenet_train_iteration"] = train_iter.run(iterations=2)
    print(json.dumps({"caffenet_train_iteration": {k: v for k, v in result["caffenet_train_iteration"].items()
                                                   if k not in ("fast", "exact")}}, indent=1), flush=True)
    from bench import gpu  # CUDA kernels vs cuDNN, CaffeNet iteration (skipped without a GPU)
    result["gpu"] = gpu.run(args.repeats)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
