"""The run's controller: every collected case ends with a record, measured or not, and a run without a measured
case or with a missing one never reads as a pass (the whole flow through pytest is in test_plugin.py)."""
import types

import pytest
from xdist.workermanage import parse_tx_spec_config

from case_records import measured
from harness.cases import expand_cases
from harness.config import build_config
from harness.controller import RunController, case_id_of, first_line, tx_workers, worker_count
from harness.records import Status


def controller(tmp_path):
    suite = build_config(tmp_path, {"models": ["embedded:synth-cnn"]}, {})
    config = types.SimpleNamespace(rootpath=tmp_path, option=types.SimpleNamespace(collectonly=False, html=False))
    return RunController(config, suite, expand_cases(suite), "cpu")


def test_a_case_id_is_read_from_a_node_id_only_for_known_cases():
    known = {"synth-cnn-clean": None}
    assert case_id_of("robustness_tests/test_clean.py::test_clean[synth-cnn-clean]", known) == "synth-cnn-clean"
    assert case_id_of("tests/test_x.py::test_y[synth-cnn-other]", known) is None
    assert case_id_of("tests/test_x.py::test_y", known) is None


def test_collected_cases_without_a_record_are_errors_unless_skipped(tmp_path):
    run = controller(tmp_path)
    ids = ["synth-cnn-clean", "synth-cnn-v2", "synth-cnn-sketch"]
    run.collected([f"robustness_tests/t.py::test[{i}]" for i in ids], set(ids))
    record = measured([True, False], id="synth-cnn-clean", model="embedded:synth-cnn", line="synth-cnn")
    run.records["robustness_tests/t.py::test[synth-cnn-clean]"] = record
    run.failures["robustness_tests/t.py::test[synth-cnn-v2]"] = "skipped: not run: no data"
    cases, complete = run.merged_cases()
    by_id = {case.id: case for case in cases}
    assert not complete
    assert by_id["synth-cnn-clean"].nodeid == "robustness_tests/t.py::test[synth-cnn-clean]"
    assert by_id["synth-cnn-v2"].status is Status.NOT_RUN and not by_id["synth-cnn-v2"].measured
    assert by_id["synth-cnn-sketch"].status is Status.ERROR
    assert "worker crashed or run interrupted" in by_id["synth-cnn-sketch"].message
    assert by_id["synth-cnn-sketch"].setting["name"] == "sketch"


def test_the_first_error_line_of_a_failure_is_kept():
    text = "def test():\n>   assert x\nE   AssertionError: accuracy fell\nE   more\n\ntests/t.py:3: AssertionError"
    assert first_line(text) == "AssertionError: accuracy fell"
    assert first_line("just one line") == "just one line"


def test_cases_left_unrun_by_an_early_stop_are_not_run_and_the_run_incomplete(tmp_path):
    run = controller(tmp_path)
    ids = ["synth-cnn-clean", "synth-cnn-v2", "synth-cnn-sketch"]
    run.collected([f"robustness_tests/t.py::test[{i}]" for i in ids], set(ids))
    run.records["robustness_tests/t.py::test[synth-cnn-clean]"] = measured(
        [False], id="synth-cnn-clean", model="embedded:synth-cnn", line="synth-cnn", status="regressed")
    run.failures["robustness_tests/t.py::test[synth-cnn-v2]"] = "worker 'gw0' crashed while running it"
    run.stopped_early = "stopping after 1 failures"
    cases, complete = run.merged_cases()
    by_id = {case.id: case for case in cases}
    assert not complete
    assert by_id["synth-cnn-sketch"].status is Status.NOT_RUN
    assert by_id["synth-cnn-sketch"].message == "not run: the run stopped before this case (stopping after 1 failures)"
    assert by_id["synth-cnn-v2"].status is Status.ERROR  # a crash is still an error
    assert by_id["synth-cnn-clean"].status is Status.REGRESSED


def test_the_heartbeat_writes_a_progress_line_under_xdist_at_most_every_period():
    from harness.controller import Heartbeat

    lines = []
    reporter = types.SimpleNamespace(write=lambda text: lines.append(text.strip()))
    config = types.SimpleNamespace(option=types.SimpleNamespace(numprocesses=2, dist="load"),
                                   pluginmanager=types.SimpleNamespace(get_plugin=lambda name: reporter))
    beat = Heartbeat(config, every_s=0.0)
    beat.finished("a", 4, failed=False)
    assert lines[-1].endswith("time left not known yet")
    beat.first -= 120  # the first case finished two minutes ago
    beat.finished("a", 4, failed=False)  # one test's reports arrive more than once: counted once
    beat.finished("b", 4, failed=True)
    assert len(lines) == 2
    assert lines[-1].startswith("[robustness-gate] 2/4 cases done, 1 not passing, 2m00s since the first")
    assert lines[-1].endswith("about 4m00s left")  # 120 s for one case after the first, two to go
    quiet = Heartbeat(config, every_s=3600.0)
    quiet.finished("a", 4, failed=False)
    assert len(lines) == 2
    serial = Heartbeat(types.SimpleNamespace(option=types.SimpleNamespace(numprocesses=None, dist="no"),
                                             pluginmanager=config.pluginmanager), every_s=0.0)
    serial.finished("a", 4, failed=False)
    assert len(lines) == 2  # without xdist the progress log prints lines already


def options(**values):
    return types.SimpleNamespace(option=types.SimpleNamespace(**values))


@pytest.mark.parametrize("values, workers", [
    ({}, 0),
    ({"numprocesses": 0, "dist": "no", "tx": []}, 0),
    ({"numprocesses": 4, "dist": "load", "tx": ["popen"] * 4}, 4),
    ({"numprocesses": 4, "maxprocesses": 2, "dist": "load", "tx": ["popen"] * 2}, 2),
    ({"numprocesses": None, "dist": "load", "tx": ["2*popen", "ssh=host//python=python3"]}, 3),
    ({"numprocesses": None, "dist": "no", "tx": ["2*popen"]}, 0),  # --tx without --dist: xdist starts none
])
def test_the_worker_count_is_the_workers_xdist_starts(values, workers):
    assert worker_count(options(**values)) == workers


@pytest.mark.parametrize("specs", [[], ["popen"], ["3*popen"], ["2*popen", "popen", "ssh=h//python=python3"],
                                   ["10*popen//python=python3.11"]])
def test_tx_specs_expand_as_xdist_expands_them(specs):
    class Config:
        def getvalue(self, name):
            return {"tx": specs}[name]

    expected = len(parse_tx_spec_config(Config())) if specs else 0
    assert tx_workers(specs) == expected
