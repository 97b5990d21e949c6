"""pack at scale: a killed pack resumes (kept records verified) to the database an uninterrupted
one writes; the LMDB map grows; unfinished databases are refused by the data layer; the list is
read as std::getline reads it; the progress bar shows the rate and the time left."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lmdb
import pytest

import data_prep.pack as P
from data_prep.pack import PartialMismatch, Progress, pack, read_caffe_list
from replicate.data.db import Cursor, DataSourceError, iter_records
from tests._shared import require

REPO = Path(__file__).resolve().parents[2]
QUIET = dict(progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def photos():
    return require("golden", "photos", bitlevel=False)


def _long_list(photos, folder, reps):
    """The photos' list ``reps`` times, with a missing file now and then (skipped lines)."""
    lines = (photos / "list.txt").read_text().splitlines()
    out = []
    for r in range(reps):
        out += lines
        out.append(f"missing_{r}.JPEG {r % 5}")
    p = folder / "list.txt"
    p.write_text("\n".join(out) + "\n")
    return p, len(out)


def _children(pid):
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return None


def test_killed_pack_resumes_to_the_uninterrupted_database(photos, tmp_path):
    lst, total = _long_list(photos, tmp_path, 40)
    root = str(photos / "img") + "/"
    out = tmp_path / "db"
    opts = dict(resize_height=64, resize_width=64, commit_every=16)
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
            f"from data_prep.pack import pack\n"
            f"pack({root!r}, {str(lst)!r}, {str(out)!r}, workers=2, progress=False, log=lambda m: None, "
            f"**{opts!r})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=subprocess.DEVNULL)
    state_file = tmp_path / "db.partial" / P.STATE_FILE
    state, workers = None, None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the pack finished before it could be killed"
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state = None
        if state and state["done"] >= 300:
            workers = _children(proc.pid)
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state and 300 <= state["done"] < total
    assert not out.exists() and (tmp_path / "db.partial").is_dir()
    if workers:  # PR_SET_PDEATHSIG: the workers die with the main process
        time.sleep(0.5)
        assert [w for w in workers if Path(f"/proc/{w}").exists()
                and "Z" not in Path(f"/proc/{w}/stat").read_text().split()[2]] == []

    # the data layer refuses the unfinished database
    for path in (out, tmp_path / "db.partial"):
        with pytest.raises(DataSourceError, match="not finished|has not finished"):
            Cursor(path, "lmdb")

    msgs = []
    n = pack(root, lst, out, workers=2, progress=False, log=msgs.append, **opts)
    text = "\n".join(msgs)
    assert "Resuming:" in text and "made again and identical" in text
    assert not (tmp_path / "db.partial").exists() and not (out / P.STATE_FILE).exists()
    assert f"40 of {total} lines skipped" in text

    ref = tmp_path / "ref"
    assert pack(root, lst, ref, workers=1, **QUIET, **opts) == n == total - 40
    got, want = list(iter_records(out)), list(iter_records(ref))
    assert len(got) == len(want) and got == want


def test_interrupted_leveldb_pack_resumes(photos, tmp_path, monkeypatch):
    lst, total = _long_list(photos, tmp_path, 3)
    root = str(photos / "img") + "/"
    opts = dict(resize_height=24, resize_width=20, backend="leveldb", commit_every=10)
    real, calls = P._write_state, []

    def stop_on_the_5th(folder, state):
        calls.append(state["done"])
        if len(calls) == 5:
            raise KeyboardInterrupt
        real(folder, state)

    monkeypatch.setattr(P, "_write_state", stop_on_the_5th)
    with pytest.raises(KeyboardInterrupt):
        pack(root, lst, tmp_path / "db", workers=1, **QUIET, **opts)
    monkeypatch.setattr(P, "_write_state", real)
    assert (tmp_path / "db.partial").is_dir()
    with pytest.raises(PartialMismatch, match="other arguments"):
        pack(root, lst, tmp_path / "db", workers=1, **QUIET, **dict(opts, resize_width=21))
    msgs = []
    pack(root, lst, tmp_path / "db", workers=2, progress=False, log=msgs.append, **opts)
    assert any("Resuming: 30 records of lines 0-29 kept" in m for m in msgs), msgs
    pack(root, lst, tmp_path / "ref", workers=1, **QUIET, **opts)
    assert list(iter_records(tmp_path / "db", "leveldb")) == list(iter_records(tmp_path / "ref", "leveldb"))


def test_resume_refuses_a_changed_record(photos, tmp_path, monkeypatch):
    lst, _ = _long_list(photos, tmp_path, 2)
    root = str(photos / "img") + "/"
    opts = dict(resize_height=16, resize_width=16, commit_every=8)
    real, calls = P._write_state, []

    def stop(folder, state):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        real(folder, state)

    monkeypatch.setattr(P, "_write_state", stop)
    with pytest.raises(KeyboardInterrupt):
        pack(root, lst, tmp_path / "db", workers=1, **QUIET, **opts)
    monkeypatch.setattr(P, "_write_state", real)
    env = lmdb.open(str(tmp_path / "db.partial"))
    with env.begin(write=True) as txn:
        key, value = next(iter(txn.cursor()))
        txn.put(key, value[:-1] + b"\x01")       # encoded: true instead of false
    env.close()
    with pytest.raises(PartialMismatch, match="differs from the record made now"):
        pack(root, lst, tmp_path / "db", workers=1, **QUIET, **opts)
    pack(root, lst, tmp_path / "db", workers=1, resume=False, **QUIET, **opts)  # starts again
    assert len(list(iter_records(tmp_path / "db"))) == 96


def test_lmdb_map_grows_as_needed(photos, tmp_path, monkeypatch):
    root, lst = str(photos / "img") + "/", photos / "list.txt"
    pack(root, lst, tmp_path / "ref", resize_height=40, resize_width=30, **QUIET)
    # a 64 KB map grown before each transaction, then (no margin) only on MDB_MAP_FULL
    pack(root, lst, tmp_path / "a", resize_height=40, resize_width=30, map_size=1 << 16, **QUIET)
    monkeypatch.setattr(P, "_MAP_MARGIN", 0)
    msgs = []
    pack(root, lst, tmp_path / "b", resize_height=40, resize_width=30, map_size=1 << 16, workers=2,
         commit_every=8, progress=False, log=msgs.append)
    assert any("LMDB map full" in m for m in msgs)
    want = list(iter_records(tmp_path / "ref"))
    assert list(iter_records(tmp_path / "a")) == want and list(iter_records(tmp_path / "b")) == want


def test_data_layer_refuses_a_folder_with_pack_state(tmp_path):
    folder = tmp_path / "db"
    env = lmdb.open(str(folder))
    with env.begin(write=True) as txn:
        txn.put(b"00000000_a", b"x")
    env.close()
    assert len(list(iter_records(folder))) == 1
    (folder / P.STATE_FILE).write_text("{}")
    with pytest.raises(DataSourceError, match="has not finished"):
        list(iter_records(folder))


def test_list_is_read_as_getline_reads_it(tmp_path):
    p = tmp_path / "list.txt"
    p.write_bytes(b"a.jpg 1\n\nb c.jpg 2\r\nnolabel\n-x.png -3\nlast 4")
    assert read_caffe_list(p) == [("a.jpg", 1), ("", 0), ("b c.jpg", 2), ("nolabel", 0), ("-x.png", -3),
                                  ("last", 4)]
    p.write_bytes(b"a.jpg 1\n\n")
    assert read_caffe_list(p) == [("a.jpg", 1), ("", 0)]
    assert P._count_lines(p) == 2


def test_keys_file_order_and_missing_key(tmp_path):
    (tmp_path / "list.txt").write_text("a.png 1\nb.png 2\na.png 3\n")
    (tmp_path / "keys.txt").write_text("00000002_b.png\n00000000_a.png\n")
    jobs = P._Jobs(tmp_path / "list.txt", keys_file=tmp_path / "keys.txt")
    assert list(jobs.iter()) == [(0, 2, b"b.png", 2), (1, 0, b"a.png", 1)]   # the first a.png's label
    (tmp_path / "keys.txt").write_text("00000000_c.png\n")
    with pytest.raises(ValueError, match="not in"):
        list(P._Jobs(tmp_path / "list.txt", keys_file=tmp_path / "keys.txt").iter())


def test_progress_bar_shows_rate_and_time_left():
    s = io.StringIO()
    bar = Progress(100, "pack db", stream=s)
    bar.t0 -= 2.0
    bar.update(50)
    bar.message("Could not open or find file x")
    bar.close()
    text = s.getvalue()
    assert "50/100" in text and "images/s" in text and "left" in text and "0:00:02 left" in text
    assert "Could not open or find file x" in text


def test_job_order_memory_does_not_grow_with_the_list(tmp_path):
    import tracemalloc
    n = 50_000
    p = tmp_path / "list.txt"
    p.write_text("".join(f"n{i // 1300:08d}/n{i // 1300:08d}_{i}.JPEG {i % 1000}\n" for i in range(n)))
    P._shuffle_perm(10, 1)  # imports (the generator's extension) before measuring
    peaks = {}
    for mode, kw in (("lines", {}), ("shuffle", dict(shuffle=True, seed=3))):
        tracemalloc.start()
        jobs = P._Jobs(p, **kw)
        count = sum(1 for _ in jobs.iter())
        peaks[mode] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert count == n == jobs.total
    assert p.stat().st_size > 1_500_000 and peaks["lines"] < 600_000   # streamed
    assert peaks["shuffle"] < 32 * n     # 8-byte offsets and permutation, no object per line
    first = next(P._Jobs(p, shuffle=True, seed=3).iter())
    lines = read_caffe_list(p)
    assert first[2:] == (P.caffe_shuffle(lines, 3)[0][0].encode(), P.caffe_shuffle(lines, 3)[0][1])
