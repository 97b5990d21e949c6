"""Fixtures shared by the test folders (the golden data comes from shared/ only)."""
import pytest

from tests._shared import require


@pytest.fixture(scope="session")
def golden_data():
    """shared/golden/data (skips when absent)."""
    return require("golden", "data")
