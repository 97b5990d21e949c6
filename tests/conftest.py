"""Fixtures shared by the test folders (the golden data comes from shared/ only), and the count of
bit-level comparisons printed at the end of every run.

A test is *bit-level* when it compares with Caffe's own output (it called
``tests._shared.require("golden", ...)``, directly or through a fixture), needs the exact BLAS
(``tests._shared.require_exact_blas()``), or carries the ``bitlevel`` marker.  The summary counts
those that passed, and the arrays/values they compared bit for bit through
``tests.ops.golden.assert_bits``/``bits_equal`` or ``tests._shared.bit_compare``/``count_compared``.
In CI (``CI=true``) a bit-level test that cannot run fails instead of skipping (tests/_shared.py).
"""
import functools
import sys

import pytest

from tests import _shared
from tests._shared import require


@pytest.fixture(scope="session")
def golden_data():
    """shared/golden/data (skips when absent)."""
    return require("golden", "data")


# ---- the bit-level count ----------------------------------------------------------------------

_FIXTURES: dict = {}      # nodeid -> fixture names
_MARKED: set = set()      # nodeids with the bitlevel marker
_OUTCOME: dict = {}       # nodeid -> "passed" | "failed" | "skipped"
_WRAPPED = {"done": False}


def pytest_configure(config):
    config.addinivalue_line("markers", "bitlevel: compares bits with Caffe's output (counted in the summary)")


def _wrap_golden_asserts():
    """Count the calls of tests.ops.golden's bit assertions (in the module and wherever they were
    imported by name), once that module is loaded."""
    golden = sys.modules.get("tests.ops.golden")
    if golden is None or _WRAPPED["done"]:
        return
    _WRAPPED["done"] = True
    originals = {}
    for name in ("assert_bits", "bits_equal"):
        fn = getattr(golden, name, None)
        if fn is None or getattr(fn, "_counted", False):
            continue

        @functools.wraps(fn)
        def counted(*a, __fn=fn, __name=name, **kw):
            r = __fn(*a, **kw)
            if __name == "assert_bits" or r:
                _shared.count_compared(1)
            return r
        counted._counted = True
        originals[id(fn)] = counted
    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("tests"):
            for attr, val in list(vars(mod).items()):
                if id(val) in originals and callable(val):
                    setattr(mod, attr, originals[id(val)])


def pytest_collection_modifyitems(config, items):
    for item in items:
        _FIXTURES[item.nodeid] = tuple(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("bitlevel"):
            _MARKED.add(item.nodeid)
    _wrap_golden_asserts()


def pytest_runtest_setup(item):
    _wrap_golden_asserts()


def pytest_runtest_logreport(report):
    if report.failed:
        _OUTCOME[report.nodeid] = "failed"
    elif report.skipped:
        _OUTCOME.setdefault(report.nodeid, "skipped")
    elif report.when == "call" and report.passed:
        _OUTCOME.setdefault(report.nodeid, "passed")


def _is_bitlevel(nodeid: str) -> bool:
    return (nodeid in _shared.BITLEVEL or nodeid in _MARKED
            or any(f in _shared.GOLDEN_FIXTURES for f in _FIXTURES.get(nodeid, ())))


def bitlevel_counts() -> dict:
    counts = {"passed": 0, "failed": 0, "skipped": 0, "arrays": 0}
    for nodeid, outcome in _OUTCOME.items():
        if not _is_bitlevel(nodeid):
            continue
        counts[outcome] += 1
        if outcome == "passed":
            counts["arrays"] += _shared.BITLEVEL.get(nodeid, {}).get("arrays", 0)
    return counts


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    c = bitlevel_counts()
    line = (f"bit-level comparisons: {c['passed']} tests passed against Caffe's output or with exact BLAS, "
            f"{c['arrays']} arrays/values compared bit for bit through assert_bits/bits_equal/bit_compare")
    if c["skipped"] or c["failed"]:
        line += f" ({c['skipped']} bit-level tests skipped, {c['failed']} failed)"
    terminalreporter.write_line(line, bold=True, red=bool(c["failed"]), yellow=bool(c["skipped"] and not c["failed"]))
