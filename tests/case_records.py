"""Case records and reports for tests: only the fields a test is about need to be given."""
from harness.records import CaseRecord, Report, summarize

IDENTITY = {"id": "synth-clip-clean", "key": "clean/clean", "model": "embedded:synth-clip", "line": "synth-clip",
            "benchmark": "synth", "category": "clean", "setting": {"category": "clean", "name": "clean"}}


def case_record(**fields) -> CaseRecord:
    """A record with `fields` over a default identity; status `passed` unless given."""
    return CaseRecord.from_json({**IDENTITY, "status": "passed", **fields})


def report_of(cases, run=None, models=None) -> Report:
    """A report of `cases` (records or JSON dicts), as harness.report.build_report would hold them."""
    from harness.report import model_metrics

    cases = tuple(c if isinstance(c, CaseRecord) else case_record(**c) for c in cases)
    return Report(run or {"id": "r", "started": "2026-01-01T00:00:00+00:00"}, models or {}, cases,
                  model_metrics(cases), summarize(cases))


def measured(correct_bits, **overrides) -> CaseRecord:
    """A measured clean record whose per-sample outcomes are `correct_bits`, over data "abc" at seed 0."""
    import numpy as np

    from harness.records import encode_bits

    bits = np.asarray(correct_bits, dtype=bool)
    fields = {"setting": {"category": "clean", "name": "clean", "samples": len(bits)}, "data_sha256": "abc", "seed": 0,
              "n": int(bits.size), "correct": int(bits.sum()), "accuracy": float(bits.mean()),
              "interval95": [0.0, 1.0], "per_sample": encode_bits(bits)}
    return case_record(**{**fields, **overrides})


def corruption_record(bits, images, libraries=None, **overrides) -> CaseRecord:
    """A library-corruption record: its data carries the pixel recipe and per-image digests of `images`."""
    from harness.pixels import image_digests

    recipe = {"clean_sha256": "clean", "corruption": "motion_blur", "severity": 3, "seed": 0,
              "libraries": libraries or {"imagecorruptions": "1.1.5", "numpy": "2.4.6", "scipy": "1.17.1"}}
    data = {"sha256": "clean", "perturbed_sha256": "x", "pixel_recipe": recipe, "image_digests": image_digests(images)}
    return measured(bits, data=data, **overrides)
