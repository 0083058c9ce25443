"""Effective and relative robustness of the models of a run report, from its case records.

Effective robustness sets each natural shift's accuracy against the committed trend of its benchmark
(harness/trends) at the model's in-distribution (ID) accuracy. For a shift over a class subset (ImageNet-R/-A,
ObjectNet, the video sets) that is, as Taori et al. define it, the accuracy on the clean split over the shift's
classes, which the case measured beside the shift (`metrics.id_on_classes`), on the trend fitted on that
(`val-on-<shift>-classes`); otherwise the clean case's accuracy on the trend on the clean split. Relative robustness (Taori et al.) of model B against model A on a shift is
acc_shift(B) - acc_shift(A), e.g. a release candidate against the release, or a robustness intervention
against the model it started from.
"""
from __future__ import annotations

from typing import Any, Iterable

from .records import CaseRecord
from .trends import load_trends


def _measured(cases: Iterable[CaseRecord]) -> list[CaseRecord]:
    return [c for c in cases if c.accuracy is not None]


def effective_robustness(cases: Iterable[CaseRecord]) -> dict[str, dict[str, dict[str, Any]]]:
    """{model: {shift: {"id_accuracy", "accuracy", "predicted", "effective_robustness", "trend"}}} over the
    models whose clean case was measured and whose benchmark has trends; accuracies are fractions."""
    cases = _measured(cases)
    clean = {c.model: c.accuracy for c in cases if c.category == "clean"}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for case in sorted(cases, key=lambda c: (c.model, c.setting["name"])):
        trends = load_trends(case.benchmark)
        if case.category != "natural" or trends is None:
            continue
        on_classes = (case.metrics or {}).get("id_on_classes")
        if on_classes is not None and on_classes.get("accuracy") is not None:
            trend, id_accuracy = trends.on(case.setting["name"], on_classes["split"]), on_classes["accuracy"]
        elif case.model in clean:
            trend, id_accuracy = trends.on_clean(case.setting["name"]), clean[case.model]
        else:
            continue
        if trend is None:
            continue
        predicted = trend.predict(id_accuracy)
        out.setdefault(case.model, {})[case.setting["name"]] = {
            "id_accuracy": id_accuracy, "accuracy": case.accuracy, "predicted": round(predicted, 6),
            "effective_robustness": round(case.accuracy - predicted, 6),
            "trend": {"file": trends.label, "x": trend.x, "y": trend.y, "a": trend.a, "b": trend.b,
                      "n_models": trend.n_models}}
    return out


def relative_robustness(cases_a: Iterable[CaseRecord], cases_b: Iterable[CaseRecord],
                        model_a: str, model_b: str) -> list[dict[str, Any]]:
    """Per natural shift measured for both `model_a` (in cases_a) and `model_b` (in cases_b): shift accuracies,
    relative robustness B - A, and both models' effective robustness where a trend exists."""
    cases_a = [c for c in _measured(cases_a) if c.model == model_a]
    cases_b = [c for c in _measured(cases_b) if c.model == model_b]
    effective_a = effective_robustness(cases_a).get(model_a, {})
    effective_b = effective_robustness(cases_b).get(model_b, {})
    natural_b = {c.setting["name"]: c for c in cases_b if c.category == "natural"}
    rows = []
    for a in sorted((c for c in cases_a if c.category == "natural"), key=lambda c: c.setting["name"]):
        shift = a.setting["name"]
        if shift not in natural_b:
            continue
        b = natural_b[shift]
        rows.append({"shift": shift, "a": a, "b": b, "relative_robustness": b.accuracy - a.accuracy,
                     "effective_a": effective_a.get(shift, {}).get("effective_robustness"),
                     "effective_b": effective_b.get(shift, {}).get("effective_robustness")})
    return rows
