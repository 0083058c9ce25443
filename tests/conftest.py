"""Shared helpers of the harness's own tests."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_suite(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the robustness suite in a fresh pytest process at the repository root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "robustness_tests", "-p", "no:randomly", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.fixture
def root() -> Path:
    return ROOT
