"""``python -m replicate train --blas exact`` against the five real Caffe 1.0 runs in
../shared/golden/solver_policies (lr_policy exp/poly/sigmoid/fixed, L1, clip_gradients,
average_loss 5, iter_size 3, momentum 0): every printed loss, lr, train/test output and clipping
line equals Caffe's (train.log and trace.json), the snapshots are byte-identical to Caffe's, and
(in process) the weights after every iteration have Caffe's float64 sums.  No tolerances: these need
the exact BLAS (OpenBLAS 0.3.21, Haswell, 1 thread; ``make test`` sets it)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from replicate.compare import parse_log
from tests._shared import bit_compare, count_compared, require, require_exact_blas
from tests.replicate.test_solver_golden import ENV, messages

CASES = ["exp_l1", "poly_clip", "sigmoid_avgloss5", "fixed_itersize3", "fixed_momentum0"]


def workdir(tmp_path: Path, case: str) -> Path:
    """``tmp/solver_policies/<case>`` with the run's files, beside ``tmp/data`` (the golden data,
    read-only), so the nets' ``../../data`` paths resolve as in Caffe's run."""
    golden = require("golden", "solver_policies", case)
    data = require("golden", "data")
    (tmp_path / "data").symlink_to(data, target_is_directory=True)
    d = tmp_path / "solver_policies" / case
    d.mkdir(parents=True)
    for f in ("net.prototxt", "solver.prototxt", "init.caffemodel"):
        shutil.copy(golden / f, d / f)
        (d / f).chmod(0o644)
    return d


def printed(log: Path) -> dict:
    """{label: printed text} of a training log (labels as replicate.compare makes them)."""
    values = parse_log(log)
    out = {p.label: p.text for p in values}
    assert len(out) == len(values), "a printed value's label repeats"
    return out


def trace_values(trace: dict) -> dict:
    """{label: printed text} of everything trace.json records that the log prints."""
    want = {}
    for t in trace["train"]:
        it = t["iter"]
        want[f"iter {it} loss"] = t["loss"]
        for k, (name, v) in enumerate(t["outputs"].items()):
            want[f"iter {it} train output #{k} {name}"] = v
        want[f"iter {it} lr"] = t["lr"]
    ff = trace["final_forward"]
    want[f"iter {ff['iter']} loss (final forward)"] = ff["loss"]
    for t in trace["test"]:
        for k, (name, v) in enumerate(t["outputs"].items()):
            want[f"iter {t['iter']} test net #{t['net']} output #{k} {name}"] = v
    for c in trace.get("clips", []):
        want[f"iter {c['iter']} clip L2 norm"] = c["l2norm"]
        want[f"iter {c['iter']} clip threshold"] = c["clip_gradients"]
        want[f"iter {c['iter']} clip scale factor"] = c["scale_factor"]
    return want


@pytest.mark.parametrize("case", CASES)
def test_train_matches_caffe(tmp_path, case):
    require_exact_blas()
    golden = require("golden", "solver_policies", case)
    d = workdir(tmp_path, case)
    r = subprocess.run([sys.executable, "-m", "replicate", "train", "-solver", "solver.prototxt", "-weights",
                        "init.caffemodel", "--blas", "exact", "--log", "ours.log"],
                       cwd=d, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]

    # the solver's messages, line by line (timings masked)
    ours, caffe = messages((d / "ours.log").read_text()), messages((golden / "train.log").read_text())
    for i, (a, b) in enumerate(zip(ours, caffe)):
        assert a == b, f"log message {i} differs:\n ours:  {a}\n Caffe: {b}"
    assert len(ours) == len(caffe), f"{len(ours)} solver messages, Caffe printed {len(caffe)}"

    # every printed value (clipping lines included) against train.log and trace.json
    got, logged = printed(d / "ours.log"), printed(golden / "train.log")
    assert list(got) == list(logged), "the printed values' order or set differs from Caffe's log"
    for label, text in logged.items():
        bit_compare(label, got[label], text)
    trace = json.loads((golden / "trace.json").read_text())
    want = trace_values(trace)
    assert set(want) <= set(got), f"not printed: {sorted(set(want) - set(got))[:5]}"
    for label, text in want.items():  # the same values as parsed by Caffe's side (not counted twice)
        assert got[label] == text, f"{label}: printed {got[label]}, trace.json has {text}"
    if case == "poly_clip":
        assert any("clip" in k for k in got), "no gradient clipping printed"

    # the snapshots, byte for byte
    for f in trace["snapshots"]:
        assert (d / f).exists(), f"{f} was not written"
        bit_compare(f, (d / f).read_bytes(), (golden / f).read_bytes())

    # and the compare tool agrees
    from replicate.compare import Tolerance, run
    for a, b in [("ours.log", "train.log"), *[(f, f) for f in trace["snapshots"]]]:
        ok, text, _ = run(str(d / a), str(golden / b), Tolerance())
        assert ok, text


@pytest.mark.parametrize("case", CASES)
def test_weights_after_every_iteration(tmp_path, case, monkeypatch):
    """In process: the float64 sum of every parameter blob after each of the 25 updates equals the
    sum over Caffe's weights (trace.json's param_sums_after_iter), the first place a divergence shows."""
    require_exact_blas()
    from replicate import ops as R
    from replicate.log import NullLog
    from replicate.solver import SGDSolver
    golden = require("golden", "solver_policies", case)
    sums = json.loads((golden / "trace.json").read_text())["param_sums_after_iter"]
    d = workdir(tmp_path, case)
    monkeypatch.chdir(d)
    with R.blas_mode("exact"):
        s = SGDSolver("solver.prototxt", log=NullLog(), weights=["init.caffemodel"])
        try:
            s.param.test_interval = 0
            s.param.snapshot = 0
            for it, want in enumerate(sums):
                s.step(1)
                for key, text in want.items():
                    layer, i = key.split("/")
                    w = s.net.layer(layer).params[int(i)].data
                    w = (w.detach().cpu().numpy() if hasattr(w, "detach") else np.asarray(w)).astype(np.float64)
                    assert w.sum() == float(text), (f"after iteration {it}, {key}: sum {w.sum()!r} != Caffe's {text} "
                                                    f"(first divergence)")
                    count_compared(1)
        finally:
            s.close()
