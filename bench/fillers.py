"""Caffe's random draws at CaffeNet's size: the time to fill CaffeNet's 61 M parameters as Caffe's
``Solver::Init`` does (gaussian weights std 0.01 / 0.005, constant biases: Boost's ziggurat on the
emulated mt19937, csrc/cpu/rng.cpp), and one TRAIN iteration's dropout masks (fc6 and fc7 at batch
256: 2 x 1,048,576 Bernoulli draws).  Both measured in this run; no figure from elsewhere.

    python bench/fillers.py            # JSON on stdout
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from prototxt_like import caffe_pb2  # noqa: E402
from replicate.fillers import fill  # noqa: E402
from replicate.rng import CaffeRNG  # noqa: E402

# CaffeNet's learnable blobs (bvlc_reference_caffenet / the paper's nets): shape, weight std
CAFFENET = [((96, 3, 11, 11), 0.01), ((256, 48, 5, 5), 0.01), ((384, 256, 3, 3), 0.01), ((384, 192, 3, 3), 0.01),
            ((256, 192, 3, 3), 0.01), ((4096, 9216), 0.005), ((4096, 4096), 0.005), ((1000, 4096), 0.01)]


def fill_caffenet(rng: CaffeRNG) -> int:
    n = 0
    for shape, std in CAFFENET:
        w = fill(caffe_pb2.FillerParameter(type="gaussian", std=std), shape, rng)
        b = fill(caffe_pb2.FillerParameter(type="constant", value=0.1), shape[:1], rng)
        n += w.size + b.size
    return n


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def run(repeats: int = 3) -> dict:
    rng = CaffeRNG(1701)
    count = fill_caffenet(rng)
    t_fill = best(lambda: fill_caffenet(rng), repeats)
    t_drop = best(lambda: [rng.dropout_mask((256, 4096), 0.5) for _ in range(2)], repeats)
    return {"caffenet_parameters": count, "fill_caffenet_s": round(t_fill, 3),
            "fill_values_per_s": round(count / t_fill),
            "dropout_masks_per_iteration_ms": round(t_drop * 1e3, 2),
            "note": "Caffe's gaussian filler (Boost 1.74 ziggurat) and bernoulli<double> dropout masks, "
                    "bit for bit; best of %d" % repeats}


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
