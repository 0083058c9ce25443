"""Case records (what travels from a worker to the controller) and the run report (schema_version 1)."""
from __future__ import annotations

import datetime as _dt
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

from .baselines import encode_bits, write_atomic
from .effective_robustness import effective_robustness
from .evaluate import CaseResult
from .metrics import corruption_summary
from .pixels import drift_note

REPORT_SCHEMA_VERSION = 1
STATUSES = ("passed", "regressed", "no-baseline", "protocol-mismatch", "recorded", "error", "not-run")


def case_record(result: CaseResult, model_provenance: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-able record of one measured case; `status` and gate fields are filled in by the gate."""
    case = result.case
    lo, hi = result.interval(0.95)
    return {
        "id": case.id, "key": case.setting.key, "model": case.model, "line": case.line,
        "benchmark": case.benchmark, "category": case.setting.category, "setting": case.setting.as_dict(),
        "data": result.data, "data_sha256": result.data.get("perturbed_sha256", result.data["sha256"]),
        "seed": result.seed, "batch_size": result.batch_size,
        "n": result.n, "correct": result.correct, "accuracy": result.accuracy,
        "interval95": [round(lo, 6), round(hi, 6)], "per_sample": encode_bits(result.per_sample),
        "metrics": dict(result.extra),
        "duration_s": round(result.duration_s, 3), "model_provenance": dict(model_provenance),
    }


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def git_commit(root: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def summarize(cases: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = {status: 0 for status in STATUSES}
    for case in cases:
        counts[case["status"]] += 1
    return counts


def build_report(run: Mapping[str, Any], cases: list[Mapping[str, Any]]) -> dict[str, Any]:
    models: dict[str, Any] = {}
    slim_cases = []
    for case in sorted(cases, key=lambda c: (c["model"], c["id"])):
        case = dict(case)
        provenance = case.pop("model_provenance", None)
        if provenance is not None:
            models.setdefault(case["model"], provenance)
        slim_cases.append(case)
    return {"schema_version": REPORT_SCHEMA_VERSION, "run": dict(run), "models": models, "cases": slim_cases,
            "metrics": model_metrics(slim_cases), "summary": summarize(slim_cases)}


def model_metrics(cases: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Per model, aggregates over its measured cases: the corruption summary (mCE and friends) when it has
    corruption cases, and its effective robustness per natural shift when its benchmark has trends."""
    cases = list(cases)
    by_model: dict[str, dict[str, Any]] = {}
    for case in cases:
        if case.get("accuracy") is None:
            continue
        entry = by_model.setdefault(case["model"], {"benchmark": case["benchmark"], "clean": None, "corruptions": {}})
        corruption = case["setting"].get("corruption")
        if corruption:
            entry["corruptions"].setdefault(corruption["name"], {})[corruption["severity"]] = case["accuracy"]
        elif case["category"] == "clean":
            entry["clean"] = case["accuracy"]
    metrics: dict[str, Any] = {
        model: {"corruptions": corruption_summary(entry["corruptions"], entry["clean"],
                                                  normalize_by_alexnet=entry["benchmark"] == "imagenet")}
        for model, entry in by_model.items() if entry["corruptions"]}
    for model, shifts in effective_robustness(cases).items():
        metrics.setdefault(model, {})["effective_robustness"] = shifts
    return dict(sorted(metrics.items()))


def write_report(report: Mapping[str, Any], directory: Path) -> Path:
    """Write `run-<started>-<id>.json` and `latest.json` in `directory`, each atomically; returns the first."""
    stamp = report["run"]["started"].replace(":", "").replace("-", "").replace("+0000", "Z")
    path = Path(directory) / f"run-{stamp}-{report['run']['id']}.json"
    write_atomic(path, report)
    write_atomic(Path(directory) / "latest.json", report)
    return path


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def format_table(cases: list[Mapping[str, Any]], notes: Mapping[str, str] | None = None) -> list[str]:
    """Terminal lines per model (with an optional note under its name): problems first, then by case id."""
    order = {status: i for i, status in enumerate(("regressed", "error", "protocol-mismatch", "no-baseline",
                                                   "not-run", "recorded", "passed"))}
    lines = []
    for model in sorted({c["model"] for c in cases}):
        rows = sorted((c for c in cases if c["model"] == model), key=lambda c: (order[c["status"]], c["id"]))
        counts = summarize(rows)
        lines.append(f"{model}: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
        if notes and model in notes:
            lines.append(f"  {notes[model]}")
        lines.append(f"  {'case':<34} {'accuracy':>8} {'95% CI':>17} {'baseline':>8} {'threshold':>9} "
                     f"{'delta':>7} {'detects':>7}  status")
        for c in rows:
            accuracy = f"{c['accuracy']:.4f}" if c.get("accuracy") is not None else "-"
            interval = f"[{c['interval95'][0]:.3f}, {c['interval95'][1]:.3f}]" if c.get("interval95") else "-"
            baseline = f"{c['baseline']:.4f}" if c.get("baseline") is not None else "-"
            threshold = f"{c['threshold']:.4f}" if c.get("threshold") is not None else "-"
            delta = f"{c['delta']:+.4f}" if c.get("delta") is not None else "-"
            detects = f"{c['detectable_drop']:.3f}" if c.get("detectable_drop") is not None else "-"
            lines.append(f"  {c['id']:<34} {accuracy:>8} {interval:>17} {baseline:>8} {threshold:>9} {delta:>7}"
                         f" {detects:>7}  {c['status']}")
            if c["status"] in ("not-run", "error", "protocol-mismatch") and c.get("message"):
                lines.append(f"      {c['message'][:300]}")
            elif c.get("pixel_drift"):
                lines.append(f"      {drift_note(c['pixel_drift'])}")
    if lines:
        lines.append("  detects: the smallest accuracy drop that fails the case with 80% power, at its n, confidence "
                     "and discordance")
    return lines
