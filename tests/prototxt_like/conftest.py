"""Fixtures for the prototxt_like tests: golden files come from shared/ only."""
import pytest

from tests._shared import require


@pytest.fixture(scope="session")
def formats():
    """shared/golden/formats (skips when absent)."""
    return require("golden", "formats")


@pytest.fixture(scope="session")
def paper_results():
    return require("paper", "results")
