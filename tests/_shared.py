"""The one way tests find ../shared (golden fixtures and the paper's release), and the one place
that decides what happens when a bit-level test cannot run.

``REPLICATE_SHARED`` overrides the location; otherwise ``<repo>/../shared``.
Tests that need a folder call :func:`require`; tests whose bits depend on the BLAS call
:func:`require_exact_blas`.  When what they need is absent the test is skipped with the reason,
except in CI (``CI=true``), where it FAILS: a CI run must not pass because it compared nothing.

Both also register the running test as a *bit-level* test (a comparison with Caffe's own output or
one that needs the exact BLAS); ``tests/conftest.py`` prints how many of them passed, and how many
arrays they compared bit for bit (:func:`count_compared`, :func:`bit_compare`), at the end of the run.
"""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# nodeid -> {"golden": bool, "exact": bool, "arrays": int}; names of the functions (fixtures among
# them) that called require("golden", ...) while a test was being set up
BITLEVEL: dict = {}
GOLDEN_FIXTURES: set = set()


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def skip_or_fail(reason: str):
    """Skip the calling test, or fail it in CI (``CI=true``): for tests that compare bits and cannot
    run here (no ../shared, no exact BLAS).  Genuine non-bit skips (no GPU, ...) use pytest.skip."""
    if in_ci():
        pytest.fail(f"CI=true: a bit-level test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def current_test():
    """The nodeid of the running test (None outside a test)."""
    cur = os.environ.get("PYTEST_CURRENT_TEST")
    return cur.rsplit(" (", 1)[0] if cur else None


def mark_bitlevel(what: str = "golden"):
    """Register the running test (or the fixture being set up) as bit-level; ``what`` is golden|exact."""
    cur = os.environ.get("PYTEST_CURRENT_TEST", "")
    if what == "golden" and cur.endswith("(setup)"):
        # a fixture (maybe session-scoped, shared by later tests): remember the test-side callers'
        # names; tests/conftest.py counts every test that uses a fixture of one of these names
        import sys
        f = sys._getframe(1)
        while f is not None:
            file = Path(f.f_code.co_filename).resolve()
            if file.is_relative_to(REPO / "tests") and file != Path(__file__).resolve():
                GOLDEN_FIXTURES.add(f.f_code.co_name)
            f = f.f_back
    node = current_test()
    if node:
        BITLEVEL.setdefault(node, {"golden": False, "exact": False, "arrays": 0})[what] = True


def count_compared(n: int = 1):
    """Add ``n`` arrays/values compared bit for bit to the running test's count."""
    node = current_test()
    if node:
        BITLEVEL.setdefault(node, {"golden": False, "exact": False, "arrays": 0})["arrays"] += n


def bit_compare(name: str, ours, theirs):
    """Assert that ``ours`` has exactly the bits of ``theirs`` (arrays: same shape, dtype and bytes;
    bytes/str/numbers: equal), and count one comparison."""
    import numpy as np
    if isinstance(theirs, (bytes, str, int, float)) and not isinstance(theirs, bool):
        assert ours == theirs, f"{name}: {ours!r} != Caffe's {theirs!r}"
    else:
        a, b = np.asarray(ours), np.asarray(theirs)
        assert a.shape == b.shape, f"{name}: shape {a.shape} != Caffe's {b.shape}"
        assert a.dtype == b.dtype, f"{name}: dtype {a.dtype} != Caffe's {b.dtype}"
        if a.tobytes() != b.tobytes():
            from replicate.compare import compare_arrays, Tolerance
            e = compare_arrays(name, a, b, Tolerance())
            raise AssertionError(f"{name}: {e.n_differ} of {e.size} values differ from Caffe's bits, max |diff| "
                                 f"{e.max_abs}, max ulps {e.max_ulps}, first at {e.first}")
    count_compared(1)


def shared_dir() -> Path:
    env = os.environ.get("REPLICATE_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def require(*parts: str, bitlevel: bool = True) -> Path:
    """Path under shared/, or skip the calling test with a clear reason (fail it in CI).

    A path under ``golden/`` registers the test as bit-level unless ``bitlevel=False`` (tests that
    only use Caffe's files as inputs, e.g. of the compare tool)."""
    path = shared_dir().joinpath(*parts)
    if bitlevel and parts and parts[0] == "golden":
        mark_bitlevel("golden")
    if not path.exists():
        skip_or_fail(f"shared fixture {path} is absent (set REPLICATE_SHARED to the shared/ folder)")
    return path


def require_exact_blas() -> None:
    """Skip (fail in CI) unless exact mode loads the CBLAS the golden fixtures were made with:
    OpenBLAS 0.3.21 with Haswell (or Zen) kernels and OPENBLAS_NUM_THREADS=1."""
    from replicate import ops as R
    mark_bitlevel("exact")
    try:
        with R.blas_mode("exact"):
            info = R.blas_library()
    except RuntimeError as e:
        skip_or_fail(f"exact BLAS unavailable: {e}")
    low = info.lower()
    if "0.3.21" not in low or not ("core=haswell" in low or "core=zen" in low):
        skip_or_fail(f"golden bits need OpenBLAS 0.3.21 with OPENBLAS_CORETYPE=Haswell (or Zen) and "
                     f"OPENBLAS_NUM_THREADS=1; loaded: {info}")
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        skip_or_fail("golden bits need OPENBLAS_NUM_THREADS=1 (make test sets it)")


def writable_copy(src, dst):
    """Copy a (read-only) golden folder so that leveldb may rewrite its files there."""
    import shutil
    import stat
    shutil.copytree(src, dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dst


def random_image_db(folder, out, *, n: int, size: int, classes: int, backend: str = "lmdb", seed: int = 0):
    """A database of ``n`` random ``size`` x ``size`` colour PNGs (labels ``i % classes``), packed as
    convert_imageset does, under ``folder``; returns the database path."""
    import numpy as np
    from PIL import Image

    from data_prep.pack import pack
    rng = np.random.RandomState(seed)
    img = Path(folder) / "img"
    img.mkdir(exist_ok=True)
    lines = []
    for i in range(n):
        Image.fromarray(rng.randint(0, 256, (size, size, 3), dtype=np.uint8)).save(img / f"{i}.png")
        lines.append(f"{i}.png {i % classes}\n")
    (Path(folder) / "list.txt").write_text("".join(lines))
    pack(str(img) + "/", str(Path(folder) / "list.txt"), str(out), backend=backend, progress=False, workers=1,
         log=lambda m: None)
    return Path(out)
