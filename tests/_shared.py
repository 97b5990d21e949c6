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
