"""``python -m replicate sweep PLAN_DIR``: train a plan's networks in dependency order, resumably.

    python -m replicate sweep PLAN_DIR [--engine local|ray] [--workers N] [--address ADDR]
                                       [--retries R] [--nets PATTERNS] [--blas exact|fast]
                                       [--allow-mixed-blas] [--no-zygote] [--dry-run]
    python -m replicate sweep status PLAN_DIR [--nets PATTERNS] [--json]

``PLAN_DIR/plan.json`` lists the networks (bases before the networks that load them);
``PLAN_DIR/<name>/`` holds each one's solver and receives its snapshots, ``logs/`` and ``DONE``.

* A network is finished when its ``<prefix>_iter_<max_iter>.caffemodel`` and its ``DONE`` marker
  exist; finished networks are skipped, so a sweep can be rerun at any time.
* Each attempt runs ``python -m replicate train`` in the network's folder with
  ``--log logs/<YYYYmmdd-HHMMSS>-attempt<k>.log`` (the trainer's stdout/stderr go to the same name
  with ``.out``, kept only when not empty), and ``-snapshot`` of the newest complete snapshot if one
  exists, else ``-weights`` from the plan.  A failed attempt (nonzero exit, a signal, or exit 0
  without the final snapshot) is retried up to ``--retries`` times, resuming from the newest
  snapshot; then the network is failed and the networks loading it are blocked.
* BLAS mode: every trainer gets ``--blas MODE`` (default: exact on CPU, fast when the networks run
  on GPUs; env ``REPLICATE_BLAS`` sets the default).  The mode goes into each network's ``DONE``,
  its logs' first lines, ``sweep_status.json`` and the report.  A sweep refuses (exit 2) to mix
  modes in one plan: a network finished, or part-trained, in another mode (by its ``DONE`` or its
  logs' headers; unknown for logs from before modes were logged) stops it unless
  ``--allow-mixed-blas``.
* Exit codes: 0 all finished or skipped, 1 some failed or blocked, 130 interrupted, 2 a bad plan
  or mixed BLAS modes.
* Ctrl-C (or SIGTERM) sends one SIGINT to every trainer (Caffe's stop: it snapshots and exits),
  waits for them, and reports them interrupted; a second Ctrl-C kills them.  Trainers die with the
  process that started them (Linux PR_SET_PDEATHSIG, SIGKILL), so no orphan keeps writing into a
  folder a retry uses; a lock file (``.sweep.lock``, held until the trainer is gone) keeps two
  sweeps from training the same network at once.

Engines run the same :func:`run_network` (one network: attempts, resume, DONE):

* ``local``: up to ``--workers`` trainers at a time (default 1); with CUDA devices
  (``torch.cuda.device_count()``, so ``CUDA_VISIBLE_DEVICES`` selects them) one network per GPU
  (``-gpu i``) and at most one trainer per GPU.  CPU trainers share the cores (``OMP_NUM_THREADS``
  = cores / workers, or ``--threads``).  The trainers are forks of one server started with the
  first of them (replicate/zygote.py): it imports torch once, and each trainer starts its first
  iteration without that second of imports; same code, same environment, same bits.  The server
  dies with the sweep and its trainers with it.  ``--no-zygote`` (or env ``REPLICATE_ZYGOTE=0``)
  starts each trainer as a fresh process, as does any trainer the server cannot start (each reason
  said once).
* ``ray``: each network a Ray task (``num_cpus=--cpus-per-network``, default 1, also its trainer's
  thread count; ``num_gpus=1`` when the cluster has GPUs, the
  trainer then gets ``-gpu 0`` of the devices Ray assigned).  ``--address auto|HOST:PORT`` joins a
  running cluster, otherwise ``ray.init(num_cpus=workers)`` starts a local one.  On a cluster,
  PLAN_DIR must be on a filesystem every node sees at the same path, and this package must be
  importable by the workers' Python.  Ray's own retries are off: a task whose worker died counts
  as a failed attempt and is resubmitted through :func:`run_network`, which resumes from the
  newest snapshot.

Progress: a line per start, retry and end on stdout, a bar of networks done on a terminal's stderr,
``PLAN_DIR/sweep_status.json`` rewritten after every change, and a summary table at the end.
"""
from __future__ import annotations

import argparse
import datetime
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..fileio import atomic_write, open_new
from ..progress import Progress

STATUS_FILE = "sweep_status.json"
DONE_FILE = "DONE"
LOCK_FILE = ".sweep.lock"
LOCK_WAIT_S = 30.0
# The driver's variables forwarded to every trainer (a Ray worker has its own node's environment;
# these are added to it).  An explicit list: nothing that names code to load (REPLICATE_CBLAS,
# LD_PRELOAD, PYTHONPATH, ...) or switches checks off (REPLICATE_UNVERIFIED_BLAS) travels, so a
# cluster's workers load what their own node configures.
FORWARD_ENV = ("REPLICATE_BLAS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "OPENBLAS_CORETYPE", "CUDA_LAUNCH_BLOCKING", "CUBLAS_WORKSPACE_CONFIG")
# Errors no retry cures: the network fails at once with the reason.
DISK_FULL = ("No space left on device", "Disk quota exceeded")


def forwarded_env(environ=None) -> Dict[str, str]:
    """The variables of ``environ`` (default: os.environ) that the sweep forwards to trainers."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in FORWARD_ENV if k in environ}


class PlanError(Exception):
    pass


# -- the plan ------------------------------------------------------------------------------------
def load_plan(plan_dir) -> List[dict]:
    """The networks of ``PLAN_DIR/plan.json``, checked (names unique, bases in the plan)."""
    path = Path(plan_dir) / "plan.json"
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PlanError(f"{path}: {e}") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("networks", []), list):
        raise PlanError(f"{path}: not a plan (expected an object with a 'networks' list; "
                        "written by python -m replicate plan)")
    if plan.get("version") != 1:
        raise PlanError(f"{path}: version {plan.get('version')!r}, expected 1")
    nets, seen = [], set()
    for i, net in enumerate(plan.get("networks", [])):
        if not isinstance(net, dict):
            raise PlanError(f"{path}: network #{i} is {net!r}, not an object")
        missing = [k for k in ("name", "max_iter", "snapshot_prefix", "solver") if net.get(k) in (None, "")]
        if missing:
            raise PlanError(f"{path}: network #{i} lacks {', '.join(missing)}")
        if not isinstance(net["max_iter"], int) or net["max_iter"] < 1:
            raise PlanError(f"{path}: network {net['name']!r} has max_iter {net['max_iter']!r}")
        if net["name"] in seen:
            raise PlanError(f"{path}: network {net['name']!r} is listed twice")
        seen.add(net["name"])
        nets.append(dict(net))
    for net in nets:
        if net.get("base") and net["base"] not in seen:
            raise PlanError(f"{path}: {net['name']} loads {net['base']!r}, which is not in the plan")
    return nets


def final_model(net_dir, net: dict) -> Path:
    ext = "" if net.get("caffe") == "2014" else ".caffemodel"  # the 2014 Caffe: <prefix>_iter_N
    return Path(net_dir) / f"{net['snapshot_prefix']}_iter_{net['max_iter']}{ext}"


def model_of(state: Path) -> Path:
    """The weights beside a ``.solverstate``: ``<prefix>_iter_N.caffemodel``, or the 2014 Caffe's
    ``<prefix>_iter_N`` when only that exists (plan --caffe 2014)."""
    model = state.with_suffix(".caffemodel")
    return model if model.is_file() or not state.with_suffix("").is_file() else state.with_suffix("")


def fingerprint(net_dir, net: dict) -> str:
    """SHA-256 of the network's prototxt files and max_iter: a DONE written for other files (a
    re-plan with another scale) does not count."""
    h = hashlib.sha256(str(net["max_iter"]).encode())
    for p in sorted(Path(net_dir).glob("*.prototxt")):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def is_finished(net_dir, net: dict) -> bool:
    """The final snapshot exists and the DONE marker was written for these files and max_iter."""
    done = Path(net_dir) / DONE_FILE
    if not (final_model(net_dir, net).is_file() and done.is_file()):
        return False
    try:
        rec = json.loads(done.read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(rec, dict) and rec.get("final_iter") == net["max_iter"]
            and rec.get("fingerprint") == fingerprint(net_dir, net))


def recorded_blas(net_dir, net: dict) -> List[str]:
    """The BLAS modes a network's results or snapshots were made in: its ``DONE``'s ``blas`` when
    finished, else its attempt logs' headers (``unknown`` where neither says); [] for a network
    with no result and no snapshot."""
    from .logparse import blas_modes
    d = Path(net_dir)
    if is_finished(d, net):
        try:
            mode = json.loads((d / DONE_FILE).read_text()).get("blas")
        except (OSError, ValueError, AttributeError):
            mode = None
        return [mode] if mode else (blas_modes(_attempt_logs(d)) or ["unknown"])
    if latest_snapshot(d, net["snapshot_prefix"], net["max_iter"]) is None:
        return []
    return blas_modes(_attempt_logs(d)) or ["unknown"]


def mixed_blas(plan_dir, nets: List[dict], mode: str) -> List[str]:
    """``name (modes)`` of every network of the plan already finished or part-trained in a mode other
    than ``mode``."""
    out = []
    for net in nets:
        modes = recorded_blas(Path(plan_dir) / net["name"], net)
        if modes and modes != [mode]:
            out.append(f"{net['name']} ({', '.join(modes)})")
    return out


def latest_snapshot(net_dir, prefix: str, max_iter: Optional[int] = None) -> Optional[Path]:
    """The newest ``<prefix>_iter_<N>.solverstate`` (N <= max_iter) whose caffemodel exists
    (temporary files of an interrupted atomic write do not match)."""
    full = Path(net_dir) / prefix
    pattern = re.compile(re.escape(full.name) + r"_iter_(\d+)\.solverstate$")
    best = None
    if not full.parent.is_dir():
        return None
    for p in full.parent.iterdir():
        m = pattern.match(p.name)
        it = int(m.group(1)) if m else -1
        if m and (max_iter is None or it <= max_iter) and model_of(p).is_file() \
                and (best is None or it > best[0]):
            best = (it, p)
    return best[1] if best else None


def _iteration(path: Path) -> int:
    return int(re.search(r"_iter_(\d+)\.", path.name).group(1))


def _attempt_logs(net_dir) -> List[Path]:
    logs = Path(net_dir) / "logs"
    return sorted(logs.glob("*-attempt*.log")) if logs.is_dir() else []


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def _write_json(path, obj) -> None:
    atomic_write(path, (json.dumps(obj, indent=1) + "\n").encode())


# -- one network -----------------------------------------------------------------------------------
def _trainer_entry() -> None:
    """The trainer process: ``python -c ... PARENT_PID train-args``; dies with PARENT_PID."""
    parent, args = int(sys.argv[1]), sys.argv[2:]
    from replicate.zygote import die_with_parent
    die_with_parent(parent)
    from replicate.__main__ import exit_now, main
    exit_now(main(["train", *args]))  # without Python's teardown, as python -m replicate train


# -- snapshot integrity ----------------------------------------------------------------------------
def snapshot_problem(state: Path) -> Optional[str]:
    """Why the snapshot ``state`` (a .solverstate; its .caffemodel and .resume sidecar beside it)
    cannot be resumed from -- a torn, truncated or mismatched file, named -- or None when intact.
    Checks: the solverstate parses and names this iteration; the sidecar (when there is one: a
    Caffe-style snapshot has none) loads and holds the solverstate's and the caffemodel's SHA-256;
    without a recorded hash the caffemodel must parse as a net."""
    state = Path(state)
    model = model_of(state)
    sidecar = state.with_suffix(".resume")
    it = _iteration(state)
    for f in (state, model):
        try:
            if f.stat().st_size == 0:
                return f"{f.name} is empty"
        except OSError as e:
            return f"{f.name}: {e.strerror or e}"
    try:
        data = state.read_bytes()
        from prototxt_like.io import load_solverstate
        if not model.suffix:  # the 2014 Caffe's <prefix>_iter_N: its SolverState has no current_step
            from replicate.caffe2014 import load_solverstate_2014 as load_solverstate
        st, _ = load_solverstate(data)
        if st.iter != it:
            return f"{state.name} holds iteration {st.iter}"
    except Exception as e:  # noqa: BLE001 - a truncated protobuf, ...
        return f"{state.name} does not parse ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    model_sha = None
    if sidecar.exists():
        try:
            import numpy as np
            with np.load(sidecar, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                for k in z.files:  # a truncated member fails here
                    z[k]
        except Exception as e:  # noqa: BLE001 - a truncated zip, ...
            return f"{sidecar.name} does not load ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        if meta.get("iter") != it:
            return f"{sidecar.name} holds iteration {meta.get('iter')}"
        if meta.get("solverstate_sha256") != hashlib.sha256(data).hexdigest():
            return f"{state.name} does not match the SHA-256 in {sidecar.name} (torn or replaced)"
        model_sha = meta.get("caffemodel_sha256")
    if model_sha:
        with open(model, "rb") as f:
            if hashlib.file_digest(f, "sha256").hexdigest() != model_sha:
                return f"{model.name} does not match the SHA-256 in {sidecar.name} (torn or replaced)"
    else:
        try:
            from prototxt_like.io import load_net_binary
            load_net_binary(str(model), upgrade=False)
        except Exception as e:  # noqa: BLE001
            return f"{model.name} does not parse ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    return None


def snapshots(net_dir, prefix: str, max_iter: Optional[int] = None) -> List[Path]:
    """Every ``<prefix>_iter_<N>.solverstate`` (N <= max_iter) with its caffemodel, newest first."""
    full = Path(net_dir) / prefix
    pattern = re.compile(re.escape(full.name) + r"_iter_(\d+)\.solverstate$")
    if not full.parent.is_dir():
        return []
    found = []
    for p in full.parent.iterdir():
        m = pattern.match(p.name)
        if m and (max_iter is None or int(m.group(1)) <= max_iter) and model_of(p).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found, reverse=True)]


def intact_snapshot(net_dir, prefix: str, max_iter: Optional[int] = None,
                    torn: Optional[List[str]] = None) -> Optional[Path]:
    """The newest snapshot that passes :func:`snapshot_problem`; the problems of newer ones are
    appended to ``torn``."""
    for p in snapshots(net_dir, prefix, max_iter):
        why = snapshot_problem(p)
        if why is None:
            return p
        if torn is not None:
            torn.append(why)
    return None


def _describe(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = [l for l in path.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def _lock(net_dir: Path) -> Optional[int]:
    fd = os.open(net_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.1)


def trainer_env(env: Optional[Dict[str, str]] = None, threads: Optional[int] = None) -> Dict[str, str]:
    """A trainer's environment: this process's, plus ``env``, OMP_NUM_THREADS=``threads`` unless
    already set, this package on PYTHONPATH, no REPLICATE_SERVER, and REPLICATE_SWEEP_PID (the
    supervising process: the sweep, or its Ray worker; a trainer forked from the sweep's server has
    the server as parent)."""
    child_env = dict(os.environ)
    child_env.update(env or {})
    child_env["REPLICATE_SWEEP_PID"] = str(os.getpid())
    child_env.pop("REPLICATE_SERVER", None)  # a trainer runs here (or in the sweep's own server), holding the lock
    if threads and "OMP_NUM_THREADS" not in child_env:
        child_env["OMP_NUM_THREADS"] = str(threads)
    repo = str(Path(__file__).resolve().parents[2])
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, child_env.get("PYTHONPATH")) if p)
    return child_env


def run_network(plan_dir: str, net: dict, *, max_attempts: int = 3, gpu: Optional[str] = None,
                env: Optional[Dict[str, str]] = None, stop: Optional[Callable[[], int]] = None,
                say: Callable[[str], None] = print, python: Optional[str] = None,
                threads: Optional[int] = None, blas: Optional[str] = None, zygote=None) -> dict:
    """Train one network to its final snapshot: up to ``max_attempts`` trainer runs, each resuming
    from the newest snapshot, each with ``--blas blas`` when given.  ``threads``: the trainer's CPU threads (OMP_NUM_THREADS) unless the
    environment already sets OMP_NUM_THREADS.  ``stop()`` > 0 asks the trainer to stop (SIGINT), > 1 kills it; a
    KeyboardInterrupt (Ray's cancel) acts as ``stop() == 1``.  ``zygote``: a :class:`replicate.zygote.Server`
    started with :func:`trainer_env`'s environment; each trainer is then a fork of it (no import of
    torch; the same code and bits), else, or when it cannot, a fresh process.  Returns a JSON-able
    record whose ``status`` is finished, skipped, failed or interrupted."""
    name = net["name"]
    net_dir = Path(plan_dir) / name
    python = python or sys.executable
    t0 = time.time()
    rec = {"name": name, "status": "failed", "attempts": 0, "wall_s": 0.0, "reason": "",
           "host": socket.gethostname(), "gpu": gpu, "blas": blas, "logs": [], "rcs": [], "started": _now()}

    def done(status, reason=""):
        rec.update(status=status, reason=reason, wall_s=round(time.time() - t0, 3), ended=_now())
        return rec

    if is_finished(net_dir, net):
        return done("skipped", "already finished")
    if not (net_dir / net["solver"]).is_file():
        return done("failed", f"{net_dir / net['solver']} does not exist")
    lock = _lock(net_dir)
    if lock is None:
        return done("failed", f"{net_dir / LOCK_FILE} stayed locked for {LOCK_WAIT_S:.0f} s "
                              "(another sweep is training this network)")
    try:
        (net_dir / DONE_FILE).unlink(missing_ok=True)  # stale: its final snapshot is gone
        for out in (net_dir / "logs").glob("*.out"):  # left empty by a supervisor that died
            if out.stat().st_size == 0:
                out.unlink()
        child_env = trainer_env(env, threads)
        interrupted = False
        while rec["attempts"] < max_attempts:
            if stop and stop():
                return done("interrupted", rec["reason"] or "the sweep stopped")
            torn: List[str] = []
            state = intact_snapshot(net_dir, net["snapshot_prefix"], net["max_iter"], torn)
            for why in torn:
                if why not in rec.setdefault("torn", []):
                    rec["torn"].append(why)
                    say(f"{name}: skipping a damaged snapshot: {why}")
            if state is not None:
                args = ["-snapshot", os.path.relpath(state, net_dir)]
                what = f"resuming from iteration {_iteration(state)}"
            elif net.get("weights"):
                if not (net_dir / net["weights"]).is_file():
                    return done("failed", f"weights {net['weights']} do not exist")
                args = ["-weights", net["weights"]]
                what = f"from {net['weights']}"
            else:
                args, what = [], "from scratch"
            rec["attempts"] += 1
            k = len(_attempt_logs(net_dir)) + 1
            (net_dir / "logs").mkdir(exist_ok=True)
            log = net_dir / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-attempt{k}.log"
            rec["logs"].append(str(log.relative_to(net_dir)))
            args = ["-solver", net["solver"], "--log", os.path.relpath(log, net_dir), *args]
            if gpu is not None:
                args += ["-gpu", str(gpu)]
            if blas:
                args += ["--blas", blas]
            if net.get("caffe") == "2014":  # plan --caffe 2014: train_net.bin / finetune_net.bin
                args += ["--caffe", "2014"]
            attempt_env = dict(child_env)
            if rec["attempts"] > 1:
                say(f"{name}: attempt {rec['attempts']}/{max_attempts}, {what}")
            cmd = [python, "-c", "from replicate.experiments.sweep import _trainer_entry; _trainer_entry()",
                   str(os.getpid()), *args]
            out_path = log.with_suffix(".out")
            with open_new(out_path) as out:
                proc = None
                if zygote is not None:
                    from ..zygote import ZygoteUnavailable
                    try:
                        with open(os.devnull, "rb") as null:
                            proc = zygote.spawn(["train", *args], cwd=str(net_dir), env=attempt_env,
                                                stdin=null.fileno(), stdout=out.fileno(), stderr=out.fileno(),
                                                pass_fds=(lock,))
                    except ZygoteUnavailable as e:
                        said = zygote.said
                        if str(e) not in said:  # each reason once
                            said.add(str(e))
                            say(f"{name}: starts as a fresh process: the fork server cannot start it ({e})")
                if proc is None:
                    proc = subprocess.Popen(cmd, cwd=net_dir, env=attempt_env, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(lock,))
                os.ftruncate(lock, 0)
                os.pwrite(lock, json.dumps({"host": rec["host"], "pid": os.getpid(), "trainer_pid": proc.pid,
                                            "log": rec["logs"][-1], "started": _now()}).encode(), 0)
                sent = 0
                while True:
                    try:
                        rc = proc.wait(timeout=0.2)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    except KeyboardInterrupt:
                        interrupted = True
                    level = max(1 if interrupted else 0, stop() if stop else 0)
                    if level > sent:
                        proc.send_signal(signal.SIGINT if level == 1 else signal.SIGKILL)
                        sent = level
                        interrupted = True
            rec["rcs"].append(rc)
            if out_path.stat().st_size == 0:
                out_path.unlink()
            final = final_model(net_dir, net)
            if rc == 0 and final.is_file():
                rec.update(final_model=str(final.relative_to(net_dir)), final_iter=net["max_iter"])
                done("finished")
                logs = _attempt_logs(net_dir)
                _write_json(net_dir / DONE_FILE, {
                    "name": name, "final_iter": net["max_iter"], "final_model": rec["final_model"],
                    "fingerprint": fingerprint(net_dir, net),
                    "attempts": len(logs), "attempts_this_sweep": rec["attempts"],
                    "started": rec["started"], "ended": rec["ended"], "wall_s": rec["wall_s"],
                    "host": rec["host"], "gpu": gpu, "blas": blas,
                    "logs": [str(p.relative_to(net_dir)) for p in logs]})
                return rec
            state = latest_snapshot(net_dir, net["snapshot_prefix"], net["max_iter"])
            at = f"newest snapshot: iteration {_iteration(state)}" if state else "no snapshot"
            if rc == 0 and interrupted:
                reason = f"stopped ({at})"
            elif rc == 0:
                reason = f"exited 0 without the final snapshot ({at})"
            else:
                reason = f"{_describe(rc)} ({at})"
                if getattr(proc, "server_gone", False):
                    reason = f"the fork server died, and this trainer with it: {reason}"
                tail = _tail(out_path) if out_path.exists() else ""
                if tail:
                    reason += f": {tail}"
            rec["reason"] = reason
            if interrupted:
                return done("interrupted", reason)
            full = next((m for m in DISK_FULL if m in reason), None)
            if full:  # a retry would fail the same way; the newest intact snapshot stays for a rerun
                return done("failed", f"disk full, not retried: {reason}")
            if rec["attempts"] < max_attempts:
                say(f"{name}: attempt {rec['attempts']} failed: {reason}")
        return done("failed", rec["reason"])
    finally:
        os.close(lock)


# -- engines ---------------------------------------------------------------------------------------
class _LocalEngine:
    """Threads, each supervising one trainer subprocess; one trainer per GPU when there are GPUs."""

    def __init__(self, plan_dir: str, workers: Optional[int], env: dict, say, threads: Optional[int] = None,
                 zygote: bool = True):
        from concurrent.futures import ThreadPoolExecutor
        try:
            import torch
            ngpu = torch.cuda.device_count()
        except Exception:  # noqa: BLE001 - no usable CUDA: CPU
            ngpu = 0
        self.gpus: Optional[List[str]] = [str(i) for i in range(ngpu)] if ngpu else None
        self.slots = min(workers or ngpu or 1, ngpu) if ngpu else (workers or 1)
        self.plan_dir, self.env, self.say = plan_dir, env, say
        self.blas: Optional[str] = None
        self.has_gpus = bool(ngpu)
        self.level = 0
        self.pool = ThreadPoolExecutor(self.slots, thread_name_prefix="sweep")
        self.running: dict = {}
        # CPU trainers share the cores instead of each starting one thread per core
        self.threads = threads or (None if ngpu else max(1, (os.cpu_count() or 1) // self.slots))
        shown = os.environ.get("OMP_NUM_THREADS") or self.threads  # an OMP_NUM_THREADS already set wins
        self.where = f"{self.slots} local worker(s)" + (f" on GPUs {','.join(self.gpus)}" if self.gpus else ", CPU") \
            + (f", {shown} thread(s) each" if shown else "")
        # trainers fork from one server that has imported torch once (replicate/zygote.py), started
        # with the first trainer; a trainer that it cannot start runs as a fresh process
        self.want_zygote, self.zygote = zygote, None
        if zygote:
            self.where += ", trainers forked from one server"

    def free(self) -> int:
        return self.slots - len(self.running)

    def submit(self, net: dict, max_attempts: int) -> str:
        if self.want_zygote and self.zygote is None:
            self.want_zygote = False
            from ..zygote import Server
            try:
                self.zygote = Server(trainer_env(self.env, self.threads))
            except OSError as e:
                self.say(f"trainers start as fresh processes: the fork server did not start ({e})")
        gpu = self.gpus.pop(0) if self.gpus is not None else None
        fut = self.pool.submit(run_network, self.plan_dir, net, max_attempts=max_attempts, gpu=gpu, env=self.env,
                               stop=lambda: self.level, say=self.say, threads=self.threads, blas=self.blas,
                               zygote=self.zygote)
        self.running[fut] = (net["name"], gpu)
        return f"GPU {gpu}" if gpu is not None else "CPU"

    def wait(self, timeout: float):
        from concurrent.futures import FIRST_COMPLETED, wait
        done, _ = wait(list(self.running), timeout, FIRST_COMPLETED)
        for fut in done:
            name, gpu = self.running.pop(fut)
            if gpu is not None:
                self.gpus.append(gpu)
            exc = fut.exception()
            yield name, (exc if exc is not None else fut.result())

    def interrupt(self, level: int) -> None:
        self.level = level

    def close(self) -> None:
        try:
            self.pool.shutdown(wait=True)
        finally:
            if self.zygote is not None:
                self.zygote.close()


class _RayEngine:
    """A Ray task per network (Ray's retries off; ours resume from snapshots)."""

    def __init__(self, plan_dir: str, workers: Optional[int], address: Optional[str], env: dict,
                 cpus_per_network: int = 1, threads: Optional[int] = None):
        import logging

        import ray
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address, logging_level=logging.WARNING)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING)
            self.started = True
        res = ray.cluster_resources()
        self.has_gpus = res.get("GPU", 0) > 0
        options = {"num_cpus": cpus_per_network, "max_retries": 0}
        if self.has_gpus:
            options["num_gpus"] = 1
        self.task = ray.remote(**options)(_ray_network)
        self.limit = workers or 10 ** 6  # on a cluster Ray queues what does not fit
        self.plan_dir, self.env = str(Path(plan_dir).resolve()), env
        self.threads = threads or cpus_per_network
        self.blas: Optional[str] = None
        self.running: dict = {}
        self.nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        self.where = (f"Ray ({len(self.nodes)} node(s), {int(res.get('CPU', 0))} CPUs, {int(res.get('GPU', 0))} GPUs"
                      f"{', local' if self.started and not address else ''}), {cpus_per_network} CPU(s) "
                      f"and {self.threads} thread(s) per network")

    def check_nodes(self) -> List[str]:
        """Problems of the nodes that would train networks (see :func:`_node_facts`): each must see
        PLAN_DIR at the same path with the same plan.json, flock there must be shared with this
        machine (a lock held here is seen there), and Python, this package and its libraries must be
        the same versions as here."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        lock_path = Path(self.plan_dir) / NODE_CHECK_LOCK
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            mine = _node_facts(self.plan_dir, probe_lock=False)
            task = self.ray.remote(num_cpus=0, max_retries=0)(_node_facts)
            refs = {n["NodeID"]: task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                n["NodeID"], soft=False)).remote(self.plan_dir) for n in self.nodes}
            problems = []
            for node_id, ref in refs.items():
                try:
                    facts = self.ray.get(ref, timeout=NODE_CHECK_S)
                except Exception as e:  # noqa: BLE001 - no Python there, import errors, a timeout
                    problems.append(f"node {node_id[:8]}: the check task failed ({type(e).__name__}: "
                                    f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})")
                    continue
                where = f"node {node_id[:8]} ({facts.get('host')})"
                for k, v in facts.items():
                    if k in ("host", "lock"):
                        continue
                    if v != mine.get(k):
                        problems.append(f"{where}: {k} is {v!r}, here {mine.get(k)!r}")
                if facts.get("lock") != "held elsewhere":
                    problems.append(f"{where}: flock on {lock_path} is not shared with this machine "
                                    f"({facts.get('lock')}): two sweeps could train one network")
            return problems
        finally:
            os.close(fd)

    def free(self) -> int:
        return self.limit - len(self.running)

    def submit(self, net: dict, max_attempts: int) -> str:
        ref = self.task.remote(self.plan_dir, net, max_attempts, self.env, self.threads, self.blas)
        self.running[ref] = net["name"]
        return "Ray task" + (" (1 GPU)" if self.has_gpus else "")

    def wait(self, timeout: float):
        ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=timeout)
        for ref in ready:
            name = self.running.pop(ref)
            try:
                yield name, self.ray.get(ref)
            except Exception as e:  # noqa: BLE001 - a dead worker, a cancelled task, ...
                yield name, e

    def interrupt(self, level: int) -> None:
        for ref in self.running:
            try:
                self.ray.cancel(ref, force=level > 1)
            except Exception:  # noqa: BLE001 - already finished
                pass

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


NODE_CHECK_LOCK = ".sweep.nodecheck"
NODE_CHECK_S = 120.0


def _node_facts(plan_dir: str, probe_lock: bool = True) -> dict:
    """What a node must share with the driver: the plan at the same path, versions, and flock."""
    import platform
    facts: dict = {"host": socket.gethostname(), "python": platform.python_version()}
    for mod in ("numpy", "torch", "ray", "google.protobuf"):
        try:
            facts[mod] = __import__(mod, fromlist=["__version__"]).__version__
        except Exception as e:  # noqa: BLE001
            facts[mod] = f"missing ({type(e).__name__})"
    pkg = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for p in sorted(pkg.rglob("*.py")) + sorted(pkg.glob("_C*.so")):
        h.update(str(p.relative_to(pkg)).encode() + b"\0" + p.read_bytes())
    facts["replicate package (sha256)"] = h.hexdigest()[:16]
    try:
        facts["plan.json (sha256)"] = hashlib.sha256((Path(plan_dir) / "plan.json").read_bytes()).hexdigest()[:16]
    except OSError as e:
        facts["plan.json (sha256)"] = f"unreadable at {plan_dir} ({e.strerror or e})"
    if probe_lock:
        try:
            fd = os.open(Path(plan_dir) / NODE_CHECK_LOCK, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError as e:
            facts["lock"] = f"cannot open ({e.strerror or e})"
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                facts["lock"] = "acquired although the driver holds it"
            except BlockingIOError:
                facts["lock"] = "held elsewhere"
            except OSError as e:
                facts["lock"] = f"flock fails ({e.strerror or e})"
            finally:
                os.close(fd)
    return facts


def _ray_network(plan_dir: str, net: dict, max_attempts: int, env: dict, threads: Optional[int] = None,
                 blas: Optional[str] = None) -> dict:
    """The Ray task: :func:`run_network` on the GPU Ray assigned (if any)."""
    import ray
    gpu = "0" if ray.get_gpu_ids() else None
    return run_network(plan_dir, net, max_attempts=max_attempts, gpu=gpu, env=env,
                       say=lambda m: print(m, flush=True), threads=threads, blas=blas)


# -- the sweep -------------------------------------------------------------------------------------
def _earlier_status(plan_dir: Path, running: set) -> Dict[str, dict]:
    """Records of an earlier sweep_status.json for networks this sweep does not run."""
    try:
        old = json.loads((plan_dir / STATUS_FILE).read_text())
        return {k: v for k, v in old["networks"].items() if k not in running and isinstance(v, dict)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _select(nets: List[dict], patterns: Optional[str]) -> List[dict]:
    if not patterns:
        return nets
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    for p in pats:
        if not any(fnmatch.fnmatchcase(n["name"], p) for n in nets):
            raise PlanError(f"--nets pattern {p!r} matches no network of the plan")
    return [n for n in nets if any(fnmatch.fnmatchcase(n["name"], p) for p in pats)]


def _dry_run(plan_dir: Path, nets: List[dict], selected: List[dict], args=None) -> int:
    names = {n["name"] for n in selected}
    engine = getattr(args, "engine", "local")
    if engine == "ray":
        cpus = getattr(args, "cpus_per_network", 1)
        host = f"the Ray cluster at {args.address}" if getattr(args, "address", None) else \
            f"a local Ray cluster ({args.workers or os.cpu_count()} CPUs)"
        print(f"would run on {host}: a task per network, {cpus} CPU(s) each (a GPU each when the cluster has "
              "GPUs); the nodes are checked at start (same plan path, flock, versions)")
        slots: List[str] = ["Ray task"]
    else:
        try:
            import torch
            ngpu = torch.cuda.device_count()
        except Exception:  # noqa: BLE001 - no usable CUDA: CPU
            ngpu = 0
        workers = getattr(args, "workers", None)
        n = min(workers or ngpu, ngpu) if ngpu else (workers or 1)
        slots = [f"local GPU {i}" for i in range(n)] if ngpu else [f"local CPU worker {i + 1}" for i in range(n)]
        print(f"would run on this machine ({socket.gethostname()}): {n} worker(s), "
              + (f"GPUs {','.join(str(i) for i in range(n))}" if ngpu else "CPU"))
    k = 0
    for net in selected:
        d = plan_dir / net["name"]
        state = latest_snapshot(d, net["snapshot_prefix"], net["max_iter"])
        if is_finished(d, net):
            what = "skip (finished)"
        elif state is not None:
            what = f"resume from {state.relative_to(plan_dir)}"
        elif net.get("weights"):
            what = f"start from {net['weights']}"
        else:
            what = "start from scratch"
        base = net.get("base")
        if base and not is_finished(plan_dir / base, next(n for n in nets if n["name"] == base)):
            what += f", after {base}" + ("" if base in names else " (not selected: would be blocked)")
        if not is_finished(d, net):
            what += f" [on {slots[k % len(slots)]}]"
            k += 1
        print(f"{net['name']}: {what}")
    return 0


# -- sweep status ----------------------------------------------------------------------------------
_SPEED = re.compile(r"\] Iteration (\d+) \(([\d.]+) iter/s, ([\d.eE+-]+)s/(\d+) iters?\)")
_ITER = re.compile(r"\] Iteration (\d+)")


def _locked(net_dir: Path) -> bool:
    """A sweep's trainer holds the network's lock now."""
    try:
        fd = os.open(net_dir / LOCK_FILE, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def network_status(plan_dir, net: dict, record: Optional[dict] = None) -> dict:
    """One network's state from the files on disk: state, iteration, last test accuracy, seconds
    per iteration (the last logged displays) and ETA."""
    from .logparse import parse_file, read_text
    d = Path(plan_dir) / net["name"]
    logs = _attempt_logs(d)
    it, speeds, acc = None, [], None
    for log in logs:
        try:
            text = read_text(log)
        except OSError:
            continue
        for m in _ITER.finditer(text):
            it = int(m.group(1))
        speeds += [(float(m.group(3)), int(m.group(4))) for m in _SPEED.finditer(text) if float(m.group(2)) > 0]
        for t in parse_file(log):
            v = t.value("accuracy")
            if v is None:
                v = next((val for name, val in t.outputs.values() if name and "acc" in name), None)
            if v is None:
                v = t.value(0)
            if v is not None:
                acc = (t.iteration, v)
    snap = latest_snapshot(d, net["snapshot_prefix"], net["max_iter"])
    if snap is not None:
        it = max(it or 0, _iteration(snap))
    rec = record or {}
    if is_finished(d, net):
        state, it = "finished", net["max_iter"]
    elif _locked(d):
        state = "running"
    elif rec.get("status") in ("failed", "blocked", "interrupted"):
        state = rec["status"]
    elif snap is not None or logs:
        state = "partial"
    else:
        state = "pending"
    recent = speeds[-10:]
    s_per_iter = sum(s for s, _ in recent) / sum(k for _, k in recent) if recent else None
    eta = None
    if state != "finished" and s_per_iter is not None:
        eta = (net["max_iter"] - (it or 0)) * s_per_iter
    return {"name": net["name"], "state": state, "iteration": it, "max_iter": net["max_iter"],
            "test_iteration": acc[0] if acc else None, "accuracy": acc[1] if acc else None,
            "s_per_iter": s_per_iter, "eta_s": eta, "reason": rec.get("reason", "") if state in
            ("failed", "blocked", "interrupted") else "", "attempts": len(logs)}


def status_main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m replicate sweep status",
                                 description="each network's state, iteration, last test accuracy, time "
                                             "per iteration and ETA, from the files in PLAN_DIR")
    ap.add_argument("plan_dir")
    ap.add_argument("--nets", default=None, help="comma-separated name patterns (fnmatch)")
    ap.add_argument("--json", action="store_true", help="one JSON object per network")
    args = ap.parse_args(argv)
    try:
        plan = load_plan(args.plan_dir)
        selected = _select(plan, args.nets)
    except PlanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        records = json.loads((Path(args.plan_dir) / STATUS_FILE).read_text()).get("networks", {})
    except (OSError, ValueError, AttributeError):
        records = {}
    rows = [network_status(args.plan_dir, n, records.get(n["name"]) if isinstance(records, dict) else None)
            for n in selected]
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    table = [("network", "state", "iter", "accuracy", "s/iter", "ETA", "note")]
    for r in rows:
        table.append((r["name"], r["state"], f"{r['iteration'] if r['iteration'] is not None else '-'}/{r['max_iter']}",
                      f"{r['accuracy']:.4f} @{r['test_iteration']}" if r["accuracy"] is not None else "-",
                      f"{r['s_per_iter']:.4g}" if r["s_per_iter"] is not None else "-",
                      _fmt_s(r["eta_s"]) if r["eta_s"] is not None else "-", r["reason"]))
    widths = [max(len(t[i]) for t in table) for i in range(6)]
    for t in table:
        print(("  ".join(c.ljust(w) for c, w in zip(t[:6], widths)) + ("  " + t[6] if t[6] else "")).rstrip())
    counts: Dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    print(", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _summary(records: Dict[str, dict], order: List[str]) -> str:
    rows = [("network", "status", "attempts", "wall", "note")]
    for name in order:
        r = records[name]
        rows.append((name, r["status"], str(r.get("attempts", 0)), _fmt_s(r.get("wall_s", 0.0)),
                     r.get("reason", "") if r["status"] != "finished" else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + ("  " + row[4] if row[4] else "")
             for row in rows]
    counts: Dict[str, int] = {}
    for name in order:
        counts[records[name]["status"]] = counts.get(records[name]["status"], 0) + 1
    lines.append(", ".join(f"{v} {k}" for k, v in counts.items()))
    return "\n".join(lines)


def sweep(plan_dir, *, engine: str = "local", workers: Optional[int] = None, address: Optional[str] = None,
          retries: int = 2, nets: Optional[str] = None, threads: Optional[int] = None,
          cpus_per_network: int = 1, blas: Optional[str] = None, allow_mixed_blas: bool = False,
          zygote: Optional[bool] = None) -> int:
    """Run the plan (see the module's doc); returns the exit code.  ``blas``: the trainers' BLAS
    mode (default: env REPLICATE_BLAS, else exact on CPU and fast on GPUs).  ``zygote``: the local
    engine's trainers fork from one server (default: yes unless env REPLICATE_ZYGOTE=0)."""
    plan_dir = Path(plan_dir)
    plan = load_plan(plan_dir)
    by_name = {n["name"]: n for n in plan}
    selected = _select(plan, nets)
    order = [n["name"] for n in selected]
    records: Dict[str, dict] = {name: {"name": name, "status": "pending", "attempts": 0, "wall_s": 0.0}
                                for name in order}
    t0 = time.time()
    lock = threading.Lock()
    env = forwarded_env()
    status = {"version": 1, "plan_dir": str(plan_dir.resolve()), "engine": engine, "started": _now(),
              "networks": records}
    earlier = _earlier_status(plan_dir, set(order))  # networks this sweep does not run keep their status
    bar = Progress(len(order), "sweep", enabled=sys.stderr.isatty())

    def say(msg: str) -> None:
        with lock:
            if bar.enabled:
                sys.stderr.write("\r\033[K")
            print(msg, flush=True)
            if bar.enabled:
                bar._draw(time.monotonic())

    def save() -> None:
        counts: Dict[str, int] = {}
        for r in records.values():
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        status.update(counts=counts, wall_s=round(time.time() - t0, 3), updated=_now())
        status["networks"] = {**earlier, **records} if earlier else records
        _write_json(plan_dir / STATUS_FILE, status)

    def settle(name: str, rec: dict) -> None:
        records[name] = rec
        bar.update(1)
        r = rec
        note = f" ({r['reason']})" if r.get("reason") and r["status"] != "skipped" else ""
        say(f"{name}: {r['status']} after {r.get('attempts', 0)} attempt(s), {_fmt_s(r.get('wall_s', 0))}{note}")
        save()
        if r["status"] in ("failed", "blocked", "interrupted"):  # block its dependants, transitively
            for other in order:
                if records[other]["status"] == "pending" and by_name[other].get("base") == name:
                    settle(other, {"name": other, "status": "blocked", "attempts": 0, "wall_s": 0.0,
                                   "reason": f"base {name} {r['status']}"})

    max_attempts = retries + 1
    used: Dict[str, int] = {name: 0 for name in order}
    logs_before: Dict[str, int] = {}  # attempt logs before the latest submission
    first_log: Dict[str, int] = {}  # ... before the first one
    first_start: Dict[str, float] = {}
    def refuse_mixed(mode: str) -> bool:
        """Say why and return True when the plan holds networks trained in another mode."""
        mixed = mixed_blas(plan_dir, plan, mode)
        if mixed and not allow_mixed_blas:
            more = f" and {len(mixed) - 10} more" if len(mixed) > 10 else ""
            print(f"error: this sweep trains in BLAS mode {mode}, but {len(mixed)} network(s) of {plan_dir} were "
                  f"trained in another: {', '.join(mixed[:10])}{more}. One plan's results come from one mode: "
                  f"sweep with that mode (--blas), re-plan those networks with --force to train them again, or "
                  f"pass --allow-mixed-blas to keep them (the report lists each network's mode).", file=sys.stderr)
            return True
        if mixed:
            say(f"warning: --allow-mixed-blas: {len(mixed)} network(s) were trained in another mode than {mode}: "
                f"{', '.join(mixed[:10])}{' ...' if len(mixed) > 10 else ''}")
        return False

    mode = blas or os.environ.get("REPLICATE_BLAS") or None
    if mode is not None and mode not in ("exact", "fast"):
        print(f"error: BLAS mode {mode!r} (REPLICATE_BLAS): use exact or fast", file=sys.stderr)
        return 2
    if mode is None and engine == "local":  # the local engine puts a network on each GPU there is
        try:
            import torch
            mode = "fast" if torch.cuda.device_count() else "exact"
        except Exception:  # noqa: BLE001 - no usable CUDA: CPU
            mode = "exact"
    if mode is not None and refuse_mixed(mode):
        bar.close()
        return 2
    status["blas"] = mode
    save()
    if zygote is None:
        zygote = os.environ.get("REPLICATE_ZYGOTE", "1") != "0"
    eng = _LocalEngine(str(plan_dir), workers, env, say, threads, zygote) if engine == "local" else \
        _RayEngine(str(plan_dir), workers, address, env, cpus_per_network, threads)
    if engine == "ray":  # every node must see the same plan, versions and locks
        problems = eng.check_nodes()
        if problems:
            print(f"error: the Ray cluster cannot run {plan_dir}:\n  " + "\n  ".join(problems) +
                  "\n(a multi-node sweep needs PLAN_DIR on a filesystem every node mounts at the same path, "
                  "with working flock, and the same versions everywhere: see the README)", file=sys.stderr)
            eng.close()
            bar.close()
            return 2
    if mode is None:  # Ray: the cluster says whether there are GPUs
        mode = "fast" if eng.has_gpus else "exact"
        if refuse_mixed(mode):
            eng.close()
            bar.close()
            return 2
    eng.blas = status["blas"] = mode
    say(f"sweep {plan_dir}: {len(order)} network(s), {eng.where}, BLAS {mode}, retries {retries}")
    interrupted = 0
    old_term = signal.signal(signal.SIGTERM, signal.default_int_handler) \
        if threading.current_thread() is threading.main_thread() else None
    try:
        for name in order:  # finished ones first, so their dependants may start at once
            if is_finished(plan_dir / name, by_name[name]):
                settle(name, {"name": name, "status": "skipped", "attempts": 0, "wall_s": 0.0,
                              "reason": "already finished"})
        while True:
            try:
                if not interrupted:
                    for name in order:
                        if eng.free() <= 0:
                            break
                        if records[name]["status"] != "pending":
                            continue
                        base = by_name[name].get("base")
                        if base in records and records[base]["status"] not in ("finished", "skipped"):
                            continue  # waits for its base
                        if base and base not in records and not is_finished(plan_dir / base, by_name[base]):
                            settle(name, {"name": name, "status": "blocked", "attempts": 0, "wall_s": 0.0,
                                          "reason": f"base {base} is not finished and not selected"})
                            continue
                        logs_before[name] = len(_attempt_logs(plan_dir / name))
                        first_log.setdefault(name, logs_before[name])
                        first_start.setdefault(name, time.time())
                        where = eng.submit(by_name[name], max_attempts - used[name])
                        records[name] = dict(records[name], status="running", started=_now())
                        say(f"{name}: start on {where}")
                        save()
                if not eng.running:
                    break
                for name, res in eng.wait(0.5):
                    if isinstance(res, dict):  # with the attempts of tasks that died before it
                        res["attempts"] += used[name]
                        res["rcs"] = [None] * used[name] + res.get("rcs", [])
                        logs = _attempt_logs(plan_dir / name)[first_log[name]:]
                        res["logs"] = [str(p.relative_to(plan_dir / name)) for p in logs]
                        res["wall_s"] = round(time.time() - first_start[name], 3)
                        settle(name, res)
                        continue
                    # the task died (a killed Ray worker): count its attempts from its logs
                    n = max(1, len(_attempt_logs(plan_dir / name)) - logs_before.get(name, 0))
                    used[name] += n
                    reason = f"{type(res).__name__}: {str(res).strip().splitlines()[0] if str(res).strip() else ''}"
                    if interrupted or used[name] >= max_attempts:
                        settle(name, {"name": name, "status": "interrupted" if interrupted else "failed",
                                      "attempts": used[name], "reason": reason,
                                      "wall_s": round(time.time() - first_start[name], 3)})
                    else:
                        say(f"{name}: attempt {used[name]} failed ({reason}); resubmitting")
                        records[name] = dict(records[name], status="pending")
            except KeyboardInterrupt:
                interrupted += 1
                say("interrupted: stopping the trainers (they snapshot); Ctrl-C again kills them"
                    if interrupted == 1 else "killing the trainers")
                eng.interrupt(min(interrupted, 2))
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        for name in order:
            if records[name]["status"] in ("pending", "running"):
                records[name] = dict(records[name], status="interrupted" if interrupted else "blocked",
                                     reason=records[name].get("reason") or "the sweep stopped")
        status["ended"] = _now()
        save()
        bar.close()
        eng.close()
    print(_summary(records, order), flush=True)
    statuses = {r["status"] for r in records.values()}
    if interrupted or "interrupted" in statuses:
        return 130
    return 1 if statuses & {"failed", "blocked"} else 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m replicate sweep", description=__doc__.split("\n\n")[0].replace("``", ""))
    ap.add_argument("plan_dir", help="folder with plan.json (written by python -m replicate plan)")
    ap.add_argument("--engine", choices=("local", "ray"), default="local",
                    help="local: subprocesses on this machine (default); ray: a Ray task per network")
    ap.add_argument("--workers", type=int, default=None,
                    help="networks at a time (local: default 1, at most one per GPU; ray: the local "
                         "cluster's CPUs (default: all), or no limit with --address)")
    ap.add_argument("--address", default=None, help="ray: join this cluster (auto or HOST:PORT)")
    ap.add_argument("--retries", type=int, default=2, help="retries of a failed network (default 2)")
    ap.add_argument("--nets", default=None, help="comma-separated name patterns (fnmatch) to run")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads per trainer (OMP_NUM_THREADS; default: local CPU runs share the cores, "
                         "cores / workers each; ray: --cpus-per-network); an OMP_NUM_THREADS already set wins")
    ap.add_argument("--cpus-per-network", type=int, default=1,
                    help="ray: CPUs each network's task asks for (default 1)")
    ap.add_argument("--blas", choices=("exact", "fast"), default=None,
                    help="every trainer's BLAS mode (default: env REPLICATE_BLAS, else exact on CPU: Caffe's bits; "
                         "fast when the networks run on GPUs, where no mode promises Caffe's CPU bits)")
    ap.add_argument("--allow-mixed-blas", action="store_true",
                    help="run even though some networks of the plan were trained in another BLAS mode")
    ap.add_argument("--no-zygote", dest="zygote", action="store_false", default=None,
                    help="local: start each trainer as a fresh process (default: trainers fork from one server "
                         "that has imported torch once, about 1 s less each, same code and bits; env "
                         "REPLICATE_ZYGOTE=0 does the same)")
    ap.add_argument("--dry-run", action="store_true", help="say what would run, run nothing")
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["status"] and not (Path("status") / "plan.json").is_file():
        return status_main(argv[1:])
    args = build_parser().parse_args(argv)
    if (args.workers is not None and args.workers < 1 or args.retries < 0 or args.cpus_per_network < 1
            or args.threads is not None and args.threads < 1):
        print("error: --workers, --threads and --cpus-per-network must be >= 1 and --retries >= 0", file=sys.stderr)
        return 2
    if args.address and args.engine != "ray":
        print("error: --address needs --engine ray", file=sys.stderr)
        return 2
    try:
        if args.dry_run:
            plan = load_plan(args.plan_dir)
            try:
                return _dry_run(Path(args.plan_dir), plan, _select(plan, args.nets), args)
            except BrokenPipeError:  # `... --dry-run | head`: no traceback, no error at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
        return sweep(args.plan_dir, engine=args.engine, workers=args.workers, address=args.address,
                     retries=args.retries, nets=args.nets, threads=args.threads,
                     cpus_per_network=args.cpus_per_network, blas=args.blas,
                     allow_mixed_blas=args.allow_mixed_blas, zygote=args.zygote)
    except PlanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
