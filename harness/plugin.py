"""The pytest plugin, worker side: options, case parametrization, and the fixtures that measure and gate a case.

Installed, it loads into every pytest run through its `pytest11` entry point (`robustness_gate`), and stays
inert where the run's root has no `[tool.robustness]` table in pyproject.toml: it adds no option (so none can
clash with a project's own `--device` or pytest-html's `--html`), no marker, no hook work. The suite's own test files
ship in the package `robustness_tests`: `pytest --pyargs robustness_tests` gates the models of the current
project's `[tool.robustness]` against its own `baselines/`.

A worker (or the single process of a run without xdist) measures each case, has the gate decide it, and attaches
the case's record to its test report; the controller (harness.controller.RunController, registered only where
the process is not an xdist worker) merges the records and reports. Every case's time and cache use go to the
durations store (harness.timing); `--plan` predicts a run from it and runs nothing.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import os
import re
import resource
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from .baselines import JOURNAL, BaselineError, baseline_path, baselines_lock, check_model, check_policy, read_baseline
from .allocator import computing_with_huge_pages, huge_pages_for_children, restore_children
from .cache import ArrayCache
from .cases import CATEGORIES, Case, expand_cases, model_prompts, unmatched_smoke
from .config import ConfigError, SuiteConfig, build_config, declares_suite, read_pyproject_table
from .controller import (PLANNED_OUTPUT, RECORD_PROPERTY, Collection, RunController, XdistCollection, relative_to,
                         worker_count)
from .data import DataMissingError, get_benchmark
from .durations import DurationsError, TimingKey, durations_path, process_started, read_durations
from .evaluate import RunContext, evaluate
from .gate import GateDecision, decide, judged, record_decision
from .models import LoadedModel, UnknownModelError, load_model, resolve
from .models.registry import is_zero_shot
from .plan import PlannedCase
from .progress import ProgressLog
from .registry import ExtensionError, load_extensions
from .timing import CaseTimer, DurationsRecorder, PlanSession

_STATE = pytest.StashKey["SuiteState"]()
_PLANNED_RUN = pytest.StashKey[tuple[int, str]]()  # --plan: the worker count and xdist --dist mode planned for
_IMPORTED = time.time()  # where /proc does not tell when the process started


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    config = pluginmanager.get_plugin("pytestconfig")
    root = getattr(config, "rootpath", None)
    if root is not None and not declares_suite(Path(root) / "pyproject.toml"):
        return  # installed, the plugin loads into every run of the environment: no options where it is not set up
    group = parser.getgroup("robustness", "robustness-gate (defaults: [tool.robustness] in pyproject.toml)")
    group.addoption("--model", action="append", default=None, metavar="ID",
                    help="model id to gate, repeatable, e.g. embedded:synth-clip (default: pyproject models)")
    group.addoption("--benchmark", default=None, metavar="NAME",
                    help="evaluate every model on this benchmark (e.g. synth: any zero-shot model on the embedded "
                         "benchmark); default: each model family's own")
    group.addoption("--templates", default=None, metavar="SET",
                    help="prompt templates of zero-shot heads: openai (80), single, or a file (one per line); "
                         "default: the benchmark's")
    group.addoption("--classnames", default=None, metavar="FILE",
                    help="class names of zero-shot heads, one per line in label order; default: the benchmark's")
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
    group.addoption("--plan", action="store_true", default=False,
                    help="predict each selected case's time and the run's wall time (at -n N) from recorded "
                         "durations, and run nothing")


@pytest.hookimpl(hookwrapper=True)
def pytest_cmdline_main(config: pytest.Config):
    """Before xdist reads its options (its own pytest_cmdline_main turns -n into --tx specs): the default
    scheduling, then --plan's record of what was asked for."""
    if hasattr(config.option, "plan"):  # this project declares a suite (pytest_addoption)
        _steal_work_by_default(config.option)
        _note_plan(config)
    yield


def _steal_work_by_default(option: Any) -> None:
    """`-n N` without `--dist` distributes by work stealing, not xdist's `load`: the suite's cases take 0.1 s to
    minutes, `load` queues runs of consecutive cases on each worker, and a queued run of attack cases left one
    worker computing alone for half a warm `-n 2` run (1,234 s of cases against 599 s; README "Usage").
    `--dist load` (or `-d`), or any other mode, is kept as given."""
    if getattr(option, "numprocesses", None) and option.dist == "no" and not getattr(option, "distload", False):
        option.dist = "worksteal"


def _note_plan(config: pytest.Config) -> None:
    """--plan: note the worker count and xdist mode asked for, then turn xdist off, so that no worker starts."""
    if not config.option.plan:
        return
    if getattr(config.option, "numprocesses", None) in ("auto", "logical"):  # resolved as xdist resolves it
        config.option.numprocesses = config.hook.pytest_xdist_auto_num_workers(config=config)
    workers = worker_count(config)
    dist = getattr(config.option, "dist", "no")
    config.stash[_PLANNED_RUN] = (workers, "load" if dist == "no" or getattr(config.option, "distload", False)
                                  else dist)
    if workers:
        config.option.numprocesses, config.option.dist, config.option.tx = 0, "no", []


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


def _worker_index(config: pytest.Config) -> int | None:
    """N of xdist worker `gwN`, None in the controller or without xdist."""
    worker = getattr(config, "workerinput", {}).get("workerid", "")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else None


def _overrides(config: pytest.Config) -> dict[str, Any]:
    option = config.option
    return {"models": option.model, "samples": option.samples, "seed": option.seed, "device": option.device,
            "batch_size": option.batch_size, "amp": option.amp, "update_baselines": option.update_baselines,
            "allow_loosen": option.allow_loosen, "max_flip_rate": option.max_flip_rate,
            "save_adversarials": option.save_adversarials, "data_root": option.data_root,
            "strict_data": option.strict_data, "case_timeout": option.case_timeout,
            "benchmark": option.benchmark, "templates": option.templates, "classnames": option.classnames,
            "report_dir": option.report_dir, "baselines_dir": option.baselines_dir, "cache_dir": option.cache_dir}


def pytest_configure(config: pytest.Config) -> None:
    root = Path(config.rootpath)
    if not declares_suite(root / "pyproject.toml"):
        return  # not a robustness-gate project: stay out of its way
    try:
        table = read_pyproject_table(root / "pyproject.toml")
    except ConfigError as error:
        raise pytest.UsageError(str(error)) from None
    overrides = _overrides(config)
    try:
        load_extensions()
    except ExtensionError as error:
        raise pytest.UsageError(str(error)) from None
    for category in CATEGORIES:
        config.addinivalue_line("markers", f"{category}: robustness-gate {category} cases")
    config.addinivalue_line("markers", "smoke: the settings listed in [tool.robustness] smoke, a quick slice of "
                                       "every category (pytest -m smoke)")
    try:
        suite = build_config(root, table, overrides)
        cases = expand_cases(suite)
        unmatched = unmatched_smoke(suite, cases)
        if unmatched:  # a warning, not an error: the default list names settings of both built-in benchmarks
            warnings.warn(pytest.PytestConfigWarning(
                f"[tool.robustness] smoke lists settings no model of this run has, so `-m smoke` leaves them out: "
                f"{', '.join(unmatched)} (names as `pytest --collect-only -q` shows them after the model line)"))
        device = resolve_device(suite.device, _worker_index(config))
        if suite.amp != "off" and device.type != "cuda":
            raise ConfigError(f"--amp {suite.amp} needs a CUDA device; this run uses {device}")
    except (ConfigError, UnknownModelError) as error:
        raise pytest.UsageError(str(error)) from None
    state = SuiteState(config, suite, cases, device)
    config.stash[_STATE] = state
    case_ids = {case.id: case for case in cases}
    workerinput = getattr(config, "workerinput", None)
    if _PLANNED_RUN in config.stash:
        _register_plan(config, state)
        return
    if suite.huge_pages and workerinput is None:  # before xdist starts its workers, which inherit it
        huge_pages_for_children()
    huge_pages = computing_with_huge_pages(0, False)  # this process's, as it computes
    config.pluginmanager.register(CaseTimer(state.cache, lambda case: timing_key(
        case, suite, device.type, torch.get_num_threads(), huge_pages),
        os.environ.get("PYTEST_XDIST_WORKER", "main")), "robustness-timer")
    if workerinput is not None:  # an xdist worker: measure; the controller learns what it planned at node-down
        torch.set_num_threads(worker_threads(int(workerinput.get("workercount", 1))))
        config.pluginmanager.register(Collection(config, case_ids, lambda kept, planned: config.workeroutput.update(
            {PLANNED_OUTPUT: sorted(planned)})), "robustness-collection")
        return
    if (suite.baselines_dir / JOURNAL).exists():  # a commit was interrupted: finish it before anyone reads
        try:
            with baselines_lock(suite.baselines_dir):
                pass
        except BaselineError as error:
            raise pytest.UsageError(str(error)) from None
    controller = RunController(config, suite, cases, str(device))
    config.pluginmanager.register(controller, "robustness-controller")
    config.pluginmanager.register(Collection(config, case_ids, controller.collected), "robustness-collection")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistCollection(controller), "robustness-xdist")
    config.pluginmanager.register(DurationsRecorder(durations_path(suite.report_dir), worker_count(config),
                                                    process_started() or _IMPORTED), "robustness-durations")


def worker_threads(workers: int) -> int:
    """Torch threads of each of `workers` xdist workers: the machine's cores shared out, at least one."""
    return max(1, (os.cpu_count() or 1) // workers)


def timing_key(case: Case, suite: SuiteConfig, device_type: str, threads: int, huge_pages: bool) -> TimingKey:
    """What `case`'s recorded time is kept under (harness.durations)."""
    return TimingKey(case.model, case.id, case.setting.samples, suite.batch_size, device_type, threads, huge_pages)


def _register_plan(config: pytest.Config, state: "SuiteState") -> None:
    """--plan: a PlanSession instead of the controller; the store is read now, so a malformed one is a usage error."""
    workers, dist = config.stash[_PLANNED_RUN]
    path = durations_path(state.suite.report_dir)
    try:
        store = read_durations(path)
    except DurationsError as error:
        raise pytest.UsageError(f"--plan: {error}") from None
    threads = worker_threads(workers) if workers else torch.get_num_threads()
    huge_pages = computing_with_huge_pages(workers, state.suite.huge_pages)

    def planned(case: Case) -> PlannedCase:
        return PlannedCase(timing_key(case, state.suite, state.device.type, threads, huge_pages),
                           case.setting.category, case.setting.name, case.benchmark)

    config.pluginmanager.register(PlanSession(store, state.cache, planned, workers, dist,
                                              relative_to(path, state.root)), "robustness-plan")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """The run is over and its report written: freeze what is left (torch, models, cached arrays) out of the
    garbage collector, whose passes over it at interpreter exit took over a second of every warm run. The
    environment's allocator tuning goes back to what the run found."""
    restore_children()
    gc.freeze()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Cases of one model line run next to each other (otherwise in collection order): xdist (worksteal, the
    plugin's default, or load) hands each worker runs of consecutive items, so a worker loads few models."""
    if _STATE not in config.stash:
        return
    position = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (schedule_key(item), position[id(item)]))
    suite = config.stash[_STATE].suite
    for item in items:  # pytest-timeout: a hung case is an error, and its run incomplete
        case = item.callspec.params.get("case") if hasattr(item, "callspec") else None
        if isinstance(case, Case) and case.setting.name in suite.smoke:
            item.add_marker(pytest.mark.smoke)
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
    if _STATE not in metafunc.config.stash:
        pyproject = Path(metafunc.config.rootpath) / "pyproject.toml"
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} is a robustness-gate case, but {pyproject} has no [tool.robustness] "
            f"table: add one naming the models to gate (models = [\"embedded:synth-cnn\"]), or pass --model; "
            f"README, \"Gate your own model\"")
    categories = [c for c in CATEGORIES if metafunc.definition.get_closest_marker(c)]
    if len(categories) != 1:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: a test taking `case` needs exactly one of the "
                                f"markers {', '.join(CATEGORIES)}, found {categories or 'none'}")
    state = metafunc.config.stash[_STATE]
    cases = [case for case in state.cases if case.setting.category == categories[0]]
    metafunc.parametrize("case", cases, ids=[case.id for case in cases])


@pytest.fixture(scope="session")
def robustness_session(pytestconfig: pytest.Config) -> "SuiteState":
    """This process's suite state: `suite` (SuiteConfig), `cache` (ArrayCache), `device`."""
    return pytestconfig.stash[_STATE]


@pytest.fixture(scope="session")
def loaded_models(pytestconfig: pytest.Config) -> "ModelPool":
    """Each model is loaded once per worker, on first use."""
    state = pytestconfig.stash[_STATE]
    return ModelPool(state.device, state.cache, state.suite)


@pytest.fixture
def gate(request: pytest.FixtureRequest, pytestconfig: pytest.Config, loaded_models: "ModelPool"):
    """`gate(case) -> GateDecision`: measure the case, attach its record to the test report, decide."""
    state: SuiteState = pytestconfig.stash[_STATE]

    def run(case: Case) -> GateDecision:
        suite = state.suite
        try:
            benchmark = get_benchmark(case.benchmark, suite.data_root)
            for split in filter(None, (case.setting.split, case.setting.id_split)):
                benchmark.check(split)  # before any model loads
            model = loaded_models.get(case.model)
            result = evaluate(case, model, dataclasses.replace(state.run(loaded_models.get),
                                                               progress=state.progress.for_case(case.id)), benchmark)
        except DataMissingError as missing:
            if suite.strict_data:
                raise
            pytest.skip(f"not run: {missing}")
        record = result.record(model.provenance)
        path = baseline_path(suite.baselines_dir, case.line)
        document = state.baseline(path)
        check_model(document, path, case.model, model.provenance)
        entry = document["cases"].get(case.setting.key)
        policy = suite.policy_for(case.setting.category, document.get("gate"))
        if suite.update_baselines:
            decision = record_decision(record, entry, policy)
        else:
            if entry is not None:
                check_policy(entry, path, case.setting.key, policy)
            decision = decide(record, entry, relative_to(path, state.root),
                              f"pytest --model {case.model} --update-baselines", suite.max_flip_rate)
        record = judged(record, decision, worker=os.environ.get("PYTEST_XDIST_WORKER", "main"),
                        worker_peak_rss_mb=peak_rss_mb(), worker_rss_mb=rss_mb())
        request.node.user_properties.append((RECORD_PROPERTY, json.dumps(record.to_json(), sort_keys=True)))
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


class ModelPool:
    """Models by id, loaded on first use onto `device`, keeping derived artefacts (zero-shot heads) in `cache`; a
    zero-shot model's head is built from the prompts of its benchmark under the suite's prompts options."""

    def __init__(self, device: torch.device, cache: ArrayCache, suite: SuiteConfig):
        self.device = device
        self.cache = cache
        self.suite = suite
        self._models: dict[str, LoadedModel] = {}

    def get(self, model: str) -> LoadedModel:
        if model not in self._models:
            prompts = model_prompts(model, self.suite) if is_zero_shot(resolve(model)[1]) else None
            self._models[model] = load_model(model, self.device, self.cache, prompts)
        return self._models[model]


def _echo(config: pytest.Config, line: str) -> None:
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line(f"[progress] {line}")


class SuiteState:
    """Per-process state of the suite: its configuration and cases, this process's device, cache and progress
    log, and the baseline files it has read (each read once)."""

    def __init__(self, config: pytest.Config, suite: SuiteConfig, cases: list[Case], device: torch.device):
        self.root = Path(config.rootpath)
        self.suite = suite
        self.cases = cases
        self.device = device
        self.cache = ArrayCache(suite.cache_dir, pixel_budget=int(suite.cache_images_gb * 10**9))
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        self.progress = ProgressLog(suite.report_dir / "progress" / f"{worker or 'main'}.log",
                                    echo=None if worker else lambda line: _echo(config, line))
        self._baselines: dict[Path, dict[str, Any]] = {}

    def run(self, models: Callable[[str], LoadedModel]) -> RunContext:
        """What this process measures a case with; `models` loads surrogates."""
        return RunContext.of_suite(self.suite, self.device, self.cache, models)

    def baseline(self, path: Path) -> dict[str, Any]:
        """The baseline document at `path` (with no cases when absent), read once; BaselineError when malformed."""
        if path not in self._baselines:
            self._baselines[path] = read_baseline(path) or {"cases": {}, "provenance": {}}
        return self._baselines[path]
