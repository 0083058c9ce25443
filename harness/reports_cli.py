"""Working with finished reports: compare two runs case by case, relative and effective robustness of their
models, merge the reports of CI shards."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from scipy.stats import binomtest, fisher_exact

from .effective_robustness import relative_robustness
from .records import CaseRecord, RecordError, Report, summarize
from .report import model_metrics


class ReportError(ValueError):
    """A report file is unreadable or not a robustness-gate report; the message names the file."""


def read_report(path: Path) -> Report:
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ReportError(f"{path}: cannot read a JSON report ({error})") from None
    try:
        return Report.from_json(document, str(path))
    except RecordError as error:
        raise ReportError(str(error)) from None


def _paired(a: CaseRecord, b: CaseRecord) -> bool:
    return (a.per_sample is not None and b.per_sample is not None and a.n == b.n
            and a.data_sha256 == b.data_sha256 and a.seed == b.seed)


def compare_case(a: CaseRecord, b: CaseRecord) -> dict[str, Any]:
    """Delta of accuracy B - A with a two-sided p-value: exact McNemar when both measured the same samples,
    Fisher's exact test on the 2x2 table otherwise."""
    delta = b.accuracy - a.accuracy
    if _paired(a, b):
        before, after = a.bits(), b.bits()
        to_wrong, to_right = int((before & ~after).sum()), int((~before & after).sum())
        p = binomtest(to_wrong, to_wrong + to_right, 0.5).pvalue if to_wrong + to_right else 1.0
        test = "mcnemar"
    else:
        table = [[a.correct, a.n - a.correct], [b.correct, b.n - b.correct]]
        p = fisher_exact(table).pvalue
        test = "fisher"
    return {"id": b.id, "model": b.model, "a": a.accuracy, "b": b.accuracy, "delta": delta, "p": float(p),
            "test": test}


def compare(a: Report, b: Report, alpha: float = 0.01) -> list[str]:
    """Lines of a per-case comparison of report `b` against report `a`, largest drops first."""
    measured = lambda report: {(c.line, c.key): c for c in report.cases if c.accuracy is not None}
    cases_a, cases_b = measured(a), measured(b)
    rows = sorted((compare_case(cases_a[k], cases_b[k]) for k in cases_a.keys() & cases_b.keys()),
                  key=lambda r: (r["delta"], r["id"]))
    lines = [f"{'case':<36} {'A':>7} {'B':>7} {'B-A':>8} {'p':>9}  test     verdict"]
    for r in rows:
        verdict = ("worse" if r["delta"] < 0 else "better") if r["p"] < alpha else "same"
        lines.append(f"{r['id']:<36} {r['a']:>7.4f} {r['b']:>7.4f} {r['delta']:>+8.4f} {r['p']:>9.3g}  "
                     f"{r['test']:<8} {verdict}")
    only_a, only_b = sorted(cases_a.keys() - cases_b.keys()), sorted(cases_b.keys() - cases_a.keys())
    if only_a:
        lines.append(f"only in A: {', '.join('/'.join(k) for k in only_a)}")
    if only_b:
        lines.append(f"only in B: {', '.join('/'.join(k) for k in only_b)}")
    worse = sum(1 for r in rows if r["delta"] < 0 and r["p"] < alpha)
    better = sum(1 for r in rows if r["delta"] > 0 and r["p"] < alpha)
    lines.append(f"{len(rows)} cases compared: {worse} significantly worse, {better} significantly better "
                 f"(two-sided, alpha={alpha})")
    return lines


def model_pairs(a: Report, b: Report, models: Sequence[str] | None) -> list[tuple[str, str]]:
    """(model of A, model of B): the two `models` named, or every model line measured in both reports."""
    in_a, in_b = {c.model: c.line for c in a.cases}, {c.model: c.line for c in b.cases}
    if models:
        model_a, model_b = models
        for model, present, side in ((model_a, in_a, "A"), (model_b, in_b, "B")):
            if model not in present:
                raise ReportError(f"model {model} is not in report {side} (it has: {', '.join(sorted(present))})")
        return [(model_a, model_b)]
    by_line = {line: model for model, line in in_b.items()}
    return [(model, by_line[line]) for model, line in sorted(in_a.items()) if line in by_line]


def relative(a: Report, b: Report, models: Sequence[str] | None = None,
             alpha: float = 0.01) -> list[str]:
    """Lines of relative robustness (shift accuracy B - A, with compare's two-sided test) and effective
    robustness (A, B, B - A; in points) per natural shift, for each model pair of `model_pairs`."""
    pairs = model_pairs(a, b, models)
    if not pairs:
        raise ReportError("the reports share no model line; name two models with --models A_ID B_ID")
    points = lambda value: "-" if value is None else f"{100 * value:+.2f}"
    lines = []
    for model_a, model_b in pairs:
        rows = relative_robustness(a.cases, b.cases, model_a, model_b)
        lines.append(f"A {model_a} -> B {model_b}: {len(rows)} natural shifts measured in both")
        lines.append(f"  {'shift':<12} {'A':>7} {'B':>7} {'B-A':>8} {'p':>9}  {'eff.rob A':>9} {'eff.rob B':>9} "
                     f"{'B-A':>7}  verdict")
        for row in rows:
            test = compare_case(row["a"], row["b"])
            verdict = ("less robust" if test["delta"] < 0 else "more robust") if test["p"] < alpha else "same"
            gained = (None if None in (row["effective_a"], row["effective_b"])
                      else row["effective_b"] - row["effective_a"])
            lines.append(f"  {row['shift']:<12} {row['a'].accuracy:>7.4f} {row['b'].accuracy:>7.4f} "
                         f"{row['relative_robustness']:>+8.4f} {test['p']:>9.3g}  {points(row['effective_a']):>9} "
                         f"{points(row['effective_b']):>9} "
                         f"{points(gained):>7}  {verdict}")
    lines.append(f"relative robustness: shift accuracy B - A (two-sided; McNemar on the same samples, Fisher "
                 f"otherwise; alpha={alpha}); effective robustness: shift accuracy - trend at the clean accuracy, "
                 f"in points")
    return lines


def _planned(reports: Sequence[Report]) -> set[str]:
    """The case ids the whole run planned, which every shard records and all must agree on."""
    plans = []
    for report in reports:
        planned = report.run.get("planned_cases")
        if planned is None:
            raise ReportError(f"shard {report.run.get('id')} records no planned case list (written by an older "
                              f"harness?); rerun the shards with this one, so merge can tell a missing case")
        plans.append(frozenset(planned))
    if len(set(plans)) > 1:
        raise ReportError("the shards planned different case lists, so they are not shards of one run; merge the "
                          "reports of one run (same options, same models) only")
    return set(plans[0])


def _missing_groups(reports: Sequence[Report]) -> list[int]:
    splits = [report.run.get("split") for report in reports]
    if not any(splits):
        return []
    counts = {split["splits"] for split in splits if split}
    if len(counts) > 1 or None in splits:
        raise ReportError("the shards were split differently (pytest-split --splits); merge the reports of one run")
    groups = [split["group"] for split in splits]
    if len(groups) != len(set(groups)):
        raise ReportError(f"a pytest-split group appears twice among the shards: {sorted(groups)}")
    return sorted(set(range(1, counts.pop() + 1)) - set(groups))


def merge(reports: Sequence[Report]) -> Report:
    """One report from the reports of CI shards; the result does not depend on their order.

    Fails closed: a case measured in two shards must agree, and the merged run is `complete` only if every shard
    was complete, every pytest-split group is there and every planned case has a result (the missing ones are
    listed in `run.missing_cases`). `run.passed` is true only for a complete run with no failing case and no
    validity problem in any shard. Each shard's own run record, provenance included, is kept in `run.shards`.
    """
    if not reports:
        raise ReportError("merge needs at least one report")
    planned, missing_groups = _planned(reports), _missing_groups(reports)
    cases: dict[str, CaseRecord] = {}
    for report in reports:
        for case in report.cases:
            key = f"{case.model}::{case.id}"
            if key in cases and cases[key] != case:
                raise ReportError(f"case {case.id} of {case.model} appears in two shards with different "
                                  f"results; merge the reports of one run only")
            cases[key] = case
    models: dict[str, Any] = {}
    for report in sorted(reports, key=lambda r: r.run["id"]):
        for model, provenance in report.models.items():
            models.setdefault(model, provenance)
    shards = sorted((dict(r.run) for r in reports), key=lambda run: run["id"])
    merged_cases = tuple(cases[k] for k in sorted(cases))
    missing = sorted(planned - {case.id for case in merged_cases})
    validity = [problem for shard in shards for problem in shard.get("validity_problems") or []]
    complete = all(s["complete"] for s in shards) and not missing and not missing_groups
    failing = [case.id for case in merged_cases if case.status.failing]
    run_id = hashlib.sha256(" ".join(s["id"] for s in shards).encode()).hexdigest()[:8]
    run = {"id": run_id, "started": min(s["started"] for s in shards),
           "finished": max(s["finished"] for s in shards), "complete": complete,
           "passed": complete and not failing and not validity, "planned_cases": sorted(planned),
           "missing_cases": missing, "missing_groups": missing_groups, "failing_cases": failing,
           "validity_problems": validity, "shards": shards}
    return Report(run, models, merged_cases, model_metrics(merged_cases), summarize(merged_cases))


# What differs between two runs of the same code on the same machine: wall times, memory, which worker ran a case,
# the run's identity and the commit. Everything else (per-sample bits, accuracies, statuses, messages, data and
# model provenance, library versions, CPU) is a result.
VOLATILE_RUN_FIELDS = frozenset({"id", "started", "finished", "git", "argv"})
VOLATILE_CASE_FIELDS = frozenset({"duration_s", "worker", "worker_peak_rss_mb", "worker_rss_mb"})


def _differences(where: str, a: Any, b: Any, ignore: frozenset[str] = frozenset()) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [line for key in sorted((set(a) | set(b)) - ignore)
                for line in _differences(f"{where}.{key}", a.get(key), b.get(key))]
    return [] if a == b else [f"{where}: A {json.dumps(a)[:120]}, B {json.dumps(b)[:120]}"]


def differences(a: Report, b: Report) -> list[str]:
    """Every result in which report B differs from report A, as `where: A value, B value` lines ([] when the two
    runs measured the same): all of each case record and each model's provenance, and the run record, except
    VOLATILE_RUN_FIELDS and VOLATILE_CASE_FIELDS."""
    lines = _differences("run", dict(a.run), dict(b.run), VOLATILE_RUN_FIELDS)
    lines += _differences("models", dict(a.models), dict(b.models))
    cases_a, cases_b = {c.nodeid or c.id: c for c in a.cases}, {c.nodeid or c.id: c for c in b.cases}
    for key in sorted(cases_a.keys() | cases_b.keys()):
        if key not in cases_a or key not in cases_b:
            lines.append(f"case {key}: only in {'A' if key in cases_a else 'B'}")
            continue
        lines += _differences(f"case {key}", cases_a[key].to_json(), cases_b[key].to_json(), VOLATILE_CASE_FIELDS)
    return lines + _differences("metrics", dict(a.metrics), dict(b.metrics)) + _differences(
        "summary", dict(a.summary), dict(b.summary))
