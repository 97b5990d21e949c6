"""A fork server ("zygote"): a process that has imported torch and this package once, and starts
each run (``python -m replicate train|test|time|blobs``) as a fork of itself.

A fresh process spends about 1 s (more on a busy machine) importing torch before it computes
anything; a fork of a process that has already imported it starts its first iteration a few
hundredths of a second after the request.  Two users:

* the sweep (local engine, CPU or GPU): one server per sweep, started with the first trainer and
  with the trainers' environment; every trainer is a fork of it (``sweep --no-zygote`` or env
  ``REPLICATE_ZYGOTE=0``: fresh processes, as before);
* ``python -m replicate serve [--socket PATH]``: a server a user starts once; with env
  ``REPLICATE_SERVER=PATH`` (or ``1`` for the default path) the compute commands run as forks of
  it.  The command's process passes its standard streams, working folder, umask, environment and
  arguments, forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT to the run (and stops and continues it with
  itself: ^Z, fg), and exits as the run exits.

A fork runs the code a fresh process would run, from the same state.  The server only imports
(what ``python -m replicate train`` imports before it parses a prototxt), with the garbage
collector paused and its objects frozen, as a fresh run does.  It computes nothing and starts no
torch or OpenMP thread pool (numpy's own OpenBLAS pool may exist: OpenBLAS stops it around a fork);
a run sets up and checks its own BLAS, exact or fast, as a fresh process does (OpenBLAS's
constructor runs in the run's ``dlopen``; with env REPLICATE_BLAS the server has loaded it already,
as a fresh process would have at the same point).  A request is refused (and the run starts as a
fresh process, with one line saying why) unless:

* its environment equals the server's, up to :data:`RUNTIME_ENV` and :data:`SESSION_ENV`
  (libraries read variables such as OMP_NUM_THREADS or REPLICATE_BLAS when they load, which the
  server did);
* the code is the same: interpreter, its flags and options, and this package's and torch's files
  (paths, sizes, modification times) as the requester sees them (:func:`code_fingerprint`), and
  every file the server has loaded code from is unchanged (:func:`_loaded_files`): a server
  started before a rebuild, a ``git pull`` or a ``pip install`` is refused;
* its CPU affinity, cgroup limits, resource limits, priority, user and groups are the server's
  (libgomp sized its pool from the affinity; a fork would take the server's limits);
* the server has no more threads than after its imports.

The run gets the requester's umask, working folder, ``sys.path[0]`` and ignored signals (``nohup``).

So results are the same bits either way (tests/replicate/test_zygote.py trains Caffe's golden run
through the server).  Signals reach the run through a pidfd (no stray signal to a reused pid);
a run dies with its server (PR_SET_PDEATHSIG) and is killed when the process that asked for it goes
away (its connection closes), as a fresh process dies with SIGKILL.  Stopping the server
(SIGTERM, SIGINT, SIGHUP) first sends SIGINT to its runs (a training run then stops with a snapshot,
as ``-sigint_effect stop`` does) and waits up to :data:`STOP_GRACE_S` for them.  The socket lives in
a folder only its user can enter; both sides check the other's uid (SO_PEERCRED).

Protocol: AF_UNIX SOCK_SEQPACKET; the request is one JSON message with the stdin, stdout, stderr
and any extra descriptors attached (SCM_RIGHTS); the server answers ``{"pid": N}`` (with a pidfd
attached) then ``{"rc": R}`` (R < 0: killed by signal -R, as Popen reports it), or ``{"error":
"..."}``.

This module imports nothing heavy; the server imports torch in :func:`serve`.
"""
from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .fileio import current_umask

# Variables read at run time (by this package), so they may differ between the server and a request.
RUNTIME_ENV = frozenset({"REPLICATE_STARTUP_TRACE", "REPLICATE_SERVER", "REPLICATE_FAST_EXIT", "PWD", "OLDPWD",
                         "_", "SHLVL", "COLUMNS", "LINES"})
# A terminal session's own variables, which no library of a run reads: another shell, tmux pane or
# ssh login may run its commands through the same server.
SESSION_ENV = frozenset({"TERM", "COLORTERM", "WINDOWID", "DISPLAY", "XAUTHORITY", "STY", "WINDOW", "TMUX",
                         "TMUX_PANE", "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY", "SSH_AUTH_SOCK", "SSH_AGENT_PID",
                         "TERM_PROGRAM", "TERM_PROGRAM_VERSION", "TERM_SESSION_ID", "VTE_VERSION", "LS_COLORS",
                         "HISTFILE", "MAIL", "XDG_SESSION_ID", "XDG_SESSION_TYPE", "XDG_SESSION_CLASS", "XDG_VTNR",
                         "XDG_SEAT", "GPG_TTY"})
MAX_MESSAGE = 1 << 20
MAX_FDS = 16
READY_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 2.0   # the server waits this long for a connected client's request
STOP_GRACE_S = 30.0
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_BLOCKED_AT_FORK = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD}
COMPUTE_COMMANDS = ("train", "test", "time", "blobs")

class ZygoteUnavailable(Exception):
    """The server cannot start this run (not running, refused, died): run it as a fresh process."""


def default_socket() -> str:
    """``$XDG_RUNTIME_DIR/replicate/server.sock``, else ``/tmp/replicate-<uid>/server.sock``."""
    run = os.environ.get("XDG_RUNTIME_DIR")
    if run and os.path.isdir(run):
        folder = Path(run) / "replicate"
    else:
        folder = Path(tempfile.gettempdir()) / f"replicate-{os.getuid()}"
    return str(folder / "server.sock")


def env_difference(a: Dict[str, str], b: Dict[str, str]) -> List[str]:
    """The variables (outside :data:`RUNTIME_ENV` and :data:`SESSION_ENV`) that differ between ``a`` and ``b``."""
    keys = (set(a) | set(b)) - RUNTIME_ENV - SESSION_ENV
    return sorted(k for k in keys if a.get(k) != b.get(k))


def interpreter_options() -> str:
    """The interpreter's flags, -W and -X options (a fresh run would have the requester's)."""
    return repr((tuple(sys.flags), list(sys.warnoptions), sorted(getattr(sys, "_xoptions", {}).items())))


def code_fingerprint(root: Optional[Path] = None) -> str:
    """Which code a run would execute, as the requesting process sees it, without importing
    anything heavy: the interpreter (its real path and version), and the path, size and
    modification time of every source and extension file of this package (replicate,
    prototxt_like, data_prep under ``root``, default: this checkout) and of torch's top-level files.
    (The server also compares :func:`interpreter_options` and re-checks every file it has loaded:
    :func:`_loaded_files`.)"""
    h = hashlib.sha256()
    h.update(repr((os.path.realpath(sys.executable), sys.version)).encode())
    root = Path(__file__).resolve().parent.parent if root is None else Path(root)
    files = []
    for top in ("replicate", "prototxt_like", "data_prep"):
        files += [p for p in (root / top).rglob("*") if p.suffix in (".py", ".so") and "__pycache__" not in p.parts]
    import importlib.util
    spec = importlib.util.find_spec("torch")  # a top-level package: found, not imported
    if spec is not None and spec.origin:
        tdir = Path(spec.origin).parent
        files += [tdir / "__init__.py", tdir / "version.py", *tdir.glob("_C*.so"), *(tdir / "lib").glob("libtorch*.so")]
    for p in sorted(files):
        try:
            st = p.stat()
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()


def _cgroup(proc: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> str:
    """The effective limits of this process's cgroup (cgroup v2: its CPUs, and the tightest memory,
    swap, pids and CPU-bandwidth limits on its path to the root), not the group's name: another
    login or terminal is another group with the same limits.  Elsewhere (cgroup v1 or hybrid) the
    membership itself."""
    try:
        text = Path(proc).read_text()
    except OSError:
        return ""
    lines = text.splitlines()
    if len(lines) != 1 or not lines[0].startswith("0::"):
        return text
    folder = Path(root) / lines[0][3:].lstrip("/")
    chain = []
    while True:
        chain.append(folder)
        if folder == Path(root) or folder.parent == folder:
            break
        folder = folder.parent

    def read(f: Path, name: str) -> Optional[str]:
        try:
            return (f / name).read_text().strip()
        except OSError:
            return None

    def number(v: Optional[str]) -> float:
        return float("inf") if v in (None, "", "max") else float(v.split()[0])

    limits = {"cpuset": next((v for v in (read(f, "cpuset.cpus.effective") for f in chain) if v), "")}
    for name in ("memory.max", "memory.high", "memory.swap.max", "pids.max"):  # the tightest on the path
        limits[name] = min(number(read(f, name)) for f in chain)
    ratios = []
    for f in chain:
        v = read(f, "cpu.max")
        if v and not v.startswith("max"):
            quota, period = v.split()
            ratios.append(float(quota) / float(period))
    limits["cpu.max"] = min(ratios, default=float("inf"))
    return repr(sorted(limits.items()))


def _limits() -> dict:
    """What else a process inherits that a fork would take from the server instead: resource
    limits, scheduling priority, user and groups."""
    import resource
    rl = {name: resource.getrlimit(getattr(resource, name)) for name in dir(resource) if name.startswith("RLIMIT_")}
    return {"rlimits": {k: list(v) for k, v in sorted(rl.items())}, "nice": os.getpriority(os.PRIO_PROCESS, 0),
            "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups())}


def _loaded_files() -> Dict[str, tuple]:
    """(size, mtime) of every file this process has loaded code from: the modules' files and the
    shared libraries mapped (from /proc/self/maps)."""
    paths = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/") and ".so" in parts[5]:
                paths.add(parts[5])
    except OSError:
        pass
    stats = {p: _stat(p) for p in sorted(x for x in paths if isinstance(x, str))}
    return {p: v for p, v in stats.items() if v is not None}


def _affinity() -> List[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _private_folder_problem(folder: str) -> Optional[str]:
    """Why ``folder`` is not a folder only this user can enter (None when it is)."""
    try:
        st = os.lstat(folder)
    except OSError as e:
        return f"{folder}: {e.strerror}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{folder} is not a folder"
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return f"{folder} must belong to this user and be private (mode 700)"
    return None


# -- the client ----------------------------------------------------------------------------------
def _send(sock: socket.socket, obj: dict, fds: Sequence[int] = ()) -> None:
    data = json.dumps(obj).encode()
    if len(data) > MAX_MESSAGE:
        raise ZygoteUnavailable(f"request of {len(data)} bytes (at most {MAX_MESSAGE})")
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


def _recv(sock: socket.socket, timeout: Optional[float] = None, fds: Optional[list] = None) -> Optional[dict]:
    """The next message, None at EOF; socket.timeout when ``timeout`` passes first.  Descriptors
    that came with it are appended to ``fds`` (closed when ``fds`` is None)."""
    sock.settimeout(timeout)
    data, got, _, _ = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
    if fds is None:
        for fd in got:
            os.close(fd)
    else:
        fds.extend(got)
    if not data:
        return None
    return json.loads(data)


class Run:
    """A run forked by a server; the parts of :class:`subprocess.Popen` the sweep uses.  Signals go
    through the run's pidfd when the server sent one: never to another process that reuses its pid."""

    def __init__(self, sock: socket.socket, pid: int, args, pidfd: Optional[int] = None):
        self._sock, self.pid, self.args, self._pidfd = sock, pid, args, pidfd
        self.returncode: Optional[int] = None
        self.server_gone = False
        self._closed = False

    def poll(self) -> Optional[int]:
        try:
            return self.wait(0)
        except subprocess.TimeoutExpired:
            return None

    def wait(self, timeout: Optional[float] = None) -> int:
        if self.returncode is not None:
            return self.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                msg = _recv(self._sock, left)
            except (socket.timeout, BlockingIOError):
                raise subprocess.TimeoutExpired(self.args, timeout) from None
            except InterruptedError:
                continue
            except (OSError, ValueError):
                msg = None
            if msg is None or "rc" not in msg:  # the server died: the run died with it
                self.returncode, self.server_gone = -signal.SIGKILL, True
            else:
                self.returncode = int(msg["rc"])
            self._close()
            return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None or self._closed:
            return
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _close(self) -> None:
        self._closed = True
        self._sock.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def close(self) -> None:
        """Give up the run: the server kills it if it is still running."""
        self._close()


def request(path: str, argv: Sequence[str], *, cwd: Optional[str] = None, env: Optional[Dict[str, str]] = None,
            stdin: int = 0, stdout: int = 1, stderr: int = 2, pass_fds: Sequence[int] = (),
            timeout: float = 10.0, path0: Optional[str] = None, ignored: Optional[Sequence[int]] = None,
            options: Optional[str] = None) -> Run:
    """Ask the server at ``path`` to run ``python -m replicate ARGV`` as a fork; the :class:`Run`
    once it started.  ZygoteUnavailable when it cannot (the caller then runs a fresh process).
    ``path0``: the run's ``sys.path[0]`` (default this process's; ``""`` for a ``python -c``
    process in ``cwd``); ``ignored``: the signals it ignores (default those this process ignores);
    ``options``: its interpreter's options (default this process's; ``""``: the server's own, for
    runs that a fresh process would start with the server's command line, as the sweep's do)."""
    env = dict(os.environ if env is None else env)
    why = _private_folder_problem(os.path.dirname(os.path.abspath(path)))
    if why:
        raise ZygoteUnavailable(why)
    req = {"argv": list(argv), "cwd": os.path.abspath(cwd or os.getcwd()), "env": env,
           "path0": sys.path[0] if path0 is None else path0, "umask": current_umask(), "affinity": _affinity(),
           "cgroup": _cgroup(), "limits": _limits(), "code": code_fingerprint(),
           "options": interpreter_options() if options is None else options,
           "ignored": [int(s) for s in FORWARDED_SIGNALS if signal.getsignal(s) == signal.SIG_IGN]
           if ignored is None else list(ignored)}
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pidfds: list = []
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        if _peer_uid(sock) != os.getuid():
            raise ZygoteUnavailable(f"{path} is served by another user")
        _send(sock, req, [stdin, stdout, stderr, *pass_fds])
        msg = _recv(sock, timeout, pidfds)
    except ZygoteUnavailable:
        sock.close()
        raise
    except (OSError, ValueError) as e:
        sock.close()
        for fd in pidfds:
            os.close(fd)
        raise ZygoteUnavailable(f"{path}: {e.strerror if isinstance(e, OSError) and e.strerror else e}") from None
    if not msg or "pid" not in msg:
        sock.close()
        for fd in pidfds:
            os.close(fd)
        raise ZygoteUnavailable((msg or {}).get("error") or "the server closed the connection")
    for fd in pidfds[1:]:
        os.close(fd)
    return Run(sock, int(msg["pid"]), list(argv), pidfds[0] if pidfds else None)


class Server:
    """A server this process starts and owns (the sweep's), dying with this process.  ``env``: the
    environment of every run it will start (requests with another are refused)."""

    def __init__(self, env: Optional[Dict[str, str]] = None, python: Optional[str] = None):
        self.env = dict(os.environ if env is None else env)
        self.env.pop("REPLICATE_SERVER", None)
        self.folder = tempfile.mkdtemp(prefix="replicate-zygote-")
        self.path = os.path.join(self.folder, "server.sock")
        if len(self.path.encode()) > 100:  # AF_UNIX paths are short
            os.rmdir(self.folder)
            self.folder = tempfile.mkdtemp(prefix="replicate-zygote-", dir="/tmp")
            self.path = os.path.join(self.folder, "server.sock")
        self._lock = threading.Lock()
        self._ready: Optional[bool] = None
        self.why = ""
        self.said: set = set()  # the reasons the sweep has said
        self.proc = subprocess.Popen(
            [python or sys.executable, "-c", "from replicate.zygote import _owned_entry; _owned_entry()",
             str(os.getpid()), self.path],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)

    def ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        """Wait until the server serves (its imports done); False, with :attr:`why`, if it never will."""
        with self._lock:
            if self._ready is None:
                self._ready = False
                deadline = time.monotonic() + timeout
                fd, buf = self.proc.stdout.fileno(), b""  # its own reads: no line left in a buffer
                while not any(line.startswith(b"ready ") for line in buf.split(b"\n")[:-1]):
                    left = deadline - time.monotonic()
                    r = select.select([fd], [], [], max(0.0, left))[0] if left > 0 else []
                    if not r:
                        self.why = f"the fork server was not ready within {timeout:.0f} s"
                        break
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        self.why = f"the fork server exited ({self.proc.wait()})"
                        break
                    buf += chunk
                else:
                    self._ready = True
                if not self._ready:
                    self._stop()
            return self._ready

    def spawn(self, argv: Sequence[str], **kw) -> Run:
        if not self.ready():
            raise ZygoteUnavailable(self.why)
        kw.setdefault("path0", "")  # a fresh trainer is `python -c ...` in its network's folder,
        kw.setdefault("options", "")  # started the way this server was
        return request(self.path, argv, env=kw.pop("env", self.env), **kw)

    def _stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_GRACE_S + 5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> None:
        self._stop()
        if self.proc.stdout:
            self.proc.stdout.close()
        for f in (lambda: os.unlink(self.path), lambda: os.rmdir(self.folder)):
            try:
                f()
            except OSError:
                pass


def run_via_server(path: str, argv: Sequence[str]) -> int:
    """``python -m replicate ARGV`` in a fork of the server at ``path``, this process standing in for
    it: signals forwarded, its exit status returned (a run killed by a signal kills this process with
    the same signal).  ZygoteUnavailable when the server cannot start it (a signal that came
    meanwhile is then raised again here)."""
    pending: List[int] = []
    run: Optional[Run] = None

    def forward(sig, _frame):
        if run is None:
            pending.append(sig)
        else:
            run.send_signal(sig)

    def suspend(_sig, _frame):  # ^Z: the run stops with this process, and goes on with it
        if run is not None:
            run.send_signal(signal.SIGSTOP)
        os.kill(os.getpid(), signal.SIGSTOP)

    def resume(_sig, _frame):
        if run is not None:
            run.send_signal(signal.SIGCONT)

    ignored = [s for s in FORWARDED_SIGNALS if signal.getsignal(s) == signal.SIG_IGN]  # nohup, `&` in a script
    old = {s: signal.signal(s, forward) for s in FORWARDED_SIGNALS if s not in ignored}
    old[signal.SIGTSTP] = signal.signal(signal.SIGTSTP, suspend)
    old[signal.SIGCONT] = signal.signal(signal.SIGCONT, resume)
    try:
        try:
            run = request(path, argv, ignored=ignored)
        except ZygoteUnavailable:
            for s, h in old.items():
                signal.signal(s, h)
            for sig in pending:
                os.kill(os.getpid(), sig)
            raise
        for sig in pending:
            run.send_signal(sig)
        rc = run.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if run.server_gone:
        print(f"replicate: the fork server at {path} went away, and the run with it", file=sys.stderr, flush=True)
    if rc < 0:
        sys.stdout.flush()
        sys.stderr.flush()
        if -rc not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(-rc, signal.SIG_DFL)
        os.kill(os.getpid(), -rc)
        return 128 - rc  # (a signal whose default action does not end a process)
    return rc


# -- the server ----------------------------------------------------------------------------------
def _prepare() -> None:
    """Import what a compute command imports, as a fresh ``python -m replicate train`` does."""
    if sys.path and sys.path[0] in ("", "."):  # `python -c`: the start folder, not each run's cwd
        sys.path[0] = os.getcwd()
    from .__main__ import _import_compute
    _import_compute("train")
    from . import log, timing  # noqa: F401  (and what the commands import later)
    from .fileio import atomic_writer  # noqa: F401


def _owned_entry() -> None:
    """The sweep's server: ``python -c ... OWNER_PID SOCKET``; dies with OWNER_PID."""
    owner, path = int(sys.argv[1]), sys.argv[2]
    die_with_parent(owner)
    sys.exit(serve(path, announce=sys.stdout))


def _set_name(name: str) -> None:
    """This process's name (/proc/PID/comm, 15 bytes at most), as ps -e and top show it."""
    if sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(15, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)  # PR_SET_NAME


def die_with_parent(parent: Optional[int]) -> None:
    """SIGKILL this process when its parent (the thread that forked it) ends (Linux
    PR_SET_PDEATHSIG); end it now if ``parent`` has already gone."""
    if sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if parent is not None and os.getppid() != parent:  # the parent died before prctl
        os._exit(137)


class _State:
    """The server's facts that a request must match, and its live runs."""

    def __init__(self, path: str, listener: socket.socket, wake: tuple):
        self.path, self.listener, self.wake = path, listener, wake
        self.pid = os.getpid()
        self.env = dict(os.environ)
        self.code = code_fingerprint()
        self.options = interpreter_options()
        self.affinity = _affinity()
        self.cgroup = _cgroup()
        self.limits = _limits()
        self.loaded = _loaded_files()
        self.threads = _threads()
        self.runs: Dict[int, socket.socket] = {}   # pid -> its requester's connection
        self.conns: Dict[socket.socket, int] = {}  # and back

    def refusal(self, req: dict, fds: list) -> Optional[str]:
        argv = req.get("argv")
        if not (isinstance(argv, list) and argv and argv[0] in COMPUTE_COMMANDS):
            return f"not a compute command: {argv[:1] if isinstance(argv, list) else argv!r}"
        if len(fds) < 3:
            return "the request did not pass its standard streams"
        if req.get("code") != self.code or req.get("options") not in ("", self.options):
            return ("the server runs other code (another interpreter or options, or this package or torch changed "
                    "since it started): restart it")
        diff = env_difference(self.env, req.get("env") or {})
        if diff:
            return ("its environment differs from the server's in " + ", ".join(diff[:8]) + (" ..." if len(diff) > 8
                    else "") + " (libraries read such variables when they load)")
        if req.get("affinity") != self.affinity:
            return "its CPU affinity differs from the server's"
        if req.get("cgroup") != self.cgroup:
            return "its cgroup's limits differ from the server's"
        limits = req.get("limits") or {}
        rl = limits.get("rlimits") or {}
        diff = sorted(k for k in set(rl) | set(self.limits["rlimits"]) if rl.get(k) != self.limits["rlimits"].get(k))
        if diff:
            return f"its resource limits (ulimit) differ from the server's: {', '.join(diff)}"
        for what in ("nice", "uid", "gid", "groups"):
            if limits.get(what) != self.limits[what]:
                return {"nice": "its priority (nice) differs", "uid": "it runs as another user",
                        "gid": "its group differs", "groups": "its groups differ"}[what] + " from the server's"
        changed = [p for p, v in self.loaded.items() if _stat(p) != v]
        if changed:
            return (f"{changed[0]}{' and ' + str(len(changed) - 1) + ' more' if len(changed) > 1 else ''} changed "
                    "since the server loaded it: restart the server")
        if _threads() > self.threads or threading.active_count() != 1:
            return "the server has started threads since its imports (cannot fork safely)"
        return None


def serve(path: str, announce=None) -> int:
    """Serve forks at ``path`` (its folder made with mode 700 if missing; an existing folder must
    be this user's and private) until SIGTERM, SIGINT or SIGHUP; then the
    runs still going get SIGINT and up to :data:`STOP_GRACE_S` to end, and the rest die with the server."""
    _prepare()
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as e:
        raise SystemExit(f"serve: {folder}: {e.strerror}") from None
    why = _private_folder_problem(folder)
    if why:
        raise SystemExit(f"serve: {why}")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise SystemExit(f"serve: {path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            probe.connect(path)
            raise SystemExit(f"serve: a server is already running at {path}")
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)  # left by a server that died
        finally:
            probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind(path)
    except OSError as e:
        raise SystemExit(f"serve: {path}: {e.strerror}" + (" (another server started meanwhile)"
                                                             if e.errno == 98 else "")) from None
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    stop: List[int] = []
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda sig, _f: stop.append(sig))
    _set_name("replicate serve")
    state = _State(path, listener, (wake_r, wake_w))
    if announce is not None:
        announce.write(f"ready {state.pid} {path}\n")
        announce.flush()
    try:
        grace_end = None
        while True:
            if stop and grace_end is None:  # stop: SIGINT the runs, wait for them a while
                grace_end = time.monotonic() + STOP_GRACE_S
                for pid in state.runs:
                    _kill(pid, signal.SIGINT)
            if grace_end is not None and (not state.runs or time.monotonic() > grace_end):
                break
            watch = [wake_r, *state.conns] + ([listener] if grace_end is None else [])
            try:
                readable = select.select(watch, [], [], 1.0 if grace_end is not None else None)[0]
            except InterruptedError:
                continue
            if wake_r in readable:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                _reap(state)
            for conn in readable:
                if conn is listener:
                    _accept(state)
                elif conn in state.conns:  # EOF (or a stray message): the requester is gone
                    try:
                        gone = not conn.recv(MAX_MESSAGE)
                    except OSError:
                        gone = True
                    if gone:
                        pid = state.conns.pop(conn)
                        state.runs.pop(pid, None)
                        conn.close()
                        _kill(pid, signal.SIGKILL)  # not reaped yet (only _reap reaps): still the run
    finally:
        if os.getpid() == state.pid:
            signal.set_wakeup_fd(-1)
            listener.close()
            try:
                os.unlink(path)
            except OSError:
                pass
    return 0


def _stat(path: str):
    try:
        st = os.stat(path)
        return (st.st_size, st.st_mtime_ns)
    except OSError:
        return None


def _hung_up(conn: socket.socket) -> bool:
    """Whether the requester has gone (it gave up waiting): then its request is not run."""
    conn.setblocking(False)  # (with a timeout, recv would first wait that long for data)
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(state: _State) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = state.runs.pop(pid, None)
        if conn is None:
            continue
        state.conns.pop(conn, None)
        try:
            _send(conn, {"rc": os.waitstatus_to_exitcode(status)})
        except OSError:
            pass
        conn.close()


def _accept(state: _State) -> None:
    try:
        conn, _ = state.listener.accept()
    except OSError:
        return
    fds: List[int] = []
    try:
        if _peer_uid(conn) != os.getuid():
            raise ZygoteUnavailable("another user's request")
        conn.settimeout(REQUEST_TIMEOUT_S)
        data, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, MAX_FDS)
        req = json.loads(data)
        why = state.refusal(req, fds)
        if why:
            raise ZygoteUnavailable(why)
        sys.stdout.flush()
        sys.stderr.flush()
        import ctypes
        ctypes.CDLL(None).fflush(None)  # nothing buffered in C stdio is written again by each run
        if _hung_up(conn):
            raise ZygoteUnavailable("the requester has gone")
        # signals stay pending (not lost to the server's handlers) until the run has its own
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED_AT_FORK)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            raise
        if pid == 0:
            try:
                _child(req, fds, [conn, *state.conns, state.listener, *state.wake], state.pid, old_mask)
            finally:
                os._exit(70)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        state.runs[pid] = conn
        state.conns[conn] = pid
        pidfds = []
        if hasattr(os, "pidfd_open"):
            try:
                pidfds.append(os.pidfd_open(pid))  # before any reaping: it names this run
            except OSError:
                pass
        conn.setblocking(True)
        try:
            _send(conn, {"pid": pid}, pidfds)
        finally:
            for fd in pidfds:
                os.close(fd)
    except Exception as e:  # noqa: BLE001 - refuse this request, keep serving
        why = str(e) if isinstance(e, ZygoteUnavailable) else f"{type(e).__name__}: {e}"
        try:
            _send(conn, {"error": why})
        except OSError:
            pass
        if conn not in state.conns:
            conn.close()
    finally:
        for fd in fds:
            os.close(fd)


def _child(req, fds, close, server_pid, mask) -> None:
    """The forked run: never returns into the server's loop (the caller ends with os._exit too)."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(s, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for s in req.get("ignored") or ():  # as a fresh process inherits them (nohup, `&` in a script)
            signal.signal(int(s), signal.SIG_IGN)
        os.setsid()
        die_with_parent(server_pid)
        _set_name(f"replicate {req['argv'][0]}")  # what ps -e / top show (its command line is the server's)
        for f in close:  # the server's sockets and wake-up pipe (a socket object detached first, so
            try:          # that nothing closes its number again later)
                os.close(f.detach() if isinstance(f, socket.socket) else f)
            except OSError:
                pass
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in set(fds[:3]):
            if fd > 2:
                os.close(fd)
        fds[:3] = []  # the extra descriptors stay open (a lock the run holds, as Popen's pass_fds)
        os.umask(int(req.get("umask", current_umask())))
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        from . import timing
        timing._TRACE = os.environ.get("REPLICATE_STARTUP_TRACE") or None
        timing.mark("forked")
        _reopen_std_streams()
        if "path0" in req and sys.path:
            sys.path[0] = req["path0"]
        argv = list(req["argv"])
        sys.argv = ["python -m replicate", *argv]
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # what came meanwhile reaches the run's handlers
        from .__main__ import exit_now, main
        code = main(argv)
        exit_now(code)
    except SystemExit as e:
        code = _exit_code(e.code)
    except KeyboardInterrupt:
        _quietly(_print_traceback)
        code = -signal.SIGINT  # as Python ends on an uncaught ^C: clean-up below, then by SIGINT
    except BaseException:  # noqa: BLE001 - what Python would print, then the exit status 1
        _quietly(_print_traceback)
        code = 1
    try:
        for t in threading.enumerate():  # as Python waits for non-daemon threads at exit
            if t is not threading.main_thread() and not t.daemon:
                t.join()
        import atexit
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        pass
    finally:
        _flush()
        if code == -signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code & 0xFF)


def _print_traceback() -> None:
    import traceback
    traceback.print_exc()


def _quietly(f) -> None:
    try:
        f()
    except BaseException:  # noqa: BLE001 - a broken stderr, a second ^C: the exit status still follows
        pass


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    _quietly(lambda: print(code, file=sys.stderr))
    return 1


def _flush() -> None:
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException:  # noqa: BLE001
            pass


def _reopen_std_streams() -> None:
    """sys.stdin/stdout/stderr over the run's descriptors, buffered as a fresh interpreter buffers
    them (stdout line-buffered on a terminal, stderr line-buffered; PYTHONUNBUFFERED writes through),
    with the server's encoding and error handlers (same locale, same environment)."""
    import io
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    like = {0: sys.__stdin__, 1: sys.__stdout__, 2: sys.__stderr__}

    def wrap(fd, writing, line):
        try:
            raw = io.FileIO(fd, "w" if writing else "r", closefd=False)  # the run's inherited descriptor
        except OSError:
            return None
        model = like[fd]
        buffered = io.BufferedWriter(raw) if writing else io.BufferedReader(raw)
        return io.TextIOWrapper(buffered, encoding=getattr(model, "encoding", None) or "utf-8",
                                errors=getattr(model, "errors", None) or "strict", newline="\n",
                                line_buffering=line, write_through=unbuffered and writing)

    try:
        tty = os.isatty(1)
    except OSError:
        tty = False
    sys.stdin = wrap(0, False, False) or sys.stdin
    sys.stdout = wrap(1, True, tty) or sys.stdout
    sys.stderr = wrap(2, True, True) or sys.stderr
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr


def serve_main(argv: Sequence[str]) -> int:
    """``python -m replicate serve [--socket PATH]``."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m replicate serve",
                                 description="a fork server: with env REPLICATE_SERVER=PATH (or 1 for the default "
                                             "path) train/test/time/blobs start as forks of it, without torch's "
                                             "import (README: Start-up). Start it from the shell (environment, "
                                             "checkout) its runs come from. Stop it with ^C, SIGTERM or SIGHUP: "
                                             f"its runs get SIGINT and {STOP_GRACE_S:.0f} s to end.")
    ap.add_argument("--socket", default=None, help=f"the socket's path (default: {default_socket()})")
    args = ap.parse_args(list(argv))
    path = os.path.abspath(args.socket or default_socket())
    if len(path.encode()) > 100:
        print(f"serve: {path}: too long for a socket's path (at most 100 bytes)", file=sys.stderr)
        return 2
    print("replicate serve: importing torch ...", file=sys.stderr, flush=True)
    return serve(path, announce=_Announce())


class _Announce:
    def write(self, line: str) -> None:
        _, pid, path = line.split(maxsplit=2)
        print(f"replicate serve: pid {pid}, serving at {path.strip()} (export REPLICATE_SERVER={path.strip()})",
              file=sys.stderr, flush=True)

    def flush(self) -> None:
        pass
