"""Memory over a long run: one process evaluates the same cases pass after pass, as a worker does through a long
suite, and prints its resident memory after every pass.

The first pass loads the model and fills the in-memory caches (bounded: `harness.cache.MEMORY_BYTES`); every
later pass repeats identical work, so any growth after it is a leak. Target: growth from the end of the second
pass to the end of the last within 2% (allocator noise). Uses the suite's configured cache directory, so a
cache warmed by `make suite` makes the first pass fast; a cold one makes it render and corrupt.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from harness.cache import ArrayCache
from harness.cases import expand_cases
from harness.config import build_config, read_pyproject_table
from harness.evaluate import RunContext, evaluate
from harness.models import load_model
from harness.plugin import rss_mb

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = ("fgsm-linf-1/255", "pgd-linf-1/255")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="embedded:synth-clip")
    parser.add_argument("--passes", type=int, default=4)
    args = parser.parse_args()
    config = build_config(ROOT, read_pyproject_table(ROOT / "pyproject.toml"), {"models": [args.model]})
    cases = [case for case in expand_cases(config)
             if case.setting.category != "adversarial" or case.setting.name in ATTACKS]
    device = torch.device("cpu")
    model = load_model(args.model, device)
    cache = ArrayCache(config.cache_dir)
    after_pass = []
    for number in range(1, args.passes + 1):
        started = time.perf_counter()
        for case in cases:
            evaluate(case, model, RunContext(device, cache, config.seed, config.batch_size))
        after_pass.append(rss_mb())
        print(f"pass {number}: {len(cases)} cases in {time.perf_counter() - started:.1f} s, "
              f"RSS {after_pass[-1]:.0f} MiB", flush=True)
    growth = (after_pass[-1] - after_pass[1]) / after_pass[1]
    print(f"{'memory, same cases repeated':<28} pass 2 {after_pass[1]:.0f} MiB, pass {args.passes} "
          f"{after_pass[-1]:.0f} MiB, growth {growth:+.1%}  (target within 2%)  "
          f"{'ok' if abs(growth) <= 0.02 else 'MISSED'}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
