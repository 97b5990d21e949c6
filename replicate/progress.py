"""A one-line progress bar on stderr, for long work (pack, train, sweeps)."""
from __future__ import annotations

import sys
import time


class Progress:
    """A one-line progress bar on stderr (updated at most 4 times a second)."""

    def __init__(self, total: int, what: str = "", enabled: bool = True, stream=None):
        self.total, self.what, self.enabled = total, what, enabled
        self.stream = stream or sys.stderr
        self.n = 0
        self.t0 = self._last = time.monotonic()
        self._drawn = -1

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if self.enabled and (now - self._last >= 0.25 or self.n >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now) -> None:
        self._drawn = self.n
        frac = self.n / self.total if self.total else 1.0
        bar = "#" * int(30 * frac)
        rate = self.n / max(now - self.t0, 1e-9)
        self.stream.write(f"\r{self.what} [{bar:<30}] {self.n}/{self.total} {100 * frac:5.1f}% "
                          f"{rate:,.0f}/s")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            if self._drawn != self.n:
                self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
