import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.__main__ import main
from harness.baselines import encode_bits
from harness.report import build_report
from harness.reports_cli import ReportError, compare, merge


def case(case_id, bits, model="embedded:synth-clip", status="passed"):
    bits = np.asarray(bits, dtype=bool)
    return {"id": case_id, "key": f"clean/{case_id}", "model": model, "line": model.split(":")[1],
            "benchmark": "synth", "category": "clean", "setting": {"category": "clean", "name": case_id},
            "n": int(bits.size), "correct": int(bits.sum()), "accuracy": float(bits.mean()),
            "per_sample": encode_bits(bits), "data_sha256": "d", "seed": 0, "status": status}


def report(run_id, cases, complete=True):
    run = {"id": run_id, "started": f"2026-01-0{run_id[-1]}T00:00:00+00:00",
           "finished": f"2026-01-0{run_id[-1]}T01:00:00+00:00", "complete": complete}
    return build_report(run, [dict(c, model_provenance={"weights_sha256": c["model"]}) for c in cases])


@settings(max_examples=30, deadline=None)
@given(st.permutations(range(4)), st.lists(st.booleans(), min_size=4, max_size=4))
def test_merge_does_not_depend_on_order(order, completes):
    shards = [report(f"shard{i}", [case(f"c{i}", [True, i % 2 == 0, False])], complete=completes[i])
              for i in range(4)]
    merged = merge([shards[i] for i in order])
    assert merged == merge(shards)
    assert [c["id"] for c in merged["cases"]] == ["c0", "c1", "c2", "c3"]
    assert merged["run"]["complete"] is all(completes)
    assert merged["summary"]["passed"] == 4


def test_merge_refuses_conflicting_shards():
    a = report("run1", [case("c0", [True, True])])
    b = report("run2", [case("c0", [True, False])])
    with pytest.raises(ReportError, match="appears in two shards"):
        merge([a, b])


def test_compare_uses_the_paired_test_on_the_same_samples():
    before = [True] * 90 + [False] * 10
    after = [False] * 30 + [True] * 60 + [False] * 10
    lines = compare(report("run1", [case("test", before)]), report("run2", [case("test", after)]))
    row = next(line for line in lines if line.startswith("test"))
    assert "-0.3000" in row and "mcnemar" in row and row.endswith("worse")
    assert lines[-1].startswith("1 cases compared: 1 significantly worse")


def test_cli_merge_and_compare(tmp_path, capsys):
    for name, cases in (("a", [case("x", [True, False])]), ("b", [case("y", [True, True])])):
        (tmp_path / f"{name}.json").write_text(json.dumps(report(f"run{len(name)}", cases)))
    assert main(["merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-o", str(tmp_path / "m.json")]) == 0
    assert len(json.loads((tmp_path / "m.json").read_text())["cases"]) == 2
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "m.json")]) == 0
    assert "only in B: synth-clip/clean/y" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{")
    assert main(["compare", str(tmp_path / "bad.json"), str(tmp_path / "a.json")]) == 2
    assert "bad.json: cannot read a JSON report" in capsys.readouterr().err
