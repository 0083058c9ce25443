"""Benchmark registry: a benchmark names its clean split and natural shifts and loads evaluation data."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .base import Benchmark, DataMissingError, EvalData, NaturalShift, Preprocess
from .imagenet import ImageNetBenchmark
from .synth import SynthBenchmark

# name -> factory(data_root) -> Benchmark. data_root is the --data-root folder (None when not given).
BENCHMARKS: dict[str, Callable[[Path | None], Benchmark]] = {
    "synth": lambda data_root: SynthBenchmark(),
    "imagenet": lambda data_root: ImageNetBenchmark(data_root),
}


def get_benchmark(name: str, data_root: Path | None = None) -> Benchmark:
    try:
        factory = BENCHMARKS[name]
    except KeyError:
        raise LookupError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}") from None
    return factory(data_root)


__all__ = ["BENCHMARKS", "Benchmark", "DataMissingError", "EvalData", "NaturalShift", "Preprocess", "get_benchmark"]
