"""Case records and reports for tests: only the fields a test is about need to be given."""
from harness.records import CaseRecord, Report, summarize

IDENTITY = {"id": "synth-clip-test", "key": "clean/test", "model": "embedded:synth-clip", "line": "synth-clip",
            "benchmark": "synth", "category": "clean", "setting": {"category": "clean", "name": "test"}}


def case_record(**fields) -> CaseRecord:
    """A record with `fields` over a default identity; status `passed` unless given."""
    return CaseRecord.from_json({**IDENTITY, "status": "passed", **fields})


def report_of(cases, run=None, models=None) -> Report:
    """A report of `cases` (records or JSON dicts), as harness.report.build_report would hold them."""
    from harness.report import model_metrics

    cases = tuple(c if isinstance(c, CaseRecord) else case_record(**c) for c in cases)
    return Report(run or {"id": "r", "started": "2026-01-01T00:00:00+00:00"}, models or {}, cases,
                  model_metrics(cases), summarize(cases))
