"""Fixtures for the data-layer tests: golden databases come from shared/ only."""
import shutil
import stat

import pytest

from tests._shared import require


@pytest.fixture(scope="session")
def golden_data():
    """shared/golden/data (skips when absent)."""
    return require("golden", "data")


def writable_copy(src, dst):
    """Copy a (read-only) golden folder so leveldb may rewrite its files."""
    shutil.copytree(src, dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dst
