"""Memory over a long run: one process evaluates the same cases pass after pass, as a worker does through a long
suite, and prints its resident memory after every pass.

The first pass loads the model and fills the in-memory caches (bounded: `harness.cache.MEMORY_BYTES`); every later
pass repeats identical work, so any growth after it is a leak. After each pass two readings are taken: the resident
set, and then the live memory: the resident set after `gc.collect()` and glibc's `malloc_trim(0)`, which hands back
what the allocator kept of freed memory (so each later pass starts from a trimmed heap). The leak verdict is on the
live memory (target: growth from the end of the second pass to the end of the last within 2%). The resident set
before the trim also counts what glibc keeps of freed blocks, in its main heap and in the per-thread arenas of each
case's prefetch and decode threads; it is printed as a range beside the verdict. Without any trim it rose and fell
by 10 to 20% from pass to pass here (2026-12-04: 1,870 to 2,264 MiB over 12 passes); with a trim after each pass the
live memory was 1,496 MiB after every one of 8. Where the C library has no malloc_trim, the live reading is after
`gc.collect()` alone, and says so. Uses the suite's configured cache directory, so a cache warmed by `make suite`
makes the first pass fast; a cold one makes it render and corrupt.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import time
from pathlib import Path
from typing import Callable

import torch

from harness.cache import ArrayCache
from harness.cases import expand_cases
from harness.config import build_config, read_pyproject_table
from harness.evaluate import RunContext, evaluate
from harness.models import load_model
from harness.plugin import rss_mb

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = ("fgsm-linf-1/255", "pgd-linf-1/255")
TOLERANCE = 0.02


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim(pad)` from the C library already loaded in this process (`malloc_trim(0)` hands every
    arena's free memory back to the kernel), or None where that library has none."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded:synth-clip")
    parser.add_argument("--passes", type=int, default=4)
    args = parser.parse_args()
    if args.passes < 3:
        parser.error("--passes must be at least 3: the first fills the caches, the second is the reference")
    config = build_config(ROOT, read_pyproject_table(ROOT / "pyproject.toml"), {"models": [args.model]})
    cases = [case for case in expand_cases(config)
             if case.setting.category != "adversarial" or case.setting.name in ATTACKS]
    device = torch.device("cpu")
    model = load_model(args.model, device)
    cache = ArrayCache(config.cache_dir)
    trim = malloc_trim()
    live_label = "after gc + malloc_trim" if trim is not None else "after gc (no malloc_trim in this C library)"
    resident, live = [], []
    for number in range(1, args.passes + 1):
        started = time.perf_counter()
        for case in cases:
            evaluate(case, model, RunContext(device, cache, config.seed, config.batch_size))
        elapsed = time.perf_counter() - started
        resident.append(rss_mb())
        gc.collect()
        if trim is not None:
            trim(0)
        live.append(rss_mb())
        print(f"pass {number}: {len(cases)} cases in {elapsed:.1f} s, RSS before the trim {resident[-1]:.0f} MiB, "
              f"{live_label} {live[-1]:.0f} MiB", flush=True)
    growth = (live[-1] - live[1]) / live[1]
    print(f"{'memory, same cases repeated':<28} live ({live_label}): pass 2 {live[1]:.0f} MiB, pass {args.passes} "
          f"{live[-1]:.0f} MiB, growth {growth:+.1%}  (target within {TOLERANCE:.0%})  "
          f"{'ok' if abs(growth) <= TOLERANCE else 'MISSED'}")
    print(f"{'':<28} RSS before each trim, passes 2-{args.passes}: {min(resident[1:]):.0f} to {max(resident[1:]):.0f} MiB "
          f"(pass 2 {resident[1]:.0f}, pass {args.passes} {resident[-1]:.0f}: "
          f"{(resident[-1] - resident[1]) / resident[1]:+.1%})")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
