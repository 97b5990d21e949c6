"""Start-up of the CLI (bench/startup.py times it): what ``python -m replicate train`` imports, the
opt-in start-up trace, and the fast exit (``replicate.__main__.exit_now``), which must change
nothing a run leaves behind: log lines, snapshots, exit status, buffered output, atexit work."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests._shared import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "1"}
for _k in ("REPLICATE_STARTUP_TRACE", "REPLICATE_FAST_EXIT", "PYTHONUNBUFFERED"):  # stdout block-buffered
    ENV.pop(_k, None)

# optional modules that no part of `train` on a Data-layer net needs (plots, sweeps on Ray, HDF5,
# image decoding of encoded Datums, progress bars of other tools, ...)
HEAVY = ("matplotlib", "ray", "cv2", "h5py", "scipy", "pandas", "PIL", "tqdm", "sklearn", "torchvision",
         "plyvel", "leveldb", "IPython", "sympy", "onnx")

NET = """name: "StartupNet"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { crop_size: 6 mirror: true scale: 0.0078125 }
  data_param { source: "db" batch_size: 4 backend: LMDB } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { crop_size: 6 scale: 0.0078125 }
  data_param { source: "db" batch_size: 4 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1" lrn_param { local_size: 3 } }
layer { name: "fc2" type: "InnerProduct" bottom: "norm1" top: "fc2"
  inner_product_param { num_output: 8 weight_filler { type: "xavier" } } }
layer { name: "drop2" type: "Dropout" bottom: "fc2" top: "fc2" }
layer { name: "fc3" type: "InnerProduct" bottom: "fc2" top: "fc3"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc3" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "fc3" bottom: "label" top: "accuracy" include { phase: TEST } }
"""

SOLVER = """net: "net.prototxt"
test_iter: 2
test_interval: 2
base_lr: 0.01
lr_policy: "fixed"
momentum: 0.9
weight_decay: 0.0005
display: 1
max_iter: 3
snapshot_prefix: "snap"
solver_mode: CPU
random_seed: 1701
"""


def make_run(d: Path) -> Path:
    """A tiny Data-layer net (12 raw 3x8x8 Datums in an LMDB) and its solver in ``d``."""
    import lmdb
    import numpy as np

    from prototxt_like import caffe_pb2
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(7)
    env = lmdb.open(str(d / "db"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(12):
            datum = caffe_pb2.Datum(channels=3, height=8, width=8, label=i % 3,
                                    data=rng.randint(0, 256, size=(3, 8, 8)).astype(np.uint8).tobytes())
            txn.put(b"%08d" % i, datum.SerializeToString())
    env.close()
    (d / "net.prototxt").write_text(NET)
    (d / "solver.prototxt").write_text(SOLVER)
    return d


def run(d: Path, *args: str, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=d, env=env or ENV, capture_output=True, text=True,
                          timeout=300, **kw)


def glog_messages(text: str) -> list:
    """The log's messages without time, pid and the measured rates ("... iter/s, ...s/N iters")."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ ", r"\1 ", line)
        out.append(re.sub(r"\([^()]* iter/s, [^()]*s/\d+ iters\)", "(RATE)", line))
    return out


def test_train_imports_no_optional_heavy_modules(tmp_path):
    """``train`` of a Data-layer net, as the CLI runs it, leaves none of the optional heavy modules
    in ``sys.modules``: a top-level import of one of them in a module on the train path would cost
    every run (and every CLI test) its import time."""
    d = make_run(tmp_path / "run")
    code = ("import json, sys\n"
            "from replicate.__main__ import main\n"
            "rc = main(['train', '-solver', 'solver.prototxt', '--blas', 'fast', '--log', 'train.log'])\n"
            "print(json.dumps({'rc': rc, 'modules': sorted(sys.modules)}))\n")
    r = run(d, "-c", code)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0
    assert "Optimization Done." in (d / "train.log").read_text()
    loaded = [m for m in got["modules"] if m.split(".")[0] in HEAVY]
    assert not loaded, f"the train path imported {loaded}"
    assert "torch" in got["modules"]  # the check itself looks at the right list


def test_light_commands_do_not_import_torch(tmp_path):
    """``compare`` (and the plan/report/status/sweep/demo dispatch) start without torch."""
    a = tmp_path / "a.npz"
    import numpy as np
    np.savez(a, x=np.arange(3, dtype=np.float32))
    code = ("import sys\n"
            "from replicate.__main__ import main\n"
            f"rc = main(['compare', {str(a)!r}, {str(a)!r}])\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', rc)\n")
    r = run(tmp_path, "-c", code)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "NO-TORCH 0"


def test_fast_exit_and_trace_change_no_output(tmp_path):
    """The same seeded run three ways: ``python -m replicate train`` as is (fast exit), with
    Python's own teardown (``REPLICATE_FAST_EXIT=0``) and with the start-up trace on.  Same log
    messages on stderr (all written before the process ended), same snapshot bytes, status 0; the
    trace names each milestone once, in order, on the machine's monotonic clock."""
    runs = {}
    trace = tmp_path / "trace.txt"
    for name, extra in (("fast", {}), ("teardown", {"REPLICATE_FAST_EXIT": "0"}),
                        ("traced", {"REPLICATE_STARTUP_TRACE": str(trace)})):
        d = make_run(tmp_path / name)
        r = run(d, "-m", "replicate", "train", "-solver", "solver.prototxt", "--blas", "fast", env={**ENV, **extra})
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stderr.rstrip().endswith("Optimization Done."), r.stderr[-500:]
        runs[name] = (glog_messages(r.stderr), {f: (d / f).read_bytes() for f in
                                                ("snap_iter_3.caffemodel", "snap_iter_3.solverstate")})
    assert runs["fast"] == runs["teardown"] == runs["traced"]
    marks = [line.split() for line in trace.read_text().splitlines()]
    names = [m[0] for m in marks]
    assert names == ["python", "torch", "imports", "setup", "solver", "first_iteration", "first_iteration_done",
                     "main_done", "exit"]
    times = [float(m[1]) for m in marks]
    assert times == sorted(times)


def test_exit_now_keeps_buffers_atexit_threads_and_status(tmp_path):
    """exit_now flushes piped (block-buffered) stdout, runs atexit functions, waits for a non-daemon
    thread by falling back to sys.exit, and returns the status."""
    code = ("import atexit, sys\n"
            "from replicate.__main__ import exit_now\n"
            "atexit.register(lambda: print('atexit ran'))\n"
            "print('buffered', end=' ')\n"
            "exit_now(3)\n"
            "print('not reached')\n")
    r = run(tmp_path, "-c", code)
    assert (r.returncode, r.stdout) == (3, "buffered atexit ran\n")
    code = ("import threading, time\n"
            "from replicate.__main__ import exit_now\n"
            "t = threading.Thread(target=lambda: (time.sleep(0.3), print('thread done', flush=True)))\n"
            "t.start()\n"
            "exit_now(0)\n")
    r = run(tmp_path, "-c", code)
    assert (r.returncode, r.stdout) == (0, "thread done\n")
    r = run(tmp_path, "-c", "from replicate.__main__ import exit_now; exit_now(None)")
    assert r.returncode == 0


def test_error_status_survives_fast_exit(tmp_path):
    """A train that fails (no such solver) ends with status 1 and its one error line."""
    r = run(tmp_path, "-m", "replicate", "train", "-solver", "missing.prototxt")
    assert r.returncode == 1 and "missing.prototxt" in r.stderr and "Traceback" not in r.stderr


def test_startup_bench_reports_fresh_and_forked_starts():
    """bench/startup.py (in make bench) runs, one round: both ways of starting report a first
    iteration; the fork server's run was a fork (the bench refuses otherwise)."""
    from tests._shared import require
    data = require("golden", "data", bitlevel=False)
    env = {k: v for k, v in ENV.items() if k != "REPLICATE_SERVER"}
    r = subprocess.run([sys.executable, str(REPO / "bench" / "startup.py"), "--rounds", "1", "--iterations", "2",
                        "--data", str(data)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["start_to_first_iteration_s"]["best"] > 0
    assert out["start_to_first_iteration_via_server_s"]["best"] > 0 and out["server_ready_s"] > 0
    assert "forked" in out["train_via_server"]["milestones_s"] and "forked" not in out["train"]["milestones_s"]
    # Caffe's own start on the same net and data when `make caffe` has built it (make bench), else why not
    from bench.caffe_time import DEFAULT_BIN
    if Path(os.environ.get("CAFFE_BIN", DEFAULT_BIN)).exists():
        assert "milestones_s" in out["caffe"], out["caffe"]  # e.g. a Caffe built before it read LMDB: make caffe
        c = out["caffe"]["milestones_s"]
        assert 0 < c["solver"]["best"] < c["first_iteration"]["best"] < c["process_end"]["best"]
        assert set(out["start_to_first_iteration_vs_caffe_s"]) == {"fresh_process", "via_server"}
    else:
        assert "make caffe" in out["caffe"]["skipped"]
