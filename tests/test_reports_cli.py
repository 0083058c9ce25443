import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from case_records import case_record
from harness.__main__ import main
from harness.records import encode_bits
from harness.report import build_report
from harness.reports_cli import ReportError, compare, merge


def case(case_id, bits, model="embedded:synth-clip", status="passed"):
    bits = np.asarray(bits, dtype=bool)
    return case_record(id=case_id, key=f"clean/{case_id}", model=model, line=model.split(":")[1],
                       setting={"category": "clean", "name": case_id}, n=int(bits.size), correct=int(bits.sum()),
                       accuracy=float(bits.mean()), per_sample=encode_bits(bits), data_sha256="d", seed=0,
                       status=status, model_provenance={"weights_sha256": model})


def report(run_id, cases, complete=True, planned=None, split=None, validity=()):
    """A shard's report; `planned` defaults to its own cases (an unsplit run)."""
    run = {"id": run_id, "started": f"2026-01-0{run_id[-1]}T00:00:00+00:00",
           "finished": f"2026-01-0{run_id[-1]}T01:00:00+00:00", "complete": complete,
           "planned_cases": sorted(planned if planned is not None else [c.id for c in cases]), "split": split,
           "validity_problems": list(validity)}
    return build_report(run, cases)


@settings(max_examples=30, deadline=None)
@given(st.permutations(range(4)), st.lists(st.booleans(), min_size=4, max_size=4))
def test_merge_does_not_depend_on_order(order, completes):
    planned = [f"c{i}" for i in range(4)]
    shards = [report(f"shard{i}", [case(f"c{i}", [True, i % 2 == 0, False])], complete=completes[i],
                     planned=planned, split={"splits": 4, "group": i + 1}) for i in range(4)]
    merged = merge([shards[i] for i in order])
    assert merged == merge(shards)
    assert [c.id for c in merged.cases] == ["c0", "c1", "c2", "c3"]
    assert merged.run["complete"] is all(completes)
    assert merged.summary["passed"] == 4


def test_merge_refuses_conflicting_shards():
    a = report("run1", [case("c0", [True, True])])
    b = report("run2", [case("c0", [True, False])], planned=["c0"])
    with pytest.raises(ReportError, match="appears in two shards"):
        merge([a, b])


def test_compare_uses_the_paired_test_on_the_same_samples():
    before = [True] * 90 + [False] * 10
    after = [False] * 30 + [True] * 60 + [False] * 10
    lines = compare(report("run1", [case("test", before)]), report("run2", [case("test", after)]))
    row = next(line for line in lines if line.startswith("test"))
    assert "-0.3000" in row and "mcnemar" in row and row.endswith("worse")
    assert lines[-1].startswith("1 cases compared: 1 significantly worse")


def _shards(n_shards, statuses=None):
    planned = [f"c{i}" for i in range(n_shards)]
    return [report(f"run{i + 1}", [case(f"c{i}", [True, True], status=(statuses or {}).get(i, "passed"))],
                   planned=planned,
                   split={"splits": n_shards, "group": i + 1}) for i in range(n_shards)]


def test_merge_of_one_shard_of_two_is_incomplete_and_fails(tmp_path, capsys):
    first, _ = _shards(2)
    (tmp_path / "one.json").write_text(json.dumps(first.to_json()))
    assert main(["merge", str(tmp_path / "one.json"), "-o", str(tmp_path / "m.json")]) == 1
    merged = json.loads((tmp_path / "m.json").read_text())["run"]
    assert merged["complete"] is False and merged["passed"] is False
    assert merged["missing_groups"] == [2] and merged["missing_cases"] == ["c1"]
    out = capsys.readouterr().out
    assert "complete: False" in out and "missing pytest-split groups (1): 2" in out and "c1" in out


@pytest.mark.parametrize("failure", ["regressed", "error", "protocol-mismatch", "validity"])
def test_merge_fails_on_a_failing_case_or_a_validity_problem_in_any_shard(failure):
    shards = _shards(2, {1: failure} if failure != "validity" else None)
    if failure == "validity":
        shards[0].run["validity_problems"] = ["accuracy rises with eps"]
    merged = merge(shards).run
    assert merged["complete"] is True and merged["passed"] is False
    assert merged["failing_cases"] == ([] if failure == "validity" else ["c1"])
    assert [s["id"] for s in merged["shards"]] == ["run1", "run2"]  # each shard's provenance kept


def test_merge_refuses_shards_of_different_runs_or_without_a_plan():
    a, b = _shards(2)
    b.run["planned_cases"] = ["c0", "c1", "c9"]
    with pytest.raises(ReportError, match="planned different case lists"):
        merge([a, b])
    del b.run["planned_cases"]
    with pytest.raises(ReportError, match="no planned case list"):
        merge([a, b])


def test_cli_merge_and_compare(tmp_path, capsys):
    for name, cases in (("a", [case("x", [True, False])]), ("b", [case("y", [True, True])])):
        (tmp_path / f"{name}.json").write_text(json.dumps(report(f"run{len(name)}", cases, planned=["x", "y"]).to_json()))
    assert main(["merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-o", str(tmp_path / "m.json")]) == 0
    assert len(json.loads((tmp_path / "m.json").read_text())["cases"]) == 2
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "m.json")]) == 0
    assert "only in B: synth-clip/clean/y" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{")
    assert main(["compare", str(tmp_path / "bad.json"), str(tmp_path / "a.json")]) == 2
    assert "bad.json: cannot read a JSON report" in capsys.readouterr().err


def test_diff_finds_a_changed_result_and_ignores_times_and_memory(tmp_path, capsys):
    a = report("run1", [case("c0", [True, False, True])])
    later = dataclasses.replace(a.cases[0], duration_s=9.5, worker="gw1", worker_rss_mb=512.0)
    (tmp_path / "a.json").write_text(json.dumps(a.to_json()))
    (tmp_path / "same.json").write_text(json.dumps(report("run2", [later]).to_json()))
    assert main(["diff", str(tmp_path / "a.json"), str(tmp_path / "same.json")]) == 0
    assert "no difference" in capsys.readouterr().out
    flipped = dataclasses.replace(later, per_sample=encode_bits(np.array([True, True, True])))
    (tmp_path / "other.json").write_text(json.dumps(report("run2", [flipped]).to_json()))
    assert main(["diff", str(tmp_path / "a.json"), str(tmp_path / "other.json")]) == 1
    assert ".per_sample: A" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["compare", "merge", "html", "diff"])
def test_report_commands_import_no_torch(tmp_path, command):
    """The report tools read JSON: a CI job that only merges shards must not pay for the model stack."""
    path = tmp_path / "a.json"
    path.write_text(json.dumps(report("run1", [case("c0", [True, False])]).to_json()))
    argv = {"compare": ["compare", path, path], "diff": ["diff", path, path], "html": ["html", path],
            "merge": ["merge", path, "-o", tmp_path / "m.json"]}[command]
    script = ("import sys; from harness.__main__ import main; code = main(sys.argv[1:]); "
              "heavy = sorted(m for m in ('torch', 'open_clip', 'timm', 'torchattacks', 'torchvision') "
              "if m in sys.modules); print(heavy); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script, *map(str, argv)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
