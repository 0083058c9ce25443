"""The cost plan: cache traces, the durations store, the predictor and its schedules, and `pytest --plan` on a
slice of the embedded suite (structure and consistency only: no assertion on how long anything took)."""
import dataclasses
import heapq
import json
import multiprocessing
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from harness.cache import ArrayCache, cache_key
from harness.durations import (CaseRun, Durations, DurationsError, RunOverhead, TimingKey, read_durations,
                               record_runs)
from harness.plan import (Plan, PlannedCase, Prediction, format_plan, load_makespan, lpt_makespan, overhead_for,
                          predict_cases, rate_family)
from suite_helpers import ROOT, run_suite


def key(case="m-clean", threads=1, samples=100, model="embedded:m"):
    return TimingKey(model, case, samples, 250, "cpu", threads)


def run(case="m-clean", entries=None, duration=10.0, threads=1, category="clean", setting="clean", samples=100,
        model="embedded:m", worker="gw0", started=100.0):
    return CaseRun(key(case, threads, samples, model), category, setting, "synth", started, duration, worker,
                   entries or {})


def planned(case="m-clean", threads=1, category="clean", setting="clean", samples=100, model="embedded:m"):
    return PlannedCase(key(case, threads, samples, model), category, setting, "synth")


def store_of(*runs, overhead=None):
    return Durations().merged(runs, overhead, now=1.0)


# --- cache traces ---------------------------------------------------------------------------------------------

def test_a_trace_tells_read_entries_from_computed_ones_and_times_each_computation_on_its_own(tmp_path):
    cache = ArrayCache(tmp_path)
    images = np.zeros((2, 4, 4, 3), np.uint8)
    outer_key, inner_key = {"kind": "outer"}, {"kind": "inner"}

    def outer():
        return {"images": cache.get_or_compute(inner_key, lambda: {"images": images})["images"] + 1}

    with cache.track() as cold:
        cache.get_or_compute(outer_key, outer)
        cache.get_or_compute(outer_key, outer)  # from memory now: still the computation the trace keeps
    assert list(cold.entries) == [cache_key(inner_key), cache_key(outer_key)] and cold.cold
    assert not any(use.hit for use in cold.entries.values())
    assert all(use.compute_s >= 0 for use in cold.entries.values())
    later = ArrayCache(tmp_path)  # another process: nothing in memory
    with later.track() as warm:
        later.get_or_compute(outer_key, lambda: pytest.fail("computed again"))
    assert not warm.cold and set(warm.entries) == {cache_key(outer_key)}
    assert cache.holds(cache_key(outer_key)) and not cache.holds(cache_key({"kind": "never"}))


def test_traces_nest_and_end_with_their_block(tmp_path):
    cache = ArrayCache(tmp_path)
    with cache.track() as outer:
        with cache.track() as inner:
            cache.get_or_compute({"kind": "a"}, lambda: {"x": np.arange(3)})
        cache.get_or_compute({"kind": "b"}, lambda: {"x": np.arange(3)})
    cache.get_or_compute({"kind": "c"}, lambda: {"x": np.arange(3)})
    assert set(inner.entries) == {cache_key({"kind": "a"})}
    assert set(outer.entries) == {cache_key({"kind": "a"}), cache_key({"kind": "b"})}


# --- the durations store ----------------------------------------------------------------------------------------

def test_the_store_keeps_the_latest_cold_and_warm_duration_of_each_key_and_round_trips(tmp_path):
    path = tmp_path / "durations.json"
    record_runs(path, [run(entries={"e1": 2.0, "e2": None}, duration=10.0)], RunOverhead(2, 5.0, 1.0, 0.0))
    record_runs(path, [run(entries={"e1": None, "e2": None}, duration=4.0)], None)
    record_runs(path, [run(entries={"e1": 3.0, "e2": None}, duration=12.0, threads=2)], RunOverhead(0, 2.0, 0.5, 0))
    store = read_durations(path)
    times = store.cases[key()]
    assert times.cold.duration_s == 10.0 and times.cold.computed == {"e1": 2.0}
    assert times.warm.duration_s == 4.0 and times.warm.computed == {}
    assert times.entries == ("e1", "e2")
    assert store.cases[key(threads=2)].warm is None
    assert set(store.overheads) == {0, 2} and store.overheads[2].startup_s == 5.0
    assert Durations.from_json(json.loads(path.read_text())) == store


def _record_one(path, index):
    record_runs(path, [run(case=f"m-case{index}", entries={f"e{index}": 1.0})], None)


def test_concurrent_writers_lose_no_record(tmp_path):
    path = tmp_path / "durations.json"
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_record_one, args=(path, index)) for index in range(6)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0] * 6
    assert {k.case for k in read_durations(path).cases} == {f"m-case{index}" for index in range(6)}


def test_a_malformed_store_is_an_error_naming_the_file_and_the_fix_and_is_left_as_it_is(tmp_path):
    path = tmp_path / "durations.json"
    path.write_text('{"schema_version": 1, "cases": [{"key": {}}]}')
    with pytest.raises(DurationsError, match=re.escape(str(path)) + ".*delete it"):
        read_durations(path)
    with pytest.raises(DurationsError):
        record_runs(path, [run()], None)
    assert path.read_text().startswith('{"schema_version": 1, "cases": [{"key": {}}]}')
    assert read_durations(tmp_path / "absent.json") == Durations()


# --- the predictor ----------------------------------------------------------------------------------------------

def test_a_case_whose_entries_are_all_cached_is_predicted_warm():
    store = store_of(run(entries={"e1": 2.0}, duration=10.0))
    [cold_only] = predict_cases([planned()], store, holds=lambda digest: True)
    assert (cold_only.seconds, cold_only.basis) == (8.0, "warm: cold recorded less computing")
    store = store.merged([run(entries={"e1": None}, duration=3.0)], None, now=2.0)
    [warm] = predict_cases([planned()], store, holds=lambda digest: True)
    assert (warm.seconds, warm.basis) == (3.0, "warm: recorded")


def test_a_cleared_cache_predicts_the_cold_durations_and_a_shared_entry_is_computed_once():
    store = store_of(run("m-a", {"split": 1.0, "pa": 2.0}, 10.0), run("m-b", {"split": None, "pb": 3.0}, 7.0),
                     run("m-a", {"split": None, "pa": None}, 4.0), run("m-b", {"split": None, "pb": None}, 2.0))
    a, b = predict_cases([planned("m-a"), planned("m-b")], store, holds=lambda digest: False)
    assert (a.seconds, a.basis) == (10.0, "cold: recorded") and (b.seconds, b.basis) == (7.0, "cold: recorded")
    b_first, a_second = predict_cases([planned("m-b"), planned("m-a")], store, holds=lambda digest: False)
    assert b_first.basis.startswith("partial") and b_first.seconds == 2.0 + 1.0 + 3.0  # warm + split + pb
    assert a_second.basis.startswith("partial") and a_second.seconds == 4.0 + 2.0  # warm + pa, the split is b's


def test_a_partly_cleared_cache_adds_the_recorded_cost_of_what_is_missing_or_says_it_is_a_lower_bound():
    store = store_of(run(entries={"e1": 2.0, "e2": 5.0}, duration=10.0), run(entries={"e1": None, "e2": None},
                                                                             duration=3.0))
    [partial] = predict_cases([planned()], store, holds=lambda digest: digest == "e1")
    assert partial.seconds == 3.0 + 5.0 and partial.basis == "partial: warm + 1 of 2 entries to compute"
    warm_only = store_of(run(entries={"e1": None}, duration=3.0))
    [bound] = predict_cases([planned()], warm_only, holds=lambda digest: False)
    assert bound.seconds == 3.0 and bound.lower_bound and "1 of unknown cost" in bound.basis


def test_another_thread_count_is_used_when_the_key_has_none_and_says_so():
    store = store_of(run(entries={"e1": None}, duration=3.0, threads=2))
    [prediction] = predict_cases([planned(threads=1)], store, holds=lambda digest: True)
    assert prediction.seconds == 3.0 and prediction.basis == "warm: recorded (at 2 threads)"


def test_a_time_recorded_under_the_other_allocator_is_used_last_and_says_so(tmp_path):
    def under(huge_pages, threads=1, duration=3.0):
        done = run(entries={"e1": None}, duration=duration, threads=threads)
        return dataclasses.replace(done, key=dataclasses.replace(done.key, huge_pages=huge_pages))

    def predicted(store, huge_pages=False, threads=1):
        planned_case = PlannedCase(dataclasses.replace(key(threads=threads), huge_pages=huge_pages), "clean",
                                   "clean", "synth")
        [prediction] = predict_cases([planned_case], store, holds=lambda digest: True)
        return prediction.seconds, prediction.basis

    huge, default = under(True), under(False, threads=2, duration=5.0)
    assert predicted(store_of(huge)) == (3.0, "warm: recorded (with huge pages)")
    assert predicted(store_of(huge, default)) == (5.0, "warm: recorded (at 2 threads)")
    assert predicted(store_of(default), huge_pages=True, threads=2) == (5.0, "warm: recorded (without huge pages)")
    unknown = under(None, duration=7.0)  # recorded before the allocator was kept: no preference, no note
    assert predicted(store_of(huge, unknown)) == (7.0, "warm: recorded")
    assert predicted(store_of(unknown), huge_pages=True, threads=2) == (7.0, "warm: recorded (at 1 threads)")
    path = tmp_path / "durations.json"
    path.write_text(json.dumps(store_of(huge, default, unknown).to_json()))
    assert read_durations(path).cases.keys() == {huge.key, default.key, unknown.key}


def test_an_unrecorded_case_takes_the_rate_of_the_closest_alike_cases_else_is_unknown():
    store = store_of(run("m-gaussian_noise-1", {"e": 1.0}, 30.0, category="synthetic", setting="gaussian_noise-1"),
                     run("m-gaussian_noise-2", {"f": 1.0}, 50.0, category="synthetic", setting="gaussian_noise-2"),
                     run("m-fog-1", {"g": 1.0}, 10.0, category="synthetic", setting="fog-1"))
    same_family, other_family, other_model, nothing = predict_cases([
        planned("m-gaussian_noise-5", category="synthetic", setting="gaussian_noise-5", samples=300),
        planned("m-blur-1", category="synthetic", setting="blur-1", samples=300),
        planned("o-gaussian_noise-5", category="synthetic", setting="gaussian_noise-5", model="embedded:o"),
        planned("m-pgd-linf-1/255", category="adversarial", setting="pgd-linf-1/255")], store, lambda d: False)
    assert same_family.seconds == pytest.approx(0.4 * 300)  # (0.3 + 0.5) / 2 s per sample
    assert same_family.basis == "rate: cold synthetic/gaussian_noise of embedded:m, 0.4 s/sample x 300"
    assert other_family.seconds == pytest.approx(0.3 * 300)
    assert "rate: cold synthetic of embedded:m" in other_family.basis
    assert other_model.seconds == pytest.approx(0.4 * 100) and "gaussian_noise on synth" in other_model.basis
    assert nothing.seconds is None and nothing.basis.startswith("unknown")


def test_rate_families_drop_the_strength_only():
    assert [rate_family(name) for name in ("gaussian_noise-3", "pgd-linf-1/255", "pgd-l2-0.5", "vid-pm4", "clean")] \
        == ["gaussian_noise", "pgd-linf", "pgd-l2", "vid-pm4", "clean"]


# --- schedules and the plan ---------------------------------------------------------------------------------------

def test_longest_first_puts_each_item_on_the_least_loaded_worker():
    assert lpt_makespan([3, 3, 2, 2, 2], 2) == 7
    assert lpt_makespan([5, 1, 1, 1], 3) == 5 and lpt_makespan([], 2) == 0


def xdist_load_makespan(seconds, workers):
    """The busiest worker's seconds under pytest-xdist's own LoadScheduling, driven in simulated time by fake
    workers that run what they are sent in order and report each item done when its seconds have passed."""
    from xdist.scheduler import LoadScheduling

    class Worker:
        def __init__(self, name):
            self.queue, self.shutting_down, self.gateway = [], False, SimpleNamespace(id=name)

        def send_runtest_some(self, indices):
            self.queue.extend(indices)

        def shutdown(self):
            self.shutting_down = True

    scheduler = LoadScheduling(SimpleNamespace(getvalue=lambda name: [f"{workers}*popen"],
                                               getoption=lambda name: None))
    nodes = [Worker(f"gw{index}") for index in range(workers)]
    for node in nodes:
        scheduler.add_node(node)
    for node in nodes:
        scheduler.add_node_collection(node, [f"test{i}" for i in range(len(seconds))])
    scheduler.schedule()
    events = [(seconds[node.queue[0]], index) for index, node in enumerate(nodes) if node.queue]
    heapq.heapify(events)
    finished = 0.0
    while events:
        now, index = heapq.heappop(events)
        node, finished = nodes[index], max(finished, now)
        done = node.queue.pop(0)
        scheduler.mark_test_complete(node, done, seconds[done])
        if node.queue:
            heapq.heappush(events, (now + seconds[node.queue[0]], index))
    return finished


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_load_scheduling_is_simulated_as_xdist_schedules(workers):
    rng = np.random.default_rng(workers)
    for durations in ([1.0] * 40, [5.0, 1.0, 9.0, 2.0] * 10, [60.0, 0.05, 0.05, 30.0, 0.2] * 13, [3.0] * 5,
                      list(rng.exponential(2.0, 324)), list(rng.exponential(0.08, 50))):
        assert load_makespan(durations, workers) == pytest.approx(xdist_load_makespan(durations, workers))
    assert load_makespan([10.0, 10.0] + [1.0] * 14, 2) == 21.0  # both long items go to the first worker


def test_the_plan_counts_unknown_cases_out_loudly_and_adds_the_overhead_of_its_worker_count():
    store = store_of(overhead=RunOverhead(2, 4.0, 1.0, 0.0))
    plan = Plan((Prediction("a", 10.0, "warm: recorded"), Prediction("b", None, "unknown: never recorded"),
                 Prediction("c", 6.0, "warm: recorded")), 2, "load", overhead_for(store, 2))
    assert plan.total_s == 16.0 and plan.unknown == 1 and not plan.exact
    assert plan.wall_s == 4.0 + load_makespan([10.0, 0.0, 6.0], 2) + 1.0
    lines = format_plan(plan)
    assert "total: 16.0 s over 3 cases (1 unknown, NOT counted)" in lines
    assert lines[-1].startswith("predicted wall time, -n 2 (xdist load scheduling simulated): at least")
    assert overhead_for(store_of(overhead=RunOverhead(0, 1.0, 0.0, 0.0)), 2).workers == 0
    assert "never recorded" in format_plan(Plan((), 0, "no", None))[-2]


# --- end to end -----------------------------------------------------------------------------------------------

SLICE = "synth-cnn-clean or synth-cnn-sketch or synth-cnn-greyscale"
IDS = {"synth-cnn-clean", "synth-cnn-sketch", "synth-cnn-greyscale"}


def plan_rows(stdout):
    """The plan table's rows, case id -> (seconds, basis), and its total."""
    section = stdout.split("robustness-gate plan", 1)[1]
    rows = {case: (float(seconds), basis)
            for case, seconds, basis in re.findall(r"^(synth-\S+)\s+([\d.]+) s\s+(.+)$", section, re.M)}
    return rows, float(re.search(r"^total: ([\d.]+) s", section, re.M).group(1))


def test_plan_after_a_run_predicts_every_case_warm_then_cold_once_the_cache_is_cleared(tmp_path):
    dirs = ["-k", SLICE, "--samples=20", f"--cache-dir={tmp_path / 'cache'}", f"--report-dir={tmp_path / 'r'}",
            f"--baselines-dir={tmp_path / 'b'}"]
    done = run_suite(*dirs, "-n", "0", "--update-baselines")
    assert done.returncode == 0, done.stdout[-3000:]
    recorded = {k.case: times for k, times in read_durations(tmp_path / "r" / "durations.json").cases.items()}
    assert set(recorded) == IDS and all(times.cold and not times.warm for times in recorded.values())
    reports = sorted(path.name for path in (tmp_path / "r").iterdir())

    warm = run_suite(*dirs, "-n", "2", "--plan")
    assert warm.returncode == 0, warm.stdout[-3000:]
    assert "bringing up nodes" not in warm.stdout and "nothing was run" in warm.stdout
    rows, total = plan_rows(warm.stdout)
    assert set(rows) == IDS and all(basis.startswith("warm:") for _, basis in rows.values())
    assert total == pytest.approx(sum(seconds for seconds, _ in rows.values()), abs=0.05 * len(rows))
    assert all(seconds <= recorded[case].cold.duration_s + 0.05 for case, (seconds, _) in rows.items())
    assert "predicted wall time, -n 2 (longest first, an approximation of xdist's --dist worksteal): " in warm.stdout
    assert "recorded at -n 0" in warm.stdout and "at least" not in warm.stdout
    assert sorted(path.name for path in (tmp_path / "r").iterdir()) == reports  # no report, no new durations
    by_tx = run_suite(*dirs, "--dist", "load", "--tx", "2*popen", "--plan")  # workers named by --tx, not -n
    assert by_tx.returncode == 0, by_tx.stdout[-3000:]
    assert "bringing up nodes" not in by_tx.stdout
    assert "predicted wall time, -n 2 (xdist load scheduling simulated): " in by_tx.stdout  # --dist kept as given

    for folder in (tmp_path / "cache").iterdir():
        shutil.rmtree(folder)
    cold = run_suite(*dirs, "-n", "0", "--plan")
    assert cold.returncode == 0, cold.stdout[-3000:]
    rows, _ = plan_rows(cold.stdout)
    assert {case: basis for case, (_, basis) in rows.items()} == {case: "cold: recorded" for case in IDS}
    assert all(seconds == pytest.approx(recorded[case].cold.duration_s, abs=0.05)
               for case, (seconds, _) in rows.items())


def test_the_store_and_the_predictor_import_no_model_stack():
    script = ("import sys, harness.durations, harness.plan; print(sorted(m for m in ('torch', 'open_clip', "
              "'torchattacks', 'torchvision') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_start_up_and_finish_do_not_count_the_tests_that_are_not_cases():
    """A run of the harness's own tests beside the suite: 100 s of other tests before the first case and 50 s
    after the last are neither start-up nor finish."""
    from harness.timing import TIMING_PROPERTY, DurationsRecorder

    recorder = DurationsRecorder(ROOT / "unused.json", 2, process_started=1000.0)
    case = CaseRun(TimingKey("m", "case", 10, 250, "cpu", 2), "clean", "clean", "synth", 1112.0, 8.0, "gw0", {})
    timed = [(TIMING_PROPERTY, json.dumps(case.to_json()))]
    for start, stop, properties in [(1003.0, 1103.0, []), (1110.0, 1120.0, timed), (1120.0, 1170.0, [])]:
        recorder.pytest_runtest_logreport(SimpleNamespace(start=start, stop=stop, user_properties=properties))
    overhead = recorder.overhead(now=1172.0)
    assert (overhead.startup_s, overhead.finish_s, overhead.workers) == (3.0, 2.0, 2)
