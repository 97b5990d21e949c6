"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never a part.

Every file this package writes goes through :func:`atomic_write` (whole contents) or
:func:`atomic_writer` (a stream, for writes too big to hold or written by a library):

* the data goes to a temporary file in the target's directory with an unpredictable name, created
  with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (a file or symlink planted there by someone else makes the
  create fail instead of being written through), mode 0o600 while it is written, then the mode a
  plain ``open()`` would give (0o666 less the umask);
* the file is flushed and fsync'ed, renamed over the target (``os.replace``: a symlink at the
  target's name is replaced, never followed), and the directory is fsync'ed so the rename survives
  a crash (``durable=False`` skips both fsyncs for scratch files);
* any error (``ENOSPC``, ``EDQUOT``, ``EIO``, ...) removes the temporary file and raises: the old
  target, if any, is untouched.
"""
from __future__ import annotations

import contextlib
import io
import os
import secrets

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
TMP_MARK = ".tmp-"  # temporary names: ``.<target name>.tmp-<random>``, hidden and never a match


def current_umask() -> int:
    """This process's umask (read by setting it and setting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _umask_mode() -> int:
    return 0o666 & ~current_umask()


def _tmp_name(path: str) -> str:
    d, base = os.path.split(path)
    return os.path.join(d, f".{base}{TMP_MARK}{secrets.token_hex(8)}")


def _create_tmp(path: str):
    """``(fd, name)`` of a new temporary file beside ``path``, created exclusively, not through a link."""
    for _ in range(100):
        tmp = _tmp_name(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
        except FileExistsError:  # 64 random bits: practically never
            continue
        return fd, tmp
    raise FileExistsError(f"could not create a temporary file beside {path}")


def fsync_dir(directory: str) -> None:
    """fsync a directory (its entries: a rename or a create); a filesystem without it is skipped."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories (EINVAL): nothing more to do
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path, mode: str = "wb", *, durable: bool = True, encoding: str = "utf-8",
                  newline=None):
    """``with atomic_writer(path) as f: ...``: ``f`` writes a temporary file that replaces ``path``
    when the block ends without an exception (and is removed when it raises).  ``mode``: "wb" or "w"."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_writer mode {mode!r}: use 'w' or 'wb'")
    path = os.fspath(path)
    fd, tmp = _create_tmp(path)
    try:
        raw = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        _unlink(tmp)
        raise
    try:
        f = raw if mode == "wb" else io.TextIOWrapper(raw, encoding=encoding, newline=newline)
        with f:
            yield f
            f.flush()
            if durable:
                os.fsync(raw.fileno())
            os.fchmod(raw.fileno(), _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    if durable:
        fsync_dir(os.path.dirname(path))


def atomic_write(path, data, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` (bytes, or str written as UTF-8) atomically (see the module)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_writer(path, "wb", durable=durable) as f:
        view = memoryview(data)
        while view:  # os.write may write less than asked (and raises ENOSPC when nothing fits)
            n = os.write(f.fileno(), view)
            view = view[n:]


def write_text(path, text: str, *, durable: bool = True) -> None:
    atomic_write(path, text.encode("utf-8"), durable=durable)


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def check_writable(path) -> None:
    """Raise OSError unless a file can be created beside ``path`` (an exclusive temporary one,
    removed at once; nothing existing is opened or followed)."""
    fd, tmp = _create_tmp(os.fspath(path))
    os.close(fd)
    _unlink(tmp)


def open_new(path, mode: str = "wb"):
    """A new file for streaming (a log a child process writes): created exclusively (an existing
    file or a planted link makes it fail), not through a link, with the umask's mode."""
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, _umask_mode())
    return os.fdopen(fd, mode)
