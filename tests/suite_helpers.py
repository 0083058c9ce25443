"""Helpers for the tests that run the robustness suite in a fresh pytest process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# Thread pools a child process sizes from these (torch's OpenMP, MKL, NumPy's OpenBLAS).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def child_env(extra_env: dict | None = None) -> dict[str, str]:
    """The environment of a pytest process a test starts: this one's without pytest's own variables, then
    `extra_env`. Started from an xdist worker, the child's OpenMP, MKL and OpenBLAS thread pools are sized to
    that worker's share of the cores (unless `extra_env` or the caller's environment sizes them): a child on
    every core beside the other workers oversubscribes the machine, and torch's OpenMP threads then spin while
    descheduled. Measured on 2 cores beside one busy core, three attack cases took 41.6 s wall and 49.2 s CPU on
    two threads, 27.0 s and 24.9 s on one. A child run under xdist sizes its own workers' torch threads
    (`harness.plugin.worker_threads`), and a `-n 0` child's corruption pool takes every core (a process pool
    does not spin): neither follows these variables. GLIBC_TUNABLES is left out unless `extra_env` sets it: the
    outer run's plugin sets it for its own workers, and the child's plugin must decide for itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "GLIBC_TUNABLES"}
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers:
        share = str(max(1, (os.cpu_count() or 1) // workers))
        env = {name: share for name in THREAD_VARIABLES} | env
    return env | (extra_env or {})


def run_suite(*args: str, timeout: float = 600, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the robustness suite in a fresh pytest process at the repository root (environment: `child_env`)."""
    return subprocess.run([sys.executable, "-m", "pytest", "robustness_tests", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=child_env(extra_env))


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

