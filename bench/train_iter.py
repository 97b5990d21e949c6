"""A whole CaffeNet training iteration at batch 256 (../shared/golden/perf/caffenet_train_b256.prototxt),
ours in ``fast`` and ``exact`` mode against the torch-native CaffeNet (bench/torch_caffenet.py:
grouped conv2d, nn.LocalResponseNorm, max_pool2d(ceil_mode=True), torch.optim.SGD), each in its own
process, one after the other in one run, so that each peak resident memory is its own.

Ours runs as ``python -m replicate train`` does: forward + backward per layer (``caffe time``'s
method) plus the SGD update and the clearing of the parameter diffs (Solver::Step), the solver's
release of tops after backward and the caching CPU allocator (``REPLICATE_CPU_CACHE=0`` turns it
off).  ``exact`` sets up OpenBLAS's Haswell kernels and one thread itself; ``fast`` lets OpenBLAS
pick its kernels for the CPU (the OPENBLAS_* variables are removed from the children's
environment).  Every ratio is between numbers of this run.

    python -m bench.train_iter [--iterations N]                  # all three, JSON on stdout
    python -m bench.train_iter --child fast|exact|torch --iterations N
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def shared() -> Path:
    return Path(os.environ.get("REPLICATE_SHARED", REPO.parent / "shared"))


def child(mode: str, iterations: int) -> dict:
    import torch
    from prototxt_like import caffe_pb2
    from replicate import ops as R
    from replicate.net import Net
    from replicate.rng import CaffeRNG
    from replicate.log import environment
    from replicate.timing import time_net
    R.set_blas(mode)
    if os.environ.get("REPLICATE_CPU_CACHE", "1") != "0":
        R.enable_cpu_cache()  # as python -m replicate train does
    model = shared() / "golden" / "perf" / "caffenet_train_b256.prototxt"
    t0 = time.perf_counter()
    net = Net(str(model), caffe_pb2.TRAIN, rng=CaffeRNG(1))
    net.release_after_backward = True  # as the solver's train net
    build_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    net.blobs["data"].data = torch.randn(net.blobs["data"].data.shape, generator=g) * 50
    net.blobs["label"].data = torch.randint(0, 1000, net.blobs["label"].data.shape, generator=g).float()
    history = [torch.zeros_like(p.data) for p in net.learnable]

    def update():  # Solver::Step after ForwardBackward: the update, then ClearParamDiffs for the next
        for p, h in zip(net.learnable, history):
            R.sgd_update(p.data, p.diff, h, 0.01, 0.9, 0.0005, "L2", 1.0)
        net.clear_param_diffs()

    update_s = []

    def after_iteration(it, ms):  # timed apart from the layers (time_net's iterations exclude it)
        t = time.perf_counter()
        update()
        update_s.append(time.perf_counter() - t)

    net.clear_param_diffs()
    net.forward()  # warm-up (as caffe time's untimed first pass)
    net.backward()
    update()
    timing = time_net(net, iterations, on_iteration=after_iteration)
    update_ms = sum(update_s) * 1000 / iterations
    total_ms = timing.forward_total_ms + timing.backward_total_ms + update_ms
    return {
        "blas": mode, "iterations": iterations, "threads": torch.get_num_threads(), "build_s": build_s,
        "forward_ms": timing.forward_total_ms, "backward_ms": timing.backward_total_ms, "update_ms": update_ms,
        "mean_ms": total_ms, "best_ms": min(timing.iteration_ms) + update_ms,
        "per_layer_ms": {n: {"forward": f, "backward": b}
                         for n, f, b in zip(timing.layers, timing.forward_ms, timing.backward_ms)},
        "iteration_ms": [t + update_ms for t in timing.iteration_ms],
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
        "environment": environment(), "cpu_cache": R.cpu_cache_stats(),
    }


def child_torch(iterations: int) -> dict:
    import torch

    from bench.torch_caffenet import train_step_times
    from replicate.log import environment
    row = train_step_times(iterations)
    env = environment(blas=False)  # torch's own kernels (MKL, oneDNN): no replicate BLAS seam here
    row.update(blas="torch native", iterations=iterations, threads=torch.get_num_threads(),
               mean_ms=row.pop("total_ms"), best_ms=min(row["iteration_ms"]),
               peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, environment=env)
    return row


def run(iterations: int = 3, sgemm_gflops: float = 0.0) -> dict:
    """The three children, their ratios, and GFLOP/s against ``sgemm_gflops`` (the machine's sgemm,
    measured by the caller in the same run)."""
    model = shared() / "golden" / "perf" / "caffenet_train_b256.prototxt"
    if not model.exists():
        return {"skipped": f"{model} is absent"}
    from bench.torch_caffenet import gemm_gflop
    gemm = gemm_gflop(256)
    gflop = sum(f + b for f, b in gemm.values())
    out = {"what": "CaffeNet training iteration, batch 256, CPU: forward + backward + SGD update, best (best_ms; "
                   f"mean_ms: the mean) of {iterations} iterations after one untimed; ours per layer (caffe time's "
                   "method); each of fast, exact and torch native in its own process, one after the other; ratios "
                   "and GFLOP/s from best_ms",
           "gemm_gflop_per_iteration": gflop, "machine_sgemm_gflops": sgemm_gflops}
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    env["PYTHONPATH"] = str(REPO)
    for mode in ("fast", "exact", "torch"):
        r = subprocess.run([sys.executable, "-m", "bench.train_iter", "--child", mode, "--iterations",
                            str(iterations)], cwd=REPO, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            out[mode] = {"error": r.stderr[-2000:]}
            continue
        row = json.loads(r.stdout.strip().splitlines()[-1])
        row["images_per_s"] = 256 * 1000 / row["best_ms"]
        row["gemm_gflops"] = gflop / (row["best_ms"] / 1e3)
        if "per_layer_ms" in row:  # the convolution and inner-product layers alone (mean per iteration)
            ms = sum(v["forward"] + v["backward"] for k, v in row["per_layer_ms"].items() if k in gemm)
            row["gemm_layers_ms"] = ms
            row["gemm_layers_gflops"] = gflop / (ms / 1e3)
            if sgemm_gflops:
                row["gemm_layers_share_of_machine_sgemm"] = row["gemm_layers_gflops"] / sgemm_gflops
        if sgemm_gflops:
            row["share_of_machine_sgemm"] = row["gemm_gflops"] / sgemm_gflops
        out[mode] = row
    ratios = {}
    t = out.get("torch", {}).get("best_ms")
    for mode in ("fast", "exact"):
        ms = out.get(mode, {}).get("best_ms")
        if ms and t:
            ratios[f"{mode}_speedup_vs_torch_native"] = t / ms
            ratios[f"{mode}_peak_rss_vs_torch_native"] = out[mode]["peak_rss_gb"] / out["torch"]["peak_rss_gb"]
    if out.get("fast", {}).get("best_ms") and out.get("exact", {}).get("best_ms"):
        ratios["exact_time_over_fast"] = out["exact"]["best_ms"] / out["fast"]["best_ms"]
    out["ratios"] = ratios
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", choices=("fast", "exact", "torch"))
    ap.add_argument("--iterations", type=int, default=3)
    args = ap.parse_args(argv)
    if args.child == "torch":
        print(json.dumps(child_torch(args.iterations)))
    elif args.child:
        print(json.dumps(child(args.child, args.iterations)))
    else:
        print(json.dumps(run(args.iterations), indent=1))


if __name__ == "__main__":
    main()
