"""glog-format log lines with Caffe 1.0's messages, so Caffe's own log tools read our logs.

Lines look like ``I1127 15:05:55.123456 12345 solver.cpp:239] Iteration 20 (...), loss = 0.5``:
the ``MMDD`` date form that Caffe's ``tools/extra/parse_log.py`` parses, the process id, and the
Caffe source file and line that prints the same message.  Numbers are printed as C++ ``ostream``
prints a float (6 significant digits, ``%g``).
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
    "snapshot_prefix": "caffe.cpp:0", "restoring": "solver.cpp:297",
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
        self.fh = open(file, "a" if append else "w", encoding="utf-8") if file else None
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


class NullLog(CaffeLog):
    def __init__(self):
        super().__init__(None, None)

    def __call__(self, key, message, level="I"):
        pass
