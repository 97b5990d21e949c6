"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never a part."""
from __future__ import annotations

import os
import threading


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` (named per process and thread), flush it
    to disk, then rename it over ``path``."""
    path = os.fspath(path)
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
