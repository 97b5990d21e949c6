"""make bench's side-by-side with Caffe (bench/caffe_time.py, bench/run.py's ``caffe`` section): Caffe's
own logs are read right, and the ratios divide numbers of one run the right way round.  The timing itself
needs Caffe built (``make caffe``), which make test does not do."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests._shared import shared_dir

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from bench import caffe_time  # noqa: E402


def test_parse_caffe_time_log():
    f = shared_dir() / "golden" / "perf" / "caffe_time_caffenet_b256_2026-12-02.txt"
    if not f.exists():
        pytest.fail(f"{f} is absent")
    r = caffe_time.parse_time(f.read_text())
    assert r["iteration_ms"] == [7581.0, 8119.0, 6912.0]  # the file's log is its run3 (its header's table)
    assert r["forward_backward_ms"] == 7127.0  # the log's last "Average Forward-Backward" (its run1's)
    assert set(r["per_layer_ms"]) >= {"data", "conv1", "relu1", "pool1", "norm1", "conv2", "fc6", "drop7", "loss"}
    assert all(set(v) == {"forward", "backward"} for v in r["per_layer_ms"].values())
    assert r["forward_ms"] + r["backward_ms"] == pytest.approx(r["forward_backward_ms"], abs=2)
    assert r["per_layer_ms"]["drop7"] == {"forward": 2.432, "backward": 0.299667}


def test_parse_caffe_train_log_steps():
    text = (shared_dir() / "golden" / "solver" / "train.log").read_text()
    steps = caffe_time.parse_train(text)
    # iteration 0's line times the first forward-backward alone, so it is left out
    n = sum(1 for line in text.splitlines() if " iter/s, " in line and "] Iteration 0 (" not in line)
    assert len(steps) == n > 0
    assert steps[0] == pytest.approx(5.0)  # "Iteration 1 (200 iter/s, 0.005s/1 iters)"
    assert caffe_time.parse_train(text, first=2) == steps[1:]  # the bench leaves out Caffe's first update too
    assert caffe_time.parse_train("I1203 10:00:00.0 1 solver.cpp:239] Iteration 2 (0.0765 iter/s, 13.082s/1 iters),"
                                  " loss = 6.9") == [pytest.approx(13082.0)]


def _bench_run():
    """bench/run.py, imported without its import-time changes to this process's environment (it drops
    the OPENBLAS_* variables for its fast mode, which the tests after this one need)."""
    env = dict(os.environ)
    try:
        from bench import run as bench_run
    finally:
        os.environ.clear()
        os.environ.update(env)
    return bench_run


def test_side_by_side_ratios(monkeypatch):
    bench_run = _bench_run()
    fake = {"binary": "caffe", "iterations": 2,
            "auto": {"env": {}, "time": {"iteration_ms": [9000.0, 8000.0], "forward_backward_ms": 8500.0,
                                         "per_layer_ms": {"conv1": {"forward": 500.0, "backward": 700.0}}},
                     "train": {"best_ms": 10000.0, "mean_ms": 11000.0, "peak_rss_gb": 2.5}},
            "parity": {"env": {"OPENBLAS_NUM_THREADS": "1"},
                       "time": {"iteration_ms": [15000.0], "forward_backward_ms": 15000.0, "per_layer_ms": {}},
                       "train": {"best_ms": 16000.0, "mean_ms": 16000.0, "peak_rss_gb": 2.4}}}
    monkeypatch.setattr(caffe_time, "run", lambda **kw: fake)
    it = {"fast": {"best_ms": 4000.0, "mean_ms": 5500.0, "peak_rss_gb": 2.0,
                   "per_layer_ms": {"conv1": {"forward": 100.0, "backward": 150.0}}},
          "exact": {"best_ms": 8000.0, "mean_ms": 8000.0, "peak_rss_gb": 1.8}}
    out = bench_run.caffe_side_by_side(it, 2)
    r = out["ratios"]
    assert r["fast_speedup_vs_caffe_auto"] == 2.5  # Caffe's time over ours: above 1 when ours is faster
    assert r["fast_mean_speedup_vs_caffe_auto"] == 2.0
    assert r["fast_speedup_vs_caffe_auto_time_forward_backward"] == 2.0  # caffe time's best iteration
    assert r["exact_speedup_vs_caffe_parity"] == 2.0
    assert r["fast_peak_rss_vs_caffe_auto"] == pytest.approx(0.8)
    assert out["layers_ms"]["conv1"] == {"caffe_auto_ms": 1200.0, "ours_fast_ms": 250.0}
    assert "Caffe auto" in bench_run.summary({"sgemm": {"size": 2048, "torch_mm_gflops": 1, "ours_fast_gflops": 1,
                                                        "ours_exact_1thread_gflops": 1, "machine_sgemm_gflops": 1},
                                              "layers": {}, "caffe": out})


def test_without_caffe_the_bench_says_so(tmp_path):
    r = caffe_time.run(binary=tmp_path / "no-caffe")
    assert "skipped" in r and "make caffe" in r["skipped"]
