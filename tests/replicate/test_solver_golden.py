"""``python -m replicate train`` against Caffe 1.0's own runs in ../shared/golden/solver and
../shared/golden/solver_frozen (exact mode): the logged losses, learning rates and test outputs,
byte-identical snapshots (.caffemodel and .solverstate), resume from Caffe's iteration-30
solverstate, and a run killed with SIGKILL and resumed from its last snapshot."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import prototxt_like
from replicate import ops as R
from tests._shared import REPO, require
from tests.ops.golden import assert_bits, exact_blas_ready, solver_messages as messages

CASES = ["solver", "solver_frozen"]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "1"}


def workdir(tmp_path: Path, case: str, files=("net.prototxt", "solver.prototxt")) -> Path:
    """``tmp/<case>`` holding the run's files, beside ``tmp/data`` (the golden data, read-only), so
    the net's ``../data`` paths resolve as in Caffe's run."""
    golden = require("golden", case)
    data = require("golden", "data")
    if not (tmp_path / "data").exists():
        (tmp_path / "data").symlink_to(data, target_is_directory=True)
    d = tmp_path / case
    d.mkdir()
    for f in files:
        shutil.copy(golden / f, d / f)
    return d


def train(d: Path, *args, timeout=300, wait=True):
    cmd = [sys.executable, "-m", "replicate", "train", "-solver", "solver.prototxt", "--blas", "exact",
           "--log", "ours.log", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=d, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    r = subprocess.run(cmd, cwd=d, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def same_bytes(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("case", CASES)
def test_train_matches_caffe(tmp_path, case):
    exact_blas_ready()
    golden = require("golden", case)
    d = workdir(tmp_path, case, ("net.prototxt", "solver.prototxt", "init.caffemodel"))
    train(d, "-weights", "init.caffemodel")
    ours, caffe = messages((d / "ours.log").read_text()), messages((golden / "train.log").read_text())
    assert len(ours) == len(caffe)
    for i, (a, b) in enumerate(zip(ours, caffe)):
        assert a == b, f"log message {i} differs:\n ours:  {a}\n Caffe: {b}"
    for f in ("snap_iter_30.caffemodel", "snap_iter_30.solverstate", "snap_iter_60.caffemodel",
              "snap_iter_60.solverstate"):
        assert same_bytes(d / f, golden / f), f"{f} is not byte-identical to Caffe's"


@pytest.mark.parametrize("case", CASES)
def test_resume_from_caffes_solverstate(tmp_path, case):
    exact_blas_ready()
    golden = require("golden", case)
    d = workdir(tmp_path, case, ("net.prototxt", "solver.prototxt", "snap_iter_30.caffemodel",
                                 "snap_iter_30.solverstate"))
    train(d, "-snapshot", "snap_iter_30.solverstate")
    ours, caffe = messages((d / "ours.log").read_text()), messages((golden / "resume.log").read_text())
    assert ours == caffe
    assert same_bytes(d / "snap_iter_60.caffemodel", golden / "resume_iter_60.caffemodel")
    assert same_bytes(d / "snap_iter_60.solverstate", golden / "snap_iter_60.solverstate")


def test_sigkill_then_resume(tmp_path):
    """Kill -9 after the iteration-30 snapshot, resume from the newest snapshot on disk: the final
    weights equal the uninterrupted run's (Caffe's)."""
    exact_blas_ready()
    golden = require("golden", "solver")
    d = workdir(tmp_path, "solver", ("net.prototxt", "solver.prototxt", "init.caffemodel"))
    p = train(d, "-weights", "init.caffemodel", wait=False)
    deadline = time.time() + 240
    while not (d / "snap_iter_30.solverstate").exists():
        assert p.poll() is None, p.stderr.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    assert not (d / "snap_iter_60.caffemodel").exists(), "the run finished before it was killed"
    assert not list(d.glob("*.tmp*")) or all(f.stat().st_size >= 0 for f in d.glob("*.tmp*"))
    states = sorted(d.glob("snap_iter_*.solverstate"), key=lambda f: int(re.findall(r"\d+", f.name)[-1]))
    train(d, "-snapshot", states[-1].name)
    assert same_bytes(d / "snap_iter_60.caffemodel", golden / "snap_iter_60.caffemodel")
    assert same_bytes(d / "snap_iter_60.solverstate", golden / "snap_iter_60.solverstate")


@pytest.mark.parametrize("case", CASES)
def test_first_gradients_and_updates(tmp_path, case, monkeypatch):
    """In process: the raw gradients of iteration 0 and the weights after iterations 0 and 1
    (grads_iter0.npz, weights_iter1_2.npz), the first places a divergence would show."""
    exact_blas_ready()
    from replicate.log import NullLog
    from replicate.solver import SGDSolver
    golden = require("golden", case)
    d = workdir(tmp_path, case, ("net.prototxt", "solver.prototxt", "init.caffemodel"))
    monkeypatch.chdir(d)
    with R.blas_mode("exact"):
        s = SGDSolver("solver.prototxt", log=NullLog(), weights=["init.caffemodel"])
        try:
            grads = np.load(golden / "grads_iter0.npz")
            s.net.clear_param_diffs()
            loss = s.net.forward_backward()
            assert_bits(np.float32(loss), grads["loss"], "iteration 0 loss")
            for k in grads.files:
                if "/" in k:
                    layer, i = k.split("/")
                    assert_bits(s.net.layer(layer).params[int(i)].diff, grads[k], f"gradient {k}")
        finally:
            s.close()
        s = SGDSolver("solver.prototxt", log=NullLog(), weights=["init.caffemodel"])  # cursors at record 0
        try:
            weights = np.load(golden / "weights_iter1_2.npz")
            s.param.test_interval = 0
            s.param.snapshot = 0
            for it in (1, 2):
                s.step(1)
                for k in weights.files:
                    if k.startswith(f"iter{it}/"):
                        _, layer, i = k.split("/")
                        assert_bits(s.net.layer(layer).params[int(i)].data, weights[k], k)
        finally:
            s.close()


def test_frozen_layer_never_moves(tmp_path):
    """solver_frozen: conv1 (lr_mult 0) keeps init.caffemodel's bits; its history stays zero; its
    backward is skipped entirely (its bottom is the data)."""
    exact_blas_ready()
    golden = require("golden", "solver_frozen")
    d = workdir(tmp_path, "solver_frozen", ("net.prototxt", "solver.prototxt", "init.caffemodel"))
    train(d, "-weights", "init.caffemodel")
    init = prototxt_like.caffemodel_weights(str(d / "init.caffemodel"))
    final = prototxt_like.caffemodel_weights(str(d / "snap_iter_60.caffemodel"))
    for a, b in zip(final["conv1"], init["conv1"]):
        assert_bits(a, b, "conv1 after training")
    _, history = prototxt_like.load_solverstate(str(d / "snap_iter_60.solverstate"))
    assert not history[0].any() and not history[1].any()
