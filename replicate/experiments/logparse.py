"""Test accuracies from Caffe glog training logs, 2014 and 1.0 forms.

2014 Caffe (the release's logs)::

    I0403 07:15:12.976109 23304 solver.cpp:96] Iteration 1000, Testing net
    I0403 07:17:23.362350 23304 solver.cpp:123] Test score #0: 0.0389203

Caffe 1.0 (ours, ``replicate/log.py``; the date may have 4 or 8 digits)::

    I1127 17:20:14.593364   828 solver.cpp:347] Iteration 20, Testing net (#0)
    I1127 17:20:14.593364   828 solver.cpp:414]     Test net output #0: accuracy = 0.375

A test's outputs are the output lines that follow its ``Testing net`` line before the next
``Iteration`` line; lines of other threads in between are skipped, and so is anything that is not
a glog line.  A last line without its newline (a log cut off while being written) is dropped, as
is the unreadable tail of a truncated gzip file.  :func:`blas_mode` reads the BLAS mode our logs
name in their first lines (``BLAS mode: exact (...)``).  Over several files (read in natural order of
their names) and several runs appended to one file, a later test of the same iteration wins.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

GLOG = re.compile(r"^[IWEF](?:\d{4}|\d{8}) \d\d:\d\d:\d\d\.\d+ +\d+ [^\]\s]+\] (.*)$")
TESTING = re.compile(r"^Iteration (\d+), Testing net(?: \(#(\d+)\))?\s*$")
ITERATION = re.compile(r"^Iteration \d+")
OLD_SCORE = re.compile(r"^Test score #(\d+): (\S+)\s*$")
NEW_OUTPUT = re.compile(r"^\s*Test net output #(\d+): (\S+) = (\S+)")
LOG_SUFFIXES = (".log", ".log.gz", ".gz", ".txt")

Output = Union[int, str, None]


@dataclass
class Test:
    """One test pass: its iteration, test net, and outputs by index as (name or None, value)."""
    iteration: int
    net: int = 0
    outputs: Dict[int, Tuple[Optional[str], float]] = field(default_factory=dict)

    def value(self, output: Output = None) -> Optional[float]:
        """The chosen output: an index, a name, or None for the default (``accuracy`` in the 1.0
        form, ``#0`` in the 2014 form, which has no names)."""
        if isinstance(output, int):
            got = self.outputs.get(output)
            return None if got is None else got[1]
        if output is None:
            if self.outputs and all(name is None for name, _ in self.outputs.values()):
                got = self.outputs.get(0)
                return None if got is None else got[1]
            output = "accuracy"
        for name, v in self.outputs.values():
            if name == output:
                return v
        return None


def _float(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None


def parse_lines(lines: Iterable[str]) -> List[Test]:
    """The tests of a log's lines, in order (several runs of one file included)."""
    tests: List[Test] = []
    current: Optional[Test] = None
    for line in lines:
        m = GLOG.match(line.rstrip("\r\n"))
        if not m:
            continue
        msg = m.group(1)
        t = TESTING.match(msg)
        if t:
            current = Test(int(t.group(1)), int(t.group(2) or 0))
            tests.append(current)
            continue
        if ITERATION.match(msg) or msg.startswith("Solving ") or msg == "Test interrupted.":
            current = None
            continue
        if current is None:
            continue
        s = OLD_SCORE.match(msg)
        if s:
            v = _float(s.group(2))
            if v is not None:
                current.outputs[int(s.group(1))] = (None, v)
            continue
        o = NEW_OUTPUT.match(msg)
        if o:
            v = _float(o.group(3))
            if v is not None:
                current.outputs[int(o.group(1))] = (o.group(2), v)
    return [t for t in tests if t.outputs]


def _gunzip(data: bytes) -> bytes:
    """All gzip members of ``data``, as far as they decompress (a cut-off stream keeps its start)."""
    out = []
    while data[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            for i in range(0, len(data), 1 << 16):  # in pieces, so corrupt data keeps what precedes it
                out.append(d.decompress(data[i:i + (1 << 16)]))
                if d.eof:
                    break
        except zlib.error:
            break
        if not d.eof:
            break
        data = d.unused_data
    return b"".join(out)


def read_text(path: Union[str, Path]) -> str:
    """A log file's complete lines; gzip (by its magic bytes) is read as far as it is intact."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw)
    text = raw.decode("utf-8", errors="replace")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # drop a line cut off while being written
    return text


BLAS_MODE = re.compile(r"^BLAS mode: (exact|fast)\b(.*)$")


def _head(path: Union[str, Path], size: int = 16384) -> str:
    """The first ``size`` bytes of a log (gzip or plain) as text, for its header lines."""
    import gzip
    with open(path, "rb") as f:
        raw = f.read(size)
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as f:
                raw = f.read(size)
        except (OSError, EOFError, zlib.error):
            raw = _gunzip(raw)
    return raw.decode("utf-8", errors="replace")


def blas_mode(path: Union[str, Path]) -> Optional[str]:
    """The BLAS mode a log's header names (``replicate/log.py``): ``exact``, ``exact-unverified`` or
    ``fast``; None for a log without one (Caffe's own, or ours from before modes were logged)."""
    for line in _head(path).splitlines():
        m = GLOG.match(line.rstrip("\r"))
        b = BLAS_MODE.match(m.group(1)) if m else None
        if b:
            return b.group(1) + ("-unverified" if b.group(1) == "exact" and "unverified" in b.group(2) else "")
    return None


def blas_modes(files: Iterable[Union[str, Path]]) -> List[str]:
    """The modes of ``files``' headers, each once, in order of first appearance (unknown ones left out)."""
    out: List[str] = []
    for f in files:
        m = blas_mode(f)
        if m and m not in out:
            out.append(m)
    return out


def parse_file(path: Union[str, Path]) -> List[Test]:
    return parse_lines(read_text(path).splitlines())


def natural_key(name: str):
    """Sort key that orders digit runs by value: ``attempt2`` before ``attempt10``."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p]


NOT_LOGS = ("basenet.txt",)  # the release's and plan's pointer to the base network


def is_log_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith(LOG_SUFFIXES) and path.name not in NOT_LOGS


def log_files(net_dir: Union[str, Path]) -> List[Path]:
    """A network directory's log files (in ``<net>/`` and ``<net>/logs/``), in natural order of name."""
    d = Path(net_dir)
    files = [p for sub in (d, d / "logs") if sub.is_dir() for p in sub.iterdir() if is_log_file(p)]
    return sorted(files, key=lambda p: (natural_key(p.name), natural_key(str(p))))


def accuracy_series(files: Iterable[Union[str, Path]], output: Output = None, net: int = 0,
                    include_initial: bool = False) -> List[Tuple[int, float]]:
    """(iteration, value) of the chosen output over ``files`` in the given order, sorted by iteration.
    The iteration-0 test (Caffe 1.0's ``test_initialization``; the 2014 logs have none) is left out
    unless ``include_initial``."""
    by_iter: Dict[int, float] = {}
    for f in files:
        for t in parse_file(f):
            v = t.value(output)
            if t.net == net and v is not None and (t.iteration > 0 or include_initial):
                by_iter[t.iteration] = v
    return sorted(by_iter.items())
