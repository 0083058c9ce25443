"""End-to-end runs of the robustness suite in fresh pytest processes: recording, gating, xdist merging, errors."""
import base64
import json
import subprocess
import sys

import pytest

from harness.allocator import huge_pages_for_children, huge_pages_in
from suite_helpers import child_env, read_json, run_suite

SELECTION = "synth-clip-clean or synth-cnn-sketch or synth-clip-vid-pm4 or gaussian_noise-3 or pgd-linf-1/255"
SELECTED = {"synth-clip-clean", "synth-cnn-sketch", "synth-clip-vid-pm4", "synth-clip-gaussian_noise-3",
            "synth-cnn-gaussian_noise-3", "synth-clip-pgd-linf-1/255", "synth-cnn-pgd-linf-1/255"}
SAMPLES = "--samples=24"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Baselines recorded under -n 2 for a small selection (the allocator as the plugin chooses it), then gated
    under -n 2 and -n 0, each gate computing everything afresh (a cache of its own): -n 2 with glibc's huge
    pages asked for, -n 0 under its default (variables of the user's own)."""
    tmp = tmp_path_factory.mktemp("suite")
    dirs = [f"--baselines-dir={tmp / 'baselines'}"]
    runs = {}
    huge_pages, default_allocator = ({"GLIBC_TUNABLES": f"glibc.malloc.hugetlb={value}"} for value in (1, 0))
    for name, args, env in (("record", ["-n", "2", "--update-baselines"], None),
                            ("gate2", ["-n", "2", f"--cache-dir={tmp / 'cache2'}"], huge_pages),
                            ("gate0", ["-n", "0", f"--cache-dir={tmp / 'cache0'}"], default_allocator),
                            ("record0", ["-n", "0", "--update-baselines", f"--baselines-dir={tmp / 'baselines0'}"],
                             None)):
        report_dir = tmp / name
        done = run_suite("-k", SELECTION, SAMPLES, *dirs, f"--report-dir={report_dir}", *args, extra_env=env)
        runs[name] = (done, report_dir)
    return tmp, runs


def test_update_baselines_writes_the_same_files_under_n2_and_n0(recorded):
    tmp, runs = recorded
    assert runs["record0"][0].returncode == 0, runs["record0"][0].stdout[-3000:]
    for line in ("synth-clip", "synth-cnn"):
        parallel, serial = (read_json(tmp / folder / f"{line}.json") for folder in ("baselines", "baselines0"))
        for document in (parallel, serial):
            assert document["provenance"].pop("recorded_at")
        assert parallel == serial


def test_update_baselines_records_every_selected_case(recorded):
    tmp, runs = recorded
    done, report_dir = runs["record"]
    assert done.returncode == 0, done.stdout[-3000:]
    clip = read_json(tmp / "baselines" / "synth-clip.json")
    cnn = read_json(tmp / "baselines" / "synth-cnn.json")
    keys = {f"synth-clip-{k.split('/', 1)[1]}" for k in clip["cases"]} | {
        f"synth-cnn-{k.split('/', 1)[1]}" for k in cnn["cases"]}
    assert keys == SELECTED
    assert clip["provenance"]["model"]["weights_sha256"]
    assert all(case["status"] == "recorded" for case in read_json(report_dir / "latest.json")["cases"])


def test_gate_under_xdist_merges_one_complete_report(recorded):
    _, runs = recorded
    done, report_dir = runs["gate2"]
    assert done.returncode == 0, done.stdout[-3000:]
    report = read_json(report_dir / "latest.json")
    assert report["run"]["complete"] is True and report["run"]["workers"] == 2
    assert {case["id"] for case in report["cases"]} == SELECTED
    assert set(report["run"]["planned_cases"]) == SELECTED and report["run"]["split"] is None
    assert {case["status"] for case in report["cases"]} == {"passed"}
    assert {case["worker"] for case in report["cases"]} <= {"gw0", "gw1"}
    assert report["summary"]["passed"] == len(SELECTED)
    assert set(report["models"]) == {"embedded:synth-clip", "embedded:synth-cnn"}
    assert "robustness-gate summary" in done.stdout
    run_files = [p for p in report_dir.iterdir() if p.name.startswith("run-")]
    assert len(run_files) == 1 and read_json(run_files[0]) == report


def test_serial_and_parallel_runs_measure_identical_samples_whatever_the_allocator(recorded):
    _, runs = recorded
    serial, parallel = (read_json(runs[name][1] / "latest.json") for name in ("gate0", "gate2"))
    mode = serial["run"]["allocator"]["transparent_hugepages"]
    for report, value in ((serial, 0), (parallel, 1)):  # a user's own setting, kept and recorded
        assert report["run"]["allocator"]["own"] == report["run"]["allocator"]["children"] == \
            f"glibc.malloc.hugetlb={value}"
        assert report["run"]["allocator"]["detail"] == "glibc.malloc.hugetlb left as set in GLIBC_TUNABLES"
        assert report["run"]["allocator"]["computed_with_huge_pages"] is huge_pages_in(
            f"glibc.malloc.hugetlb={value}", mode)  # where the machine gives them, the two runs differ in it
    assert serial["run"]["workers"] == 0 and parallel["run"]["workers"] == 2
    assert [(c["id"], c["per_sample"]) for c in serial["cases"]] == [
        (c["id"], c["per_sample"]) for c in parallel["cases"]]


def test_the_plugin_decides_the_workers_allocator_when_the_user_has_not(recorded):
    _, runs = recorded
    workers = read_json(runs["record"][1] / "latest.json")["run"]["allocator"]  # started with nothing set
    decided = huge_pages_for_children({}, workers["transparent_hugepages"])
    assert workers["own"] is None and workers["detail"] == decided
    assert workers["children"] == ("glibc.malloc.hugetlb=1" if decided.startswith("processes started") else None)
    assert workers["computed_with_huge_pages"] is huge_pages_in(workers["children"], workers["transparent_hugepages"])


def test_a_parallel_run_steals_work_unless_told_otherwise(recorded):
    """-n without --dist: the plugin's worksteal (harness.plugin._steal_work_by_default); -n 0: none."""
    _, runs = recorded
    assert read_json(runs["record"][1] / "latest.json")["run"]["dist"] == "worksteal"
    assert read_json(runs["gate0"][1] / "latest.json")["run"]["dist"] == "no"


def test_a_different_protocol_is_refused_not_compared(recorded):
    tmp, _ = recorded
    done = run_suite("-k", "synth-clip-clean", "--samples=20", f"--baselines-dir={tmp / 'baselines'}",
                     f"--report-dir={tmp / 'mismatch'}", "-n", "0")
    assert done.returncode == 1
    assert "protocol-mismatch" in done.stdout and "setting.samples: baseline 24, now 20" in done.stdout


def test_a_moved_library_is_named_and_a_byte_drift_is_gated_against_the_committed_baseline(tmp_path, root):
    """The committed baseline, with one corruption's recorded SciPy version faked and another's recorded bytes
    (one image digest and the data hash) altered, as a baseline from another machine would differ."""
    document = read_json(root / "baselines" / "synth-cnn.json")
    moved = document["cases"]["synthetic/motion_blur-1"]
    installed = moved["pixel_recipe"]["libraries"]["scipy"]
    moved["pixel_recipe"]["libraries"]["scipy"] = "1.9.0"
    drifted = document["cases"]["synthetic/motion_blur-2"]
    digests = bytearray(base64.b64decode(drifted["image_digests"]["digests"]))
    digests[0] ^= 0xFF
    drifted["image_digests"]["digests"] = base64.b64encode(bytes(digests)).decode()
    drifted["data_sha256"] = "0" * 64
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / "synth-cnn.json").write_text(json.dumps(document))
    done = run_suite("-k", "synth-cnn-motion_blur-1 or synth-cnn-motion_blur-2", f"--report-dir={tmp_path}",
                     f"--baselines-dir={tmp_path / 'baselines'}", f"--cache-dir={tmp_path / 'cache'}", "-n", "0")
    cases = {case["id"]: case for case in read_json(tmp_path / "latest.json")["cases"]}
    assert done.returncode == 1
    refused, gated = cases["synth-cnn-motion_blur-1"], cases["synth-cnn-motion_blur-2"]
    assert refused["status"] == "protocol-mismatch"
    assert f"library scipy: baseline 1.9.0, now {installed}" in refused["message"]
    assert "make install" in refused["message"] and f"library scipy: baseline 1.9.0, now {installed}" in done.stdout
    assert gated["status"] == "passed" and gated["pixel_drift"]["images_differing"] == 1
    assert "pixel drift under the same recipe: at most 1 of 300 images" in done.stdout


def test_unknown_model_is_a_usage_error_listing_known_ids(tmp_path):
    done = run_suite("--model", "embedded:does-not-exist", f"--report-dir={tmp_path}")
    assert done.returncode == 4
    assert "unknown embedded model 'embedded:does-not-exist'" in done.stderr
    assert "embedded:synth-clip, embedded:synth-cnn" in done.stderr
    assert not list(tmp_path.iterdir())


def test_model_without_baseline_fails_each_case_with_how_to_record(tmp_path):
    done = run_suite("-k", "synth-cnn-clean or synth-cnn-v2", "--samples=10", f"--baselines-dir={tmp_path / 'none'}",
                     f"--report-dir={tmp_path / 'r'}", "-n", "0")
    assert done.returncode == 1
    assert done.stdout.count("no baseline for case") >= 2
    assert "pytest --model embedded:synth-cnn --update-baselines" in done.stdout
    statuses = {c["id"]: c["status"] for c in read_json(tmp_path / "r" / "latest.json")["cases"]}
    assert statuses == {"synth-cnn-clean": "no-baseline", "synth-cnn-v2": "no-baseline"}


@pytest.mark.parametrize("content, message", [
    ('{"schema_version": 1, "line": "synth-cnn"', "not valid JSON"),
    ('{"schema_version": 1, "line": "synth-cnn", "model": "embedded:synth-cnn", "provenance": {}, "cases": '
     '{"clean/clean": {"n": "ten"}}}', "missing key 'setting'"),
])
def test_malformed_baseline_is_an_error_naming_the_file(tmp_path, content, message):
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    broken = baselines / "synth-cnn.json"
    broken.write_text(content)
    done = run_suite("-k", "synth-cnn-clean", "--samples=10", f"--baselines-dir={baselines}",
                     f"--report-dir={tmp_path / 'r'}", "-n", "0")
    assert done.returncode == 1
    assert str(broken) in done.stdout and message in done.stdout
    assert broken.read_text() == content


def test_bad_option_value_is_a_usage_error(tmp_path):
    done = run_suite("--samples=0", f"--report-dir={tmp_path}")
    assert done.returncode == 4 and "'samples' must be >= 1" in done.stderr


def test_crashed_worker_marks_the_run_incomplete(tmp_path):
    plugin = tmp_path / "crash_plugin.py"
    plugin.write_text(
        "import os\n"
        "def pytest_runtest_call(item):\n"
        "    if item.nodeid.endswith('[synth-cnn-v2]'):\n"
        "        os._exit(3)\n")
    done = run_suite("-k", "synth-cnn-clean or synth-cnn-v2", "--samples=10", "-n", "2",
                     f"--report-dir={tmp_path / 'r'}", "-p", "crash_plugin", "--max-worker-restart=0",
                     extra_env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode != 0
    report = read_json(tmp_path / "r" / "latest.json")
    assert report["run"]["complete"] is False
    assert {c["id"]: c["status"] for c in report["cases"]}["synth-cnn-v2"] == "error"
    assert "INCOMPLETE" in done.stdout


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    import torch
    import torchvision

    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


@pytest.mark.parametrize("strict", [False, True])
def test_missing_real_data_is_reported_not_run_or_fails_with_strict_data(tmp_path, resnet_weights, strict):
    empty = tmp_path / "data"
    empty.mkdir()
    done = run_suite("--model", f"torchvision:resnet18@{resnet_weights}", "-k", "resnet18-clean or resnet18-v2",
                     f"--data-root={empty}", f"--report-dir={tmp_path / 'r'}", "-n", "0",
                     *(["--strict-data"] if strict else []))
    report = read_json(tmp_path / "r" / "latest.json")
    statuses = {c["id"]: c["status"] for c in report["cases"]}
    assert set(statuses) == {"resnet18-clean", "resnet18-v2"}
    assert str(empty / "imagenet") in done.stdout
    if strict:
        assert done.returncode == 1 and set(statuses.values()) == {"error"}
    else:  # a run that measured nothing gated nothing: it fails, saying why
        assert done.returncode == 1, done.stdout[-2000:]
        assert set(statuses.values()) == {"not-run"} and report["run"]["complete"] is False
        assert report["run"]["measured"] == 0 and "run measured NOTHING" in done.stdout
        assert all(str(empty) in c["message"] for c in report["cases"])


def test_data_is_checked_before_the_model_loads_and_a_partial_run_lists_what_did_not_run(tmp_path):
    """The real model's weights file is garbage: had it been loaded before its data was looked for, its case
    would be an error, not "not run"; the embedded model's case is measured, so the run gates it and passes."""
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    done = run_suite("--model", f"torchvision:resnet18@{garbage}", "--model", "embedded:synth-cnn",
                     "-k", "resnet18-clean or synth-cnn-clean", f"--report-dir={tmp_path / 'r'}", "-n", "0")
    report = read_json(tmp_path / "r" / "latest.json")
    statuses = {c["id"]: c["status"] for c in report["cases"]}
    assert statuses == {"resnet18-clean": "not-run", "synth-cnn-clean": "passed"}, done.stdout[-2000:]
    assert done.returncode == 0 and report["run"]["complete"] and report["run"]["measured"] == 1
    assert "--data-root" in done.stdout


def test_cases_of_one_model_are_collected_next_to_each_other():
    """xdist (worksteal or load) hands workers runs of consecutive items: grouped by model, a worker loads few."""
    done = run_suite("--collect-only", "-q", "-k", "test or v2 or fog-1 or fgsm-linf-1/255")
    assert done.returncode == 0, done.stdout[-2000:]
    ids = [line.split("[", 1)[1].rstrip("]") for line in done.stdout.splitlines() if "::test_" in line]
    lines = [case_id.split("-", 2)[0] + "-" + case_id.split("-", 2)[1] for case_id in ids if case_id[:5] == "synth"]
    assert len(lines) >= 8 and lines == sorted(lines), ids


def test_pytest_split_shards_merge_only_when_all_are_there(recorded):
    """Two pytest-split shards of one selection: each records the whole run's plan, so merging one of them fails
    closed, and merging both equals the unsharded run case by case."""
    tmp, runs = recorded
    shards = []
    for group in (1, 2):
        folder = tmp / f"shard{group}"
        done = run_suite("-k", SELECTION, SAMPLES, f"--baselines-dir={tmp / 'baselines'}", f"--report-dir={folder}",
                         "-n", "0", "--splits", "2", "--group", str(group))
        assert done.returncode == 0, done.stdout[-2000:]
        shards.append(folder / "latest.json")
        assert set(read_json(shards[-1])["run"]["planned_cases"]) == SELECTED
    from harness.__main__ import main

    assert main(["merge", str(shards[0]), "-o", str(tmp / "one.json")]) == 1
    assert read_json(tmp / "one.json")["run"]["missing_groups"] == [2]
    assert main(["merge", *map(str, shards), "-o", str(tmp / "both.json")]) == 0
    merged, unsharded = read_json(tmp / "both.json"), read_json(runs["gate0"][1] / "latest.json")
    fields = ("id", "status", "per_sample", "accuracy", "data_sha256", "metrics", "flips", "mcnemar_p",
              "detectable_drop", "threshold", "setting")
    assert [{f: c[f] for f in fields} for c in merged["cases"]] == [{f: c[f] for f in fields}
                                                                    for c in unsharded["cases"]]
    assert merged["run"]["complete"] and merged["run"]["passed"]


def test_concurrent_baseline_updates_wait_for_each_other_and_lose_nothing(tmp_path):
    import time

    from suite_helpers import ROOT

    from harness.baselines import baselines_lock

    env = child_env()
    held = baselines_lock(tmp_path / "baselines")
    held.__enter__()  # both runs measure, write their reports, then queue on the folder's lock
    runs = [subprocess.Popen([sys.executable, "-m", "pytest", "robustness_tests", "-k", selection, "--samples=12",
                              "--update-baselines", f"--baselines-dir={tmp_path / 'baselines'}",
                              f"--report-dir={tmp_path / name}", "-n", "0", "-p", "no:randomly"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for name, selection in (("a", "synth-cnn-clean or synth-cnn-v2"), ("b", "synth-cnn-sketch or synth-cnn-pose"))]
    deadline = time.monotonic() + 600
    while not all((tmp_path / name / "latest.json").exists() for name in "ab") and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1)
    assert all(run.poll() is None for run in runs), "a run finished without waiting for the lock"
    held.__exit__(None, None, None)
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    recorded = read_json(tmp_path / "baselines" / "synth-cnn.json")["cases"]
    assert set(recorded) == {"clean/clean", "natural/v2", "natural/sketch", "natural/pose"}


def test_a_hung_case_times_out_as_an_error_and_the_run_is_incomplete(tmp_path):
    from suite_helpers import ROOT

    done = run_suite("-p", "hang_plugin", "-k", "synth-cnn-clean or synth-cnn-v2", "--samples=10",
                     "--case-timeout=8", f"--report-dir={tmp_path}", f"--baselines-dir={tmp_path / 'none'}",
                     "--update-baselines", "-n", "0", timeout=300,
                     extra_env={"HANG_CASE": "synth-cnn-clean", "PYTHONPATH": str(ROOT / "tests" / "fixtures")})
    report = read_json(tmp_path / "latest.json")
    statuses = {c["id"]: c["status"] for c in report["cases"]}
    assert statuses == {"synth-cnn-clean": "error", "synth-cnn-v2": "recorded"}, done.stdout[-2000:]
    assert "Timeout" in next(c["message"] for c in report["cases"] if c["id"] == "synth-cnn-clean")
    assert done.returncode == 1 and report["run"]["complete"] is False
    assert "baselines NOT updated" in done.stdout and not (tmp_path / "none" / "synth-cnn.json").exists()


def test_junit_xml_carries_each_case_record_as_json(tmp_path):
    """CI systems read JUnit XML: the record there is the JSON the report holds, not a Python repr."""
    import xml.etree.ElementTree as ElementTree

    done = run_suite("--model", "embedded:synth-cnn", "-k", "synth-cnn-clean", "-n", "0",
                     f"--report-dir={tmp_path / 'r'}", f"--junitxml={tmp_path / 'junit.xml'}")
    assert done.returncode == 0, done.stdout[-2000:]
    [prop] = [p for p in ElementTree.parse(tmp_path / "junit.xml").iter("property") if p.get("name") ==
              "robustness_record"]
    record = json.loads(prop.get("value"))
    assert record["id"] == "synth-cnn-clean" and record["status"] == "passed"
    assert record == {k: v for k, v in read_json(tmp_path / "r" / "latest.json")["cases"][0].items()
                      if k != "nodeid"} | {"model_provenance": record["model_provenance"], "nodeid": None}


def test_x_reports_the_cases_it_never_ran_as_not_run_and_lf_reruns_only_the_failed(tmp_path):
    """-x and --lf as pytest users expect: after a stop the unrun cases are "not run", not errors, and --lf
    reruns just the case that failed (pytest's cache, here in tmp_path, is on)."""
    baselines = tmp_path / "baselines"
    common = ["-k", "synth-cnn-clean or synth-cnn-v2 or synth-cnn-sketch", "--samples=10", "-p", "no:randomly",
              f"--baselines-dir={baselines}", "-o", f"cache_dir={tmp_path / 'cache'}"]
    assert run_suite(*common, "--update-baselines", f"--report-dir={tmp_path / 'r0'}").returncode == 0
    document = read_json(baselines / "synth-cnn.json")
    del document["cases"]["natural/v2"]
    (baselines / "synth-cnn.json").write_text(json.dumps(document))
    stopped = run_suite(*common, "-x", f"--report-dir={tmp_path / 'r1'}")
    statuses = {c["id"]: c["status"] for c in read_json(tmp_path / "r1" / "latest.json")["cases"]}
    assert stopped.returncode == 1 and statuses["synth-cnn-v2"] == "no-baseline", stopped.stdout[-2000:]
    assert "error" not in statuses.values() and "not-run" in statuses.values(), statuses
    again = run_suite(*common, "--lf", f"--report-dir={tmp_path / 'r2'}")
    rerun = {c["id"]: c["status"] for c in read_json(tmp_path / "r2" / "latest.json")["cases"]}
    assert rerun == {"synth-cnn-v2": "no-baseline"}, again.stdout[-2000:]


def _pytest_in(folder, *args, extra_env=None):
    """pytest in `folder`, a project of its own outside this repository, with the installed plugin."""
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=folder, capture_output=True, text=True,
                          timeout=600, env=child_env(extra_env))


def test_another_project_gates_its_model_against_its_own_baselines(tmp_path):
    """The installed plugin and packaged suite: a project's pyproject section is all the set-up it needs."""
    (tmp_path / "pyproject.toml").write_text('[tool.robustness]\nmodels = ["team-cnn=embedded:synth-cnn"]\n'
                                             'samples = 40\n')
    selection = ("--pyargs", "robustness_tests", "-m", "clean or natural", "-p", "no:cacheprovider")
    recorded = _pytest_in(tmp_path, *selection, "--update-baselines")
    assert recorded.returncode == 0, recorded.stdout[-3000:]
    baseline = read_json(tmp_path / "baselines" / "team-cnn.json")
    assert len(baseline["cases"]) == 10 and baseline["cases"]["clean/clean"]["n"] == 40
    gated = _pytest_in(tmp_path, *selection)
    assert gated.returncode == 0, gated.stdout[-3000:]
    report = read_json(tmp_path / "reports" / "latest.json")
    assert {case["status"] for case in report["cases"]} == {"passed"} and len(report["cases"]) == 10
    baseline["cases"]["clean/clean"]["threshold"] = 0.999  # a stricter gate than the model meets
    (tmp_path / "baselines" / "team-cnn.json").write_text(json.dumps(baseline))
    assert _pytest_in(tmp_path, *selection, "-k", "clean").returncode == 1


def test_the_plugin_stays_out_of_a_project_that_has_not_set_it_up(tmp_path):
    (tmp_path / "test_plain.py").write_text("def test_plain(pytestconfig):\n"
                                            "    assert not pytestconfig.pluginmanager.has_plugin('harness.plugin')\n")
    plain = _pytest_in(tmp_path, "-p", "no:cacheprovider")
    assert plain.returncode == 0 and "robustness-gate summary" not in plain.stdout, plain.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["test_plain.py"]  # no reports, no cache
    suite = _pytest_in(tmp_path, "--pyargs", "robustness_tests", "-p", "no:cacheprovider")
    assert suite.returncode == 2 and "needs a [tool.robustness] table" in suite.stdout + suite.stderr


def _extension(site, module_source, name="team_models"):
    """An installed distribution (a dist-info folder on PYTHONPATH) naming `name` under robustness_gate."""
    (site / f"{name}.py").write_text(module_source)
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[robustness_gate]\nteam = {name}\n")


def test_a_model_family_registers_from_outside_through_an_entry_point(tmp_path):
    site, project = tmp_path / "site", tmp_path / "project"
    project.mkdir()
    site.mkdir()
    _extension(site, "from harness.models import register_family\n"
                     "from harness.models.embedded import EmbeddedFamily\n\n\n"
                     "@register_family('team')\nclass TeamFamily(EmbeddedFamily):\n    pass\n")
    (project / "pyproject.toml").write_text('[tool.robustness]\nmodels = ["team:synth-cnn"]\nsamples = 20\n')
    env = {"PYTHONPATH": str(site)}
    done = _pytest_in(project, "--pyargs", "robustness_tests", "-m", "clean", "--update-baselines", extra_env=env)
    assert done.returncode == 0, done.stdout[-3000:]
    assert read_json(project / "baselines" / "synth-cnn.json")["model"] == "team:synth-cnn"
    (site / "team_models.py").write_text("raise RuntimeError('half-installed')\n")
    broken = _pytest_in(project, "--pyargs", "robustness_tests", "-m", "clean", extra_env=env)
    assert broken.returncode == 4
    assert "robustness_gate extension team = team_models (team_models 0.1) failed to import: RuntimeError: " \
           "half-installed" in broken.stdout + broken.stderr
