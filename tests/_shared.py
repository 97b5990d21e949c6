"""The one way tests find ../shared (golden fixtures and the paper's release).

``REPLICATE_SHARED`` overrides the location; otherwise ``<repo>/../shared``.
Tests that need a folder call :func:`require` and are skipped, with the path
in the reason, when it is absent.
"""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    env = os.environ.get("REPLICATE_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def require(*parts: str) -> Path:
    """Path under shared/, or skip the calling test with a clear reason."""
    path = shared_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared fixture {path} is absent (set REPLICATE_SHARED to the shared/ folder)")
    return path


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
