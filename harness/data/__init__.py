"""Benchmark registry: a benchmark names its clean split and natural shifts and loads evaluation data."""
from __future__ import annotations

from .base import Benchmark, EvalData, NaturalShift
from .synth import SynthBenchmark

BENCHMARKS: dict[str, Benchmark] = {"synth": SynthBenchmark()}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise LookupError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}") from None


__all__ = ["BENCHMARKS", "Benchmark", "EvalData", "NaturalShift", "get_benchmark"]
