"""Whole-suite timings in fresh pytest processes, printed side by side:

(d) a cold cache against a warm one (rendered splits and corrupted images are computed once);
(e) -n 2 against -n 0 on this machine (workers get cpu_count // workers torch threads each).
Uses a representative slice of the suite (`-k`) so the script finishes in a few minutes.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLICE = "clean or natural or gaussian_noise or glass_blur or fog or pgd-linf-1/255"


def run(*args: str, cache: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    with tempfile.TemporaryDirectory() as reports:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "robustness_tests", "-q",
                               f"--report-dir={reports}", f"--cache-dir={cache}", *args],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"pytest {' '.join(args)} failed:\n{done.stdout[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-k", default=SLICE, help="which cases to time")
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="robustness-bench-cache-"))
    try:
        cold = run("-n", "2", "-k", args.k, cache=cache)
        warm = run("-n", "2", "-k", args.k, cache=cache)
        serial = run("-n", "0", "-k", args.k, cache=cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"{'measurement':<28} {'A s':>8} {'B s':>8} {'A/B':>6}")
    print(f"{'(d) cold / warm cache, -n 2':<28} {cold:>8.1f} {warm:>8.1f} {cold / warm:>6.2f}  (target >= 2)")
    print(f"{'(e) -n 0 / -n 2, warm':<28} {serial:>8.1f} {warm:>8.1f} {serial / warm:>6.2f}  "
          f"({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
