"""Fixtures shared by the harness's own tests."""
from pathlib import Path

import pytest


@pytest.fixture
def root() -> Path:
    return Path(__file__).resolve().parent.parent
