"""Start-up benchmark: how long ``python -m replicate train`` takes from process start to its first
training iteration, against ``python -c "import torch"`` alone (the floor: every command that
computes needs torch).  Prints JSON.

The net is one of the demo's: the mini CaffeNet of ``python -m replicate plan --preset mini``
(network ``netbase``: 5 conv + 3 fc layers at 1/8 width, 32 px images, crop 28, batch 32, test
batch 50 x 10 iterations at iteration 0, exact BLAS mode), reading the 48-image LMDB and mean of
``shared/golden/data`` (any ``--data`` folder with ``train_lmdb`` and ``mean.binaryproto`` will
do), run for ``--iterations`` iterations (a snapshot at the end, as Caffe's snapshot_after_train).

Every measurement is a fresh process (``--rounds`` rounds, the variants interleaved: the machine may
be shared; best and median reported).  The train runs set ``REPLICATE_STARTUP_TRACE``, which makes
the CLI append ``<milestone> <time.monotonic()>`` lines to a file and changes nothing else (the
Caffe-format log is the same); the monotonic clock is the machine's, so the parent's clock right
before the spawn is the zero.  Milestones:

* ``python``: the interpreter is up and ``replicate/__main__.py`` runs;
* ``forked`` (``train_via_server`` only): the fork server has forked the run;
* ``torch``: torch (and numpy) imported; ``imports``: the CLI's own modules imported;
* ``setup``: BLAS mode set up and checked, the log header written;
* ``solver``: train and test nets built (Caffe's "Solver scaffolding done");
* ``first_iteration``: the first training iteration starts (after the test at iteration 0, which
  Caffe runs too); ``first_iteration_done``: its update is applied;
* ``main_done``: the command's work is over; ``exit``: right before the process ends;
* ``process_end``: the parent sees the process end.

``train_via_server``: the same command with env ``REPLICATE_SERVER`` naming a ``python -m replicate
serve`` started once before the rounds (``server_ready_s``: its start to serving, torch's import
included, paid once): the command's process hands the run to the server, which forks it from a
process that has imported torch already (replicate/zygote.py; the sweep's trainers start this way).
Its CPU milestones after ``forked`` are the forked run's own CPU seconds; its ``cpu_s`` adds the
requesting process's and the run's.

``caffe`` (when ``make caffe`` has built it, bench/caffe/build.sh): Caffe 1.0's own ``caffe train`` on
the same solver, net and data, in the same rounds, its OpenBLAS in the parity setting (Haswell
kernels, 1 thread, as exact mode): its milestones are the arrival times of its own log lines in
this process (glog writes each line to stderr as it is made): ``solver`` ("Solver scaffolding
done"), ``first_iteration`` (the last "Test net output" line of the test at iteration 0: the
first training iteration starts right after it), ``first_iteration_display`` (its "Iteration 0
(...)" line, after the first forward-backward), ``process_end``.  ``start_to_first_iteration_vs_caffe_s``:
ours less Caffe's, best against best.

CPU seconds (``milestones_cpu_s``: the process's own ``time.process_time()`` at each milestone,
all its threads; ``cpu_s``: user + system from the child's rusage) are reported too: on a shared
machine they move much less than wall-clock times.  ``caffe_reference``: Caffe 1.0's own log of the
``shared/golden/scratch`` run, from its first log line to its first iteration's display (process
start before the first line is not in the log): a reference, not a ratio.

    python bench/startup.py [--rounds 5] [--iterations 20] [--blas exact|fast] [--data DIR] [--teardown]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MILESTONES = ("python", "forked", "torch", "imports", "setup", "solver", "first_iteration", "first_iteration_done",
              "main_done", "exit", "process_end")


def make_net(folder: Path, data: Path, iterations: int) -> Path:
    """The demo's mini CaffeNet (``netbase``) in ``folder``, reading ``data``; returns the solver."""
    from replicate.experiments.names import classify
    from replicate.experiments.plan import PRESETS, network_files
    root = folder / "data"
    root.mkdir(parents=True)
    for name, src in (("whole_train_lmdb", "train_lmdb"), ("whole_valid_lmdb", "train_lmdb"),
                      ("whole_mean.binaryproto", "mean.binaryproto")):
        target = data / src
        if not target.exists():
            raise SystemExit(f"startup bench: {target} is missing (--data names a folder with train_lmdb and "
                             "mean.binaryproto)")
        (root / name).symlink_to(target)
    scale = replace(PRESETS["mini"], max_iter=iterations)
    run = folder / "run"
    run.mkdir()
    for name, text in network_files(classify("netbase"), scale, root).items():
        (run / name).write_text(text)
    return run / "imagenet_solver.prototxt"


def spawn(cmd: list, cwd: Path, env: dict) -> dict:
    """Run ``cmd``; wall seconds from right before the spawn, the child's CPU seconds, and the
    monotonic zero."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _, status, ru = os.wait4(proc.pid, 0)
    t1 = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"startup bench: {' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                         f"{err.decode(errors='replace')[-3000:]}")
    return {"t0": t0, "wall_s": t1 - t0, "cpu_s": ru.ru_utime + ru.ru_stime, "stderr": err}


def train_once(python: str, solver: Path, blas: str, env: dict, trace: Path, teardown: bool,
               server: str | None = None) -> dict:
    if trace.exists():
        trace.unlink()
    e = dict(env, REPLICATE_STARTUP_TRACE=str(trace))
    if teardown:
        e["REPLICATE_FAST_EXIT"] = "0"
    if server:
        e["REPLICATE_SERVER"] = server
    r = spawn([python, "-m", "replicate", "train", "-solver", solver.name, "--blas", blas], solver.parent, e)
    marks, cpu = {}, {}
    for line in trace.read_text().splitlines():
        what, t, c = line.split()
        marks.setdefault(what, float(t) - r["t0"])
        cpu.setdefault(what, float(c))
    marks["process_end"] = r["wall_s"]
    cpu["process_end"] = r["cpu_s"]
    log = r["stderr"].decode(errors="replace")
    if "Optimization Done." not in log:
        raise SystemExit(f"startup bench: the train run did not finish:\n{log[-3000:]}")
    if server and "forked" not in marks:
        raise SystemExit(f"startup bench: the server did not run the train command:\n{log[-3000:]}")
    cpu_s = r["cpu_s"] + (cpu.get("exit", 0.0) if server else 0.0)  # the requester's + the forked run's
    return {"marks": marks, "cpu": cpu, "cpu_s": cpu_s, "wall_s": r["wall_s"]}


def caffe_once(binary: Path, solver: Path, env: dict) -> dict:
    """Caffe's own ``caffe train`` on ``solver``: its milestones from its log lines' arrival."""
    from bench.caffe_time import caffe_env
    e = caffe_env("parity", env)
    # the release's solvers say solver_mode: GPU (ours computes on the CPU regardless); a CPU-only
    # Caffe refuses that, so it gets the same solver in CPU mode
    cpu_solver = solver.with_name("caffe_cpu_" + solver.name)
    text = solver.read_text()
    cpu_solver.write_text(re.sub(r"(?m)^solver_mode:.*$", "", text) + "solver_mode: CPU\n")
    t0 = time.monotonic()
    proc = subprocess.Popen([str(binary), "train", "-solver", cpu_solver.name], cwd=solver.parent, env=e,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killer = threading.Timer(600, proc.kill)  # a Caffe that hangs is killed (its run fails below)
    killer.start()
    marks, lines, in_test = {}, [], False
    for raw in proc.stderr:
        now = time.monotonic() - t0
        line = raw.decode(errors="replace")
        lines.append(line)
        if "Solver scaffolding done" in line:
            marks.setdefault("solver", now)
        if "Iteration 0, Testing net" in line:
            in_test = True
        elif in_test and "Test net output" in line:
            marks["first_iteration"] = now  # the last of them wins
        elif re.search(r"\] Iteration 0 \(", line):
            in_test = False
            marks.setdefault("first_iteration_display", now)
    _, status, ru = os.wait4(proc.pid, 0)
    killer.cancel()
    marks["process_end"] = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    if code or "Optimization Done." not in "".join(lines) or "first_iteration" not in marks:
        raise RuntimeError(f"caffe train failed ({code}):\n{''.join(lines)[-3000:]}")
    return {"marks": marks, "cpu_s": ru.ru_utime + ru.ru_stime, "wall_s": marks["process_end"]}


def start_server(python: str, folder: Path, env: dict):
    """``python -m replicate serve`` on a socket in ``folder``; (its Popen, socket, seconds to serving)."""
    sock = folder / "server" / "server.sock"
    t0 = time.monotonic()
    proc = subprocess.Popen([python, "-m", "replicate", "serve", "--socket", str(sock)], cwd=folder, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = ""
    while "serving at" not in line:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise SystemExit(f"startup bench: the fork server did not start ({proc.returncode})")
    return proc, str(sock), time.monotonic() - t0


def stats(values: list) -> dict:
    return {"best": round(min(values), 3), "median": round(statistics.median(values), 3),
            "runs": [round(v, 3) for v in values]}


def caffe_reference() -> dict:
    """Caffe 1.0's log of shared/golden/scratch: first log line to the first iteration's display."""
    try:
        from tests._shared import shared_dir
        log = (shared_dir() / "golden" / "scratch" / "train.log").read_text()
    except Exception as e:  # noqa: BLE001 - a reference only
        return {"error": str(e)}
    stamp = re.compile(r"^[IWEF]\d{4}(\d{4}) (\d\d):(\d\d):(\d\d\.\d+) ")
    times = []
    for line in log.splitlines():
        m = stamp.match(line)
        if m:
            s = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
            times.append((s, line))
    first = times[0][0]
    scaffold = next(s for s, l in times if "Solver scaffolding done" in l)
    it0 = next(s for s, l in times if re.search(r"\] Iteration 0 \(", l))
    return {"run": "shared/golden/scratch/train.log (Caffe 1.0, CPU; a 4-layer net, batch 6, test 2 x 10)",
            "first_log_line_to_scaffolding_done_s": round(scaffold - first, 4),
            "first_log_line_to_first_iteration_display_s": round(it0 - first, 4),
            "note": "Caffe's process start (loading its libraries, glog) comes before its first log line and "
                    "is not in the log; a reference only, no ratio is taken"}


def run(rounds: int = 5, iterations: int = 20, blas: str = "exact", data: Path | None = None,
        teardown: bool = False) -> dict:
    python = sys.executable
    if data is None:
        from tests._shared import shared_dir
        data = shared_dir() / "golden" / "data"
    env = dict(os.environ)
    env.pop("REPLICATE_STARTUP_TRACE", None)
    env.pop("REPLICATE_FAST_EXIT", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    tmp = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    try:
        solver = make_net(tmp, Path(data), iterations)
        trace = tmp / "trace.txt"
        server, sock, server_ready = start_server(python, tmp, env)
        variants = {"python": lambda: spawn([python, "-c", "pass"], tmp, env),
                    "import_torch": lambda: spawn([python, "-c", "import torch"], tmp, env),
                    "train": lambda: train_once(python, solver, blas, env, trace, False),
                    "train_via_server": lambda: train_once(python, solver, blas, env, trace, False, sock)}
        if teardown:
            variants["train_with_teardown"] = lambda: train_once(python, solver, blas, env, trace, True)
        from bench.caffe_time import DEFAULT_BIN
        caffe_bin = Path(os.environ.get("CAFFE_BIN", DEFAULT_BIN))
        caffe_note = None
        if caffe_bin.exists():
            try:
                caffe_once(caffe_bin, solver, env)  # a first run: does this Caffe read the data?
                variants["caffe"] = lambda: caffe_once(caffe_bin, solver, env)
            except RuntimeError as e:
                caffe_note = f"Caffe could not run the net: {str(e)[-1500:]}"
        else:
            caffe_note = f"{caffe_bin} is absent (`make caffe` builds it): Caffe's start was not measured"
        got = {k: [] for k in variants}
        for r in range(rounds + 1):  # round 0 warms the page cache (and writes .pyc files): not counted
            for name, fn in variants.items():
                out = fn()
                if r:
                    got[name].append(out)
        result = {
            "what": "process start to first training iteration of `python -m replicate train` (the demo's mini "
                    "CaffeNet), against `python -c 'import torch'`; fresh processes, best and median of "
                    f"{rounds} interleaved rounds",
            "date": datetime.now().strftime("%Y-%m-%d %H:%M:%S"), "rounds": rounds, "iterations": iterations,
            "blas": blas, "data": str(data), "python": sys.version.split()[0],
            "machine": platform.processor() or platform.machine(),
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "PYTHONDONTWRITEBYTECODE": bool(env.get("PYTHONDONTWRITEBYTECODE")),
        }
        for name in ("python", "import_torch"):
            result[f"{name}_wall_s"] = stats([o["wall_s"] for o in got[name]])
            result[f"{name}_cpu_s"] = stats([o["cpu_s"] for o in got[name]])
        for name in [k for k in variants if k.startswith("train")]:
            runs = got[name]
            have = [m for m in MILESTONES if all(m in o["marks"] for o in runs)]
            result[name] = {"milestones_s": {m: stats([o["marks"][m] for o in runs]) for m in have},
                            "milestones_cpu_s": {m: stats([o["cpu"][m] for o in runs]) for m in have},
                            "cpu_s": stats([o["cpu_s"] for o in runs])}
        t = result["train"]["milestones_s"]
        torch_best = result["import_torch_wall_s"]["best"]
        result["start_to_first_iteration_s"] = t["first_iteration"]
        result["start_to_first_iteration_done_s"] = t["first_iteration_done"]
        result["total_wall_s"] = t["process_end"]
        result["first_iteration_minus_import_torch_s"] = round(t["first_iteration"]["best"] - torch_best, 3)
        result["exit_s"] = round(min(o["marks"]["process_end"] - o["marks"]["main_done"] for o in got["train"]), 3)
        v = result["train_via_server"]["milestones_s"]
        result["server_ready_s"] = round(server_ready, 3)
        result["start_to_first_iteration_via_server_s"] = v["first_iteration"]
        result["total_wall_via_server_s"] = v["process_end"]
        if "caffe" in got:
            runs = got["caffe"]
            have = [m for m in ("solver", "first_iteration", "first_iteration_display", "process_end")
                    if all(m in o["marks"] for o in runs)]
            result["caffe"] = {"binary": str(caffe_bin), "openblas": "parity setting (Haswell kernels, 1 thread)",
                               "milestones_s": {m: stats([o["marks"][m] for o in runs]) for m in have},
                               "cpu_s": stats([o["cpu_s"] for o in runs])}
            c = result["caffe"]["milestones_s"]["first_iteration"]["best"]
            result["start_to_first_iteration_vs_caffe_s"] = {
                "fresh_process": round(t["first_iteration"]["best"] - c, 3),
                "via_server": round(v["first_iteration"]["best"] - c, 3)}
        else:
            result["caffe"] = {"skipped": caffe_note}
        result["caffe_reference"] = caffe_reference()
        return result
    finally:
        if "server" in locals():
            server.terminate()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def summary(r: dict) -> str:
    t = r["train"]["milestones_s"]
    lines = [f"python -c pass: best {r['python_wall_s']['best']:.3f} s; import torch: best "
             f"{r['import_torch_wall_s']['best']:.3f} s, median {r['import_torch_wall_s']['median']:.3f} s "
             f"({r['import_torch_cpu_s']['best']:.3f} s CPU)",
             "train milestones from process start (best / median, s):"]
    c = r["train"]["milestones_cpu_s"]
    lines += [f"  {m:22} {v['best']:7.3f} {v['median']:7.3f}   CPU {c[m]['best']:7.3f} {c[m]['median']:7.3f}"
              for m, v in t.items()]
    lines.append(f"first iteration - import torch: {r['first_iteration_minus_import_torch_s']:.3f} s; train CPU "
                 f"{r['train']['cpu_s']['best']:.3f} s (best)")
    v = r["train_via_server"]
    lines.append(f"through a fork server (ready after {r['server_ready_s']:.3f} s, once): first iteration "
                 f"{v['milestones_s']['first_iteration']['best']:.3f} s (median "
                 f"{v['milestones_s']['first_iteration']['median']:.3f}), process end "
                 f"{v['milestones_s']['process_end']['best']:.3f} s, CPU {v['cpu_s']['best']:.3f} s")
    if "train_with_teardown" in r:
        w = r["train_with_teardown"]
        lines.append(f"with Python's teardown at exit (REPLICATE_FAST_EXIT=0): process end "
                     f"{w['milestones_s']['process_end']['best']:.3f} s, CPU {w['cpu_s']['best']:.3f} s")
    cf = r.get("caffe", {})
    if "milestones_s" in cf:
        m = cf["milestones_s"]
        d = r["start_to_first_iteration_vs_caffe_s"]
        lines.append(f"Caffe 1.0 itself (caffe train, same net and data): first iteration {m['first_iteration']['best']:.3f}"
                     f" s (median {m['first_iteration']['median']:.3f}), process end {m['process_end']['best']:.3f} s; "
                     f"ours less Caffe's: fresh {d['fresh_process']:+.3f} s, through the server {d['via_server']:+.3f} s")
    elif cf:
        lines.append(f"Caffe: {cf.get('skipped')}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=20, help="max_iter of the train runs")
    ap.add_argument("--blas", choices=("exact", "fast"), default="exact")
    ap.add_argument("--data", type=Path, default=None,
                    help="folder with train_lmdb and mean.binaryproto (default: shared/golden/data)")
    ap.add_argument("--teardown", action="store_true",
                    help="also time train runs that exit through Python's teardown (REPLICATE_FAST_EXIT=0)")
    ap.add_argument("--summary", action="store_true", help="a readable summary on stderr too")
    args = ap.parse_args(argv)
    r = run(args.rounds, args.iterations, args.blas, args.data, args.teardown)
    print(json.dumps(r, indent=1))
    if args.summary:
        print(summary(r), file=sys.stderr)


if __name__ == "__main__":
    main()
