"""The run report: cases sorted, provenance kept once per model, and a summary table with problems first."""
import numpy as np

from case_records import measured
from harness.records import Status
from harness.report import build_report, format_table


def test_a_report_keeps_each_models_provenance_once_and_sorts_its_cases():
    cases = [measured([True, False], id=f"synth-clip-{name}", model="embedded:synth-clip",
                      model_provenance={"weights_sha256": "w"}) for name in ("v2", "clean")]
    report = build_report({"id": "r", "started": "2026-01-01T00:00:00+00:00"}, cases)
    assert [case.id for case in report.cases] == ["synth-clip-clean", "synth-clip-v2"]
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
    assert rows[1].split()[1:4] == ["1.0000", "10", "[0.000,"] and rows[1].endswith(Status.PASSED.value)


def test_the_short_table_shows_what_did_not_pass_with_n_and_p_and_counts_the_rest():
    ok = [measured(np.ones(10, bool), id=f"synth-clip-ok{i}", baseline=1.0, threshold=0.9, delta=0.0) for i in range(3)]
    bad = measured(np.zeros(10, bool), id="synth-clip-bad", status="regressed", baseline=1.0, threshold=0.9,
                   delta=-1.0, mcnemar_p=0.00195, message="synth-clip-bad: REGRESSION (accuracy below threshold)")
    lines = format_table([*ok, bad], full=False)
    assert lines[0] == "embedded:synth-clip: 3 passed, 1 regressed"
    rows = [line for line in lines if line.startswith("  synth-clip-")]
    assert len(rows) == 1 and rows[0].split()[:3] == ["synth-clip-bad", "0.0000", "10"] and "0.0019" in rows[0]
    assert "REGRESSION (accuracy below threshold)" in lines[lines.index(rows[0]) + 1]
    assert "  (3 passing cases not shown; -v lists every case)" in lines
    assert len([line for line in format_table([*ok, bad]) if line.startswith("  synth-clip-")]) == 4
    assert format_table(ok, full=False) == ["embedded:synth-clip: 3 passed"]  # no empty header, no legend
