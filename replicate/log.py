"""glog-format log lines with Caffe 1.0's messages, so Caffe's own log tools read our logs.

Lines look like ``I1127 15:05:55.123456 12345 solver.cpp:239] Iteration 20 (...), loss = 0.5``:
the ``MMDD`` date form that Caffe's ``tools/extra/parse_log.py`` parses, the process id, and the
Caffe source file and line that prints the same message.  Numbers are printed as C++ ``ostream``
prints a float (6 significant digits, ``%g``).

Every command's log starts with :func:`header_lines`: the BLAS mode, the library (path, version,
kernels, threads, whether exact mode's check passed) and glibc's version (libm's ``expf``/``powf``/
``logf`` are glibc's), as glog lines of ``caffe.cpp``, which Caffe's log tools pass over.
"""
from __future__ import annotations

import datetime
import math
import os
import sys
import threading
from typing import Optional, TextIO

# Caffe 1.0 (BVLC 9b89154) source locations of the messages we print.
WHERE = {
    "use_cpu": "caffe.cpp:197", "solver_init": "solver.cpp:45", "train_net": "solver.cpp:102",
    "finetune": "solver.cpp:72", "test_net": "solver.cpp:190", "scaffold": "solver.cpp:57",
    "resuming": "caffe.cpp:235", "restore": "sgd_solver.cpp:336", "start": "caffe.cpp:239",
    "solving": "solver.cpp:289", "policy": "solver.cpp:290", "iteration": "solver.cpp:239",
    "train_output": "solver.cpp:258", "lr": "sgd_solver.cpp:112", "testing": "solver.cpp:347",
    "test_loss": "solver.cpp:401", "test_output": "solver.cpp:414", "snapshot_model": "solver.cpp:464",
    "snapshot_state": "sgd_solver.cpp:284", "final_loss": "solver.cpp:327", "done": "solver.cpp:332",
    "caffe_done": "caffe.cpp:250", "stopped": "solver.cpp:311", "clip": "sgd_solver.cpp:99",
    "multistep": "sgd_solver.cpp:50", "net": "net.cpp:284", "test_interrupted": "solver.cpp:396",
    "cli": "caffe.cpp:0", "train_net_param": "solver.cpp:88", "train_net_file": "solver.cpp:92",
    "net_param": "solver.cpp:97", "net_file": "solver.cpp:102", "use_gpu": "caffe.cpp:204",
    "snapshot_prefix": "caffe.cpp:0", "restoring": "solver.cpp:297", "setup": "caffe.cpp:0",
}


def g(x) -> str:
    """A float as C++ ``ostream << float`` prints it (precision 6)."""
    x = float(x)
    if x != x:  # glibc prints the sign bit of a NaN
        return "-nan" if math.copysign(1.0, x) < 0 else "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return "%g" % x


class CaffeLog:
    """Writes glog lines to stderr (default) and/or a file; thread-safe."""

    def __init__(self, file: Optional[str] = None, stream: Optional[TextIO] = sys.stderr, append: bool = False):
        self.stream = stream
        self.fh = None
        if file:  # never through a symlink (a log is streamed, so it is not written atomically)
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
            self.fh = os.fdopen(os.open(file, flags, 0o666), "a" if append else "w", encoding="utf-8")
        self.pid = os.getpid()
        self.lock = threading.Lock()

    def __call__(self, key: str, message: str, level: str = "I") -> None:
        now = datetime.datetime.now()
        head = f"{level}{now:%m%d %H:%M:%S}.{now.microsecond:06d} {self.pid:5d} {WHERE.get(key, key)}] "
        line = head + message + "\n"
        with self.lock:
            for out in (self.stream, self.fh):
                if out is not None:
                    out.write(line)
                    out.flush()

    def close(self) -> None:
        if self.fh:
            self.fh.close()
            self.fh = None


def glibc_version() -> str:
    """glibc's version (``gnu_get_libc_version``), or why it is unknown."""
    import ctypes
    try:
        f = ctypes.CDLL(None).gnu_get_libc_version
    except (OSError, AttributeError):
        return "unknown (not glibc)"
    f.restype = ctypes.c_char_p
    return f().decode()


def _mapped(name: str) -> Optional[str]:
    """The path of a loaded library whose file name starts with ``name`` (from /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if os.path.basename(path).startswith(name):
                    return os.path.realpath(path)
    except OSError:
        pass
    return None


def environment(device: str = "cpu", blas: bool = True) -> dict:
    """The facts that decide our bits: BLAS mode and library (:func:`replicate.ops.blas_info`;
    left out with ``blas=False``), glibc and libm, torch and its thread count, the CPU.  JSON-able;
    ``make bench`` records it."""
    import torch
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
    except OSError:
        pass
    if cpu is None:  # platform.processor() runs `uname -p` in a subprocess: only when /proc has no name
        import platform
        cpu = platform.processor() or platform.machine()
    out = {"glibc": glibc_version(), "libm": _mapped("libm.so") or _mapped("libm-"),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "device": device, "cpu": cpu,
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}
    if blas:
        from . import ops as R
        out = {"blas": R.blas_info(), **out}
    return out


def header_lines(env: dict) -> list:
    """The first messages of every log, from :func:`environment`."""
    b = env["blas"]
    gpu = not str(env.get("device", "cpu")).startswith("cpu")
    core = f"{b['core']} kernels" if b.get("core") else "its kernels"
    if b["mode"] == "exact" and b["verified"]:
        mode = (f"BLAS mode: exact (Caffe 1.0's BLAS calls on OpenBLAS {b['version']}, {b['core']} kernels, "
                f"{b['threads']} thread per call: the library checked, Caffe's bits on CPU)")
    elif b["mode"] == "exact":
        why = (b.get("status") or "").partition(": ")[2]
        mode = (f"BLAS mode: exact on an unverified library (REPLICATE_UNVERIFIED_BLAS=1: {why}): Caffe's BLAS "
                "calls, no bit promise")
    elif b["path"] == "torch":
        mode = "BLAS mode: fast (gemm/gemv by torch's matmul; not bit-for-bit with Caffe)"
    else:
        mode = f"BLAS mode: fast (gemm/gemv on {b.get('library', 'the CBLAS')}'s {core}; not bit-for-bit with Caffe)"
    lines = [mode]
    if gpu:
        lines.append(f"GPU {env['device']}: " + ("Caffe's cuBLAS calls (exact)" if b["mode"] == "exact" else
                                                  "torch's matmul, batched (fast)")
                     + ", TF32 off; no mode promises Caffe's CPU bits on a GPU")
    status = {"verified": "verified for exact mode", "fast": "not checked (fast mode)"}.get(
        b.get("status"), b.get("status"))
    if b["path"] == "torch":
        lines.append(f"BLAS library: torch's at::addmm ({b.get('status', '')})")
    else:
        lines.append(f"BLAS library: {b['path']} ({b.get('file')}{', a private copy' if b.get('copy') == 'private' else ''}):"
                     f" {b.get('library')} {b.get('version') or '?'}, core {b.get('core') or '?'}, "
                     f"{b.get('threads')} thread(s) per call, {b.get('parallel')} build, {status}; "
                     f"config: {b.get('config')}")
    lines.append(f"C library: glibc {env['glibc']} (libm {env.get('libm') or '?'}: expf, powf, logf); "
                 f"torch {env['torch']}, {env['torch_threads']} CPU thread(s); CPU: {env['cpu']}")
    return lines


class NullLog(CaffeLog):
    def __init__(self):
        super().__init__(None, None)

    def __call__(self, key, message, level="I"):
        pass
