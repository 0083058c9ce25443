"""The pytest side of durations and plans (harness.durations, harness.plan).

- `CaseTimer`, in every process that runs cases (an xdist worker, or the one process of a run without xdist):
  times each case's whole test (set-up, call, teardown: a model's first load included) under a cache trace, and
  attaches the `CaseRun` to the case's teardown report as `TIMING_PROPERTY` (JSON), which xdist carries to the
  controller.
- `DurationsRecorder`, in the controller: gathers the runs and, at the end of the session, merges them and the
  run's start-up and finish into the store, once.
- `PlanSession`, under `--plan`, in place of the controller: after collection (with -k, -m, pytest-split and the
  configuration applied) predicts every collected case and the run, prints the plan, and runs nothing.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from .cache import ArrayCache
from .durations import CaseRun, Durations, DurationsError, RunOverhead, TimingKey, record_runs
from .plan import Plan, PlannedCase, format_plan, overhead_for, predict_cases

if TYPE_CHECKING:
    from .cases import Case

TIMING_PROPERTY = "robustness_timing"
_STARTED = pytest.StashKey[tuple[float, float, Any]]()


def case_of(item: pytest.Item) -> "Case | None":
    """The case a test item measures, None for any other test."""
    from .cases import Case

    case = item.callspec.params.get("case") if hasattr(item, "callspec") else None
    return case if isinstance(case, Case) else None


class CaseTimer:
    """Times each case test and traces its use of `cache`; `key_of(case)` is its timing key in this process."""

    def __init__(self, cache: ArrayCache, key_of: Callable[["Case"], TimingKey], worker: str):
        self.cache, self.key_of, self.worker = cache, key_of, worker

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        if case_of(item) is None:
            return (yield)
        with self.cache.track() as trace:
            item.stash[_STARTED] = (time.time(), time.perf_counter(), trace)
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        if call.when == "teardown" and _STARTED in item.stash:  # the report copies the properties: add them first
            started, clock, trace = item.stash[_STARTED]
            case = case_of(item)
            entries = {digest: None if use.hit else round(use.compute_s, 4) for digest, use in trace.entries.items()}
            run = CaseRun(self.key_of(case), case.setting.category, case.setting.name, case.benchmark, started,
                          round(time.perf_counter() - clock, 4), self.worker, entries)
            item.user_properties.append((TIMING_PROPERTY, json.dumps(run.to_json())))
        return (yield)


class DurationsRecorder:
    """Collects the `CaseRun`s of a run's reports; at unconfigure, records them with the run's overhead into
    `path`. Start-up is process start to the run's first test and finish its last test's end to now, tests that
    are not cases included (a run of the harness's own tests beside the suite), so that neither counts their
    time as overhead."""

    def __init__(self, path: Path, workers: int, process_started: float):
        self.path, self.workers, self.process_started = Path(path), workers, process_started
        self.runs: list[CaseRun] = []
        self.tests: tuple[float, float] | None = None  # the first test's start, the last one's end (time.time)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        first, last = self.tests or (report.start, report.stop)
        self.tests = (min(first, report.start), max(last, report.stop))
        for name, value in report.user_properties:
            if name == TIMING_PROPERTY:
                self.runs.append(CaseRun.from_json(json.loads(value)))

    def overhead(self, now: float) -> RunOverhead:
        first = min(run.started for run in self.runs)
        last = max(run.started + run.duration_s for run in self.runs)
        if self.tests is not None:
            first, last = min(first, self.tests[0]), max(last, self.tests[1])
        return RunOverhead(self.workers, round(max(0.0, first - self.process_started), 3),
                           round(max(0.0, now - last), 3), now)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if not self.runs:
            return
        try:
            record_runs(self.path, self.runs, self.overhead(time.time()))
        except DurationsError as error:  # the run itself is over and reported: say so, fail nothing
            print(f"robustness-gate: durations of this run NOT recorded: {error}", file=sys.stderr)


class PlanSession:
    """`--plan`: predicts the collected cases from `store` and the cache as it is (`cache.holds`) for a run at
    `workers` workers under xdist's `dist` mode, prints the plan in the terminal summary, and runs no test.
    `planned_of(case)` is a case's PlannedCase (its key with the threads that run would give it)."""

    def __init__(self, store: Durations, cache: ArrayCache, planned_of: Callable[["Case"], PlannedCase],
                 workers: int, dist: str, source: str):
        self.store, self.cache, self.planned_of = store, cache, planned_of
        self.workers, self.dist, self.source = workers, dist, source
        self.plan: Plan | None = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        cases = [case_of(item) for item in session.items]
        planned = [self.planned_of(case) for case in cases if case is not None]
        self.plan = Plan(tuple(predict_cases(planned, self.store, self.cache.holds)), self.workers, self.dist,
                         overhead_for(self.store, self.workers), other_tests=sum(case is None for case in cases))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            raise session.Interrupted(f"{session.testsfailed} error(s) during collection: nothing planned")
        return True  # a plan runs nothing

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.plan is None:
            return
        terminalreporter.section("robustness-gate plan")
        terminalreporter.write_line(f"from {self.source} and the cache folder {self.cache.root}; nothing was run")
        for line in format_plan(self.plan):
            terminalreporter.write_line(line)
