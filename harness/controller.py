"""The controller of a run: registered only in the process that is not an xdist worker (the only process of a
run without xdist), as xdist's DSession is.

Workers attach one case record per case to their test reports (`RECORD_PROPERTY`, as a JSON string, which is
also what pytest's JUnit XML shows of it); xdist carries the reports
here. The controller learns which cases were collected, merges their records, marks every collected case
without one as not run or errored, checks the run's validity, writes the report once (and, when recording, the
baselines, all or none) and prints the summary table.
"""
from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pytest

from . import allocator
from .baselines import BaselineError, baseline_path, baselines_lock, commit_documents, read_baseline, updated_documents
from .checks import dose_response_violations, masking_violations
from .config import SuiteConfig
from .records import CaseRecord, Status
from .report import build_report, format_table, git_commit, new_run_id, utc_now, write_report
from .versions import cpu, versions

RECORD_PROPERTY = "robustness_record"
PLANNED_OUTPUT = "robustness_planned_cases"


def case_id_of(nodeid: str, known: Iterable[str] | Mapping[str, Any]) -> str | None:
    """The case id in a test's node id (`...::test_x[<case id>]`), None for a test that is not a known case."""
    match = re.search(r"\[(.*)\]$", nodeid)
    return match.group(1) if match and match.group(1) in known else None


class Collection:
    """What one process collected: the case tests kept after -k/-m, and the cases planned before pytest-split
    kept this shard's (pytest-split deselects last, in one batch). `finished(kept_nodeids, planned_ids)` is
    called once collection ends."""

    def __init__(self, config: pytest.Config, case_ids: Mapping[str, Any],
                 finished: Callable[[list[str], set[str]], None]):
        self.config = config
        self.case_ids = case_ids
        self.finished = finished
        self._deselected: list[list[str]] = []

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self._deselected.append([item.nodeid for item in items])

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        kept = [item.nodeid for item in session.items]
        planned = list(kept)
        if split_of(self.config) and self._deselected:
            planned += self._deselected[-1]
        self.finished(kept, {case_id for case_id in (case_id_of(n, self.case_ids) for n in planned) if case_id})


class XdistCollection:
    """Under xdist the workers collect: their collection and their planned cases reach the controller here."""

    def __init__(self, controller: "RunController"):
        self.controller = controller

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.controller.collected(ids, set())

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        self.controller.planned |= set(getattr(node, "workeroutput", {}).get(PLANNED_OUTPUT, ()))


class RunController:
    """Merges the run's case records, writes its report (and baselines when recording) and prints its summary."""

    def __init__(self, config: pytest.Config, suite: SuiteConfig, cases: Iterable[Any], device: str):
        self.config = config
        self.suite = suite
        self.device = device
        self.root = Path(config.rootpath)
        self.started = utc_now()
        self.run_id = new_run_id()
        self.cases = {case.id: case for case in cases}
        self.expected: dict[str, str] = {}  # node id -> case id of every collected case test
        self.planned: set[str] = set()  # case ids of the whole run before pytest-split kept this shard's
        self.records: dict[str, CaseRecord] = {}
        self.failures: dict[str, str] = {}
        self.report_path: Path | None = None
        self.html_path: Path | None = None
        self.baseline_changes: list[str] = []
        self.problems: list[str] = []
        self.stopped_early: str | None = None  # why the run stopped before its last case (-x, --maxfail, Ctrl-C)
        self.heartbeat = Heartbeat(config)

    def collected(self, nodeids: Iterable[str], planned: set[str]) -> None:
        for nodeid in nodeids:
            case_id = case_id_of(nodeid, self.cases)
            if case_id is not None:
                self.expected[nodeid] = case_id
        self.planned |= planned

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == RECORD_PROPERTY:
                self.records[report.nodeid] = CaseRecord.from_json(json.loads(value))
        if report.failed and report.nodeid not in self.records:
            self.failures.setdefault(report.nodeid, first_line(report.longreprtext))
        elif report.skipped and report.nodeid not in self.failures:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longreprtext
            self.failures.setdefault(report.nodeid, "skipped: " + first_line(str(reason)))
        if report.when == "teardown" and report.nodeid in self.expected:
            self.heartbeat.finished(report.nodeid, len(self.expected),
                                    self.records.get(report.nodeid) is None or not (
                                        self.records[report.nodeid].status or Status.ERROR).ok)

    def merged_cases(self) -> tuple[list[CaseRecord], bool]:
        """Every collected case's record (an unmeasured one for a case without), and whether the run is complete:
        every case measured or skipped for missing data. A case left unrun because the run stopped early (-x,
        --maxfail, an interrupt) is `not-run`, not an error; the run is incomplete then."""
        cases, complete = [], True
        for nodeid, case_id in sorted(self.expected.items()):
            record = self.records.get(nodeid)
            if record is None:
                reason = self.failures.get(nodeid)
                if reason is None and self.stopped_early:
                    reason = f"not run: the run stopped before this case ({self.stopped_early})"
                elif reason is None:
                    reason = "no result reached the controller (worker crashed or run interrupted)"
                unrun = reason.startswith(("skipped", "not run"))
                complete = complete and reason.startswith("skipped")
                record = CaseRecord.unmeasured(_identity(self.cases[case_id]),
                                               Status.NOT_RUN if unrun else Status.ERROR, reason)
            cases.append(record if record.nodeid == nodeid else _with_nodeid(record, nodeid))
        return cases, complete

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.expected or self.config.option.collectonly:
            return
        stopped = session.shouldstop or session.shouldfail
        if stopped or exitstatus == pytest.ExitCode.INTERRUPTED:
            self.stopped_early = stopped if isinstance(stopped, str) else "interrupted"
        cases, complete = self.merged_cases()
        measured = sum(case.measured for case in cases)
        if not measured:
            complete = False
            reasons = sorted({(case.message or "")[:200] for case in cases})
            self.problems.append(f"run measured NOTHING: none of the {len(cases)} selected cases produced a "
                                 f"result, so nothing was gated. Why: " + " | ".join(reasons))
        violations = dose_response_violations(cases) + masking_violations(cases)
        if violations:
            self.problems += ["INVALID: " + message for message in violations]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        report = build_report(self._run(complete, measured, violations), cases)
        self.report_path = write_report(report, self.suite.report_dir)
        if self.config.option.html:
            from .html_report import write_html_beside  # matplotlib loads only when a page is asked for

            self.html_path = write_html_beside(report, self.report_path)
        if not complete:
            if measured:
                self.problems.append("run INCOMPLETE: some collected cases produced no result (see 'not-run' and "
                                     "'error' rows); a crashed worker or an interrupted run never reads as a pass")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.suite.update_baselines:
            if complete and all(case.status is Status.RECORDED for case in cases):
                self._write_baselines(cases)
                if self.problems:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED
            else:
                self.problems.append("baselines NOT updated: the run had errors or missing cases")
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _run(self, complete: bool, measured: int, violations: list[str]) -> dict[str, Any]:
        workers = worker_count(self.config)
        return {"id": self.run_id, "started": self.started, "finished": utc_now(), "argv": sys.argv[1:],
                "workers": workers, "dist": getattr(self.config.option, "dist", "no") if workers else "no",
                "complete": complete, "measured": measured,
                "device": self.device, "seed": self.suite.seed, "update_baselines": self.suite.update_baselines,
                "git": git_commit(self.root), "versions": versions(), "cpu": cpu(),
                "allocator": allocator.current(workers).as_record(), "validity_problems": violations,
                "planned_cases": sorted(self.planned or set(self.expected.values())), "split": split_of(self.config)}

    def _write_baselines(self, cases: list[CaseRecord]) -> None:
        """Under the baselines folder's lock, merge this run's entries into the files as they are now and commit
        them all or none: a concurrent run waits, and loses nothing; a loosened threshold needs --allow-loosen."""
        directory = self.suite.baselines_dir
        run_provenance = {"git": git_commit(self.root), "versions": versions(), "cpu": cpu(),
                          "seed": self.suite.seed, "recorded_at": utc_now()}
        try:
            with baselines_lock(directory):
                old = {line: read_baseline(baseline_path(directory, line)) for line in {c.line for c in cases}}
                update = updated_documents(cases, old, directory, self.suite.policy_for, run_provenance)
                if update.loosened and not self.suite.allow_loosen:
                    self.problems.append("baselines NOT updated: these thresholds would loosen (rerun with "
                                         "--allow-loosen if that is intended):")
                    self.problems += [f"  {line}" for line in update.loosened]
                    return
                commit_documents(directory, update.documents)
        except BaselineError as error:
            self.problems.append(f"baselines NOT updated: {error}")
            return
        written = [f"wrote {relative_to(path, self.root)} ({len(document['cases'])} cases)"
                   for path, document in update.documents.items()]
        self.baseline_changes += (update.changes + written) or ["baselines unchanged"]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report_path is None:
            return
        cases, _ = self.merged_cases()
        terminalreporter.section("robustness-gate summary")
        for line in format_table(cases, self._weight_notes(cases), full=self.config.option.verbose > 0):
            terminalreporter.write_line(line)
        for line in self.baseline_changes:
            terminalreporter.write_line(line)
        for line in self.problems:
            terminalreporter.write_line(line, red=True, bold=True)
        terminalreporter.write_line(f"report: {relative_to(self.report_path, self.root)}")
        if self.html_path is not None:
            terminalreporter.write_line(f"html: {relative_to(self.html_path, self.root)}")

    def _weight_notes(self, cases: list[CaseRecord]) -> dict[str, str]:
        """Per model, whether it runs the weights its baseline was recorded with (a release candidate won't)."""
        notes = {}
        for case in cases:
            if case.model in notes or not case.model_provenance:
                continue
            try:
                recorded = (read_baseline(baseline_path(self.suite.baselines_dir, case.line)) or {}).get(
                    "provenance", {})
            except BaselineError:
                continue
            before = recorded.get("model", {}).get("weights_sha256")
            now = case.model_provenance.get("weights_sha256")
            if before and now and before != now:
                notes[case.model] = (f"weights {now[:12]} differ from the baseline's {before[:12]}: gated as a "
                                     f"release candidate of line {case.line}")
            elif now:
                notes[case.model] = f"weights {now[:12]} (baseline line {case.line})"
        return notes


HEARTBEAT_S = 30.0


class Heartbeat:
    """Under xdist, a line every HEARTBEAT_S seconds while cases finish: how many of the run's cases are done,
    how many did not pass, the time since the first case finished and a linear estimate of the time left from
    the cases since (the terminal shows only dots otherwise; other tests of the run, before the first case, do
    not count)."""

    def __init__(self, config: pytest.Config, every_s: float = HEARTBEAT_S):
        self.config, self.every_s = config, every_s
        self.first: float | None = None
        self.last = time.monotonic()
        self.done: set[str] = set()
        self.not_passing = 0

    def finished(self, nodeid: str, total: int, failed: bool) -> None:
        if nodeid in self.done:
            return
        self.done.add(nodeid)
        self.not_passing += failed
        now = time.monotonic()
        if self.first is None:
            self.first = now
        if now - self.last < self.every_s or worker_count(self.config) < 1:
            return
        self.last = now
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:  # on a line of its own, after the progress dots
            reporter.write("\n" + self.line(total, now) + "\n")

    def line(self, total: int, now: float) -> str:
        elapsed, done = now - (self.first or now), len(self.done)
        rate = elapsed / (done - 1) if done > 1 else None
        left = f"about {_minutes(rate * (total - done))} left" if rate is not None else "time left not known yet"
        return (f"[robustness-gate] {done}/{total} cases done, {self.not_passing} not passing, "
                f"{_minutes(elapsed)} since the first, {left}")


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _identity(case: Any) -> dict[str, Any]:
    return {"id": case.id, "key": case.setting.key, "model": case.model, "line": case.line,
            "benchmark": case.benchmark, "category": case.setting.category, "setting": case.setting.as_dict()}


def _with_nodeid(record: CaseRecord, nodeid: str) -> CaseRecord:
    return dataclasses.replace(record, nodeid=nodeid)


def first_line(text: str) -> str:
    """The first `E ` line of a pytest failure text (else its last line), at most 500 characters."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E ")]
    return (errors[0][2:].strip() if errors else lines[-1].strip() if lines else "")[:500]


def split_of(config: pytest.Config) -> dict[str, int] | None:
    """pytest-split's shard of this run ({"splits": N, "group": g}), or None when it does not split."""
    splits, group = getattr(config.option, "splits", None), getattr(config.option, "group", None)
    return {"splits": int(splits), "group": int(group)} if splits and group else None


def worker_count(config: pytest.Config) -> int:
    """Number of xdist workers this run starts (0 without xdist): -n N, capped by --maxprocesses, or the
    --tx specs of a --dist run (`2*popen` counts two), as xdist expands them."""
    option = config.option
    try:
        workers = int(getattr(option, "numprocesses", 0) or 0)
    except (TypeError, ValueError):
        workers = 0
    if workers:
        return min(workers, getattr(option, "maxprocesses", None) or workers)
    if getattr(option, "dist", "no") != "no":
        return tx_workers(getattr(option, "tx", None) or [])
    return 0


def tx_workers(specs: list[str]) -> int:
    """Workers that xdist starts for these --tx specs: `N*spec` is N of them, any other spec one."""
    total = 0
    for spec in specs:
        count, star, _ = spec.partition("*")
        total += int(count) if star and count.strip().isdigit() else 1
    return total


def relative_to(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
