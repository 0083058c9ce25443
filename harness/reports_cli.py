"""Working with finished reports: compare two runs case by case, merge the reports of CI shards."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from scipy.stats import binomtest, fisher_exact

from .baselines import decode_bits
from .report import REPORT_SCHEMA_VERSION, summarize


class ReportError(ValueError):
    """A report file is unreadable or not a robustness-gate report; the message names the file."""


def read_report(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ReportError(f"{path}: cannot read a JSON report ({error})") from None
    if not isinstance(report, dict) or report.get("schema_version") != REPORT_SCHEMA_VERSION:
        raise ReportError(f"{path}: not a robustness-gate report of schema_version {REPORT_SCHEMA_VERSION}")
    for key in ("run", "models", "cases", "summary"):
        if key not in report:
            raise ReportError(f"{path}: missing key '{key}'")
    return report


def _paired(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return (a.get("per_sample") is not None and b.get("per_sample") is not None and a["n"] == b["n"]
            and a.get("data_sha256") == b.get("data_sha256") and a.get("seed") == b.get("seed"))


def compare_case(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Delta of accuracy B - A with a two-sided p-value: exact McNemar when both measured the same samples,
    Fisher's exact test on the 2x2 table otherwise."""
    delta = b["accuracy"] - a["accuracy"]
    if _paired(a, b):
        before, after = decode_bits(a["per_sample"], a["n"]), decode_bits(b["per_sample"], b["n"])
        to_wrong, to_right = int((before & ~after).sum()), int((~before & after).sum())
        p = binomtest(to_wrong, to_wrong + to_right, 0.5).pvalue if to_wrong + to_right else 1.0
        test = "mcnemar"
    else:
        table = [[a["correct"], a["n"] - a["correct"]], [b["correct"], b["n"] - b["correct"]]]
        p = fisher_exact(table).pvalue
        test = "fisher"
    return {"id": b["id"], "model": b["model"], "a": a["accuracy"], "b": b["accuracy"], "delta": delta,
            "p": float(p), "test": test}


def compare(a: Mapping[str, Any], b: Mapping[str, Any], alpha: float = 0.01) -> list[str]:
    """Lines of a per-case comparison of report `b` against report `a`, largest drops first."""
    measured = lambda report: {(c["line"], c["key"]): c for c in report["cases"] if c.get("accuracy") is not None}
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


def merge(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One report from the reports of CI shards; the result does not depend on their order.

    A case measured in two shards must agree; `complete` holds only if every shard was complete.
    """
    if not reports:
        raise ReportError("merge needs at least one report")
    cases: dict[str, Mapping[str, Any]] = {}
    for report in reports:
        for case in report["cases"]:
            key = f"{case['model']}::{case['id']}"
            if key in cases and cases[key] != case:
                raise ReportError(f"case {case['id']} of {case['model']} appears in two shards with different "
                                  f"results; merge the reports of one run only")
            cases[key] = case
    models: dict[str, Any] = {}
    for report in sorted(reports, key=lambda r: r["run"]["id"]):
        for model, provenance in report["models"].items():
            models.setdefault(model, provenance)
    shards = sorted((dict(r["run"]) for r in reports), key=lambda run: run["id"])
    merged_cases = [cases[k] for k in sorted(cases)]
    run_id = hashlib.sha256(" ".join(s["id"] for s in shards).encode()).hexdigest()[:8]
    run = {"id": run_id, "started": min(s["started"] for s in shards),
           "finished": max(s["finished"] for s in shards), "complete": all(s["complete"] for s in shards),
           "shards": shards}
    return {"schema_version": REPORT_SCHEMA_VERSION, "run": run, "models": models, "cases": merged_cases,
            "summary": summarize(merged_cases)}
