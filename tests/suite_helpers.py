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


def record_then_gate(tmp: Path, *args: str, timeout: float = 600) -> tuple[dict, str]:
    """Record the selection's baselines into `tmp`/baselines, then gate against them (each run must exit 0): the
    gate run's report, and the wall seconds of both runs as text."""
    import time

    timings = []
    for name, extra in (("record", ("--update-baselines",)), ("gate", ())):
        started = time.perf_counter()
        done = run_suite(*args, *extra, f"--baselines-dir={tmp / 'baselines'}", f"--cache-dir={tmp / 'cache'}",
                         f"--report-dir={tmp / name}", timeout=timeout)
        timings.append(f"{name} {time.perf_counter() - started:.0f} s")
        assert done.returncode == 0, done.stdout[-4000:]
    return read_json(tmp / "gate" / "latest.json"), ", ".join(timings)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())

