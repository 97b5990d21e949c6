"""replicate.fileio: writes that cannot be redirected or torn, and every package write goes through it."""
from __future__ import annotations

import errno
import os
import re
import stat
import threading
from pathlib import Path

import pytest

from replicate import fileio
from tests._shared import REPO


def test_a_planted_link_at_the_old_temporary_name_is_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    target = tmp_path / "model.caffemodel"
    # the name the old helper used (pid and thread id are guessable)
    os.symlink(victim, f"{target}.tmp.{os.getpid()}.{threading.get_ident()}")
    fileio.atomic_write(target, b"new")
    assert victim.read_bytes() == b"precious"
    assert target.read_bytes() == b"new" and not target.is_symlink()


def test_a_link_at_the_target_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    target = tmp_path / "DONE"
    os.symlink(victim, target)
    fileio.atomic_write(target, "text")
    assert victim.read_bytes() == b"precious" and not target.is_symlink() and target.read_text() == "text"


def test_exclusive_nofollow_create(tmp_path, monkeypatch):
    seen = []
    real = os.open

    def spy(path, flags, mode=0o777, **kw):
        seen.append((path, flags, mode))
        return real(path, flags, mode, **kw)
    monkeypatch.setattr(fileio.os, "open", spy)
    fileio.atomic_write(tmp_path / "x", b"1")
    path, flags, mode = seen[0]
    assert os.path.dirname(path) == str(tmp_path)
    want = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    assert flags & want == want and mode == 0o600


def test_mode_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        fileio.atomic_write(tmp_path / "x", b"1")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x").stat().st_mode) == 0o640


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "snap.solverstate"
    target.write_bytes(b"old")
    real = os.write
    calls = []

    def full(fd, data):
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, bytes(data[:3]))  # a short write, then the disk is full
    monkeypatch.setattr(fileio.os, "write", full)
    with pytest.raises(OSError) as e:
        fileio.atomic_write(target, b"0123456789")
    assert e.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.solverstate"]


def test_fsyncs_file_and_directory(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                         real(fd)))
    fileio.atomic_write(tmp_path / "x", b"1")
    assert len(synced) == 2 and synced[1] == str(tmp_path)


# every file the package writes goes through the helper
WRITES = re.compile(r"""open\([^)]*["'](w|wb|a|ab|w\+|x)["']|\.write_text\(|\.write_bytes\(|np\.save|json\.dump\(|"""
                    r"""os\.replace\(""")
# not yet routed: files outside this change (reported in issue 21), and the append-only logs
KNOWN = {"replicate/log.py",  # a streamed log: opened with O_NOFOLLOW, not atomically
         "replicate/experiments/report.py", "replicate/experiments/demo.py"}


def test_no_direct_writes_left():
    found = []
    for top in ("replicate", "data_prep", "prototxt_like"):
        for p in sorted((REPO / top).rglob("*.py")):
            rel = str(p.relative_to(REPO))
            if rel in KNOWN or rel == "replicate/fileio.py":
                continue
            for i, line in enumerate(p.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if WRITES.search(code) and "np.savez(buf" not in code:
                    found.append(f"{rel}:{i}: {line.strip()}")
    # plan.py moves finished files into place with os.replace (a rename, no write): allowed
    found = [f for f in found if not f.startswith("replicate/experiments/plan.py") or "os.replace(p, dest" not in f]
    assert not found, "\n".join(found)
