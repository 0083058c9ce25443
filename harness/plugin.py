"""The pytest plugin: options, case parametrization, per-worker fixtures, and the controller's report.

Workers measure cases and attach one JSON-able record per case to the test report (`user_properties`);
xdist carries it to the controller, which merges the records, checks that every collected case has one,
writes the report (and, with --update-baselines, the baselines) once, and prints the summary table.
"""
from __future__ import annotations

import json
import os
import re
import resource
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from .baselines import (JOURNAL, BaselineError, baseline_entry, baseline_path, baselines_lock, check_model,
                        check_policy, commit_documents, is_seeded, read_baseline, threshold_for)
from .cache import ArrayCache
from .cases import CATEGORIES, Case, expand_cases
from .checks import dose_response_violations
from .config import ConfigError, SuiteConfig, build_config, read_pyproject_table
from .data import DataMissingError, get_benchmark
from .evaluate import evaluate
from .gate import GateDecision, decide
from .models import LoadedModel, UnknownModelError, load_model
from .progress import ProgressLog
from .report import build_report, case_record, format_table, git_commit, new_run_id, utc_now, write_report
from .sensitivity import detectable_drop
from .versions import cpu, versions

RECORD_PROPERTY = "robustness_record"
PLANNED_OUTPUT = "robustness_planned_cases"
_STATE = pytest.StashKey["RobustnessSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("robustness", "robustness-gate (defaults: [tool.robustness] in pyproject.toml)")
    group.addoption("--model", action="append", default=None, metavar="ID",
                    help="model id to gate, repeatable, e.g. embedded:synth-clip (default: pyproject models)")
    group.addoption("--samples", type=int, default=None, metavar="N", help="cap on samples per case")
    group.addoption("--seed", type=int, default=None, metavar="N", help="seed of corruptions and attacks")
    group.addoption("--device", default=None, metavar="DEV", help="auto, cpu, cuda or cuda:N")
    group.addoption("--batch-size", type=int, default=None, metavar="N", help="images per forward pass")
    group.addoption("--amp", default=None, choices=("off", "bf16", "fp16"),
                    help="autocast precision of non-adversarial cases on a CUDA device (default off: float32)")
    group.addoption("--update-baselines", action="store_true", default=None,
                    help="measure and (re)write baselines/<line>.json instead of gating")
    group.addoption("--allow-loosen", action="store_true", default=None,
                    help="with --update-baselines: allow a threshold to drop below the recorded one")
    group.addoption("--max-flip-rate", type=float, default=None, metavar="R",
                    help="also fail a case when more than this fraction of samples flipped against the baseline")
    group.addoption("--save-adversarials", default=None, metavar="DIR",
                    help="write each attack's adversarial images to DIR/<line>/<setting>.npz")
    group.addoption("--data-root", default=None, metavar="DIR",
                    help="folder holding real datasets (imagenet/val, imagenet-r, ...); see README")
    group.addoption("--strict-data", action="store_true", default=None,
                    help="release mode: a case whose data is missing fails instead of being reported not run")
    group.addoption("--cache-dir", default=None, metavar="DIR",
                    help="content-addressed cache of rendered and perturbed data")
    group.addoption("--report-dir", default=None, metavar="DIR", help="where run reports are written")
    group.addoption("--html", action="store_true", default=False,
                    help="also write the report as a self-contained HTML page next to the JSON report")
    group.addoption("--case-timeout", type=float, default=None, metavar="S",
                    help="seconds any one case may run before it is an error (default: [tool.robustness.timeouts])")
    group.addoption("--baselines-dir", default=None, metavar="DIR", help="where baseline files are read")


def resolve_device(text: str, worker: int | None = None) -> torch.device:
    """The device named by --device. `auto` and a bare `cuda` mean one GPU per xdist worker (worker i gets
    cuda:i mod the GPU count) when there are GPUs, else the CPU; `cuda:N` pins every worker to GPU N."""
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cuda" and torch.cuda.is_available():
        return torch.device("cuda", (worker or 0) % torch.cuda.device_count())
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise ConfigError(f"--device {text!r}: use auto, cpu, cuda or cuda:N")
    device = torch.device(text)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {text}: CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) present")
    return device


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _worker_index(config: pytest.Config) -> int | None:
    """N of xdist worker `gwN`, None in the controller or without xdist."""
    worker = config.workerinput.get("workerid", "") if _is_worker(config) else ""
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else None


def _overrides(config: pytest.Config) -> dict[str, Any]:
    option = config.option
    return {"models": option.model, "samples": option.samples, "seed": option.seed, "device": option.device,
            "batch_size": option.batch_size, "amp": option.amp, "update_baselines": option.update_baselines,
            "allow_loosen": option.allow_loosen, "max_flip_rate": option.max_flip_rate,
            "save_adversarials": option.save_adversarials, "data_root": option.data_root,
            "strict_data": option.strict_data, "case_timeout": option.case_timeout,
            "report_dir": option.report_dir, "baselines_dir": option.baselines_dir, "cache_dir": option.cache_dir}


def pytest_configure(config: pytest.Config) -> None:
    for category in CATEGORIES:
        config.addinivalue_line("markers", f"{category}: robustness-gate {category} cases")
    root = Path(config.rootpath)
    try:
        suite = build_config(root, read_pyproject_table(root / "pyproject.toml"), _overrides(config))
        cases = expand_cases(suite)
        device = resolve_device(suite.device, _worker_index(config))
        if suite.amp != "off" and device.type != "cuda":
            raise ConfigError(f"--amp {suite.amp} needs a CUDA device; this run uses {device}")
    except (ConfigError, UnknownModelError) as error:
        raise pytest.UsageError(str(error)) from None
    if _is_worker(config):
        workers = int(config.workerinput.get("workercount", 1))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    elif (suite.baselines_dir / JOURNAL).exists():  # a commit was interrupted: finish it before anyone reads
        try:
            with baselines_lock(suite.baselines_dir):
                pass
        except BaselineError as error:
            raise pytest.UsageError(str(error)) from None
    state = RobustnessSession(config, suite, cases, device)
    config.stash[_STATE] = state
    config.pluginmanager.register(state, "robustness-session")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistCollection(state), "robustness-xdist")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Cases of one model line run next to each other (otherwise in collection order): xdist's load scheduling
    hands each worker runs of consecutive items, so a worker loads few models while the work stays balanced."""
    position = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (schedule_key(item), position[id(item)]))
    suite = config.stash[_STATE].suite
    for item in items:  # pytest-timeout: a hung case is an error, and its run incomplete
        case = item.callspec.params.get("case") if hasattr(item, "callspec") else None
        category = case.setting.category if isinstance(case, Case) else next(
            (c for c in CATEGORIES if item.get_closest_marker(c) is not None), None)
        if category is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(suite.timeout_for(category)))


def schedule_key(item: pytest.Item) -> str:
    """The model line of a case item ("" for other tests, which run first)."""
    case = item.callspec.params.get("case") if hasattr(item, "callspec") else None
    return case.line if isinstance(case, Case) else ""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    categories = [c for c in CATEGORIES if metafunc.definition.get_closest_marker(c)]
    if len(categories) != 1:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: a test taking `case` needs exactly one of the "
                                f"markers {', '.join(CATEGORIES)}, found {categories or 'none'}")
    state = metafunc.config.stash[_STATE]
    cases = [case for case in state.cases if case.setting.category == categories[0]]
    metafunc.parametrize("case", cases, ids=[case.id for case in cases])


@pytest.fixture(scope="session")
def robustness_config(pytestconfig: pytest.Config) -> SuiteConfig:
    return pytestconfig.stash[_STATE].suite


@pytest.fixture(scope="session")
def robustness_session(pytestconfig: pytest.Config) -> "RobustnessSession":
    """This process's suite state: `suite` (SuiteConfig), `cache` (ArrayCache), `device`."""
    return pytestconfig.stash[_STATE]


@pytest.fixture(scope="session")
def loaded_models(pytestconfig: pytest.Config) -> "ModelPool":
    """Each model is loaded once per worker, on first use."""
    state = pytestconfig.stash[_STATE]
    return ModelPool(state.device, state.cache)


@pytest.fixture
def gate(request: pytest.FixtureRequest, pytestconfig: pytest.Config, loaded_models: "ModelPool"):
    """`gate(case) -> GateDecision`: measure the case, attach its record to the test report, decide."""
    state: RobustnessSession = pytestconfig.stash[_STATE]

    def run(case: Case) -> GateDecision:
        suite = state.suite
        try:
            get_benchmark(case.benchmark, suite.data_root).check(case.setting.split)  # before any model loads
            model = loaded_models.get(case.model)
            result = evaluate(case, model, state.cache, suite.seed, suite.batch_size, state.device,
                              loaded_models.get, suite.save_adversarials, suite.data_root, suite.amp,
                              state.progress.for_case(case.id))
        except DataMissingError as missing:
            if suite.strict_data:
                raise
            pytest.skip(f"not run: {missing}")
        record = case_record(result, model.provenance)
        path = baseline_path(suite.baselines_dir, case.line)
        document = state.baseline(path)
        check_model(document, path, case.model, model.provenance)
        entry = document["cases"].get(case.setting.key)
        policy = suite.policy_for(case.setting.category, document.get("gate"))
        if entry is not None and not suite.update_baselines:
            check_policy(entry, path, case.setting.key, policy)
        if suite.update_baselines:
            detectable = detectable_drop(record["n"], record["correct"],
                                         threshold_for(record["correct"], record["n"], policy), policy.margin,
                                         policy.confidence)
            decision = GateDecision("recorded", f"{case.id}: recorded accuracy {record['accuracy']:.4f}",
                                    entry and entry["accuracy"], entry and entry["threshold"],
                                    detectable_drop=detectable)
        else:
            command = f"pytest --model {case.model} --update-baselines"
            decision = decide(record, entry, _relative(path, state.root), command, suite.max_flip_rate)
        record.update(status=decision.status, baseline=decision.baseline, threshold=decision.threshold,
                      delta=None if decision.baseline is None else round(record["accuracy"] - decision.baseline, 6),
                      flips=decision.flips, mcnemar_p=decision.p_value, message=decision.message,
                      pixel_drift=None if decision.pixel_drift is None else decision.pixel_drift.as_dict(),
                      detectable_drop=decision.detectable_drop,
                      worker=os.environ.get("PYTEST_XDIST_WORKER", "main"), worker_peak_rss_mb=peak_rss_mb(),
                      worker_rss_mb=rss_mb())
        request.node.user_properties.append((RECORD_PROPERTY, json.loads(json.dumps(record))))
        return decision

    return run


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


def rss_mb() -> float | None:
    """This process's resident set size now, in MiB; None where /proc/self/statm does not exist (not Linux)."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return None
    return round(resident_pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20), 1)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


class ModelPool:
    """Models by id, loaded on first use onto `device`, keeping derived artefacts (zero-shot heads) in `cache`."""

    def __init__(self, device: torch.device, cache: ArrayCache):
        self.device = device
        self.cache = cache
        self._models: dict[str, LoadedModel] = {}

    def get(self, model: str) -> LoadedModel:
        if model not in self._models:
            self._models[model] = load_model(model, self.device, self.cache)
        return self._models[model]


class _XdistCollection:
    """Controller side under xdist: learns which case tests the workers collected."""

    def __init__(self, state: "RobustnessSession"):
        self.state = state

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        for nodeid in ids:
            self.state.expect(nodeid)

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        self.state.planned |= set(getattr(node, "workeroutput", {}).get(PLANNED_OUTPUT, ()))


class RobustnessSession:
    """Per-process state; in the controller (or a run without xdist) it also merges and reports."""

    def __init__(self, config: pytest.Config, suite: SuiteConfig, cases: list[Case], device: torch.device):
        self.config = config
        self.suite = suite
        self.cases = cases
        self.device = device
        self.root = Path(config.rootpath)
        self.cache = ArrayCache(suite.cache_dir)
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        self.progress = ProgressLog(suite.report_dir / "progress" / f"{worker or 'main'}.log",
                                    echo=None if worker else self._echo)
        self.started = utc_now()
        self.run_id = new_run_id()
        self._case_ids = {case.id: case for case in cases}
        self._baselines: dict[Path, dict[str, Any]] = {}
        self.expected: dict[str, str] = {}
        self.planned: set[str] = set()  # case ids of the whole run before pytest-split kept this shard's
        self._deselected: list[list[str]] = []
        self.records: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, str] = {}
        self.report_path: Path | None = None
        self.html_path: Path | None = None
        self.baseline_changes: list[str] = []
        self.problems: list[str] = []

    def _echo(self, line: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(f"[progress] {line}")

    def baseline(self, path: Path) -> dict[str, Any]:
        """The baseline document at `path` (with no cases when absent), read once; BaselineError when malformed."""
        if path not in self._baselines:
            self._baselines[path] = read_baseline(path) or {"cases": {}, "provenance": {}}
        return self._baselines[path]

    def expect(self, nodeid: str) -> None:
        case_id = self._case_id(nodeid)
        if case_id is not None:
            self.expected[nodeid] = case_id

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self._deselected.append([item.nodeid for item in items])

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        kept = [item.nodeid for item in session.items]  # after -k/-m deselection; under xdist only workers collect
        for nodeid in kept:
            self.expect(nodeid)
        if _split(self.config) and self._deselected:  # pytest-split deselects last, in one batch
            kept += self._deselected[-1]
        self.planned = {case_id for case_id in map(self._case_id, kept) if case_id is not None}
        if _is_worker(self.config):
            self.config.workeroutput[PLANNED_OUTPUT] = sorted(self.planned)

    def _case_id(self, nodeid: str) -> str | None:
        match = re.search(r"\[(.*)\]$", nodeid)
        return match.group(1) if match and match.group(1) in self._case_ids else None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if _is_worker(self.config):
            return
        for name, value in report.user_properties:
            if name == RECORD_PROPERTY:
                self.records[report.nodeid] = value
        if report.failed and report.nodeid not in self.records:
            self.failures.setdefault(report.nodeid, _first_line(report.longreprtext))
        elif report.skipped and report.nodeid not in self.failures:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longreprtext
            self.failures.setdefault(report.nodeid, "skipped: " + _first_line(str(reason)))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if _is_worker(self.config) or not self.expected or self.config.option.collectonly:
            return
        cases, complete = self._merged_cases()
        measured = sum(case.get("accuracy") is not None for case in cases)
        if not measured:
            complete = False
            reasons = sorted({case.get("message", "")[:200] for case in cases})
            self.problems.append(f"run measured NOTHING: none of the {len(cases)} selected cases produced a "
                                 f"result, so nothing was gated. Why: " + " | ".join(reasons))
        violations = dose_response_violations(cases)
        if violations:
            self.problems += ["INVALID: " + message for message in violations]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        run = {"id": self.run_id, "started": self.started, "finished": utc_now(), "argv": sys.argv[1:],
               "workers": _worker_count(self.config), "complete": complete, "measured": measured,
               "device": str(self.device),
               "seed": self.suite.seed, "update_baselines": self.suite.update_baselines,
               "git": git_commit(self.root), "versions": versions(), "cpu": cpu(),
               "validity_problems": violations,
               "planned_cases": sorted(self.planned or set(self.expected.values())), "split": _split(self.config)}
        report = build_report(run, cases)
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
            if complete and all(c["status"] == "recorded" for c in cases):
                self._write_baselines(cases)
                if self.problems:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED
            else:
                self.problems.append("baselines NOT updated: the run had errors or missing cases")
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _merged_cases(self) -> tuple[list[dict[str, Any]], bool]:
        cases, complete = [], True
        for nodeid, case_id in sorted(self.expected.items()):
            record = self.records.get(nodeid)
            if record is None:
                case = self._case_ids[case_id]
                reason = self.failures.get(nodeid, "no result reached the controller (worker crashed or run "
                                                   "interrupted)")
                complete = complete and reason.startswith("skipped")
                record = {"id": case.id, "key": case.setting.key, "model": case.model, "line": case.line,
                          "benchmark": case.benchmark, "category": case.setting.category,
                          "setting": case.setting.as_dict(), "n": None, "correct": None, "accuracy": None,
                          "interval95": None, "baseline": None, "threshold": None, "delta": None,
                          "status": "not-run" if reason.startswith("skipped") else "error", "message": reason}
            cases.append(dict(record, nodeid=nodeid))
        return cases, complete

    def _write_baselines(self, cases: list[dict[str, Any]]) -> None:
        """Under the baselines folder's lock, merge this run's entries into the files as they are now and commit
        them all or none (harness.baselines.commit_documents): a concurrent run waits, and loses nothing."""
        try:
            with baselines_lock(self.suite.baselines_dir):
                self._merge_into_baselines(cases)
        except BaselineError as error:
            self.problems.append(f"baselines NOT updated: {error}")

    def _merge_into_baselines(self, cases: list[dict[str, Any]]) -> None:
        """Write every touched baseline file, or none: a loosened threshold needs --allow-loosen."""
        run_provenance = {"git": git_commit(self.root), "versions": versions(), "cpu": cpu(),
                          "seed": self.suite.seed,
                          "recorded_at": utc_now()}
        documents, loosened, changes = {}, [], []
        for line in sorted({c["line"] for c in cases}):
            path = baseline_path(self.suite.baselines_dir, line)
            old = read_baseline(path) or {"cases": {}}
            overrides = old.get("gate")
            line_cases = [c for c in cases if c["line"] == line]
            new_cases = dict(old["cases"])
            for case in line_cases:
                entry = baseline_entry(case, self.suite.policy_for(case["category"], overrides))
                previous = old["cases"].get(case["key"])
                if previous is None:
                    changes.append(f"{line} {case['key']}: new, accuracy {case['accuracy']:.4f} "
                                   f"[{case['interval95'][0]:.4f}, {case['interval95'][1]:.4f}], "
                                   f"threshold {entry['threshold']:.4f}")
                elif is_seeded(previous):
                    changes.append(f"{line} {case['key']}: seeded {previous['accuracy']:.4f} -> measured "
                                   f"{entry['accuracy']:.4f}, threshold {entry['threshold']:.4f}")
                else:
                    if entry["threshold"] < previous["threshold"] - 1e-9:
                        loosened.append(f"{line} {case['key']}: threshold {previous['threshold']:.4f} -> "
                                        f"{entry['threshold']:.4f}")
                    if previous["accuracy"] != entry["accuracy"] or previous["n"] != entry["n"]:
                        changes.append(
                            f"{line} {case['key']}: {previous['accuracy']:.4f} (n={previous['n']}) -> "
                            f"{entry['accuracy']:.4f} [{case['interval95'][0]:.4f}, {case['interval95'][1]:.4f}] "
                            f"(n={entry['n']}, {entry['accuracy'] - previous['accuracy']:+.4f}), threshold "
                            f"{previous['threshold']:.4f} -> {entry['threshold']:.4f}")
                new_cases[case["key"]] = entry
            provenance = {"model": line_cases[0]["model_provenance"], **run_provenance}
            if any(is_seeded(entry) for entry in new_cases.values()):  # published figures not measured yet
                provenance["seeded_from"] = old["provenance"]["seeded_from"]
            document = {"schema_version": 1, "line": line, "model": line_cases[0]["model"],
                        "provenance": provenance, "cases": dict(sorted(new_cases.items()))}
            if overrides is not None:
                document["gate"] = overrides
            documents[path] = document
        if loosened and not self.suite.allow_loosen:
            self.problems.append("baselines NOT updated: these thresholds would loosen (rerun with "
                                 "--allow-loosen if that is intended):")
            self.problems += [f"  {line}" for line in loosened]
            return
        commit_documents(self.suite.baselines_dir, documents)
        changes += [f"wrote {_relative(path, self.root)} ({len(document['cases'])} cases)"
                    for path, document in documents.items()]
        self.baseline_changes += changes or ["baselines unchanged"]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if _is_worker(self.config) or self.report_path is None:
            return
        cases, _ = self._merged_cases()
        terminalreporter.section("robustness-gate summary")
        for line in format_table(cases, self._weight_notes(cases)):
            terminalreporter.write_line(line)
        for line in self.baseline_changes:
            terminalreporter.write_line(line)
        for line in self.problems:
            terminalreporter.write_line(line, red=True, bold=True)
        terminalreporter.write_line(f"report: {_relative(self.report_path, self.root)}")
        if self.html_path is not None:
            terminalreporter.write_line(f"html: {_relative(self.html_path, self.root)}")


    def _weight_notes(self, cases: list[dict[str, Any]]) -> dict[str, str]:
        """Per model, whether it runs the weights its baseline was recorded with (a release candidate won't)."""
        notes = {}
        for case in cases:
            provenance = case.get("model_provenance")
            if case["model"] in notes or not provenance:
                continue
            try:
                recorded = self.baseline(baseline_path(self.suite.baselines_dir, case["line"]))["provenance"]
            except BaselineError:
                continue
            before = recorded.get("model", {}).get("weights_sha256")
            now = provenance.get("weights_sha256")
            if before and now and before != now:
                notes[case["model"]] = (f"weights {now[:12]} differ from the baseline's {before[:12]}: gated as a "
                                        f"release candidate of line {case['line']}")
            elif now:
                notes[case["model"]] = f"weights {now[:12]} (baseline line {case['line']})"
        return notes


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E ")]
    return (errors[0][2:].strip() if errors else lines[-1].strip() if lines else "")[:500]


def _split(config: pytest.Config) -> dict[str, int] | None:
    """pytest-split's shard of this run ({"splits": N, "group": g}), or None when it does not split."""
    splits, group = getattr(config.option, "splits", None), getattr(config.option, "group", None)
    return {"splits": int(splits), "group": int(group)} if splits and group else None


def _worker_count(config: pytest.Config) -> int:
    """Number of xdist workers (0 without xdist)."""
    try:
        return int(getattr(config.option, "numprocesses", 0) or 0)
    except (TypeError, ValueError):
        return 0
