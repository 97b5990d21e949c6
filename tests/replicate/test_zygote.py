"""The fork server (replicate/zygote.py): a run forked from ``python -m replicate serve`` is the
same run as a fresh process (Caffe's golden run, bit for bit: log and snapshots), and the server
behaves as a process would: signals forwarded, exit status passed on, a run dies with the process
that asked for it, a request from another environment runs fresh instead."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replicate import zygote
from tests._shared import require
from tests.ops.golden import exact_blas_ready
from tests.replicate.test_randomness_golden import _check_scratch_run
from tests.replicate.test_solver_golden import ENV, workdir

# Without OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS: exact mode pins them itself, and the server then
# holds numpy's OpenBLAS thread pool when it forks (OpenBLAS stops it around fork()).
ENV = {k: v for k, v in ENV.items()
       if k not in ("REPLICATE_STARTUP_TRACE", "REPLICATE_SERVER", "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS")}


def start_server(folder: Path, env=None):
    folder.mkdir(exist_ok=True)
    folder.chmod(0o700)
    path = str(folder / "server.sock")
    proc = subprocess.Popen([sys.executable, "-m", "replicate", "serve", "--socket", path], env=env or ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import select
    line, deadline = "", time.monotonic() + 300
    while "serving at" not in line:
        assert select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))[0], "the server never served"
        line = proc.stderr.readline()
        assert line or proc.poll() is None, "the server ended before it served"
    return path, proc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``python -m replicate serve`` on a private socket; yields (path, its Popen)."""
    path, proc = start_server(tmp_path_factory.mktemp("zygote"))
    yield path, proc
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert not os.path.exists(path), "the server left its socket behind"


def _children(pid: int):
    """The pids (as text) whose parent is ``pid``, from /proc/*/stat."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == str(pid):
                out.append(d.name)
    return out


def _client(cmd, cwd, path, trace=None, extra_env=None, **kw):
    env = {**ENV, "REPLICATE_SERVER": path, **(extra_env or {})}
    if trace:
        env["REPLICATE_STARTUP_TRACE"] = str(trace)
    return subprocess.Popen([sys.executable, "-m", "replicate", *cmd], cwd=cwd, env=env, **kw)


def test_a_forked_train_is_caffes_run_bit_for_bit(server, tmp_path):
    """golden/scratch (fillers, crops, mirrors, dropout from Caffe's seed) trained as a fork of the
    server: every log message and both snapshots are Caffe's; the run was a fork (no torch import)."""
    exact_blas_ready()
    golden = require("golden", "scratch")
    d = workdir(tmp_path, "scratch")
    trace = tmp_path / "trace"
    p = _client(["train", "-solver", "solver.prototxt", "--blas", "exact", "--log", "ours.log"], d, server[0],
                trace=trace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    assert "not started by the server" not in err
    marks = [line.split()[0] for line in trace.read_text().splitlines()]
    assert "forked" in marks and "first_iteration" in marks
    _check_scratch_run(d, golden)  # every log message and the four snapshot files, Caffe's
    # the log names the run's own process, not the server's
    pid = int((d / "ours.log").read_text().split()[2])
    assert pid not in (server[1].pid, p.pid)


def test_stdout_exit_status_and_errors_pass_through(server, tmp_path):
    """A run's stdout and stderr are the requester's; its exit status is the requester's."""
    p = _client(["train", "-solver", "missing.prototxt"], tmp_path, server[0], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "missing.prototxt" in err, (p.returncode, err[-2000:])
    assert "not started by the server" not in err


def test_another_environment_runs_fresh(server, tmp_path):
    """A variable the server's libraries may have read differs: the run starts as a fresh process,
    saying why."""
    p = _client(["train", "-solver", "missing.prototxt"], tmp_path, server[0], extra_env={"OMP_NUM_THREADS": "7"},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    assert "not started by the server" in err and "OMP_NUM_THREADS" in err
    assert p.returncode == 1 and "missing.prototxt" in err


def test_no_server_runs_fresh(tmp_path):
    p = _client(["train", "-solver", "missing.prototxt"], tmp_path, str(tmp_path / "none.sock"),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    assert "not started by the server" in err and p.returncode == 1


def _long_run(server, tmp_path, **kw):
    """A `time` run of many iterations through the server; returns (client, run pid) once it runs."""
    exact_blas_ready()
    d = workdir(tmp_path, "scratch")
    trace = tmp_path / "trace"
    before = set(_children(server[1].pid))
    p = _client(["time", "-model", "net.prototxt", "-iterations", "100000"], d, server[0], trace=trace,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)
    deadline = time.monotonic() + 60
    while not (trace.exists() and "setup" in trace.read_text()):
        assert time.monotonic() < deadline and p.poll() is None, "the run did not start"
        time.sleep(0.05)
    runs = set(_children(server[1].pid)) - before
    assert len(runs) == 1
    return p, int(runs.pop())


def test_sigint_reaches_the_run(server, tmp_path):
    """^C on the requester interrupts the run, which ends as Python ends on an uncaught ^C (by
    SIGINT); the requester ends the same way."""
    p, run = _long_run(server, tmp_path)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGINT, err[-2000:]
    assert "KeyboardInterrupt" in err and "run_via_server" not in err  # the run's traceback, not the requester's
    assert not Path(f"/proc/{run}").exists()  # reaped before the requester learnt the status


def test_signals_the_requester_ignores_are_ignored_by_the_run(server, tmp_path):
    """``nohup ...``: a run started by a process that ignores SIGHUP ignores it too, as a fresh
    process inherits the disposition; SIGINT still ends it."""
    p, run = _long_run(server, tmp_path, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))

    def ignored(pid):
        mask = next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("SigIgn:"))
        return int(mask, 16) >> (signal.SIGHUP - 1) & 1

    assert ignored(p.pid) and ignored(run), "the run does not ignore SIGHUP as its requester does"
    os.kill(run, signal.SIGHUP)
    time.sleep(0.2)
    assert _state(run) != "Z" and p.poll() is None
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGINT


def test_sigterm_reaches_the_run(server, tmp_path):
    p, run = _long_run(server, tmp_path)
    assert Path(f"/proc/{run}/comm").read_text().strip() == "replicate time"  # as ps -e and top name it
    assert Path(f"/proc/{server[1].pid}/comm").read_text().strip() == "replicate serve"
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGTERM and not Path(f"/proc/{run}").exists()


def _state(pid: int) -> str:
    return next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("State:"))


def test_ctrl_z_stops_the_run_and_fg_continues_it(server, tmp_path):
    p, run = _long_run(server, tmp_path)
    try:
        for sig, want in ((signal.SIGTSTP, "T"), (signal.SIGCONT, "R|S")):
            p.send_signal(sig)
            deadline = time.monotonic() + 30
            while _state(run) not in want.split("|") or (sig == signal.SIGTSTP and _state(p.pid) != "T"):
                assert time.monotonic() < deadline, f"the run is {_state(run)} after {sig.name}"
                time.sleep(0.05)
    finally:
        p.send_signal(signal.SIGCONT)
        p.send_signal(signal.SIGINT)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGINT


def test_a_signal_right_after_the_fork_is_not_lost(server, tmp_path):
    """The run is signalled as soon as its pid is known, before it has its own handlers: the
    signal waits (blocked across the fork) and ends the run, every time."""
    d = workdir(tmp_path, "scratch")
    for _ in range(8):
        run = zygote.request(server[0], ["time", "-model", "net.prototxt", "-iterations", "100000"], cwd=str(d),
                             env=ENV, stdout=os.open(os.devnull, os.O_WRONLY), stderr=os.open(os.devnull, os.O_WRONLY))
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == -signal.SIGTERM


def test_a_broken_stderr_does_not_break_the_server(server, tmp_path):
    """A failing run whose stderr is a closed pipe (``... 2>&1 | head``) cannot print its error:
    it still ends with its status, and the server goes on serving at its socket."""
    r, w = os.pipe()
    os.close(r)
    try:
        run = zygote.request(server[0], ["train", "-solver", "missing.prototxt"], cwd=str(tmp_path), env=ENV,
                             stdout=w, stderr=w)
        assert run.wait(60) == 1
    finally:
        os.close(w)
    assert os.path.exists(server[0]) and server[1].poll() is None
    p = _client(["train", "-solver", "missing.prototxt"], tmp_path, server[0], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "not started by the server" not in err


def test_the_run_writes_with_the_requesters_umask(server, tmp_path):
    exact_blas_ready()
    d = workdir(tmp_path, "scratch")
    p = _client(["train", "-solver", "solver.prototxt"], d, server[0], stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.umask(0o027))
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0 and "not started by the server" not in err, err[-2000:]
    assert (d / "snap_iter_30.caffemodel").stat().st_mode & 0o777 == 0o640


def test_a_dead_server_takes_its_runs_and_is_replaced(tmp_path):
    """SIGKILL the server: its run dies (PR_SET_PDEATHSIG), the requester says so and ends by
    SIGKILL; the socket it left behind does not stop a new server."""
    exact_blas_ready()
    path, proc = start_server(tmp_path / "srv")
    p = proc2 = None
    try:
        p, run = _long_run((path, proc), tmp_path)
        proc.kill()
        proc.wait(30)
        _, err = p.communicate(timeout=60)
        assert p.returncode == -signal.SIGKILL and "went away" in err
        deadline = time.monotonic() + 30
        while True:
            try:
                if "zombie" in Path(f"/proc/{run}/status").read_text():
                    break
            except OSError:  # reaped
                break
            assert time.monotonic() < deadline, "the run outlived its server"
            time.sleep(0.05)
        assert os.path.exists(path)  # left behind
        path2, proc2 = start_server(tmp_path / "srv")
        assert path2 == path
        proc2.send_signal(signal.SIGTERM)
        assert proc2.wait(60) == 0
    finally:
        for q in (p, proc, proc2):
            if q is not None and q.poll() is None:
                q.kill()
                q.wait()


def test_a_killed_requester_takes_its_run_along(server, tmp_path):
    p, run = _long_run(server, tmp_path)
    p.kill()
    p.wait(30)
    deadline = time.monotonic() + 30
    while str(run) in _children(server[1].pid):
        assert time.monotonic() < deadline, "the run outlived the process that asked for it"
        time.sleep(0.05)


def _raw_request(path: str, **changes) -> dict:
    """Send a request as :func:`zygote.request` builds it, with ``changes``; the server's answer."""
    import socket
    req = {"argv": ["train", "-solver", "x"], "cwd": "/", "env": ENV, "umask": 0o022, "affinity": zygote._affinity(),
           "cgroup": zygote._cgroup(), "limits": zygote._limits(), "code": zygote.code_fingerprint(),
           "options": zygote.interpreter_options(), **changes}
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    try:
        zygote._send(s, req, [0, 1, 2])
        return zygote._recv(s, 30)
    finally:
        s.close()


def test_requests_that_are_refused(server, tmp_path):
    with pytest.raises(zygote.ZygoteUnavailable, match="not a compute command"):
        zygote.request(server[0], ["plan", "x"], env=ENV)
    with pytest.raises(zygote.ZygoteUnavailable, match="differs"):
        zygote.request(server[0], ["train", "-solver", "x"], env={**ENV, "LD_PRELOAD": "/nonexistent.so"})
    with pytest.raises(zygote.ZygoteUnavailable):
        zygote.request(str(tmp_path / "nothing.sock"), ["train"], env=ENV)
    assert "other code" in _raw_request(server[0], code="another checkout")["error"]
    assert "other code" in _raw_request(server[0], options="(python -O)")["error"]
    assert "affinity" in _raw_request(server[0], affinity=[0]).get("error", "") or len(zygote._affinity()) == 1
    assert "cgroup" in _raw_request(server[0], cgroup="memory.max=1\n")["error"]
    limits = zygote._limits()
    assert "resource limits" in _raw_request(server[0], limits={**limits, "rlimits": {}})["error"]
    assert "nice" in _raw_request(server[0], limits={**limits, "nice": limits["nice"] + 1})["error"]
    # a session's own variables (another terminal) do not matter
    run = _raw_request(server[0], env={**ENV, "SSH_TTY": "/dev/pts/9", "TMUX_PANE": "%3"})
    assert "pid" in run
    open_folder = tmp_path / "open"
    open_folder.mkdir(mode=0o755)
    open_folder.chmod(0o755)
    with pytest.raises(zygote.ZygoteUnavailable, match="private"):
        zygote.request(str(open_folder / "server.sock"), ["train"], env=ENV)


def test_a_code_change_is_seen(tmp_path):
    """The requester's fingerprint moves when a source file of the package changes (a rebuild, a
    git pull): on a copy of a package tree."""
    (tmp_path / "replicate").mkdir()
    f = tmp_path / "replicate" / "x.py"
    f.write_text("A = 1\n")
    before = zygote.code_fingerprint(tmp_path)
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert zygote.code_fingerprint(tmp_path) != before
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert zygote.code_fingerprint(tmp_path) == before
    (tmp_path / "prototxt_like").mkdir()
    (tmp_path / "prototxt_like" / "y.py").write_text("")
    assert zygote.code_fingerprint(tmp_path) != before


def test_a_file_the_server_loaded_changes_and_it_refuses(tmp_path):
    """Any module the server imported (here a sitecustomize on its PYTHONPATH) changes on disk after
    it started (a pip upgrade, an edit): its requests are refused, naming the file."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("X = 1\n")
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(site), ENV["PYTHONPATH"]])}
    path, proc = start_server(tmp_path / "srv", env)
    try:
        run = zygote.request(path, ["train", "-solver", "missing.prototxt"], cwd=str(tmp_path), env=env,
                             stdout=os.open(os.devnull, os.O_WRONLY), stderr=os.open(os.devnull, os.O_WRONLY))
        assert run.wait(60) == 1
        (site / "sitecustomize.py").write_text("X = 22\n")
        with pytest.raises(zygote.ZygoteUnavailable, match="sitecustomize.py changed"):
            zygote.request(path, ["train", "-solver", "missing.prototxt"], cwd=str(tmp_path), env=env)
    finally:
        proc.kill()
        proc.wait()


def test_a_second_server_on_the_same_socket_is_refused(server):
    r = subprocess.run([sys.executable, "-m", "replicate", "serve", "--socket", server[0]], env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "already running" in r.stderr


def test_env_difference_ignores_runtime_variables():
    a = {"PATH": "/bin", "PWD": "/a", "REPLICATE_STARTUP_TRACE": "x"}
    assert zygote.env_difference(a, {"PATH": "/bin", "PWD": "/b"}) == []
    assert zygote.env_difference(a, {"PATH": "/usr/bin"}) == ["PATH"]
    assert zygote.env_difference(a, {**a, "OMP_NUM_THREADS": "1"}) == ["OMP_NUM_THREADS"]


def test_cgroup_v2_compares_effective_limits_not_names(tmp_path):
    """Two sessions in sibling cgroups at different depths with the same effective limits match;
    a tighter memory limit anywhere on the path, or other CPUs, do not."""
    root = tmp_path / "cg"

    def group(rel: str, files: dict):
        d = root / rel
        d.mkdir(parents=True, exist_ok=True)
        for k, v in files.items():
            (d / k).write_text(v + "\n")
        return d

    group("", {"cpuset.cpus.effective": "0-1"})
    group("user.slice", {"memory.max": "max", "pids.max": "max"})
    group("user.slice/session-3.scope", {"memory.max": "max", "cpu.max": "max 100000"})
    group("user.slice/user@0.service/app.slice/tmux-1.scope", {"memory.max": "max", "cpu.max": "max 100000"})
    group("job.slice", {"memory.max": "1073741824"})
    group("job.slice/a.scope", {"memory.max": "max"})

    def cg(rel: str) -> str:
        f = tmp_path / f"proc-{rel.replace('/', '_')}"
        f.write_text(f"0::/{rel}\n")
        return zygote._cgroup(str(f), str(root))

    assert cg("user.slice/session-3.scope") == cg("user.slice/user@0.service/app.slice/tmux-1.scope")
    assert cg("job.slice/a.scope") != cg("user.slice/session-3.scope")
    group("user.slice/session-4.scope", {"cpu.max": "50000 100000"})
    assert cg("user.slice/session-4.scope") != cg("user.slice/session-3.scope")
