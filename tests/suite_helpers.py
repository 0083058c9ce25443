"""Helpers for the tests that run the robustness suite in a fresh pytest process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_suite(*args: str, timeout: float = 600, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the robustness suite in a fresh pytest process at the repository root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")} | (extra_env or {})
    return subprocess.run([sys.executable, "-m", "pytest", "robustness_tests", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())

