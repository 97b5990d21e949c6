"""Background prefetching of batches, in order, with several workers.

Caffe's Data layer fills ``prefetch`` (default 4) batches ahead in one thread.
Here one *reader* thread walks the database cursor and takes the batch's
random draws, strictly in record order, and hands ``(index, job)`` to a pool
of worker threads that decode and transform (numpy releases the GIL for the
arithmetic).  :meth:`Prefetcher.next` returns batch 0, 1, 2, ... in order, so
the batches are the same for any number of workers.  At most ``depth``
batches are read ahead of the consumer.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable

__all__ = ["Prefetcher"]

_STOP = object()


class Prefetcher:
    """``read()`` (reader thread, sequential) -> job; ``make(job)`` (any
    worker) -> batch; :meth:`next` -> the batches in ``read`` order."""

    def __init__(self, read: Callable[[], Any], make: Callable[[Any], Any], *,
                 workers: int = 1, depth: int = 4, name: str = "data"):
        self._read = read
        self._make = make
        self._depth = max(int(depth), int(workers), 1)
        self._slots = threading.Semaphore(self._depth)
        self._jobs: queue.Queue = queue.Queue()
        self._done: dict[int, Any] = {}
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._next = 0
        self._threads = [threading.Thread(target=self._reader, name=f"{name}-reader", daemon=True)]
        self._threads += [threading.Thread(target=self._worker, name=f"{name}-worker{i}", daemon=True)
                          for i in range(max(1, int(workers)))]
        for t in self._threads:
            t.start()

    def _fail(self, e: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = e
            self._cond.notify_all()

    def _reader(self) -> None:
        i = 0
        try:
            while True:
                self._slots.acquire()
                if self._stop.is_set():
                    break
                self._jobs.put((i, self._read()))
                i += 1
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._fail(e)
        finally:
            for _ in self._threads[1:]:
                self._jobs.put(_STOP)

    def _worker(self) -> None:
        while True:
            item = self._jobs.get()
            if item is _STOP:
                return
            i, job = item
            if self._stop.is_set():
                continue
            try:
                out = self._make(job)
            except BaseException as e:  # noqa: BLE001
                self._fail(e)
                continue
            with self._cond:
                self._done[i] = out
                self._cond.notify_all()

    def next(self, timeout: float | None = None):
        with self._cond:
            while self._next not in self._done:
                if self._error is not None:
                    raise self._error
                if self._stop.is_set():
                    raise RuntimeError("the prefetcher is closed")
                if not self._cond.wait(timeout):
                    raise TimeoutError("waited too long for a batch")
            out = self._done.pop(self._next)
            self._next += 1
        self._slots.release()
        return out

    def wait_reader(self) -> None:
        """After :meth:`close`: block until the reader thread (the only user of the cursor and
        the generator) has ended."""
        self._threads[0].join()

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        for _ in range(self._depth + 1):  # wake the reader wherever it waits for a slot
            self._slots.release()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=10)
