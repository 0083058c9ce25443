"""Start-up time of the suite: from spawning `pytest` to the moment its first case starts, warm, on this machine.

Runs, in fresh processes, the clean case of one embedded model (by marker, so a renamed case id still matches):

    python -m pytest robustness_tests -p no:xdist -m clean --model embedded:synth-cnn -q --report-dir <tmp>

once to warm the caches (the default --cache-dir, the OS page cache, Python's bytecode), then `--repeats` more
times. A tiny plugin (written to a temp dir on PYTHONPATH and loaded with `-p`) records time.time() at a few
points of the run, the last being `pytest_runtest_call` of the first item; the start is time.time() taken here just
before the process is spawned, so start-up includes the interpreter's own. Prints the median of the repeats:
start to first case (target <= 5 s on 2 cores), the whole-process wall time, and where the start-up went
(interpreter + pytest, entry-point plugins, conftest.py, pytest_configure, collection, the first item's setup).
Reports go to a temp dir; the run gates against the committed baselines (read only) and never updates them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 5.0
PLUGIN_NAME = "_bench_startup_probe"
PLUGIN = '''\
"""Written by benchmarks/bench_startup.py: records when pytest reaches each point of a run, into a JSON file."""
import json
import os
import time

import pytest

_MARKS = {"plugin_imported": time.time()}
_PATH = os.environ["BENCH_STARTUP_MARKS"]


def _mark(name):
    if name not in _MARKS:
        _MARKS[name] = time.time()
        with open(_PATH, "w") as out:
            json.dump(_MARKS, out)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):  # once the entry-point plugins are loaded
    _mark("plugins_loaded")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    _mark("configure_start")


def pytest_sessionstart(session):  # after every plugin's pytest_configure
    _mark("configured")


def pytest_collection_finish(session):
    _mark("collected")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    _mark("first_call")
'''
# (label, mark the phase ends at); each phase starts where the previous one ended, the first at the spawn.
# -p modules are imported while pytest parses its arguments, before the entry-point plugins and conftest.py.
PHASES = (("interpreter, import pytest", "plugin_imported"),
          ("entry-point plugins (harness.plugin if installed)", "plugins_loaded"),
          ("conftest.py (harness.plugin if not installed)", "configure_start"),
          ("pytest_configure (config, cases, model ids)", "configured"),
          ("collection", "collected"),
          ("first item's setup (fixtures)", "first_call"))


def pytest_command(model: str, reports: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "robustness_tests", "-p", "no:xdist", "-m", "clean", "--model", model,
            "-q", f"--report-dir={reports}", "-p", PLUGIN_NAME]


def run_once(model: str, probe_dir: Path) -> dict[str, float]:
    """One fresh pytest process: seconds from spawn to each mark, and `whole` (spawn to exit)."""
    marks_path = probe_dir / "marks.json"
    marks_path.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(probe_dir), env.get("PYTHONPATH")]))
    env["BENCH_STARTUP_MARKS"] = str(marks_path)
    with tempfile.TemporaryDirectory(prefix="bench-startup-reports-") as reports:
        command = pytest_command(model, reports)
        started_wall, started = time.time(), time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        whole = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    if not marks_path.is_file():
        sys.exit(f"the probe plugin recorded nothing: did `-p {PLUGIN_NAME}` load?\n{done.stdout[-2000:]}")
    marks = json.loads(marks_path.read_text())
    if "first_call" not in marks:
        sys.exit(f"no case ran (marks: {sorted(marks)}):\n{done.stdout[-2000:]}")
    return {**{name: at - started_wall for name, at in marks.items()}, "whole": whole}


def each(runs: list[dict[str, float]], key: str) -> str:
    return " ".join(f"{run[key]:.2f}" for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded:synth-cnn", help="model whose clean case is run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up run (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-probe-") as probe:
        probe_dir = Path(probe)
        (probe_dir / f"{PLUGIN_NAME}.py").write_text(PLUGIN)
        run_once(args.model, probe_dir)  # warm-up: caches, page cache, bytecode
        runs = [run_once(args.model, probe_dir) for _ in range(args.repeats)]

    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    first, whole = median("first_call"), median("whole")
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"start-up, warm: python {' '.join(pytest_command(args.model, '<tmp>')[1:-2])}")
    print(f"median of {args.repeats} after one warm-up run; {os.cpu_count()} cores, load average {load}")
    print(f"{'measurement':<52} {'s':>7}  runs")
    verdict = "ok" if first <= TARGET_S else "MISSED"
    print(f"{'start to first case':<52} {first:>7.2f}  {each(runs, 'first_call')}  "
          f"(target <= {TARGET_S:.0f} s) {verdict}")
    print(f"{'whole process':<52} {whole:>7.2f}  {each(runs, 'whole')}")
    print("where start-up went (medians of each phase):")
    previous = None
    for label, mark in PHASES:
        phase = statistics.median(run[mark] - (run[previous] if previous else 0.0) for run in runs)
        print(f"  {label:<50} {phase:>7.2f}")
        previous = mark


if __name__ == "__main__":
    main()
