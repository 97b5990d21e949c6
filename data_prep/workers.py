"""Records made in worker processes, handed back in list order through shared memory.

The main process (the only database writer) sends each worker batches of small job messages
``(seq, slot, name, label)`` (a batch when half of the worker's slots are free); the worker
decodes and resizes with OpenCV (one thread) and writes each serialised Datum straight into its
slot of an anonymous shared mapping (made before the fork, so there is nothing to clean up if
anything is killed); it answers each batch with one message of record sizes.
The main process writes the slot's bytes to the database in sequence order and gives the slot
back.  Memory: ``workers x slots x slot_size`` bytes of mapping plus the small messages in
flight, whatever the list length.  A record larger than a slot comes back pickled instead.

Workers die with the main process (``PR_SET_PDEATHSIG`` and end-of-file on their pipe), ignore
SIGINT (the main process stops them), and use OpenCV with one thread each.
"""
from __future__ import annotations

import ctypes
import mmap
import multiprocessing as mp
import os
import select
import signal
import traceback
from collections import deque

from .records import Abort, RecordMaker, Unreadable

__all__ = ["OK", "SKIP", "make_inline", "WorkerPool"]

OK, SKIP = 0, 2
_IN_SLOT, _BYTES, _SKIP, _ERROR = 0, 1, 2, 3


class WorkerError(RuntimeError):
    pass


def _quiet_opencv(cv2) -> int:
    """No "imread_(...): can't open/read file" warnings from OpenCV (pack names the file itself);
    returns the level before (-1 where cv2 cannot tell)."""
    try:
        level = cv2.getLogLevel()
        cv2.setLogLevel(2)  # LOG_LEVEL_ERROR
        return level
    except AttributeError:
        return -1


def make_inline(maker: RecordMaker, root: bytes, jobs, slot_size: int = 1 << 22):
    """The same results as :meth:`WorkerPool.imap`, made in this process."""
    buf = bytearray(slot_size)
    view = memoryview(buf)
    level = _quiet_opencv(maker.cv2)
    try:
        for job in jobs:
            name, label = job[2], job[3]
            try:
                res, sizes, warning = maker.make(root + name, name, label, view)
            except Unreadable as e:
                yield job, SKIP, str(e), None, None
                continue
            if not isinstance(res, int):
                yield job, OK, res, sizes, warning
                continue
            rec = view[:res]
            try:
                yield job, OK, rec, sizes, warning
            finally:
                rec.release()
    finally:
        view.release()
        if level >= 0:
            maker.cv2.setLogLevel(level)


def _die_with_parent(parent: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if os.getppid() != parent:
        os._exit(0)


def _worker(conn, index, inherited, maker, root, mem, slots, slot_size, parent):
    for c in inherited:  # the main process's ends of the pipes, copied by fork
        c.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    maker.cv2.setNumThreads(1)
    _quiet_opencv(maker.cv2)
    view = memoryview(mem)
    base = index * slots * slot_size
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        if msg is None:
            os._exit(0)
        replies = []
        last = len(msg) - 1
        for i, (seq, slot, name, label) in enumerate(msg):
            off = base + slot * slot_size
            try:
                res, sizes, warning = maker.make(root + name, name, label, view[off:off + slot_size])
                if isinstance(res, int):
                    reply = (seq, _IN_SLOT, res, sizes, warning)
                else:
                    reply = (seq, _BYTES, res, sizes, warning)
            except Unreadable as e:
                reply = (seq, _SKIP, str(e), None, None)
            except Abort as e:
                reply = (seq, _ERROR, str(e), "abort", None)
            except BaseException as e:  # noqa: BLE001 - reported, then the main process stops
                reply = (seq, _ERROR, f"{type(e).__name__}: {e}\n{traceback.format_exc()}", None, None)
            replies.append(reply)
            if len(replies) == 8 or i == last:
                try:  # one message per 8 records: fewer wake-ups of the main process
                    conn.send(replies)
                except (EOFError, OSError):
                    os._exit(0)
                replies = []


class WorkerPool:
    def __init__(self, maker: RecordMaker, root: bytes, workers: int, *, slots: int = 4,
                 slot_size: int = 1 << 22):
        self.n, self.slots, self.slot_size = workers, slots, slot_size
        self.mem = mmap.mmap(-1, workers * slots * slot_size)
        self.view = memoryview(self.mem)
        ctx = mp.get_context("fork")
        self.conns, self.procs = [], []
        parent = os.getpid()
        for i in range(workers):
            mine, theirs = ctx.Pipe(duplex=True)
            p = ctx.Process(target=_worker, name=f"pack-worker-{i}", daemon=True,
                            args=(theirs, i, self.conns + [mine], maker, root, self.mem, slots,
                                  slot_size, parent))
            p.start()
            theirs.close()
            self.conns.append(mine)
            self.procs.append(p)

    def imap(self, jobs):
        """Yield ``(job, kind, value, sizes, warning)`` in the order of ``jobs``; for ``OK`` the value
        is a memoryview of the record, valid until the next item is asked for."""
        free = [deque(range(self.slots)) for _ in range(self.n)]
        refill = max(1, self.slots // 2)
        owner = {conn.fileno(): w for w, conn in enumerate(self.conns)}
        poller = select.poll()
        for conn in self.conns:
            poller.register(conn.fileno(), select.POLLIN)
        pending: dict[int, tuple] = {}   # seq -> (job, worker, slot)
        ready: dict[int, tuple] = {}     # seq -> reply
        it = iter(jobs)
        exhausted = False
        next_seq = write_seq = 0
        while True:
            if not exhausted:
                batches = [[] for _ in range(self.n)]
                while True:  # one job at a time to the worker with the most free slots, once it
                    # has half its slots free or nothing to do (fewer, larger messages)
                    w = max(range(self.n), key=lambda k: len(free[k]))
                    nfree = len(free[w]) + len(batches[w])
                    if not free[w] or (nfree < refill and nfree < self.slots):
                        break
                    job = next(it, None)
                    if job is None:
                        exhausted = True
                        break
                    slot = free[w].popleft()
                    batches[w].append((next_seq, slot, job[2], job[3]))
                    pending[next_seq] = (job, w, slot)
                    next_seq += 1
                for w, batch in enumerate(batches):
                    if batch:
                        self.conns[w].send(batch)
            freed = False
            while write_seq in ready:
                seq, kind, value, sizes, warning = ready.pop(write_seq)
                job, w, slot = pending.pop(write_seq)
                if kind == _ERROR:
                    if sizes == "abort":
                        raise Abort(value)
                    raise WorkerError(f"making the record of {job[2]!r} failed: {value}")
                if kind == _IN_SLOT:
                    off = (w * self.slots + slot) * self.slot_size
                    view = self.view[off:off + value]
                    try:
                        yield job, OK, view, sizes, warning
                    finally:
                        view.release()
                elif kind == _BYTES:
                    yield job, OK, value, sizes, warning
                else:
                    yield job, SKIP, value, None, None
                free[w].append(slot)
                freed = True
                write_seq += 1
            if exhausted and write_seq == next_seq:
                return
            if freed and not exhausted:
                continue  # refill the free slots before waiting
            for fd, _ in poller.poll():
                w = owner[fd]
                conn = self.conns[w]
                try:
                    while True:
                        for reply in conn.recv():
                            ready[reply[0]] = reply
                        if not conn.poll():
                            break
                except (EOFError, OSError):
                    names = [j[2] for s, (j, ww, _) in pending.items() if ww == w]
                    code = self.procs[w].exitcode
                    raise WorkerError(f"worker {w} died (exit code {code}) while making the records of "
                                      f"{names[:4]!r}") from None

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        for p in self.procs:
            p.join(timeout=2)
            if p.is_alive():
                p.kill()
                p.join()
        for conn in self.conns:
            conn.close()
        self.view.release()
        self.mem.close()
