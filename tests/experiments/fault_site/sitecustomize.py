"""Test-only fault injection for sweep trainers (never shipped: tests put this folder on PYTHONPATH).

``REPLICATE_TEST_FAULT`` = JSON ``{"net": NAME, "iter": N, "action": A, "once": MARKER}``.  The
solver's snapshot is wrapped (in a trainer, and in the sweep's fork server, whose forks are
trainers); in a trainer whose working directory is the network's folder, the first to reach the
snapshot of iteration N (it creates MARKER exclusively) then:

* ``trainer``: SIGKILLs itself right after the snapshot;
* ``supervisor``: SIGKILLs its supervisor (env REPLICATE_SWEEP_PID: the sweep's Ray worker); it dies
  with it (PR_SET_PDEATHSIG);
* ``stop``: SIGINTs its supervisor (the sweep) and waits for the stop request that comes back;
* ``hold``: writes its pid to MARKER and sleeps (the test kills something);
* ``enospc``: the snapshot's write fails half-way with ENOSPC (a full disk), through the real
  atomic-write helper.
"""
import json
import os

_spec = os.environ.get("REPLICATE_TEST_FAULT")
if _spec:
    _spec = json.loads(_spec)
    import errno
    import signal
    import time

    from replicate import fileio, net as _net, solver as _solver

    def _claim() -> bool:
        try:
            fd = os.open(_spec["once"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True

    def _full_disk_write(path, data, **kw):
        with fileio.atomic_writer(path) as f:
            os.write(f.fileno(), bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))

    _original = _solver.SGDSolver.snapshot

    def _supervisor() -> int:
        return int(os.environ.get("REPLICATE_SWEEP_PID") or os.getppid())

    def snapshot(self):
        at, action = self.iter == int(_spec["iter"]), _spec["action"]
        at = at and os.path.basename(os.getcwd()) == _spec["net"]
        if action == "enospc":
            if not (at and _claim()):
                return _original(self)
            saved = _net.atomic_write, _solver.atomic_write
            _net.atomic_write = _solver.atomic_write = _full_disk_write
            try:
                return _original(self)
            finally:
                _net.atomic_write, _solver.atomic_write = saved
        path = _original(self)
        if not (at and _claim()):
            return path
        if action == "stop":
            os.kill(_supervisor(), signal.SIGINT)
            while not self._pending:
                time.sleep(0.01)
            return path
        if action == "hold":
            while True:
                time.sleep(1)
        os.kill(os.getpid() if action == "trainer" else _supervisor(), signal.SIGKILL)
        time.sleep(60)  # the parent's death SIGKILLs this process (PR_SET_PDEATHSIG)
        return path

    _solver.SGDSolver.snapshot = snapshot
