"""Caffe 1.0's other solvers (Nesterov, AdaGrad, RMSProp, AdaDelta, Adam) through
``python -m replicate train`` against Caffe's own runs in ../shared/golden/solvers_more (exact mode):
every logged loss, learning rate and test output, byte-identical snapshots (.caffemodel and
.solverstate, with the solvers' one or two history sets), resume from Caffe's iteration-10
solverstate, and an exact resume from our own iteration-10 snapshot.  Plus solver selection (type
string, legacy solver_type enum), Caffe's sanity checks, and a fast-mode closeness check."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import prototxt_like
from prototxt_like import caffe_pb2
from prototxt_like.io import load_solver
from replicate import ops as R
from tests._shared import REPO, require
from tests.ops.golden import exact_blas_ready, solver_messages as messages

CASES = {"nesterov": ("Nesterov", 1), "adagrad": ("AdaGrad", 1), "rmsprop": ("RMSProp", 1),
         "adadelta": ("AdaDelta", 2), "adam": ("Adam", 2)}
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "1"}
SNAPSHOTS = ("snap_iter_10.caffemodel", "snap_iter_10.solverstate", "snap_iter_20.caffemodel",
             "snap_iter_20.solverstate")


def golden(case: str, bitlevel: bool = True) -> Path:
    return require("golden", "solvers_more", case, bitlevel=bitlevel)


def workdir(root: Path, case: str, files, bitlevel: bool = True) -> Path:
    """``root/solvers_more/<case>`` holding ``files`` from the golden case, beside ``root/data`` (the
    golden data), so the net's ``../../data`` paths resolve as in Caffe's run."""
    g = golden(case, bitlevel)
    data = require("golden", "data", bitlevel=bitlevel)
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "data").exists():
        (root / "data").symlink_to(data, target_is_directory=True)
    d = root / "solvers_more" / case
    d.mkdir(parents=True)
    for f in files:
        shutil.copy(g / f if (g / f).exists() else f, d / Path(f).name)
    return d


def train(d: Path, *args, timeout=300):
    cmd = [sys.executable, "-m", "replicate", "train", "-solver", "solver.prototxt", "--blas", "exact",
           "--log", "ours.log", *args]
    r = subprocess.run(cmd, cwd=d, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def assert_messages(ours_log: Path, caffe_log: Path) -> None:
    ours, caffe = messages(ours_log.read_text()), messages(caffe_log.read_text())
    assert len(caffe) > 30  # iterations, lrs, train and test outputs, snapshots
    for i, (a, b) in enumerate(zip(ours, caffe)):
        assert a == b, f"log message {i} differs:\n ours:  {a}\n Caffe: {b}"
    assert len(ours) == len(caffe)


def same_bytes(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("case", list(CASES))
def test_train_matches_caffe_then_exact_resume(tmp_path, case):
    """The uninterrupted run: Caffe's messages, its four snapshot files byte for byte, the history
    layout; then our own snap_iter_10 (with its .resume sidecar) resumed: the same iteration-20 files."""
    exact_blas_ready()
    g = golden(case)
    d = workdir(tmp_path, case, ("net.prototxt", "solver.prototxt", "init.caffemodel"))
    train(d, "-weights", "init.caffemodel")
    assert_messages(d / "ours.log", g / "train.log")
    for f in SNAPSHOTS:
        assert same_bytes(d / f, g / f), f"{f} is not byte-identical to Caffe's"
    state, history = prototxt_like.load_solverstate(str(d / "snap_iter_20.solverstate"))
    assert state.iter == 20 and len(history) == 8 * CASES[case][1]

    r = workdir(tmp_path / "exact", case, ("net.prototxt", "solver.prototxt", str(d / "snap_iter_10.caffemodel"),
                                           str(d / "snap_iter_10.solverstate"), str(d / "snap_iter_10.resume")))
    train(r, "-snapshot", "snap_iter_10.solverstate")
    assert "Exact resume from" in (r / "ours.log").read_text()
    for f in SNAPSHOTS[2:]:
        assert same_bytes(r / f, g / f), f"exact resume: {f} is not byte-identical to Caffe's uninterrupted run"


@pytest.mark.parametrize("case", list(CASES))
def test_resume_from_caffes_solverstate(tmp_path, case):
    """Caffe's own resume (no sidecar: the data restart from record 0): resume.log's messages and
    its final weights byte for byte."""
    exact_blas_ready()
    g = golden(case)
    d = workdir(tmp_path, case, ("net.prototxt", "solver.prototxt", "snap_iter_10.caffemodel",
                                 "snap_iter_10.solverstate"))
    train(d, "-snapshot", "snap_iter_10.solverstate")
    assert_messages(d / "ours.log", g / "resume.log")
    assert "SGDSolver: restoring history" in messages((d / "ours.log").read_text())
    assert same_bytes(d / "snap_iter_20.caffemodel", g / "resume_iter_20.caffemodel")
    _, history = prototxt_like.load_solverstate(str(d / "snap_iter_20.solverstate"))
    assert len(history) == 8 * CASES[case][1]


# -- selection and checks (in process) ------------------------------------------------------------

def _param(case: str, **fields) -> caffe_pb2.SolverParameter:
    p = load_solver(str(golden(case, bitlevel=False) / "solver.prototxt"))
    for k, v in fields.items():
        setattr(p, k, v)
    return p


@pytest.mark.parametrize("case", list(CASES))
def test_selection_by_type_and_legacy_enum(case):
    from replicate.solvers import solver_class
    kind = CASES[case][0]
    assert solver_class(_param(case)).TYPE == kind
    enum = {"Nesterov": "NESTEROV", "AdaGrad": "ADAGRAD", "RMSProp": "RMSPROP", "AdaDelta": "ADADELTA",
            "Adam": "ADAM"}[kind]
    text = (golden(case, bitlevel=False) / "solver.prototxt").read_text().replace(f'type: "{kind}"', f"solver_type: {enum}")
    assert "solver_type" in text
    p = load_solver(text)  # Caffe's UpgradeSolverAsNeeded
    assert p.type == kind and not p.HasField("solver_type")
    assert solver_class(p).TYPE == kind


def test_make_solver_upgrades_and_builds(tmp_path, monkeypatch):
    from replicate.log import NullLog
    from replicate.solvers import AdamSolver, make_solver
    d = workdir(tmp_path, "adam", ("net.prototxt", "solver.prototxt", "init.caffemodel"), bitlevel=False)
    monkeypatch.chdir(d)
    p = _param("adam")
    p.ClearField("type")
    p.solver_type = caffe_pb2.SolverParameter.ADAM  # not upgraded: make_solver does it
    s = make_solver(p, log=NullLog(), weights=["init.caffemodel"])
    try:
        assert isinstance(s, AdamSolver) and len(s.history) == 2 * len(s.net.learnable)
        assert all(not h.any() for h in s.history)
    finally:
        s.close()


def test_unknown_type_and_sanity_checks(tmp_path, monkeypatch):
    from replicate.log import NullLog
    from replicate.solver import SGDSolver, SolverError
    from replicate.solvers import make_solver, solver_class
    with pytest.raises(SolverError, match="Unknown solver type: Adamax"):
        solver_class(_param("adam", type="Adamax"))
    d = workdir(tmp_path, "adagrad", ("net.prototxt", "solver.prototxt"), bitlevel=False)
    monkeypatch.chdir(d)
    with pytest.raises(SolverError, match="Momentum cannot be used with AdaGrad"):
        make_solver(_param("adagrad", momentum=0.9), log=NullLog())
    with pytest.raises(SolverError, match="Momentum cannot be used with RMSProp"):
        make_solver(_param("rmsprop", momentum=0.9), log=NullLog())
    with pytest.raises(SolverError, match="rms_decay should lie between 0 and 1"):
        make_solver(_param("rmsprop", rms_decay=1.0), log=NullLog())
    with pytest.raises(SolverError, match="'Adam'"):  # SGDSolver itself refuses another type
        SGDSolver(_param("adam"), log=NullLog())


@pytest.mark.parametrize("case", list(CASES))
def test_gpu_device_is_refused(case):
    from replicate.solver import SolverError
    from replicate.solvers import make_solver
    kind = CASES[case][0]
    with pytest.raises(SolverError, match=f"the {kind} solver is CPU-only"):
        make_solver(_param(case), device="cuda:0")


# -- fast mode --------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["nesterov", "adam"])
def test_fast_mode_close(tmp_path, monkeypatch, case):
    """Fast BLAS (torch/this CPU's kernels): the first 10 training losses stay close to Caffe's."""
    from replicate.log import NullLog
    from replicate.solvers import make_solver
    d = workdir(tmp_path, case, ("net.prototxt", "solver.prototxt", "init.caffemodel"), bitlevel=False)
    monkeypatch.chdir(d)
    want = [float(x) for x in json.loads((golden(case, bitlevel=False) / "trace.json").read_text())["train_loss_float32"]][:10]
    with R.blas_mode("fast"):
        p = _param(case, test_interval=0, snapshot=0)
        p.ClearField("test_iter")
        s = make_solver(p, log=NullLog(), weights=["init.caffemodel"])
        try:
            got = []
            for _ in range(10):
                s.step(1)
                got.append(float(s.smoothed_loss))
        finally:
            s.close()
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-4)
