"""What cases took on this machine, kept for planning: `<report_dir>/durations.json`.

Each run that measured cases merges into the store, once, from the controller: per case key (model, case id,
sample cap, batch size, device type, torch threads) the latest cold and the latest warm duration and the cache
entries (digests, harness.cache) the case read or wrote; per worker count the latest start-up (process start to
the run's first test) and finish (its last test to the end of the run). A run is *cold* for a case when the case
computed some cache entry, *warm* when it read all of them; a cold record keeps the seconds each entry took to
compute. The store lives with the reports, not in the cache folder, so that clearing the cache (`make
clean-cache`) keeps what a plan of the next, cold run needs.

Writers merge under a lock beside the file (`durations.json.lock`) and replace it atomically, so concurrent runs
sharing a report folder lose nothing. This module is torch-free.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from filelock import FileLock, Timeout

from .files import json_bytes, write_atomic

DURATIONS_FILE = "durations.json"
SCHEMA_VERSION = 1
LOCK_TIMEOUT_S = 60.0


class DurationsError(ValueError):
    """The durations store cannot be read; the message names the file and the fix."""


@dataclasses.dataclass(frozen=True)
class TimingKey:
    """What a case's time depends on, besides the cache: the model (as configured), the case id, its sample cap,
    the batch size, the device type, the torch threads of the process that ran it, and whether that process got
    huge pages for large blocks (harness.allocator.huge_pages_in; None, unknown, in records made before it was
    kept)."""

    model: str
    case: str
    samples: int
    batch_size: int
    device: str
    threads: int
    huge_pages: bool | None = None

    def alike(self, other: "TimingKey") -> bool:
        """The same case under the same protocol and device, whatever the thread count and allocator."""
        return dataclasses.replace(self, threads=0, huge_pages=None) == \
            dataclasses.replace(other, threads=0, huge_pages=None)


@dataclasses.dataclass(frozen=True)
class CaseRun:
    """One case as one run measured it: wall seconds of its whole test (set-up, call, teardown) from `started`
    (epoch seconds), the worker it ran on, and the cache entries it used: digest -> seconds it took to compute
    that entry, None for an entry it read."""

    key: TimingKey
    category: str
    setting: str
    benchmark: str
    started: float
    duration_s: float
    worker: str
    entries: Mapping[str, float | None]

    @property
    def cold(self) -> bool:
        return any(seconds is not None for seconds in self.entries.values())

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "key": dataclasses.asdict(self.key), "entries": dict(self.entries)}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> "CaseRun":
        return cls(**{**document, "key": TimingKey(**document["key"])})


@dataclasses.dataclass(frozen=True)
class Timed:
    """A recorded duration; for a cold one, the seconds each entry it computed took (`computed`)."""

    duration_s: float
    recorded_at: float
    computed: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @property
    def computing_s(self) -> float:
        return sum(self.computed.values())


@dataclasses.dataclass(frozen=True)
class CaseTimes:
    """What the store knows of one case key: its category, setting name and benchmark (for rates), the entries it
    used the last time it ran, and its latest cold and warm durations (None until a run of that kind)."""

    key: TimingKey
    category: str
    setting: str
    benchmark: str
    entries: tuple[str, ...]
    cold: Timed | None = None
    warm: Timed | None = None

    def with_run(self, run: CaseRun, now: float) -> "CaseTimes":
        computed = {digest: seconds for digest, seconds in run.entries.items() if seconds is not None}
        timed = Timed(run.duration_s, now, computed)
        return dataclasses.replace(self, category=run.category, setting=run.setting, benchmark=run.benchmark,
                                   entries=tuple(run.entries), **{"cold" if run.cold else "warm": timed})


@dataclasses.dataclass(frozen=True)
class RunOverhead:
    """The part of a run's wall time no case accounts for, at one worker count (0: no xdist): `startup_s`, from the
    start of the pytest process to a worker's first case (the mean over its workers), and `finish_s`, from the
    last case's end to the end of the run (report, summary)."""

    workers: int
    startup_s: float
    finish_s: float
    recorded_at: float


@dataclasses.dataclass(frozen=True)
class Durations:
    """The store: case times by key, run overheads by worker count."""

    cases: Mapping[TimingKey, CaseTimes] = dataclasses.field(default_factory=dict)
    overheads: Mapping[int, RunOverhead] = dataclasses.field(default_factory=dict)

    def merged(self, runs: Iterable[CaseRun], overhead: RunOverhead | None, now: float) -> "Durations":
        """This store with `runs` and `overhead` recorded (each replacing the record of its kind)."""
        cases = dict(self.cases)
        for run in runs:
            known = cases.get(run.key) or CaseTimes(run.key, run.category, run.setting, run.benchmark, ())
            cases[run.key] = known.with_run(run, now)
        overheads = dict(self.overheads)
        if overhead is not None:
            overheads[overhead.workers] = overhead
        return Durations(cases, overheads)

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION,
                "cases": [_case_json(times) for _, times in sorted(self.cases.items(), key=lambda kv: _order(kv[0]))],
                "overheads": [dataclasses.asdict(self.overheads[n]) for n in sorted(self.overheads)]}

    @classmethod
    def from_json(cls, document: Any) -> "Durations":
        """The store in a parsed file; ValueError, KeyError or TypeError when it is not one of this schema."""
        if not isinstance(document, Mapping) or document.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"not a durations store of schema_version {SCHEMA_VERSION}")
        cases = {}
        for item in document["cases"]:
            times = CaseTimes(TimingKey(**item["key"]), item["category"], item["setting"], item["benchmark"],
                              tuple(item["entries"]), _timed(item.get("cold")), _timed(item.get("warm")))
            cases[times.key] = times
        overheads = {int(item["workers"]): RunOverhead(**item) for item in document["overheads"]}
        return cls(cases, overheads)


def _order(key: TimingKey) -> tuple:
    allocator = -1 if key.huge_pages is None else int(key.huge_pages)
    return key.model, key.case, key.samples, key.batch_size, key.device, key.threads, allocator


def _case_json(times: CaseTimes) -> dict[str, Any]:
    return {"key": dataclasses.asdict(times.key), "category": times.category, "setting": times.setting,
            "benchmark": times.benchmark, "entries": list(times.entries),
            "cold": None if times.cold is None else dataclasses.asdict(times.cold),
            "warm": None if times.warm is None else dataclasses.asdict(times.warm)}


def _timed(document: Mapping[str, Any] | None) -> Timed | None:
    if document is None:
        return None
    return Timed(float(document["duration_s"]), float(document["recorded_at"]),
                 {str(k): float(v) for k, v in document.get("computed", {}).items()})


def durations_path(report_dir: Path) -> Path:
    return Path(report_dir) / DURATIONS_FILE


def read_durations(path: Path) -> Durations:
    """The store at `path` (empty when there is none); DurationsError naming the file when it is malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Durations()
    except OSError as error:
        raise DurationsError(f"{path}: cannot be read ({error})") from None
    try:
        return Durations.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as error:
        raise DurationsError(f"{path}: not a durations store this harness reads ({type(error).__name__}: {error}); "
                             f"delete it, and the next run records durations afresh") from None


def record_runs(path: Path, runs: Iterable[CaseRun], overhead: RunOverhead | None,
                timeout_s: float = LOCK_TIMEOUT_S) -> Durations:
    """Merge `runs` and `overhead` into the store at `path` under its lock, re-reading it there, and replace it
    atomically; returns the store written. DurationsError when the store is malformed (it is left as it is) or
    the lock is not had within `timeout_s`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path) + ".lock", timeout=timeout_s):
            merged = read_durations(path).merged(runs, overhead, time.time())
            data = json_bytes(merged.to_json())
            write_atomic(path, lambda handle: handle.write(data), durable=False)
    except Timeout:
        raise DurationsError(f"{path}: its lock {path}.lock was held for over {timeout_s:.0f} s; if no other run "
                             f"is writing, delete the lock file") from None
    return merged


def process_started() -> float | None:
    """Epoch seconds at which this process started (to 10 ms, from /proc), None where /proc does not say (not
    Linux)."""
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        started_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        return time.time() - uptime + started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
