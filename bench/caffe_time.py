"""Caffe 1.0's own ``caffe`` tool on this machine, in this run: the side of make bench's ratios that
the issue calls "Caffe" (bench/caffe/build.sh builds it; nothing else in the project runs Caffe).

On ../shared/golden/perf/caffenet_train_b256.prototxt (CaffeNet, batch 256, Input data), two settings:

* ``auto``: OpenBLAS picks its kernels for this CPU and its threads (all of this process's CPUs):
  Caffe at its fastest;
* ``parity``: ``OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1``: the arithmetic exact mode reproduces.

For each, two runs of Caffe's binary, each its own process (its peak RSS from ``wait4``):

* ``caffe time -iterations N``: Caffe's forward + backward per layer and per iteration (no update);
* ``caffe train`` with an SGD solver (lr 0.01, momentum 0.9, weight decay 0.0005, ``display: 1``,
  N + 2 iterations, no snapshot): Caffe's log line "Iteration k (... iter/s, Ts/1 iters)" times,
  for k >= 1, one whole ``Solver::Step`` (the previous iteration's update and diff clearing, then
  this one's forward + backward): the like of bench/train_iter.py's step.  Iteration 1's is left
  out as well: it holds Caffe's first update, which first touches the momentum history (ours runs
  one untimed update before its timed steps).

OpenBLAS is Debian's 0.3.21 (``libopenblas0-pthread``), forced by LD_LIBRARY_PATH; ``OPENBLAS_VERBOSE=2``
makes it print the kernels it loaded, which are recorded.

    python bench/caffe_time.py [--caffe BIN] [--iterations N] [--settings auto,parity]   # JSON on stdout
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BIN = REPO / "build" / "caffe" / "src" / ".build_release" / "tools" / "caffe.bin"
SOURCE = ("Debian's caffe_1.0.0+git20180821.99bd997.orig.tar.gz (BVLC/caffe 99bd997: 1.0 and 132 later "
          "commits, none in this net's CPU arithmetic), built by bench/caffe/build.sh")
SETTINGS = {
    "auto": {},
    "parity": {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "1"},
}


def shared() -> Path:
    return Path(os.environ.get("REPLICATE_SHARED", REPO.parent / "shared"))


def openblas_dir() -> Path | None:
    for d in sorted(Path("/usr/lib").glob("*-linux-gnu/openblas-pthread")):
        if (d / "libopenblas.so.0").exists():
            return d
    return None


def caffe_env(setting: str, base: dict, **extra: str) -> dict:
    """``base`` without its OpenBLAS, glog and OpenMP variables, then ``setting``'s OpenBLAS variables,
    glog to stderr, ``extra``, and Debian's OpenBLAS first on the library path."""
    env = {k: v for k, v in base.items() if not k.startswith(("OPENBLAS_", "GLOG_", "OMP_"))}
    env.update(SETTINGS[setting], GLOG_logtostderr="1", **extra)
    ob = openblas_dir()
    if ob:
        env["LD_LIBRARY_PATH"] = str(ob) + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    return env


TIMEOUT_S = 1800  # a Caffe that hangs is killed, and the bench goes on


def openblas_package() -> str | None:
    """The installed Debian package of the OpenBLAS Caffe loads (name and version)."""
    try:
        r = subprocess.run(["dpkg-query", "-W", "libopenblas0-pthread"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() or None


def _run(argv: list[str], env: dict, cwd: str) -> tuple[int, str, float, float]:
    """(status, stderr + stdout, wall seconds, peak RSS in GB) of one child; killed after TIMEOUT_S."""
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True)
        killer = threading.Timer(TIMEOUT_S, p.kill)
        killer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            killer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    return p.returncode, text, time.perf_counter() - t, ru.ru_maxrss / 1024 ** 2


def parse_time(text: str) -> dict:
    """``caffe time``'s log: per-iteration forward-backward ms, per-layer averages, the averages."""
    it = [float(m) for m in re.findall(r"Iteration: \d+ forward-backward time: ([\d.]+) ms", text)]
    layers: dict = {}
    for m in re.finditer(r"\]\s+(\S+)\s+(forward|backward): ([\d.]+) ms", text):
        layers.setdefault(m.group(1), {})[m.group(2)] = float(m.group(3))
    avg = {k: float(v) for k, v in re.findall(r"Average (Forward|Backward) pass: ([\d.]+) ms", text)}
    fb = re.findall(r"Average Forward-Backward: ([\d.]+) ms", text)
    return {"iteration_ms": it, "per_layer_ms": layers,
            "forward_ms": avg.get("Forward"), "backward_ms": avg.get("Backward"),
            "forward_backward_ms": float(fb[-1]) if fb else None}


def parse_train(text: str, first: int = 1) -> list[float]:
    """Whole Solver::Step times (ms) of iterations ``first``.. from ``display: 1`` lines (iteration 0's
    times its first forward-backward alone)."""
    out = []
    for it, lapse in re.findall(r"Iteration (\d+) \([\d.e+-]+ iter/s, ([\d.e+-]+)s/1 iters\)", text):
        if int(it) >= max(first, 1):
            out.append(float(lapse) * 1e3)
    return out


def core(text: str) -> str | None:
    m = re.search(r"Core: (\S+)", text)
    return m.group(1) if m else None


def measure(binary: Path, setting: str, iterations: int) -> dict:
    model = shared() / "golden" / "perf" / "caffenet_train_b256.prototxt"
    env = caffe_env(setting, os.environ, OPENBLAS_VERBOSE="2")
    ob = openblas_dir()
    row: dict = {"env": dict(SETTINGS[setting]), "openblas_dir": str(ob) if ob else None,
                 "cpus": len(os.sched_getaffinity(0))}
    with tempfile.TemporaryDirectory(prefix="caffe-bench-") as tmp:
        rc, text, wall, rss = _run([str(binary), "time", "-model", str(model), "-iterations", str(iterations)],
                                   env, tmp)
        if rc != 0:
            return {**row, "error": f"caffe time exited {rc}: {text[-1500:]}"}
        row["time"] = {**parse_time(text), "wall_s": wall, "peak_rss_gb": rss}
        row["openblas_core"] = core(text)
        solver = Path(tmp) / "solver.prototxt"
        solver.write_text(f'net: "{model}"\nbase_lr: 0.01\nlr_policy: "fixed"\nmomentum: 0.9\n'
                          f'weight_decay: 0.0005\nmax_iter: {iterations + 2}\ndisplay: 1\n'
                          'snapshot_after_train: false\nsolver_mode: CPU\n')
        rc, text, wall, rss = _run([str(binary), "train", "-solver", str(solver)], env, tmp)
        if rc != 0:
            return {**row, "error": f"caffe train exited {rc}: {text[-1500:]}"}
        steps = parse_train(text, first=2)
        if not steps:
            return {**row, "error": f"caffe train printed no iteration times: {text[-1500:]}"}
        row["train"] = {"step_ms": steps, "best_ms": min(steps), "mean_ms": sum(steps) / len(steps),
                        "wall_s": wall, "peak_rss_gb": rss}
        if core(text) != row["openblas_core"]:
            row["openblas_core_train"] = core(text)
    return row


def run(binary: Path | None = None, iterations: int = 3, settings=("auto", "parity")) -> dict:
    binary = Path(binary) if binary else Path(os.environ.get("CAFFE_BIN", DEFAULT_BIN))
    if not binary.exists():
        return {"skipped": f"{binary} is absent: `make caffe` builds it (bench/caffe/build.sh); "
                           f"Caffe was not measured in this run"}
    out = {"binary": str(binary), "source": SOURCE, "iterations": iterations, "openblas_package": openblas_package(),
           "what": "Caffe's `caffe time` (forward + backward, per layer) and `caffe train` (whole solver steps, "
                   "display: 1) on caffenet_train_b256.prototxt, each in its own process"}
    for s in settings:
        print(f"  caffe {s} ...", file=sys.stderr, flush=True)
        out[s] = measure(binary, s, iterations)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--caffe", help=f"the caffe binary (default: $CAFFE_BIN or {DEFAULT_BIN})")
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--settings", default="auto,parity")
    args = ap.parse_args(argv)
    print(json.dumps(run(args.caffe, args.iterations, tuple(args.settings.split(","))), indent=1))


if __name__ == "__main__":
    main()
