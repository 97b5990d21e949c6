"""Exact mode sets up its BLAS itself and refuses any other (csrc/blas.cpp), and every log names it.

* With OPENBLAS_CORETYPE and OPENBLAS_NUM_THREADS unset, ``python -m replicate train`` (exact by
  default) on ../shared/golden/solver still gives Caffe's log values and snapshot bytes: the loader
  pins the Haswell kernels and one thread in-process, before OpenBLAS's constructor runs.
* Fast mode first (OpenBLAS's own kernels for this CPU), then exact in the same process: exact
  gets a private copy of the library with the Haswell kernels and the same bits as exact first.
* Another library (REPLICATE_CBLAS: a dummy CBLAS compiled here that claims another version, core
  or thread count, one that is not OpenBLAS, torch's own library) is refused with an error that
  says what is wrong and how to install the right one; REPLICATE_UNVERIFIED_BLAS=1 runs it and the
  log says "unverified".
* The log's first lines name the mode, library, version, core, threads and glibc, in glog form that
  Caffe's tools/extra/parse_log.py passes over.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._shared import REPO, require
from tests.replicate.test_solver_golden import messages, same_bytes, workdir

DEBIAN = Path("/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0")
INSTALL = "apt-get install libopenblas0-pthread"


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENBLAS_", "GOTO_", "REPLICATE_BLAS", "REPLICATE_CBLAS", "REPLICATE_UNVERIFIED"))}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def need_debian_openblas():
    if not DEBIAN.exists() or "0.3.21" not in os.path.realpath(DEBIAN):
        pytest.skip(f"Debian's OpenBLAS 0.3.21 is not installed at {DEBIAN} ({INSTALL})")


def py(code: str, env: dict, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


# -- 1. no OPENBLAS_* in the environment: Caffe's bits all the same ---------------------------------

def test_train_without_openblas_env_matches_caffe(tmp_path):
    need_debian_openblas()
    src = require("golden", "solver")
    golden = workdir(tmp_path, "solver", ("net.prototxt", "solver.prototxt", "init.caffemodel"))
    env = clean_env()
    assert not any(k.startswith("OPENBLAS_") for k in env)
    r = subprocess.run([sys.executable, "-m", "replicate", "train", "-solver", "solver.prototxt", "-weights",
                        "init.caffemodel", "--log", "ours.log"], cwd=golden, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    log = (golden / "ours.log").read_text()
    ours, caffe = messages(log), messages((src / "train.log").read_text())
    assert ours == caffe
    for f in ("snap_iter_30.caffemodel", "snap_iter_30.solverstate", "snap_iter_60.caffemodel",
              "snap_iter_60.solverstate"):
        assert same_bytes(golden / f, src / f), f"{f} is not byte-identical to Caffe's"
    check_header(log, "exact")


def check_header(log: str, mode: str):
    """The first lines name mode, library, version, core, threads and glibc, as glog lines that
    Caffe's parse_log.py (its regexes, below) does not take for values."""
    lines = log.splitlines()
    glog = re.compile(r"^[IWEF](\d\d)(\d\d) (\d\d:\d\d:\d\d\.\d{6}) +\d+ [\w.]+:\d+\] (.*)$")
    head = [glog.match(l).group(4) for l in lines[:3]]
    assert head[0].startswith(f"BLAS mode: {mode} ")
    if mode == "exact":
        assert "OpenBLAS 0.3.21, Haswell kernels, 1 thread per call" in head[0]
        assert f"BLAS library: {DEBIAN} (" in head[1] and "core Haswell, 1 thread(s) per call" in head[1]
        assert "verified for exact mode" in head[1]
    libc = ctypes.CDLL(None).gnu_get_libc_version
    libc.restype = ctypes.c_char_p
    assert head[2].startswith(f"C library: glibc {libc().decode()} ")
    parse_log = [re.compile(r"Iteration (\d+)"), re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)"),
                 re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)"),
                 re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)"), re.compile("Solving")]
    for h in head:
        assert not any(rx.search(h) for rx in parse_log), h
    from replicate.experiments import logparse
    assert logparse.GLOG.match(lines[0])


# -- 2. fast first, then exact, in one process ----------------------------------------------------

CONV = """
import sys, numpy as np, torch
from replicate import ops as R
g = torch.Generator().manual_seed(0)
x = torch.randn(4, 16, 13, 13, generator=g); w = torch.randn(32, 8, 3, 3, generator=g); b = torch.randn(32, generator=g)
conv = lambda: torch.ops.replicate.conv_forward(x, w, b, [1, 1], [1, 1], [1, 1], 2)
for mode in sys.argv[1].split(","):
    R.set_blas(mode)
    y = conv()
    info = R.blas_info()
print(__import__("json").dumps({k: info[k] for k in ("core", "copy", "status", "threads", "version")}))
np.save(sys.argv[2], y.numpy())
"""


def test_fast_then_exact_gets_haswell_copy(tmp_path):
    need_debian_openblas()
    out = {}
    for order in ("fast,exact", "exact"):
        f = tmp_path / f"{order}.npy"
        r = subprocess.run([sys.executable, "-c", CONV, order, str(f)], env=clean_env(), capture_output=True,
                           text=True, timeout=120, cwd=REPO)
        assert r.returncode == 0, r.stderr[-2000:]
        out[order] = json.loads(r.stdout.strip().splitlines()[-1])
        assert out[order]["core"] == "Haswell" and out[order]["status"] == "verified"
        assert out[order]["threads"] == "1" or out[order]["threads"] == 1
    assert out["exact"]["copy"] == "shared"
    import numpy as np
    a, b = np.load(tmp_path / "fast,exact.npy"), np.load(tmp_path / "exact.npy")
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


# -- 3. other libraries are refused -----------------------------------------------------------------

DUMMY_C = r"""
#define CBLAS(name) void name(void) {}
CBLAS(cblas_sgemm) CBLAS(cblas_dgemm) CBLAS(cblas_sgemv) CBLAS(cblas_dgemv) CBLAS(cblas_saxpy)
CBLAS(cblas_daxpy) CBLAS(cblas_sscal) CBLAS(cblas_dscal) CBLAS(cblas_scopy) CBLAS(cblas_dcopy)
CBLAS(cblas_sdot) CBLAS(cblas_ddot) CBLAS(cblas_sasum) CBLAS(cblas_dasum)
#ifndef NOT_OPENBLAS
char* openblas_get_config(void) { return "OpenBLAS " VERSION " DYNAMIC_ARCH NO_AFFINITY " CORE " MAX_THREADS=64"; }
char* openblas_get_corename(void) { return CORE; }
int openblas_get_num_threads(void) { return THREADS; }
int openblas_get_parallel(void) { return 1; }
void openblas_set_num_threads(int n) { (void)n; }
#endif
"""


def dummy(tmp_path: Path, name: str, version="0.3.21", core="Haswell", threads=1, openblas=True) -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler")
    src = tmp_path / "dummy.c"
    src.write_text(DUMMY_C)
    lib = tmp_path / f"lib{name}.so"
    args = [cc, "-shared", "-fPIC", "-o", str(lib), str(src), f'-DVERSION="{version}"', f'-DCORE="{core}"',
            f"-DTHREADS={threads}"] + ([] if openblas else ["-DNOT_OPENBLAS"])
    subprocess.run(args, check=True, capture_output=True)
    return lib


@pytest.mark.parametrize("kind,expect", [
    ("version", "its version is 0.3.20, not 0.3.21"),
    ("core", "its kernels are for core Zen, not Haswell"),
    ("threads", "it runs 2 threads per call, not 1"),
    ("not_openblas", "it is not OpenBLAS"),
])
def test_other_library_refused(tmp_path, kind, expect):
    kw = {"version": {"version": "0.3.20"}, "core": {"core": "Zen"}, "threads": {"threads": 2},
          "not_openblas": {"openblas": False}}[kind]
    lib = dummy(tmp_path, kind, **kw)
    r = subprocess.run([sys.executable, "-m", "replicate", "train", "-solver", "solver.prototxt"], cwd=tmp_path,
                       env=clean_env(REPLICATE_CBLAS=str(lib)), capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    err = r.stderr
    assert "Traceback" not in err, err
    assert expect in err and INSTALL in err and "REPLICATE_UNVERIFIED_BLAS=1" in err and str(lib) in err, err
    assert "unset REPLICATE_CBLAS" in err and "--blas fast" in err


def test_torch_library_refused(tmp_path):
    import torch
    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    if not lib.exists():
        pytest.skip(f"{lib} absent")
    r = py("from replicate import ops as R; R.set_blas('exact')", clean_env(REPLICATE_CBLAS=str(lib)))
    assert r.returncode != 0
    assert "lacks cblas_sgemm" in r.stderr and INSTALL in r.stderr, r.stderr[-2000:]


def test_unverified_override_runs_and_says_so(tmp_path):
    lib = dummy(tmp_path, "old", version="0.3.20")
    code = ("from replicate import ops as R; from replicate.log import environment, header_lines; "
            "R.set_blas('exact'); print('\\n'.join(header_lines(environment())))")
    r = py(code, clean_env(REPLICATE_CBLAS=str(lib), REPLICATE_UNVERIFIED_BLAS="1"))
    assert r.returncode == 0, r.stderr[-2000:]
    first = r.stdout.splitlines()[0]
    assert first.startswith("BLAS mode: exact on an unverified library") and "0.3.20" in first, r.stdout
    from replicate.experiments import logparse
    log = tmp_path / "x.log"
    log.write_text("".join(f"I1202 10:00:00.000000  1 caffe.cpp:0] {l}\n" for l in r.stdout.splitlines()))
    assert logparse.blas_mode(log) == "exact-unverified"


def test_fast_mode_needs_no_check(tmp_path):
    """fast mode runs on any CBLAS (here a 0.3.20 dummy is loaded without complaint)."""
    lib = dummy(tmp_path, "old", version="0.3.20")
    r = py("from replicate import ops as R; R.set_blas('fast'); print(R.blas_info()['status'])",
           clean_env(REPLICATE_CBLAS=str(lib)))
    assert r.returncode == 0 and r.stdout.strip() == "fast", r.stderr[-2000:]


def test_cli_defaults_and_help():
    r = subprocess.run([sys.executable, "-m", "replicate", "train", "--help"], env=clean_env(), capture_output=True,
                       text=True, timeout=60, cwd=REPO)
    text = " ".join(r.stdout.split())
    assert "exact (the default on CPU)" in text and "the default is fast" in text and "REPLICATE_BLAS" in text
