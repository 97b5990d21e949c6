"""``--caffe 2014`` against the paper's own Caffe (BVLC 584abd3) in ../shared/golden/caffe2014
(exact mode): every logged Iteration / Test score / Snapshotting message, the snapshot and
solverstate bytes at 15 and 30 iterations, the fillers' state (snap_iter_0 of a 0-iteration run) and
the Data layer's glibc rand() draws."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._shared import require
from tests.ops.golden import exact_blas_ready
from tests.replicate.test_solver_golden import ENV

CASES = {"deterministic": ["-weights", "init_iter_0"], "random": [],
         "finetune": ["-weights", "../deterministic/snap_iter_30"]}


def messages(text: str):
    return [m.group(1) for m in re.finditer(r"^[IWEF]\d+ [\d:.]+\s+\d+ solver\.cpp:\d+\] "
                                            r"((?:Iteration|Test score|Snapshotting).*)$", text, re.M)]


def case_copy(tmp_path: Path, case: str) -> Path:
    """A writable copy of the case (opening a LevelDB rewrites its LOG and MANIFEST), without the
    golden snapshots; the golden deterministic beside it for finetune's ../deterministic path."""
    root = require("golden", "caffe2014")
    for name in {case, "deterministic"}:
        shutil.copytree(root / name, tmp_path / name, ignore=shutil.ignore_patterns("snap_iter_*")
                        if name == case else None)
    for p in tmp_path.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return tmp_path / case


def train(d: Path, *args):
    cmd = [sys.executable, "-m", "replicate", "train", "--caffe", "2014", "-solver", "solver.prototxt",
           "--blas", "exact", "--log", "ours.log", *args]
    r = subprocess.run(cmd, cwd=d, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.parametrize("case", list(CASES))
def test_train_matches_caffe2014(tmp_path, case):
    exact_blas_ready()
    golden = require("golden", "caffe2014") / case
    d = case_copy(tmp_path, case)
    train(d, *CASES[case])
    ours, caffe = messages((d / "ours.log").read_text()), messages((golden / "train.log").read_text())
    assert len(caffe) == 75
    assert ours == caffe
    for it in (15, 30):
        for ext in ("", ".solverstate"):
            f = f"snap_iter_{it}{ext}"
            assert (d / f).read_bytes() == (golden / f).read_bytes(), f


@pytest.mark.parametrize("case", ["random", "finetune"])
def test_fillers_match_caffe2014(tmp_path, case):
    """A 0-iteration run writes the train net straight from the fillers (copied generator, xavier's
    2014 fan-in) and the copied layers: snap_iter_0, byte for byte."""
    exact_blas_ready()
    golden = require("golden", "caffe2014") / case
    d = case_copy(tmp_path, case)
    text = (d / "solver.prototxt").read_text()
    (d / "solver.prototxt").write_text(re.sub(r"max_iter: \d+", "max_iter: 0", text))
    train(d, *CASES[case])
    assert (d / "snap_iter_0").read_bytes() == (golden / "snap_iter_0").read_bytes()


def test_data_draws_match_caffe2014(tmp_path):
    """The Data layers' crops and mirrors from glibc rand(), prefetch by prefetch (train and test)."""
    exact_blas_ready()
    golden = require("golden", "caffe2014") / "random"
    d = case_copy(tmp_path, "random")
    code = ("import json\nfrom replicate import ops\nops.set_blas('exact')\n"
            "from replicate.caffe2014 import Solver2014\nfrom replicate.log import CaffeLog\n"
            "s = Solver2014('solver.prototxt', log=CaffeLog(None, stream=None))\ns.solve()\n"
            "json.dump(s.process.draws, open('draws.json', 'w'))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=d, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ours = json.loads((d / "draws.json").read_text())
    caffe = json.loads((golden / "data_draws.json").read_text())["prefetches"]
    assert [(p["net"], p["phase"], p["items"]) for p in ours] == \
        [(p["net"], p["phase_read_by_thread"], p["items_record_h0_w0_mirror"]) for p in caffe]


def test_copied_generator_never_advances():
    from replicate.caffe2014 import CopiedGenerator
    g = CopiedGenerator(1701)
    a = g.gaussian(10, 0.0, 1.0)
    assert (g.gaussian(10, 0.0, 1.0) == a).all()
    assert (g.dropout_mask((8,), 0.5) == g.dropout_mask((8,), 0.5)).all()
