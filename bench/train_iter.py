"""A whole CaffeNet training iteration at batch 256 (../shared/golden/perf/caffenet_train_b256.prototxt):
forward + backward per layer (as ``caffe time``) plus the SGD update, in ``fast`` and ``exact`` mode,
each in its own process so that its peak resident memory is its own.  Both run as ``python -m
replicate train`` does: the solver's release of tops after backward and the caching CPU allocator
(``REPLICATE_CPU_CACHE=0`` turns it off).  ``exact`` pins OpenBLAS's Haswell kernels (the parity
setting); ``fast`` lets OpenBLAS pick its kernels for the CPU.

    python -m bench.train_iter [--iterations N]            # both modes, JSON on stdout
    python -m bench.train_iter --child MODE --iterations N  # one mode (used by run())
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
CAFFE_S_PER_ITER = 11.089  # ../shared/golden/perf/caffe_time_caffenet_b256.txt (2 threads, OpenBLAS auto)
CAFFE_PEAK_RSS_GB = 2.59   # ../shared/golden/perf/README.md (/usr/bin/time -v, 1 iteration)


def shared() -> Path:
    return Path(os.environ.get("REPLICATE_SHARED", REPO.parent / "shared"))


def child(mode: str, iterations: int) -> dict:
    import torch
    from prototxt_like import caffe_pb2
    from replicate import ops as R
    from replicate.net import Net
    from replicate.rng import CaffeRNG
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

    def update():
        for p, h in zip(net.learnable, history):
            R.sgd_update(p.data, p.diff, h, 0.01, 0.9, 0.0005, "L2", 1.0)

    net.forward()  # warm-up (as caffe time's untimed first pass)
    net.backward()
    update()
    timing = time_net(net, iterations)
    t = time.perf_counter()
    for _ in range(iterations):
        update()
    update_ms = (time.perf_counter() - t) * 1000 / iterations
    total_ms = timing.forward_total_ms + timing.backward_total_ms + update_ms
    return {
        "blas": mode, "iterations": iterations, "threads": torch.get_num_threads(), "build_s": build_s,
        "forward_ms": timing.forward_total_ms, "backward_ms": timing.backward_total_ms, "update_ms": update_ms,
        "total_ms": total_ms, "images_per_s": 256 * 1000 / total_ms,
        "per_layer_ms": {n: {"forward": f, "backward": b}
                         for n, f, b in zip(timing.layers, timing.forward_ms, timing.backward_ms)},
        "iteration_ms": timing.iteration_ms,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
        "cblas": R.blas_library(), "cpu_cache": R.cpu_cache_stats(),
    }


def run(iterations: int = 2) -> dict:
    model = shared() / "golden" / "perf" / "caffenet_train_b256.prototxt"
    if not model.exists():
        return {"skipped": f"{model} is absent"}
    out = {"what": "CaffeNet training iteration, batch 256, CPU: forward+backward per layer (caffe time's "
                   "method) + SGD update; each mode in its own process",
           "caffe_anchor_s_per_iter": CAFFE_S_PER_ITER, "caffe_peak_rss_gb": CAFFE_PEAK_RSS_GB,
           "targets": {"fast_speedup_vs_caffe": 1.5, "exact_speedup_vs_caffe": 1.0,
                       "peak_rss_gb_max": round(CAFFE_PEAK_RSS_GB * 1.25, 3)}}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for mode in ("fast", "exact"):
        child_env = dict(env)
        if mode == "fast":  # fast mode may use the CBLAS's best kernels for this CPU; exact pins Haswell
            child_env.pop("OPENBLAS_CORETYPE", None)
        else:
            child_env["OPENBLAS_CORETYPE"] = "Haswell"
        r = subprocess.run([sys.executable, "-m", "bench.train_iter", "--child", mode, "--iterations",
                            str(iterations)], cwd=REPO, env=child_env, capture_output=True, text=True)
        if r.returncode != 0:
            out[mode] = {"error": r.stderr[-2000:]}
            continue
        row = json.loads(r.stdout.strip().splitlines()[-1])
        row["speedup_vs_caffe"] = CAFFE_S_PER_ITER * 1000 / row["total_ms"]
        row["meets_speed_target"] = row["speedup_vs_caffe"] >= out["targets"][f"{mode}_speedup_vs_caffe"]
        row["meets_memory_target"] = row["peak_rss_gb"] <= out["targets"]["peak_rss_gb_max"]
        out[mode] = row
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", choices=("fast", "exact"))
    ap.add_argument("--iterations", type=int, default=2)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.iterations)))
    else:
        print(json.dumps(run(args.iterations), indent=1))


if __name__ == "__main__":
    main()
