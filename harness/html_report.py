"""One self-contained HTML file from a run report: `python -m harness html REPORT.json`, or `pytest --html`.

The page holds the run's summary, the regressions against the baselines (highlighted, first), per model a table
per category, severity curves of the corruption cases, eps curves of the attack cases, and the effective-
robustness scatter of the natural shifts against their trend lines. Plots are drawn with matplotlib (Agg) and
embedded as base64 PNGs; the page loads nothing else (no scripts, no external URLs).
"""
from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patheffects import withStroke
from matplotlib.ticker import FixedLocator, NullLocator

from .effective_robustness import effective_robustness
from .files import write_text_atomic
from .pixels import drift_note
from .records import CATEGORIES, PROBLEMS_FIRST, CaseRecord, Report, Status
from .trends import load_trends, logit, sigmoid

PROBLEMS = (Status.ERROR, Status.PROTOCOL_MISMATCH, Status.NO_BASELINE)
COLUMNS = 4  # subplots per row
DPI = 100

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ccc; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; }
tr.regressed td { background: #f8c9c4; font-weight: bold; }
tr.error td, tr.protocol-mismatch td { background: #fbe0b5; }
tr.no-baseline td { background: #fdf3c4; } tr.not-run td { color: #777; }
.badge { display: inline-block; padding: .2em .7em; margin: 0 .3em .3em 0; border-radius: .8em; background: #e6e6e6; }
.badge.regressed { background: #d9372b; color: white; } .badge.passed { background: #2e8540; color: white; }
.badge.error, .badge.protocol-mismatch { background: #e08e0b; color: white; }
.alert { border: 2px solid #d9372b; background: #fdeceb; padding: .6em 1em; }
.ok { border: 2px solid #2e8540; background: #eaf5ec; padding: .6em 1em; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
.note { color: #555; font-size: .9em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(figure: Figure, alt: str) -> str:
    return f'<p><img src="{_png(figure)}" alt="{_e(alt)}"></p>'


def _grid(n: int, height: float = 3.0) -> tuple[Figure, list[Any]]:
    rows = (n + COLUMNS - 1) // COLUMNS
    figure = Figure(figsize=(4.2 * COLUMNS, height * rows), layout="constrained")
    axes = figure.subplots(rows, COLUMNS, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return figure, list(axes[:n])


def _colours(models: Sequence[str]) -> dict[str, str]:
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
    return {model: palette[i % len(palette)] for i, model in enumerate(models)}


def _curves(axes: Any, points: Mapping[str, list[CaseRecord]], x_of: Any, colours: Mapping[str, str]) -> None:
    """Accuracy (solid) and baseline (dashed) per model against x; regressed points as red crosses."""
    for model, cases in sorted(points.items()):
        cases = sorted(cases, key=x_of)
        xs = [x_of(c) for c in cases]
        axes.plot(xs, [c.accuracy for c in cases], "o-", color=colours[model], label=model, markersize=4)
        baselines = [(x, c.baseline) for x, c in zip(xs, cases) if c.baseline is not None]
        if baselines:
            axes.plot(*zip(*baselines), "--", color=colours[model], alpha=0.6, linewidth=1)
        regressed = [(x, c.accuracy) for x, c in zip(xs, cases) if c.status is Status.REGRESSED]
        if regressed:
            axes.plot(*zip(*regressed), "x", color="#d9372b", markersize=10, markeredgewidth=2.5)
    axes.set_ylim(-0.02, 1.02)
    axes.grid(alpha=0.3)


def _legend(figure: Figure, models: Sequence[str], colours: Mapping[str, str]) -> None:
    handles = [Line2D([], [], color=colours[m], marker="o", label=m) for m in models]
    handles += [Line2D([], [], color="#555", linestyle="--", label="baseline"),
                Line2D([], [], color="#d9372b", marker="x", linestyle="", markersize=10, markeredgewidth=2.5,
                       label="regressed")]
    figure.legend(handles=handles, loc="outside upper center", ncols=len(handles), fontsize=11, frameon=False)


def _panels(cases: Iterable[CaseRecord], panel_of: Callable[[CaseRecord], str | None],
            draw: Callable[[Any, str, Mapping[str, list], Mapping[str, str]], None], empty: str, alt: str) -> str:
    """One panel per `panel_of(case)` (cases where it is None, or without accuracy, are left out), drawn by
    `draw(ax, panel name, {model: cases}, colours)`, with one legend of the models; `empty` when no case is left."""
    by_panel: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for case in cases:
        panel = panel_of(case)
        if panel and case.accuracy is not None:
            by_panel[panel][case.model].append(case)
    if not by_panel:
        return f'<p class="note">{empty}</p>'
    models = sorted({m for per_model in by_panel.values() for m in per_model})
    colours = _colours(models)
    figure, axes = _grid(len(by_panel))
    for ax, (name, per_model) in zip(axes, sorted(by_panel.items())):
        draw(ax, name, per_model, colours)
    _legend(figure, models, colours)
    return _img(figure, alt)


def severity_curves(cases: Iterable[CaseRecord]) -> str:
    """Accuracy against corruption severity, one panel per corruption, a line per model."""
    def draw(ax: Any, name: str, per_model: Mapping[str, list], colours: Mapping[str, str]) -> None:
        _curves(ax, per_model, lambda c: c.setting["corruption"]["severity"], colours)
        ax.set_title(name, fontsize=12)
        ax.set_xticks([1, 2, 3, 4, 5])
        ax.set_xlabel("severity", fontsize=10)
        ax.set_ylabel("accuracy", fontsize=10)

    return _panels(cases, lambda c: (c.setting.get("corruption") or {}).get("name"), draw,
                   "No corruption cases were measured in this run.", "accuracy against corruption severity")


def _attack_group(setting: Mapping[str, Any]) -> str | None:
    attack = setting.get("attack")
    if not attack:
        return None
    group = f"{attack['attack']}-{attack['norm']}" + (f"@{attack['space']}" if attack.get("space") else "")
    return f"{group} (transfer from {setting['surrogate']})" if setting.get("surrogate") else group


def eps_curves(cases: Iterable[CaseRecord]) -> str:
    """Robust accuracy against the attack budget eps, one panel per attack and norm, a line per model."""
    def draw(ax: Any, name: str, per_model: Mapping[str, list], colours: Mapping[str, str]) -> None:
        linf = name.split(" ")[0].endswith("linf")
        scale = 255 if linf else 1
        _curves(ax, per_model, lambda c: c.setting["attack"]["eps"] * scale, colours)
        epsilons = sorted({c.setting["attack"]["eps"] * scale for cs in per_model.values() for c in cs})
        ax.set_xticks(epsilons)
        ax.set_xlim(min(epsilons) - 0.25 * max(epsilons), 1.25 * max(epsilons))
        ax.set_title(name, fontsize=12)
        ax.set_xlabel("eps (x 1/255)" if linf else "eps (L2, pixels in [0, 1])", fontsize=10)
        ax.set_ylabel("robust accuracy", fontsize=10)

    return _panels(cases, lambda c: _attack_group(c.setting), draw,
                   "No attack cases were measured in this run.", "robust accuracy against attack budget")


PROBABILITY_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def _logit_range(values: Iterable[float], pad: float = 0.3) -> tuple[float, float]:
    """An axis range in probability units covering `values`, padded by `pad` in logit units."""
    clipped = np.clip(np.array(list(values), dtype=float), 1e-3, 1 - 1e-3)
    return float(sigmoid(logit(clipped.min()) - pad)), float(sigmoid(logit(clipped.max()) + pad))


def _logit_axis(ax: Any, which: str, low: float, high: float) -> None:
    """Logit scale on axis `which` ("x" or "y") of `ax` over [low, high], ticks labelled in percent."""
    getattr(ax, f"set_{which}scale")("logit")
    getattr(ax, f"set_{which}lim")(low, high)
    axis = getattr(ax, f"{which}axis")
    span = float(logit(high) - logit(low))
    ticks: list[float] = []
    for tick in (t for t in PROBABILITY_TICKS if low <= t <= high):
        if not ticks or float(logit(tick) - logit(ticks[-1])) >= span / 7:
            ticks.append(tick)
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(lambda value, _: f"{100 * value:g}%")
    axis.set_minor_locator(NullLocator())


def effective_robustness_scatter(cases: Sequence[CaseRecord]) -> str:
    """Per benchmark, one panel per natural shift: shift accuracy against clean accuracy on logit axes, the
    trend line of the reference family, the y = x line, and each model as a point labelled with its effective
    robustness in points (ringed in red when the shift's case regressed). Computed from the cases with the
    committed trends, so points and lines agree."""
    effective = effective_robustness(cases)
    if not effective:
        return '<p class="note">No model has both a clean case and natural-shift cases with a trend.</p>'
    benchmarks = {c.model: c.benchmark for c in cases}
    regressed = {(c.model, c.setting["name"]) for c in cases
                 if c.category == "natural" and c.status is Status.REGRESSED}
    parts = []
    for benchmark in sorted({benchmarks[m] for m in effective}):
        trends = load_trends(benchmark)
        models = sorted(m for m in effective if benchmarks[m] == benchmark)
        shifts = [t.shift for t in trends.trends if t.x == trends.clean
                  and any(t.shift in effective[m] for m in models)]
        colours = _colours(models)
        figure, axes = _grid(len(shifts), height=3.6)
        for ax, shift in zip(axes, shifts):
            trend = trends.on_clean(shift)
            entries = {m: effective[m][shift] for m in models if shift in effective[m]}
            x_low, x_high = _logit_range([*trend.x_range, *(e["id_accuracy"] for e in entries.values())])
            xs = sigmoid(np.linspace(logit(x_low), logit(x_high), 100))
            line = sigmoid(trend.a * logit(xs) + trend.b)
            y_low, y_high = _logit_range([line[0], line[-1], *(e["accuracy"] for e in entries.values())])
            ax.plot(xs, line, color="#444", linewidth=2)
            ax.plot(xs, xs, ":", color="#999", linewidth=1)
            for model, entry in entries.items():
                ring = "#d9372b" if (model, shift) in regressed else colours[model]
                ax.plot(entry["id_accuracy"], entry["accuracy"], "o", color=colours[model], markersize=8,
                        markeredgecolor=ring, markeredgewidth=2.5)
                ax.annotate(f"{100 * entry['effective_robustness']:+.1f}", (entry["id_accuracy"], entry["accuracy"]),
                            textcoords="offset points", xytext=(7, 5), fontsize=10, color=colours[model],
                            fontweight="bold", path_effects=[withStroke(linewidth=3, foreground="white")])
            _logit_axis(ax, "x", x_low, x_high)
            _logit_axis(ax, "y", y_low, y_high)
            ax.set_title(shift, fontsize=12)
            ax.set_xlabel(f"clean accuracy ({trends.clean})", fontsize=10)
            ax.set_ylabel(f"{shift} accuracy", fontsize=10)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=9)
        handles = [Line2D([], [], color=colours[m], marker="o", linestyle="", label=m) for m in models]
        handles += [Line2D([], [], color="#444", linewidth=2, label="trend of the reference family"),
                    Line2D([], [], color="#999", linestyle=":", label="y = x"),
                    Line2D([], [], color="white", marker="o", markeredgecolor="#d9372b", markeredgewidth=2.5,
                           linestyle="", label="regressed")]
        figure.legend(handles=handles, loc="outside upper center", ncols=len(handles), fontsize=11, frameon=False)
        parts.append(f"<h3>{_e(benchmark)}</h3><p class=\"note\">Trend lines: {_e(trends.label)}. Labels: effective "
                     f"robustness in points (above the line is positive); logit axes.</p>")
        parts.append(_img(figure, f"effective robustness scatter, {benchmark}"))
        parts.append(_effective_table(effective, models))
    return "\n".join(parts)


def _effective_table(effective: Mapping[str, Mapping[str, Any]], models: Sequence[str]) -> str:
    rows = ["<table><tr><th class=\"text\">model</th><th class=\"text\">shift</th><th>clean</th><th>shift</th>"
            "<th>trend predicts</th><th>effective robustness (points)</th></tr>"]
    for model in models:
        for shift, entry in effective[model].items():
            rows.append(f"<tr><td class=\"text\">{_e(model)}</td><td class=\"text\">{_e(shift)}</td>"
                        f"<td>{entry['id_accuracy']:.4f}</td><td>{entry['accuracy']:.4f}</td>"
                        f"<td>{entry['predicted']:.4f}</td><td>{100 * entry['effective_robustness']:+.2f}</td></tr>")
    return "\n".join(rows) + "</table>"


def _case_rows(cases: Iterable[CaseRecord], with_model: bool = False) -> str:
    head = ("<tr>" + ("<th class=\"text\">model</th>" if with_model else "") +
            "<th class=\"text\">case</th><th>n</th><th>accuracy</th><th>95% CI</th><th>baseline</th><th>threshold</th>"
            "<th>delta</th><th title=\"smallest drop the gate fails with 80% power\">detects</th>"
            "<th class=\"text\">status</th><th class=\"text\">message</th></tr>")
    rows = [head]
    for c in cases:
        interval = f"[{c.interval95[0]:.3f}, {c.interval95[1]:.3f}]" if c.interval95 else "-"
        message = (c.message or "") if c.status is not Status.PASSED else ""
        if c.pixel_drift:
            message = " ".join(filter(None, (drift_note(c.pixel_drift) + ".", message)))
        rows.append(f"<tr class=\"{_e(c.status.value)}\">" + (f"<td class=\"text\">{_e(c.model)}</td>" if with_model
                                                          else "") +
                    f"<td class=\"text\">{_e(c.id)}</td><td>{_e(c.n or '-')}</td>"
                    f"<td>{_fmt(c.accuracy)}</td><td>{interval}</td><td>{_fmt(c.baseline)}</td>"
                    f"<td>{_fmt(c.threshold)}</td><td>{_fmt(c.delta, '+.4f')}</td>"
                    f"<td>{_fmt(c.detectable_drop, '.3f')}</td>"
                    f"<td class=\"text\">{_e(c.status.value)}</td><td class=\"text\">{_e(message[:300])}</td></tr>")
    return "<table>" + "\n".join(rows) + "</table>"


def _ordered(cases: Iterable[CaseRecord]) -> list[CaseRecord]:
    return sorted(cases, key=lambda c: (PROBLEMS_FIRST.index(c.status), c.id))


def _summary(report: Report) -> str:
    run = report.run
    git = run.get("git") or {}
    facts = [("run", run.get("id")), ("started", run.get("started")), ("finished", run.get("finished")),
             ("complete", run.get("complete")), ("device", run.get("device")), ("seed", run.get("seed")),
             ("workers", run.get("workers")), ("dist", run.get("dist")),
             ("update baselines", run.get("update_baselines")),
             ("git commit", f"{git.get('commit') or '?'}{' (dirty)' if git.get('dirty') else ''}"),
             ("argv", " ".join(run.get("argv") or [])), ("shards", len(run["shards"]) if "shards" in run else None)]
    rows = "".join(f"<tr><th class=\"text\">{_e(k)}</th><td class=\"text\">{_e(v)}</td></tr>"
                   for k, v in facts if v is not None)
    badges = "".join(f"<span class=\"badge {_e(status)}\">{_e(status)}: {count}</span>"
                     for status, count in report.summary.items() if count)
    problems = ["run incomplete: some collected cases produced no result"] if run.get("complete") is False else []
    problems += [f"validity: {p}" for p in run.get("validity_problems") or []]
    notes = "".join(f"<p class=\"alert\">{_e(p)}</p>" for p in problems)
    return f"<h2>Summary</h2><table>{rows}</table><p>{badges}</p>{notes}"


def _regressions(cases: Sequence[CaseRecord]) -> str:
    regressed = [c for c in cases if c.status is Status.REGRESSED]
    problems = [c for c in cases if c.status in PROBLEMS]
    parts = ["<h2>Regressions against the baseline</h2>"]
    if regressed:
        parts.append(f"<p class=\"alert\">{len(regressed)} case(s) regressed.</p>")
        parts.append(_case_rows(sorted(regressed, key=lambda c: (c.delta or 0, c.id)), with_model=True))
    else:
        parts.append("<p class=\"ok\">No case regressed against its baseline.</p>")
    if problems:
        parts.append(f"<h3>Other problems ({len(problems)})</h3>")
        parts.append(_case_rows(_ordered(problems), with_model=True))
    return "\n".join(parts)


def _model_section(model: str, provenance: Mapping[str, Any], cases: Sequence[CaseRecord],
                   metrics: Mapping[str, Any]) -> str:
    counts = defaultdict(int)
    for c in cases:
        counts[c.status] += 1
    parts = [f"<h2 id=\"model-{_e(model)}\">{_e(model)}</h2>",
             "<p>" + ", ".join(f"{_e(status.value)}: {counts[status]}" for status in PROBLEMS_FIRST if counts[status])
             + "</p>"]
    details = [(k, provenance.get(k)) for k in ("architecture", "weights", "weights_sha256", "n_classes")]
    if any(v is not None for _, v in details):
        parts.append("<p class=\"note\">" + "; ".join(f"{_e(k)}: {_e(v)}" for k, v in details if v is not None)
                     + "</p>")
    corruptions = metrics.get("corruptions")
    if corruptions:
        summary = {k: corruptions.get(k) for k in ("mce_unnormalized", "mce", "relative_mce")}
        parts.append("<p>" + "; ".join(f"{_e(k)}: {_fmt(v)}" for k, v in summary.items() if v is not None) + "</p>")
    for category in CATEGORIES:
        rows = [c for c in cases if c.category == category]
        if rows:
            parts.append(f"<h3>{_e(category)} ({len(rows)})</h3>")
            parts.append(_case_rows(_ordered(rows)))
    return "\n".join(parts)


def render_html(report: Report) -> str:
    """The page of a report as one string; it references no external resource."""
    cases = list(report.cases)
    by_model: dict[str, list] = defaultdict(list)
    for case in cases:
        by_model[case.model].append(case)
    metrics = report.metrics
    sections = [_summary(report), _regressions(cases),
                "<h2>Severity curves (synthetic corruptions)</h2>", severity_curves(cases),
                "<h2>Eps curves (adversarial attacks)</h2>", eps_curves(cases),
                "<h2>Effective robustness (natural shifts)</h2>", effective_robustness_scatter(cases)]
    sections += [_model_section(model, report.models.get(model, {}), model_cases, metrics.get(model, {}))
                 for model, model_cases in sorted(by_model.items())]
    title = f"robustness-gate report {report.run.get('id', '')}"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n")


def write_html(report: Report, path: Path) -> Path:
    """Write the page of `report` to `path` atomically (readers see the old file or the new one)."""
    return write_text_atomic(Path(path), render_html(report))


def write_html_beside(report: Report, report_path: Path) -> Path:
    """The page of a report just written to `report_path` (run-<...>.json): `run-<...>.html` and `latest.html`
    in the same folder, as the JSON report and `latest.json`; returns the first."""
    page = render_html(report)
    path = Path(report_path).with_suffix(".html")
    write_text_atomic(path, page)
    write_text_atomic(path.with_name("latest.html"), page)
    return path
