"""Whole-suite timings in fresh pytest processes, printed side by side:

(d) a cold cache against a warm one (rendered splits and corrupted images are computed once);
(e) -n 2 against -n 0 on this machine (workers get cpu_count // workers torch threads each), cold, where the
    work dominates, and (e') warm, where each worker's start-up (importing torch, loading models) does;
and, from the reports, each worker's peak RSS and its growth from its first case to its last.
Uses a representative slice of the suite (`-k`) so the script finishes in a few minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLICE = "clean or natural or gaussian_noise or glass_blur or fog or pgd-linf-1/255"


def run(*args: str, cache: Path) -> tuple[float, dict]:
    """Wall seconds of one suite run, and its report."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    with tempfile.TemporaryDirectory() as reports:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "robustness_tests", "-q",
                               f"--report-dir={reports}", f"--cache-dir={cache}", *args],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"pytest {' '.join(args)} failed:\n{done.stdout[-3000:]}")
        return elapsed, json.loads((Path(reports) / "latest.json").read_text())


def memory_lines(report: dict) -> list[str]:
    """Per worker: cases run, and its peak RSS (monotonic) after its first case and after its last (MiB)."""
    by_worker: dict[str, list[float]] = {}
    for case in report["cases"]:
        by_worker.setdefault(case["worker"], []).append(case["worker_peak_rss_mb"])
    return [f"  {worker}: {len(peaks)} cases, peak RSS {min(peaks):.0f} MiB after the first, {max(peaks):.0f} MiB "
            f"after the last" for worker, peaks in sorted(by_worker.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-k", default=SLICE, help="which cases to time")
    args = parser.parse_args()
    cache, serial_cache = (Path(tempfile.mkdtemp(prefix="robustness-bench-cache-")) for _ in range(2))
    try:
        cold, _ = run("-n", "2", "-k", args.k, cache=cache)
        warm, report = run("-n", "2", "-k", args.k, cache=cache)
        serial_warm, _ = run("-n", "0", "-k", args.k, cache=cache)
        serial_cold, _ = run("-n", "0", "-k", args.k, cache=serial_cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(serial_cache, ignore_errors=True)
    rows = [("(d) cold / warm cache, -n 2", cold, warm, "(target >= 2)", cold / warm >= 2),
            ("(e) -n 0 / -n 2, cold", serial_cold, cold, "(target >= 1)", serial_cold / cold >= 1),
            ("(e') -n 0 / -n 2, warm", serial_warm, warm, "", None)]
    print(f"{'measurement':<28} {'A s':>8} {'B s':>8} {'A/B':>6}   ({os.cpu_count()} cores)")
    for name, a, b, target, met in rows:
        verdict = "" if met is None else "ok" if met else "MISSED"
        print(f"{name:<28} {a:>8.1f} {b:>8.1f} {a / b:>6.2f}  {target} {verdict}")
    print("memory, warm -n 2 run:")
    print("\n".join(memory_lines(report)))


if __name__ == "__main__":
    main()
