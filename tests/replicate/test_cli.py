"""``test`` and ``time`` commands, and the CLI's error handling."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from tests._shared import REPO, require
from tests.ops.golden import exact_blas_ready
from tests.replicate.test_solver_golden import workdir

ENV = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "1"}


def cli(d, *args, ok=True):
    r = subprocess.run([sys.executable, "-m", "replicate", *args], cwd=d, env=ENV, capture_output=True, text=True,
                       timeout=300)
    if ok:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_test_command_reproduces_caffes_first_test(tmp_path):
    """``caffe test`` from record 0 with init.caffemodel is what Caffe's solver logged at iteration 0."""
    exact_blas_ready()
    golden = require("golden", "solver")
    d = workdir(tmp_path, "solver", ("net.prototxt", "init.caffemodel"))
    r = cli(d, "test", "-model", "net.prototxt", "-weights", "init.caffemodel", "-iterations", "3", "--blas", "exact")
    first = re.findall(r"Test net output #\d+: (.*)", (golden / "train.log").read_text())[:2]
    lines = [m.group(1) for m in re.finditer(r"\] (accuracy = .*|loss = .*)$", r.stderr, re.M)]
    assert lines == first
    assert len(re.findall(r"Batch \d, accuracy = ", r.stderr)) == 3


def test_time_command(tmp_path):
    require("golden", "solver")
    d = workdir(tmp_path, "solver", ("net.prototxt",))
    r = cli(d, "time", "-model", "net.prototxt", "-iterations", "2")
    for layer in ("data", "conv1", "norm1", "conv2", "fc4", "loss"):
        assert re.search(rf"\] +{layer}\tforward: [0-9.e+-]+ ms\.", r.stderr), layer
        assert re.search(rf"\] +{layer}\tbackward: [0-9.e+-]+ ms\.", r.stderr), layer
    assert "Average Forward-Backward:" in r.stderr and "Initial loss:" in r.stderr


def test_errors_are_one_clear_line(tmp_path):
    (tmp_path / "net.prototxt").write_text('layer { name: "r" type: "ReLU" bottom: "x" top: "r" }')
    r = cli(tmp_path, "time", "-model", "net.prototxt", ok=False)
    assert r.returncode == 1 and "Unknown bottom blob 'x' (layer 'r', bottom index 0)" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli(tmp_path, "train", "-solver", "missing.prototxt", ok=False)
    assert r.returncode == 1 and "missing.prototxt" in r.stderr and "Traceback" not in r.stderr
    r = cli(tmp_path, "train", "-solver", "s", "-weights", "a", "-snapshot", "b", ok=False)
    assert r.returncode != 0 and "not both" in r.stderr


def test_missing_database_is_a_clear_error(tmp_path):
    """A Data layer whose source does not exist: one error line naming it, no traceback."""
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "data" type: "Data" top: "data" top: "label" '
        'data_param { source: "no_such_lmdb" batch_size: 2 backend: LMDB } }\n')
    r = cli(tmp_path, "time", "-model", "net.prototxt", "-iterations", "1", ok=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "error:" in r.stderr and "no_such_lmdb" in r.stderr
