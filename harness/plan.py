"""A cost plan: each case's predicted seconds and the run's wall time, before anything runs (`pytest --plan`).

A case with a record in the durations store (harness.durations) is predicted from it and from the cache as it is
now. Walking the cases in run order, the entries a case needs that are neither in the cache folder nor computed
by an earlier case of the plan are the ones it will compute:

- none: it runs warm, its latest warm duration ("warm: recorded"; without one, its cold duration less the
  seconds its computations took);
- exactly the ones its latest cold run computed: its cold duration ("cold: recorded");
- any other set (a partly cleared cache, entries another case now computes first): its warm time plus each
  missing entry's recorded compute time ("partial"); an entry whose compute time was never recorded makes the
  prediction a lower bound.

A case without a record takes a rate, seconds per sample of cold runs of alike cases times its sample cap ("rate:
..."): the same setting family (the name less its strength: `gaussian_noise`, `pgd-linf`) of the same model,
else of any model on the same benchmark, else the same category of the same model. Otherwise it is "unknown",
and the totals say how many were left out, never counting them as 0.

The wall time is the recorded start-up and finish of a run at that worker count plus the busiest worker's
seconds, with the cases handed out as xdist's `load` scheduling does (`load_makespan`; other `--dist` modes are
approximated by `lpt_makespan`, longest first). Torch-free.
"""
from __future__ import annotations

import dataclasses
import heapq
import re
from typing import Callable, Iterable, Sequence

from .durations import CaseTimes, Durations, RunOverhead, TimingKey


@dataclasses.dataclass(frozen=True)
class PlannedCase:
    """A case the run would run, in run order: its timing key (threads as the run would set them), and what an
    alike case is matched on for a rate."""

    key: TimingKey
    category: str
    setting: str
    benchmark: str


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One case's predicted seconds (None: unknown) and where they come from; `lower_bound` when some of its
    work has no recorded cost."""

    case: str
    seconds: float | None
    basis: str
    lower_bound: bool = False


@dataclasses.dataclass(frozen=True)
class Plan:
    """The predictions in run order, the schedule they were put on (`workers` 0: one process, no xdist), the
    recorded overhead used for it (None: never recorded) and the number of collected tests that are not cases."""

    predictions: tuple[Prediction, ...]
    workers: int
    dist: str
    overhead: RunOverhead | None
    other_tests: int = 0

    @property
    def total_s(self) -> float:
        """Sum of the known predictions."""
        return sum(p.seconds for p in self.predictions if p.seconds is not None)

    @property
    def unknown(self) -> int:
        return sum(p.seconds is None for p in self.predictions)

    @property
    def lower_bounds(self) -> int:
        return sum(p.lower_bound for p in self.predictions)

    @property
    def exact(self) -> bool:
        """Every case and the overhead have a prediction that is not a lower bound."""
        return not (self.unknown or self.lower_bounds or self.other_tests) and self.overhead is not None

    @property
    def makespan_s(self) -> float:
        """Seconds from the workers' first case to the last case's end (unknown cases as 0)."""
        seconds = [p.seconds or 0.0 for p in self.predictions]
        if self.workers <= 1 or self.dist == "each":
            return sum(seconds)
        if self.dist == "load":
            return load_makespan(seconds, self.workers)
        return lpt_makespan(seconds, self.workers)

    @property
    def wall_s(self) -> float:
        overhead = 0.0 if self.overhead is None else self.overhead.startup_s + self.overhead.finish_s
        return overhead + self.makespan_s


def rate_family(setting: str) -> str:
    """A setting's name less its strength: `gaussian_noise-3` -> `gaussian_noise`, `pgd-linf-1/255` -> `pgd-linf`."""
    return re.sub(r"-[\d./]+$", "", setting)


def recorded(store: Durations, key: TimingKey) -> CaseTimes | None:
    """The record of `key`, else that of the same case under the same (or an unrecorded) allocator at the nearest
    thread count, else under the other allocator, else None."""
    if key in store.cases:
        return store.cases[key]
    alike = [times for other, times in store.cases.items() if other.alike(key)]
    return min(alike, key=lambda times: (times.key.huge_pages not in (None, key.huge_pages),
                                         abs(times.key.threads - key.threads), times.key.threads), default=None)


def _differences(recorded_under: TimingKey, planned: TimingKey) -> str:
    """How a record used for `planned` was made otherwise, as a suffix of its basis ("" when it was not)."""
    notes = []
    if recorded_under.threads != planned.threads:
        notes.append(f"at {recorded_under.threads} threads")
    if None not in (recorded_under.huge_pages, planned.huge_pages) and recorded_under.huge_pages != planned.huge_pages:
        notes.append("with huge pages" if recorded_under.huge_pages else "without huge pages")
    return f" ({', '.join(notes)})" if notes else ""


def overhead_for(store: Durations, workers: int) -> RunOverhead | None:
    """The recorded overhead of runs at `workers` workers, else at the nearest count recorded, else None."""
    return min(store.overheads.values(), key=lambda o: (abs(o.workers - workers), o.workers), default=None)


def entry_costs(store: Durations) -> dict[str, float]:
    """Seconds each entry took to compute, from the latest cold record that computed it."""
    costs: dict[str, tuple[float, float]] = {}
    for times in store.cases.values():
        if times.cold is None:
            continue
        for digest, seconds in times.cold.computed.items():
            if digest not in costs or costs[digest][0] < times.cold.recorded_at:
                costs[digest] = (times.cold.recorded_at, seconds)
    return {digest: seconds for digest, (_, seconds) in costs.items()}


def predict_cases(planned: Sequence[PlannedCase], store: Durations, holds: Callable[[str], bool]) -> list[Prediction]:
    """Each planned case's prediction, in run order; `holds(digest)` says whether the cache has an entry now."""
    costs = entry_costs(store)
    computed_earlier: set[str] = set()
    predictions = []
    for case in planned:
        times = recorded(store, case.key)
        if times is None:
            predictions.append(by_rate(case, store))
            continue
        missing = [digest for digest in times.entries if digest not in computed_earlier and not holds(digest)]
        computed_earlier.update(missing)
        prediction = from_record(case.key.case, times, missing, costs)
        if times.key != case.key:
            prediction = dataclasses.replace(prediction, basis=prediction.basis + _differences(times.key, case.key))
        predictions.append(prediction)
    return predictions


def from_record(case: str, times: CaseTimes, missing: Sequence[str], costs: dict[str, float]) -> Prediction:
    """The prediction of a recorded case that will compute the entries `missing` (see the module's rules)."""
    cold, warm = times.cold, times.warm
    base = warm.duration_s if warm is not None else max(0.0, cold.duration_s - cold.computing_s)
    if not missing:
        return Prediction(case, base, "warm: recorded" if warm is not None else "warm: cold recorded less computing")
    if cold is not None and set(missing) == set(cold.computed):
        return Prediction(case, cold.duration_s, "cold: recorded")
    uncosted = sum(digest not in costs for digest in missing)
    seconds = base + sum(costs.get(digest, 0.0) for digest in missing)
    basis = f"partial: {'warm' if warm is not None else 'warm from cold'} + {len(missing)} of " \
            f"{len(times.entries)} entries to compute"
    if uncosted:
        basis += f", {uncosted} of unknown cost"
    return Prediction(case, seconds, basis, lower_bound=bool(uncosted))


def by_rate(case: PlannedCase, store: Durations) -> Prediction:
    """A never-recorded case (assumed cold): seconds per sample of cold runs of alike cases, times its cap."""
    key, family = case.key, rate_family(case.setting)
    colds = [times for times in store.cases.values() if times.cold is not None and times.key.device == key.device]
    ladder: Iterable[tuple[str, Callable[[CaseTimes], bool]]] = (
        (f"{case.category}/{family} of {key.model}",
         lambda t: t.key.model == key.model and t.category == case.category and rate_family(t.setting) == family),
        (f"{case.category}/{family} on {case.benchmark}",
         lambda t: t.benchmark == case.benchmark and t.category == case.category and rate_family(t.setting) == family),
        (f"{case.category} of {key.model}", lambda t: t.key.model == key.model and t.category == case.category),
    )
    for scope, alike in ladder:
        rates = [times.cold.duration_s / max(1, times.key.samples) for times in colds if alike(times)]
        if rates:
            rate = sum(rates) / len(rates)
            return Prediction(key.case, rate * key.samples,
                              f"rate: cold {scope}, {rate:.3g} s/sample x {key.samples}")
    return Prediction(key.case, None, "unknown: never recorded, and no alike case was")


def load_makespan(seconds: Sequence[float], workers: int, maxschedchunk: int | None = None) -> float:
    """The busiest worker's seconds when pytest-xdist's LoadScheduling (xdist 3.x, `--dist load`, the default
    of `-n`) hands out items taking `seconds`, in order, to `workers` workers that start together: first a chunk
    of a quarter of each worker's share to each, then, whenever a worker finishes an item and holds fewer than 2
    (or, after an item under 0.1 s, fewer than a quarter of its share of what is left), up to half its share."""
    if not seconds:
        return 0.0
    pending = list(range(len(seconds)))
    queues: list[list[int]] = [[] for _ in range(workers)]
    maxchunk = maxschedchunk or len(seconds)

    def send(worker: int, count: int) -> None:
        queues[worker].extend(pending[:count])
        del pending[:count]

    if len(pending) < 2 * workers:
        for index in range(len(pending)):
            send(index % workers, 1)
    else:
        for worker in range(workers):
            send(worker, max(2, min(len(seconds) // workers // 4, maxchunk)))
    clock = [0.0] * workers
    events = [(seconds[queues[w][0]], w) for w in range(workers) if queues[w]]
    heapq.heapify(events)
    while events:
        now, worker = heapq.heappop(events)
        clock[worker] = now
        done = queues[worker].pop(0)
        if pending:
            low, high = max(2, len(pending) // workers // 4), max(2, len(pending) // workers // 2)
            held = len(queues[worker])
            if held < low and not (seconds[done] >= 0.1 and held >= 2):
                send(worker, min(high - held, max(2 - held, maxchunk)))
        if queues[worker]:
            heapq.heappush(events, (now + seconds[queues[worker][0]], worker))
    return max(clock)


def lpt_makespan(seconds: Sequence[float], workers: int) -> float:
    """The busiest worker's seconds when each item, longest first, goes to the least loaded worker."""
    loads = [0.0] * max(1, workers)
    for duration in sorted(seconds, reverse=True):
        heapq.heapreplace(loads, loads[0] + duration)
    return max(loads)


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 60 else f"{value:.0f} s ({int(value // 60)}m{int(value % 60):02d}s)"


def format_plan(plan: Plan) -> list[str]:
    """The plan as terminal lines: one row per case, then the total, the overhead and the predicted wall time."""
    width = max([len(p.case) for p in plan.predictions] + [4])
    lines = [f"{'case':<{width}}  {'predicted':>10}  basis"]
    for p in plan.predictions:
        shown = "unknown" if p.seconds is None else f"{p.seconds:.1f} s" + ("+" if p.lower_bound else "")
        lines.append(f"{p.case:<{width}}  {shown:>10}  {p.basis}")
    left_out = []
    if plan.unknown:
        left_out.append(f"{plan.unknown} unknown, NOT counted")
    if plan.lower_bounds:
        left_out.append(f"{plan.lower_bounds} lower bounds (+)")
    if plan.other_tests:
        left_out.append(f"{plan.other_tests} other tests, not predicted")
    lines.append(f"total: {_seconds(plan.total_s)} over {len(plan.predictions)} cases"
                 + (f" ({'; '.join(left_out)})" if left_out else ""))
    run = "one process (no xdist)" if plan.workers == 0 else f"-n {plan.workers}"
    if plan.overhead is None:
        lines.append("start-up and finish: never recorded at any worker count, NOT counted (run the suite once)")
    else:
        at = "" if plan.overhead.workers == plan.workers else f", recorded at -n {plan.overhead.workers}"
        lines.append(f"start-up {plan.overhead.startup_s:.1f} s, finish {plan.overhead.finish_s:.1f} s{at}")
    schedule = ("in order" if plan.workers <= 1 else "xdist load scheduling simulated" if plan.dist == "load"
                else f"longest first, an approximation of xdist's --dist {plan.dist}")
    lines.append(f"predicted wall time, {run} ({schedule}): {'at least ' if not plan.exact else ''}"
                 f"{_seconds(plan.wall_s)}")
    return lines
