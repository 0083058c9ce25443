"""Benchmark registry: a benchmark names its clean split and natural shifts and loads evaluation data.

Add one with `@register_benchmark("name")` on a factory `(data_root) -> Benchmark`, where data_root is the
--data-root folder (None when not given)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..registry import Registry
from .base import Benchmark, DataMalformedError, DataMissingError, EvalData, NaturalShift, Preprocess
from .imagenet import ImageNetBenchmark
from .synth import SynthBenchmark

BenchmarkFactory = Callable[[Path | None], Benchmark]
BENCHMARKS: Registry[BenchmarkFactory] = Registry("benchmark")  # name -> factory(data_root) -> Benchmark


def register_benchmark(name: str) -> Callable[[BenchmarkFactory], BenchmarkFactory]:
    """Decorator: register a factory `(data_root) -> Benchmark` as benchmark `name` and return it unchanged; a name
    already registered is refused (DuplicateNameError)."""
    return BENCHMARKS.register(name)


@register_benchmark("synth")
def _synth(data_root: Path | None) -> Benchmark:
    return SynthBenchmark()


@register_benchmark("imagenet")
def _imagenet(data_root: Path | None) -> Benchmark:
    return ImageNetBenchmark(data_root)


def get_benchmark(name: str, data_root: Path | None = None) -> Benchmark:
    if name not in BENCHMARKS:
        raise LookupError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS.names())}")
    return BENCHMARKS[name](data_root)


__all__ = ["BENCHMARKS", "Benchmark", "DataMalformedError", "DataMissingError", "EvalData", "NaturalShift",
           "Preprocess", "get_benchmark", "register_benchmark"]
