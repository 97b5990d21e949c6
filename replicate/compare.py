"""``python -m replicate compare A B``: is this Caffe's result?

Two files of the same family, side by side:

* arrays: ``.caffemodel`` (keys ``<layer>/<i>``, one per parameter blob), ``.solverstate``
  (``history/<i>``, ``iter``, ``current_step``), ``.binaryproto`` (``data``, plus ``diff`` when the
  blob holds one; a BlobProtoVector gives ``blob_<i>``), ``.npz`` (its keys) and ``.npy`` (``data``).  Files of different
  array kinds may be compared (e.g. an ``.npz`` holding ``conv1/0`` ... against a ``.caffemodel``).
* logs: glog text from ``caffe train`` (or ``python -m replicate train``).  The printed values
  (``Iteration N (...), loss = X``, ``Train net output #k: name = X``, ``Test net output #k: name = X``,
  ``Iteration N, lr = X``, ``Test loss: X``, and the ``Gradient clipping`` norms and factors) are
  compared in order; timestamps, pids, source lines and timings are ignored.

Per array: identical bits or not, max absolute error, max relative error (``|a - b| / |b|``: B is
the reference; 0/0 is 0 and x/0 is inf), max ulps and the first differing element (flat C-order
index, both values and their bits).

Ulps: each float is mapped to an integer that orders the floats (``bits`` for a positive sign,
``-(bits & 0x7fff...)`` for a negative one) in its own type (float32 ulps for float32 arrays,
float64 ulps for float64); the ulp distance is the difference of the two integers.  So +0 and -0 are
0 ulps apart, although their bits differ (the array is then *not* identical), and the largest float
is 1 ulp from inf.  NaNs: NaN and NaN with the same bits are identical; any other pair in which a
NaN takes part is counted under ``nan_mismatches`` and left out of the error maxima.  Integer arrays
count ``|a - b|`` as ulps.

Exit status: 0 when every key is bit-identical (or, with ``--tol``/``--atol``/``--ulps``, within
tolerance), 1 when something differs (a key present on one side only counts as a difference), 2
when an input cannot be read (the message names the file) or the two inputs cannot be compared.

Tolerance: an element is within tolerance when it meets at least one of the criteria given:
``|a - b| <= atol + rtol * |b|`` (numpy.isclose's rule; ``--tol`` is rtol, ``--atol`` atol) or
``ulps <= --ulps``.  NaN matches NaN (any bits) under a tolerance; shapes must match.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

ARRAY_KINDS = ("caffemodel", "solverstate", "binaryproto", "npz", "npy")
KINDS = ARRAY_KINDS + ("log",)
_EXT = {".caffemodel": "caffemodel", ".solverstate": "solverstate", ".binaryproto": "binaryproto",
        ".binaryproto_vector": "binaryproto", ".npz": "npz", ".npy": "npy", ".log": "log"}


class InputError(Exception):
    """An input that cannot be read; the message names the file."""


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

def detect_kind(path: Path) -> str:
    for ext, kind in _EXT.items():
        if path.name.endswith(ext):
            return kind
    try:
        head = path.read_bytes()[:65536]
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from None
    if head.startswith(b"PK"):
        return "npz"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and (_GLOG.search(text) or _LOG_VALUE_HINT.search(text)):
        return "log"
    raise InputError(f"{path}: cannot tell what kind of file this is (name it *.caffemodel, *.solverstate, "
                     f"*.binaryproto, *.npz or *.log, or pass --kind)")


def load_arrays(path: Path, kind: str) -> tuple:
    """``({key: array}, notes)`` of an array file."""
    import prototxt_like as pl
    from prototxt_like.errors import CaffeFormatError
    notes: Dict[str, str] = {}
    try:
        if kind == "caffemodel":
            w = pl.caffemodel_weights(str(path))
            return {f"{layer}/{i}": a for layer, arrs in w.items() for i, a in enumerate(arrs)}, notes
        if kind == "solverstate":
            state, history = pl.load_solverstate(str(path))
            out = {f"history/{i}": h for i, h in enumerate(history)}
            out["iter"] = np.array(state.iter, dtype=np.int64)
            out["current_step"] = np.array(state.current_step, dtype=np.int64)
            notes["learned_net"] = state.learned_net
            return out, notes
        if kind == "binaryproto":
            return _load_binaryproto(path), notes
        if kind == "npz":
            with np.load(str(path), allow_pickle=False) as z:
                return {k: np.asarray(z[k]) for k in z.files}, notes
        if kind == "npy":
            return {"data": np.load(str(path), allow_pickle=False)}, notes
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except (CaffeFormatError, OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        msg = str(e)
        msg = msg[len(str(path)) + 2:] if msg.startswith(f"{path}: ") else msg
        raise InputError(f"{path}: not a readable {kind}: {msg}") from None
    raise InputError(f"{path}: unknown kind {kind!r}")


def _load_binaryproto(path: Path) -> Dict[str, np.ndarray]:
    import prototxt_like as pl
    from prototxt_like import caffe_pb2
    from prototxt_like.blobs import blob_to_numpy
    from prototxt_like.errors import CaffeFormatError
    data = path.read_bytes()
    try:
        pl.load_blob(data)  # the checks (shape vs values, unknown fields)
    except CaffeFormatError as first:
        try:
            return {f"blob_{i}": a for i, a in enumerate(pl.load_blob_vector(data))}
        except CaffeFormatError:
            raise first from None
    blob = caffe_pb2.BlobProto.FromString(data)
    out = {"data": blob_to_numpy(blob)}
    if blob.diff or blob.double_diff:
        out["diff"] = blob_to_numpy(blob, diff=True)
    return out


# glog head: "I20261202 13:31:07.950978 32083 solver.cpp:347] " (year optional), or none at all.
_GLOG = re.compile(r"^[IWEF]\d{4,8} [\d:.]+\s+\d+ [\w.+-]+:\d+\] ", re.M)
_LOG_VALUE_HINT = re.compile(r"(Iteration \d+.*(loss|lr) = |Test net output #\d+:)")
_NUM = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|-?nan|-?inf)\w*)"
_PATTERNS = [
    ("loss", re.compile(r"^Iteration (\d+) \(.*\), loss = " + _NUM)),
    ("loss", re.compile(r"^Iteration (\d+), loss = " + _NUM)),
    ("lr", re.compile(r"^Iteration (\d+), lr = " + _NUM)),
    ("train output", re.compile(r"^\s*Train net output #(\d+): (\S+) = " + _NUM)),
    ("test output", re.compile(r"^\s*Test net output #(\d+): (\S+) = " + _NUM)),
    ("test loss", re.compile(r"^Test loss: " + _NUM)),
    ("clip", re.compile(r"^Gradient clipping: scaling down gradients \(L2 norm " + _NUM + r" > " + _NUM
                        + r"\) by scale factor " + _NUM)),
]
_TESTING = re.compile(r"^Iteration (\d+), Testing net \(#(\d+)\)")


@dataclass
class Printed:
    kind: str
    label: str
    text: str
    line: int

    @property
    def value(self) -> float:
        try:
            return float(self.text)
        except ValueError:
            return math.nan


def parse_log(path: Path) -> List[Printed]:
    """The printed values of a Caffe training log, in order."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from None
    if b"\0" in raw[:65536]:
        raise InputError(f"{path}: not a text log (binary data)")
    text = raw.decode("utf-8", errors="replace")
    out: List[Printed] = []
    it: Optional[int] = None
    test_net = 0
    for n, line in enumerate(text.splitlines(), 1):
        m = _GLOG.match(line)
        msg = line[m.end():] if m else line
        t = _TESTING.match(msg)
        if t:
            it, test_net = int(t.group(1)), int(t.group(2))
            continue
        for kind, pat in _PATTERNS:
            m = pat.match(msg)
            if not m:
                continue
            if kind in ("loss", "lr"):
                it = int(m.group(1))
                label = f"iter {it} {kind}" + (" (final forward)" if kind == "loss" and "(" not in msg else "")
                out.append(Printed(kind, label, m.group(2), n))
            elif kind == "train output":
                out.append(Printed(kind, f"iter {it} train output #{m.group(1)} {m.group(2)}", m.group(3), n))
            elif kind == "test output":
                out.append(Printed(kind, f"iter {it} test net #{test_net} output #{m.group(1)} {m.group(2)}",
                                   m.group(3), n))
            elif kind == "test loss":
                out.append(Printed(kind, f"iter {it} test loss", m.group(1), n))
            else:
                out.append(Printed(kind, f"iter {it} clip L2 norm", m.group(1), n))
                out.append(Printed(kind, f"iter {it} clip threshold", m.group(2), n))
                out.append(Printed(kind, f"iter {it} clip scale factor", m.group(3), n))
            break
    if not out:
        raise InputError(f"{path}: no printed loss/lr/output values found (not a caffe train log?)")
    return out


# ---------------------------------------------------------------------------------------------
# Comparing
# ---------------------------------------------------------------------------------------------

@dataclass
class Tolerance:
    rtol: Optional[float] = None
    atol: Optional[float] = None
    ulps: Optional[int] = None

    @property
    def active(self) -> bool:
        return self.rtol is not None or self.atol is not None or self.ulps is not None

    def describe(self) -> str:
        if not self.active:
            return "bit-identical"
        parts = []
        if self.rtol is not None or self.atol is not None:
            parts.append(f"|a-b| <= {self.atol or 0:g} + {self.rtol or 0:g}*|b|")
        if self.ulps is not None:
            parts.append(f"ulps <= {self.ulps}")
        return " or ".join(parts)


@dataclass
class Entry:
    key: str
    status: str                        # identical | within tolerance | differs | only in A | only in B
    shape_a: Optional[tuple] = None
    shape_b: Optional[tuple] = None
    dtype_a: Optional[str] = None
    dtype_b: Optional[str] = None
    size: int = 0
    n_differ: int = 0
    nan_mismatches: int = 0
    max_abs: Optional[float] = None
    max_rel: Optional[float] = None
    max_ulps: Optional[int] = None
    first: Optional[dict] = None       # {index, a, b, a_bits, b_bits}
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("identical", "within tolerance")


def _ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise ulps between two float arrays of the same type (see the module docstring): each
    float maps to ``bits`` (sign clear) or ``-(bits without the sign)`` (sign set), and the distance
    is the difference of those integers, exact (uint64 for float64)."""
    n = a.dtype.itemsize
    si = {2: np.int16, 4: np.int32, 8: np.int64}[n]
    mask = si((1 << (8 * n - 1)) - 1)
    ma, mb = (a.view(si) & mask).astype(np.uint64), (b.view(si) & mask).astype(np.uint64)
    neg_a, neg_b = a.view(si) < 0, b.view(si) < 0
    same_sign = neg_a == neg_b
    hi, lo = np.maximum(ma, mb), np.minimum(ma, mb)
    return np.where(same_sign, hi - lo, ma + mb)  # opposite signs: both magnitudes, < 2**64


def _bits_hex(x) -> Optional[str]:
    x = np.asarray(x)
    if x.dtype.kind != "f" or x.dtype.itemsize not in (2, 4, 8):
        return None
    return "0x" + x.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize]).item().to_bytes(
        x.dtype.itemsize, "big").hex()


def _scalar(x):
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return float(x)
    if x.dtype.kind in "iub":
        return int(x)
    return str(x.item() if x.ndim == 0 else x)


def compare_arrays(key: str, a: np.ndarray, b: np.ndarray, tol: Tolerance) -> Entry:
    a, b = np.asarray(a), np.asarray(b)
    e = Entry(key, "differs", tuple(a.shape), tuple(b.shape), str(a.dtype), str(b.dtype), int(b.size))
    if a.shape != b.shape:
        e.note = f"shape {a.shape} vs {b.shape}"
        return e
    af, bf = a.reshape(-1), b.reshape(-1)
    numeric = a.dtype.kind in "fiub" and b.dtype.kind in "fiub"
    if not numeric:
        same = np.array([x == y for x, y in zip(af.tolist(), bf.tolist())], dtype=bool)
        e.n_differ = int((~same).sum())
        if e.n_differ:
            i = int(np.argmin(same))
            e.first = {"index": i, "a": str(af[i]), "b": str(bf[i]), "a_text": str(af[i]), "b_text": str(bf[i]),
                       "a_bits": None, "b_bits": None}
        e.status = "identical" if (e.n_differ == 0 and a.dtype == b.dtype) else "differs"
        return e
    # bit equality (same dtype) or value equality (different dtypes: never identical)
    if a.dtype == b.dtype:
        if a.dtype.kind == "f":
            u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
            same_bits = af.view(u) == bf.view(u)
        else:
            same_bits = af == bf
    else:
        same_bits = np.zeros(af.shape, dtype=bool)
    a64, b64 = af.astype(np.float64), bf.astype(np.float64)
    a_nan, b_nan = np.isnan(a64), np.isnan(b64)
    any_nan = a_nan | b_nan
    nan_mis = any_nan & ~same_bits
    e.nan_mismatches = int(nan_mis.sum())
    cmp = ~any_nan
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        diff = np.abs(a64 - b64)
        diff = np.where(a64 == b64, 0.0, diff)  # inf == inf
        rel = np.where(diff == 0, 0.0, diff / np.abs(b64))
    if a.dtype == b.dtype and a.dtype.kind == "f" and a.dtype.itemsize in (2, 4, 8):
        ulps = _ulp_distance(af, bf)
    elif a.dtype.kind in "iub" and b.dtype.kind in "iub":
        ulps = diff
    else:
        ulps = None
    if cmp.any():
        e.max_abs = float(diff[cmp].max())
        e.max_rel = float(rel[cmp].max())
        if ulps is not None:
            e.max_ulps = int(ulps[cmp].max())
    elif af.size:
        e.max_abs = e.max_rel = None
    else:
        e.max_abs = e.max_rel = 0.0
        e.max_ulps = 0 if ulps is not None else None
    differ = ~same_bits
    e.n_differ = int(differ.sum())
    if e.n_differ:
        i = int(np.argmax(differ))
        e.first = {"index": i, "a": _scalar(af[i]), "b": _scalar(bf[i]), "a_text": str(af[i]),
                   "b_text": str(bf[i]), "a_bits": _bits_hex(af[i]), "b_bits": _bits_hex(bf[i])}
        if a.ndim > 1:
            e.first["at"] = [int(j) for j in np.unravel_index(i, a.shape)]
    if e.n_differ == 0 and a.dtype == b.dtype:
        e.status = "identical"
        return e
    if a.dtype != b.dtype:
        e.note = f"dtype {a.dtype} vs {b.dtype}"
    if tol.active:
        ok = np.zeros(af.shape, dtype=bool)
        if tol.rtol is not None or tol.atol is not None:
            with np.errstate(invalid="ignore"):
                ok |= diff <= (tol.atol or 0.0) + (tol.rtol or 0.0) * np.abs(b64)
        if tol.ulps is not None and ulps is not None:
            ok |= ulps <= tol.ulps
        ok = np.where(any_nan, a_nan & b_nan, ok)
        if ok.all():
            e.status = "within tolerance"
    return e


def compare_array_files(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray], tol: Tolerance) -> List[Entry]:
    entries = []
    for k in list(a) + [k for k in b if k not in a]:
        if k not in b:
            x = np.asarray(a[k])
            entries.append(Entry(k, "only in A", shape_a=tuple(x.shape), dtype_a=str(x.dtype), size=int(x.size)))
        elif k not in a:
            x = np.asarray(b[k])
            entries.append(Entry(k, "only in B", shape_b=tuple(x.shape), dtype_b=str(x.dtype), size=int(x.size)))
        else:
            entries.append(compare_arrays(k, a[k], b[k], tol))
    return entries


def compare_logs(a: List[Printed], b: List[Printed], tol: Tolerance) -> dict:
    """Per kind: values, differing, max errors; and the first differing printed value.

    Values are matched by their label (``iter 5 lr``, ``iter 0 test net #0 output #1 loss``, ...) and
    its occurrence, so that a line present on one side only is reported as such and does not shift
    the comparison of everything after it; "first" follows A's order."""
    def keyed(items):
        seen: Dict[str, int] = {}
        out = {}
        for p in items:
            n = seen[p.label] = seen.get(p.label, -1) + 1
            out[(p.label, n)] = p
        return out

    ka, kb = keyed(a), keyed(b)
    order = []  # (sort position, key)
    pos = -0.5
    for i, k in enumerate(ka):
        pos = float(i)
        order.append((pos, k))
    pos_of_a = {k: i for i, k in enumerate(ka)}
    last = -0.5
    for j, k in enumerate(kb):
        if k in pos_of_a:
            last = pos_of_a[k]
        else:
            order.append((last + 0.5 + j * 1e-9, k))
    order.sort(key=lambda t: t[0])
    kinds: Dict[str, dict] = {}
    first = None
    n_bad = 0
    for _, key in order:
        pa, pb = ka.get(key), kb.get(key)
        kind = (pa or pb).kind
        k = kinds.setdefault(kind, {"kind": kind, "values": 0, "differ": 0, "max_abs": 0.0, "max_rel": 0.0})
        k["values"] += 1
        reason = None
        if pa is None or pb is None:
            reason = "only in A" if pb is None else "only in B"
        elif pa.text != pb.text:
            va, vb = pa.value, pb.value
            d = abs(va - vb) if not (math.isnan(va) or math.isnan(vb)) else math.nan
            r = 0.0 if d == 0 else (d / abs(vb) if vb else math.inf)
            if not math.isnan(d):
                k["max_abs"] = max(k["max_abs"], d)
                k["max_rel"] = max(k["max_rel"], r)
            if (tol.rtol is not None or tol.atol is not None) and (
                    (math.isnan(va) and math.isnan(vb))
                    or (not math.isnan(d) and d <= (tol.atol or 0.0) + (tol.rtol or 0.0) * abs(vb))):
                reason = "within tolerance"
            else:
                reason = "differs"
        if reason is None or reason == "within tolerance":
            continue
        k["differ"] += 1
        n_bad += 1
        if first is None:
            first = {"label": key[0], "reason": reason,
                     "a": None if pa is None else {"text": pa.text, "line": pa.line},
                     "b": None if pb is None else {"text": pb.text, "line": pb.line}}
    identical = len(a) == len(b) and all(x.label == y.label and x.text == y.text for x, y in zip(a, b))
    return {"kinds": list(kinds.values()), "first_difference": first, "n_differ": n_bad,
            "values_a": len(a), "values_b": len(b), "identical": identical}


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

def _g(x, digits=3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if x == 0:
            return "0"
        return f"{x:.{digits}g}"
    return str(x)


def _val(text, bits) -> str:
    return f"{text} ({bits})" if bits else text


def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _table(rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def report_arrays(pa, pb, ka, kb, entries: List[Entry], notes, tol: Tolerance) -> tuple:
    rows = [["key", "shape", "dtype", "status", "max|a-b|", "max rel", "max ulps", "first difference (flat index: A vs B)"]]
    for e in entries:
        shape = e.shape_a if e.shape_a == e.shape_b or e.shape_b is None else e.shape_b if e.shape_a is None \
            else f"{e.shape_a}/{e.shape_b}"
        dtype = e.dtype_a if e.dtype_a == e.dtype_b or e.dtype_b is None else e.dtype_b if e.dtype_a is None \
            else f"{e.dtype_a}/{e.dtype_b}"
        first = ""
        if e.first:
            first = f"[{e.first['index']}] {_val(e.first['a_text'], e.first['a_bits'])} vs {_val(e.first['b_text'], e.first['b_bits'])}"
        extra = []
        if e.n_differ and e.status not in ("only in A", "only in B"):
            extra.append(f"{e.n_differ}/{e.size} differ")
        if e.nan_mismatches:
            extra.append(f"{e.nan_mismatches} NaN mismatches")
        if e.note:
            extra.append(e.note)
        if extra:
            first = (first + "  " if first else "") + "(" + "; ".join(extra) + ")"
        rows.append([e.key, str(shape).replace(" ", ""), str(dtype), e.status, _g(e.max_abs), _g(e.max_rel),
                     _g(e.max_ulps), first])
    n_ident = sum(e.status == "identical" for e in entries)
    n_tol = sum(e.status == "within tolerance" for e in entries)
    n_bad = sum(not e.ok for e in entries)
    ok = n_bad == 0
    lines = [f"A: {pa} ({ka}, {sum(e.status != 'only in B' for e in entries)} keys)",
             f"B: {pb} ({kb}, {sum(e.status != 'only in A' for e in entries)} keys)", "", _table(rows), ""]
    for name, (va, vb) in notes.items():
        if va != vb:
            lines.append(f"note: {name} differs ({va!r} vs {vb!r}); not counted")
    verdict = ("IDENTICAL" if n_ident == len(entries) else "WITHIN TOLERANCE") if ok else "DIFFERENT"
    lines.append(f"{verdict}: {len(entries)} keys, {n_ident} identical, {n_tol} within tolerance, "
                 f"{n_bad} differ (criterion: {tol.describe()})")
    js = {"a": str(pa), "b": str(pb), "kind_a": ka, "kind_b": kb, "criterion": tol.describe(), "ok": ok,
          "identical": n_ident == len(entries),
          "entries": [{k: v for k, v in e.__dict__.items()} for e in entries],
          "notes": {k: {"a": va, "b": vb} for k, (va, vb) in notes.items()}}
    first_bad = next((e for e in entries if not e.ok), None)
    js["first_difference"] = None if first_bad is None else {"key": first_bad.key, "status": first_bad.status,
                                                               **(first_bad.first or {})}
    return ok, "\n".join(lines), js


def report_logs(pa, pb, res: dict, tol: Tolerance) -> tuple:
    rows = [["kind", "values", "differ", "max|a-b|", "max rel"]]
    for k in res["kinds"]:
        rows.append([k["kind"], str(k["values"]), str(k["differ"]), _g(k["max_abs"]), _g(k["max_rel"])])
    lines = [f"A: {pa} (log, {res['values_a']} printed values)", f"B: {pb} (log, {res['values_b']} printed values)",
             "", _table(rows), ""]
    f = res["first_difference"]
    if f:
        side = lambda p: "(not printed)" if p is None else f"line {p['line']}: {p['text']}"
        lines.append(f"first difference: {f['label']} ({f['reason']})")
        lines.append(f"  A {side(f['a'])}")
        lines.append(f"  B {side(f['b'])}")
    ok = res["n_differ"] == 0
    verdict = ("IDENTICAL" if res["identical"] else "WITHIN TOLERANCE") if ok else "DIFFERENT"
    lines.append(f"{verdict}: {max(res['values_a'], res['values_b'])} printed values, {res['n_differ']} differ "
                 f"(criterion: {'identical text' if not tol.active else tol.describe()})")
    js = {"a": str(pa), "b": str(pb), "kind_a": "log", "kind_b": "log", "ok": ok,
          "criterion": "identical text" if not tol.active else tol.describe(), **res}
    return ok, "\n".join(lines), js


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m replicate compare",
        description="Compare two .caffemodel/.solverstate/.binaryproto/.npz files, or two caffe train logs, "
                    "per blob (or per printed value): bit-identical or not, max abs/rel error, max ulps, first "
                    "difference. Exit 0: identical (or within --tol/--atol/--ulps); 1: different; 2: unreadable.",
        epilog="B is the reference for relative errors and tolerances. Ulps are counted in the arrays' own float "
               "type; +0 and -0 are 0 ulps apart but not identical; NaN vs NaN with equal bits is identical.")
    ap.add_argument("a", help="first file (e.g. ours)")
    ap.add_argument("b", help="second file (the reference, e.g. Caffe's)")
    ap.add_argument("--tol", "--rtol", dest="rtol", type=float, default=None,
                    help="relative tolerance: pass when |a-b| <= atol + RTOL*|b| everywhere")
    ap.add_argument("--atol", type=float, default=None, help="absolute tolerance (with or without --tol)")
    ap.add_argument("--ulps", type=int, default=None, help="pass elements at most this many ulps apart")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--kind", choices=KINDS, default=None,
                    help="the inputs' kind when their names do not tell (default: from the extension)")
    return ap


def run(a: str, b: str, tol: Tolerance, kind: Optional[str] = None) -> tuple:
    """``(ok, text, json_dict)``; raises :class:`InputError` for unreadable inputs."""
    pa, pb = Path(a), Path(b)
    for p in (pa, pb):
        if not p.exists():
            raise InputError(f"{p}: no such file")
        if p.is_dir():
            raise InputError(f"{p}: is a directory")
    ka, kb = (kind, kind) if kind else (detect_kind(pa), detect_kind(pb))
    if (ka == "log") != (kb == "log"):
        raise InputError(f"cannot compare a log with an array file: {pa} is {ka}, {pb} is {kb}")
    if ka == "log":
        return report_logs(pa, pb, compare_logs(parse_log(pa), parse_log(pb), tol), tol)
    (da, na), (db, nb) = load_arrays(pa, ka), load_arrays(pb, kb)
    notes = {k: (na.get(k), nb.get(k)) for k in set(na) | set(nb)}
    return report_arrays(pa, pb, ka, kb, compare_array_files(da, db, tol), notes, tol)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    for name in ("rtol", "atol"):
        v = getattr(args, name)
        if v is not None and not (v >= 0):
            print(f"error: --{name} must be >= 0", file=sys.stderr)
            return 2
    if args.ulps is not None and args.ulps < 0:
        print("error: --ulps must be >= 0", file=sys.stderr)
        return 2
    tol = Tolerance(args.rtol, args.atol, args.ulps)
    try:
        ok, text, js = run(args.a, args.b, tol, args.kind)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_jsonable(js), indent=1, allow_nan=False))
    else:
        print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
