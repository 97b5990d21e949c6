"""Exact resume: a run killed with SIGKILL after its first snapshot and resumed with ``-snapshot``
(which reads the ``.resume`` sidecar) ends with the uninterrupted run's bytes, although the net has
dropout, random crop and mirror in both phases, and the database size (37) divides neither the
records read by the snapshot (10 x 4) nor by the tests (3 x 5).  ``--caffe-resume`` (and a missing
sidecar) restart the generator and the cursors as Caffe does, and the result differs."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replicate import ops as R
from tests._shared import REPO, random_image_db

NET = """name: "ResumeNet"
layer {{ name: "data" type: "Data" top: "data" top: "label" include {{ phase: TRAIN }}
  transform_param {{ crop_size: 10 mirror: true scale: 0.00390625 }}
  data_param {{ source: "{db}" batch_size: 4 backend: {backend} }} }}
layer {{ name: "data" type: "Data" top: "data" top: "label" include {{ phase: TEST }}
  transform_param {{ crop_size: 10 mirror: true scale: 0.00390625 }}
  data_param {{ source: "{db}" batch_size: 5 backend: {backend} }} }}
layer {{ name: "fc1" type: "InnerProduct" bottom: "data" top: "fc1"
  inner_product_param {{ num_output: 16 weight_filler {{ type: "gaussian" std: 0.05 }}
                         bias_filler {{ type: "constant" value: 0.1 }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "fc1" top: "fc1" }}
layer {{ name: "drop1" type: "Dropout" bottom: "fc1" top: "fc1" dropout_param {{ dropout_ratio: 0.5 }} }}
layer {{ name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
  inner_product_param {{ num_output: 3 weight_filler {{ type: "gaussian" std: 0.05 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }}
layer {{ name: "acc" type: "Accuracy" bottom: "fc2" bottom: "label" top: "acc" include {{ phase: TEST }} }}
"""

SOLVER = """net: "net.prototxt"
test_iter: 3
test_interval: 6
base_lr: 0.05
lr_policy: "step"
gamma: 0.5
stepsize: 8
momentum: 0.9
weight_decay: 0.0005
max_iter: {max_iter}
display: 1
snapshot: 10
snapshot_prefix: "snap"
random_seed: 1234
"""
MAX_ITER = 24  # snapshots at 10 and 20, tests at 0, 6, 12, 18 and 24
FINAL = ("snap_iter_24.caffemodel", "snap_iter_24.solverstate")


def _blas() -> str:
    try:
        with R.blas_mode("exact"):
            R.blas_library()
        return "exact"
    except RuntimeError:
        return "fast"


ENV = {**os.environ, "PYTHONPATH": str(REPO)}  # the BLAS settings of this process (in-process runs agree)


def _cmd(*args):
    return [sys.executable, "-m", "replicate", "train", "-solver", "solver.prototxt", "--blas", _blas(),
            "--log", "ours.log", "-data_workers", "2", *args]


def train(d: Path, *args):
    r = subprocess.run(_cmd(*args), cwd=d, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return (d / "ours.log").read_text()


def rundir(root: Path, name: str, db: Path, backend: str, max_iter: int = MAX_ITER) -> Path:
    d = root / name
    d.mkdir()
    (d / "net.prototxt").write_text(NET.format(db=db, backend=backend.upper()))
    (d / "solver.prototxt").write_text(SOLVER.format(max_iter=max_iter))
    return d


def per_iteration(log: str, since: int):
    """The per-iteration outputs (train net outputs, lr, test outputs) from iteration ``since`` on,
    keyed by the iteration they belong to (the smoothed loss restarts on resume, as in Caffe)."""
    out, it = [], None
    for line in log.splitlines():
        m = re.match(r"^[IWEF]\d+ [\d:.]+\s+\d+ [\w.]+:\d+\] (.*)$", line)
        if not m:
            continue
        msg = m.group(1)
        k = re.match(r"Iteration (\d+)", msg)
        if k:
            it = int(k.group(1))
        if it is not None and it >= since and (msg.startswith(("    Train net output", "    Test net output",
                                                                "Test loss", "Snapshotting"))
                                               or re.match(r"Iteration \d+, (lr|Testing)", msg)):
            out.append((it, msg))
    return out


@pytest.fixture(scope="module", params=["lmdb", "leveldb"])
def uninterrupted(request, tmp_path_factory):
    """(root, db, backend, log) of the run to MAX_ITER without interruption (case a)."""
    backend = request.param
    if backend == "leveldb":
        pytest.importorskip("plyvel")
    root = tmp_path_factory.mktemp(f"resume_{backend}")
    db = random_image_db(root, root / f"db_{backend}", n=37, size=12, classes=3, backend=backend, seed=5)
    d = rundir(root, "a", db, backend)
    return root, db, backend, train(d)


def kill_after_first_snapshot(root: Path, db: Path, backend: str) -> Path:
    """Run (with a far max_iter, so it cannot finish first: lr_policy step ignores it) until
    snap_iter_10.solverstate exists, then SIGKILL; the folder, with the solver's real max_iter."""
    d = rundir(root, "b", db, backend, max_iter=100000)
    p = subprocess.Popen(_cmd(), cwd=d, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    try:
        while not (d / "snap_iter_10.solverstate").exists():
            assert p.poll() is None, p.stderr.read().decode()[-2000:]
            assert time.time() < deadline
            time.sleep(0.005)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert p.returncode == -signal.SIGKILL
    assert (d / "snap_iter_10.resume").exists(), "the sidecar is written before the solverstate"
    (d / "solver.prototxt").write_text(SOLVER.format(max_iter=MAX_ITER))
    (d / "ours.log").rename(d / "killed.log")
    return d


def test_sigkill_then_exact_resume(uninterrupted):
    root, db, backend, log_a = uninterrupted
    a = root / "a"
    b = kill_after_first_snapshot(root, db, backend)
    log_b = train(b, "-snapshot", "snap_iter_10.solverstate")
    assert "Exact resume from snap_iter_10.resume" in log_b
    for f in FINAL + ("snap_iter_20.caffemodel", "snap_iter_20.solverstate"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f"{f} differs from the uninterrupted run's"
    assert (a / "snap_iter_10.solverstate").read_bytes() == (b / "snap_iter_10.solverstate").read_bytes()
    ours, ref = per_iteration(log_b, 10), per_iteration(log_a, 10)
    assert len(ref) > 30 and any("Test net output" in m for _, m in ref)
    assert ours == ref


def test_caffe_resume_differs(uninterrupted):
    """--caffe-resume and a missing sidecar are Caffe's restart; here both differ from (a)."""
    root, db, backend, log_a = uninterrupted
    if backend != "lmdb":
        pytest.skip("one backend is enough")
    a = root / "a"
    results = []
    for name, args, gone in (("c", ["--caffe-resume"], False), ("c2", ["-caffe_resume"], False),
                             ("d", [], True)):
        d = rundir(root, name, db, backend)
        for f in ("snap_iter_10.caffemodel", "snap_iter_10.solverstate", "snap_iter_10.resume"):
            if not (gone and f.endswith(".resume")):
                shutil.copy(a / f, d / f)
        log = train(d, "-snapshot", "snap_iter_10.solverstate", *args)
        assert "Caffe resume" in log and "Exact resume" not in log
        results.append([(d / f).read_bytes() for f in FINAL])
        assert per_iteration(log, 12) != per_iteration(log_a, 12)
    assert results[0] == results[1] == results[2]
    assert results[0][0] != (a / FINAL[0]).read_bytes()


def test_sidecar_mismatch_falls_back(uninterrupted):
    """A sidecar of another snapshot is not used (warning, Caffe's restart)."""
    root, db, backend, _ = uninterrupted
    if backend != "lmdb":
        pytest.skip("one backend is enough")
    a = root / "a"
    d = rundir(root, "e", db, backend)
    for f in ("snap_iter_10.caffemodel", "snap_iter_10.solverstate"):
        shutil.copy(a / f, d / f)
    shutil.copy(a / "snap_iter_20.resume", d / "snap_iter_10.resume")
    log = train(d, "-snapshot", "snap_iter_10.solverstate")
    assert re.search(r"^W.*Caffe resume \(snap_iter_10.resume does not match: iteration 20", log, re.M)
    ref = rundir(root, "e2", db, backend)
    for f in ("snap_iter_10.caffemodel", "snap_iter_10.solverstate"):
        shutil.copy(a / f, ref / f)
    train(ref, "-snapshot", "snap_iter_10.solverstate", "--caffe-resume")
    assert (d / FINAL[0]).read_bytes() == (ref / FINAL[0]).read_bytes()


class _Lines:
    def __init__(self):
        self.lines = []

    def __call__(self, key, message, level="I"):
        self.lines.append(f"{level}0101 00:00:00.000000 1 {key}:0] {message}")

    def text(self):
        return "\n".join(self.lines)


def test_snapshot_during_a_test_reruns_it_exactly(uninterrupted, monkeypatch):
    """A SIGHUP snapshot in the middle of the test at iteration 12 saves the test net's position
    from before that test: the resumed run reruns it with the uninterrupted run's outputs."""
    from replicate.solver import Action, SGDSolver
    root, db, backend, log_a = uninterrupted
    if backend != "lmdb":
        pytest.skip("one backend is enough")
    d = rundir(root, "f", db, backend)
    monkeypatch.chdir(d)
    with R.blas_mode(_blas()):
        s = SGDSolver("solver.prototxt", log=_Lines(), data_workers=2)
        try:
            s.step(12)
            forward = s.test_nets[0].forward
            calls = []

            def hup_after_two():
                calls.append(1)
                if len(calls) == 2:
                    s.request(Action.SNAPSHOT)
                return forward()

            monkeypatch.setattr(s.test_nets[0], "forward", hup_after_two)
            s.test_all()
        finally:
            s.close()
        assert (d / "snap_iter_12.resume").exists()
        log = _Lines()
        s = SGDSolver("solver.prototxt", log=log, data_workers=2)
        try:
            s.restore("snap_iter_12.solverstate")
            s.solve()
        finally:
            s.close()
    assert "Exact resume" in log.text()
    assert per_iteration(log.text(), 12) == per_iteration(log_a, 12)
    assert (d / FINAL[0]).read_bytes() == (root / "a" / FINAL[0]).read_bytes()


def test_cursor_seek(uninterrupted):
    """Cursor.seek lands on the key and continues (and wraps) as a cursor that walked there."""
    from replicate.data.db import Cursor, DataSourceError
    root, db, backend, _ = uninterrupted
    walk = Cursor(db, backend)
    seek = Cursor(db, backend)
    try:
        for _ in range(30):
            walk.next()
        seek.seek(walk.key(), walk.wraps)
        for _ in range(20):
            assert (seek.key(), seek.value(), seek.wraps) == (walk.key(), walk.value(), walk.wraps)
            walk.next()
            seek.next()
        with pytest.raises(DataSourceError):
            seek.seek(b"no such key")
    finally:
        walk.close()
        seek.close()
