"""The run report: building it from case records, writing it, and the terminal summary table."""
from __future__ import annotations

import datetime as _dt
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .effective_robustness import effective_robustness
from .files import write_json_atomic
from .metrics import corruption_summary
from .pixels import drift_note
from .records import PROBLEMS_FIRST, CaseRecord, Report, Status, summarize


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


def build_report(run: Mapping[str, Any], cases: Iterable[CaseRecord]) -> Report:
    """The report of a run: its cases sorted by (model, id), each model's provenance kept once, per-model
    aggregates and the count per status."""
    cases = sorted(cases, key=lambda c: (c.model, c.id))
    models: dict[str, Any] = {}
    for case in cases:
        if case.model_provenance is not None:
            models.setdefault(case.model, dict(case.model_provenance))
    return Report(dict(run), models, tuple(cases), model_metrics(cases), summarize(cases))


def model_metrics(cases: Iterable[CaseRecord]) -> dict[str, Any]:
    """Per model, aggregates over its measured cases: the corruption summary (mCE and friends) when it has
    corruption cases, and its effective robustness per natural shift when its benchmark has trends."""
    cases = list(cases)
    by_model: dict[str, dict[str, Any]] = {}
    for case in cases:
        if case.accuracy is None:
            continue
        entry = by_model.setdefault(case.model, {"benchmark": case.benchmark, "clean": None, "corruptions": {}})
        corruption = case.setting.get("corruption")
        if corruption:
            entry["corruptions"].setdefault(corruption["name"], {})[corruption["severity"]] = case.accuracy
        elif case.category == "clean":
            entry["clean"] = case.accuracy
    metrics: dict[str, Any] = {
        model: {"corruptions": corruption_summary(entry["corruptions"], entry["clean"],
                                                  normalize_by_alexnet=entry["benchmark"] == "imagenet")}
        for model, entry in by_model.items() if entry["corruptions"]}
    for model, shifts in effective_robustness(cases).items():
        metrics.setdefault(model, {})["effective_robustness"] = shifts
    return dict(sorted(metrics.items()))


def write_report(report: Report, directory: Path) -> Path:
    """Write `run-<started>-<id>.json` and `latest.json` in `directory`, each atomically; returns the first."""
    stamp = report.run["started"].replace(":", "").replace("-", "").replace("+0000", "Z")
    path = Path(directory) / f"run-{stamp}-{report.run['id']}.json"
    document = report.to_json()
    write_json_atomic(path, document)
    write_json_atomic(Path(directory) / "latest.json", document)
    return path


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(cases: Sequence[CaseRecord], notes: Mapping[str, str] | None = None,
                 full: bool = True) -> list[str]:
    """Terminal lines per model (with an optional note under its name): its counts per status, then its cases,
    problems first, then by case id; with `full` False only the cases that did not pass (and passed ones with
    a pixel drift to show). Columns: accuracy, n, 95% interval, baseline, threshold, delta, McNemar p against
    the baseline, and the drop the case detects."""
    order = {status: i for i, status in enumerate(PROBLEMS_FIRST)}
    lines, tabled = [], False
    for model in sorted({c.model for c in cases}):
        rows = sorted((c for c in cases if c.model == model), key=lambda c: (order[c.status], c.id))
        counts = summarize(rows)
        lines.append(f"{model}: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
        if notes and model in notes:
            lines.append(f"  {notes[model]}")
        shown = rows if full else [c for c in rows if not c.status.ok or c.pixel_drift]
        if not shown:
            continue
        tabled = True
        lines.append(f"  {'case':<34} {'accuracy':>8} {'n':>5} {'95% CI':>17} {'baseline':>8} {'threshold':>9} "
                     f"{'delta':>7} {'p':>7} {'detects':>7}  status")
        for c in shown:
            interval = f"[{c.interval95[0]:.3f}, {c.interval95[1]:.3f}]" if c.interval95 else "-"
            lines.append(f"  {c.id:<34} {_cell(c.accuracy, '.4f'):>8} {_cell(c.n, 'd'):>5} {interval:>17} "
                         f"{_cell(c.baseline, '.4f'):>8} {_cell(c.threshold, '.4f'):>9} {_cell(c.delta, '+.4f'):>7} "
                         f"{_cell(c.mcnemar_p, '.2g'):>7} {_cell(c.detectable_drop, '.3f'):>7}  {c.status.value}")
            if c.status in (Status.NOT_RUN, Status.ERROR, Status.PROTOCOL_MISMATCH, Status.REGRESSED) and c.message:
                lines.append(f"      {c.message[:300]}")
            elif c.pixel_drift:
                lines.append(f"      {drift_note(c.pixel_drift)}")
        if not full and len(shown) < len(rows):
            lines.append(f"  ({len(rows) - len(shown)} passing cases not shown; -v lists every case)")
    if tabled:
        lines.append("  p: exact McNemar p of the paired change against the baseline; detects: the smallest accuracy "
                     "drop that fails the case with 80% power, at its n, confidence and discordance")
    return lines
