"""The run report: cases sorted, provenance kept once per model, and a summary table with problems first."""
import numpy as np

from case_records import measured
from harness.records import Status
from harness.report import build_report, format_table


def test_a_report_keeps_each_models_provenance_once_and_sorts_its_cases():
    cases = [measured([True, False], id=f"synth-clip-{name}", model="embedded:synth-clip",
                      model_provenance={"weights_sha256": "w"}) for name in ("v2", "test")]
    report = build_report({"id": "r", "started": "2026-01-01T00:00:00+00:00"}, cases)
    assert [case.id for case in report.cases] == ["synth-clip-test", "synth-clip-v2"]
    assert report.models == {"embedded:synth-clip": {"weights_sha256": "w"}}
    assert "model_provenance" not in report.to_json()["cases"][0]
    assert report.summary["passed"] == 2


def test_the_table_lists_problems_first_with_their_message():
    ok = measured(np.ones(10, bool), id="synth-clip-a", baseline=1.0, threshold=0.9, delta=0.0)
    bad = measured(np.zeros(10, bool), id="synth-clip-z", status="protocol-mismatch", message="other seed")
    lines = format_table([ok, bad], {"embedded:synth-clip": "weights 0123 (baseline line synth-clip)"})
    assert lines[0] == "embedded:synth-clip: 1 passed, 1 protocol-mismatch"
    assert lines[1] == "  weights 0123 (baseline line synth-clip)"
    rows = [line for line in lines if line.startswith("  synth-clip-")]
    assert rows[0].split()[0] == "synth-clip-z" and rows[0].endswith("protocol-mismatch")
    assert lines[lines.index(rows[0]) + 1].strip() == "other seed"
    assert rows[1].split()[1:3] == ["1.0000", "[0.000,"] and rows[1].endswith(Status.PASSED.value)
