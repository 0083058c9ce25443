"""What one case left behind, and the run report that gathers them: typed, JSON round-trippable, torch-free.

A `CaseRecord` is written once by a worker (`CaseResult.record`, then `CaseRecord.judged` with the gate's
decision), travels to the controller as JSON, and is read by the gate's run checks, the report, the HTML page and
the reports CLI. A case that produced no result (skipped for missing data, crashed, interrupted) is a record
with `n is None`, made by `CaseRecord.unmeasured`. This module imports neither torch nor the model stack, so the
report tools start fast.
"""
from __future__ import annotations

import base64
import dataclasses
import enum
from typing import Any, Iterable, Mapping

import numpy as np

REPORT_SCHEMA_VERSION = 1
CATEGORIES = ("clean", "natural", "synthetic", "adversarial")
CLEAN_NAME = "clean"  # the clean case's setting name whatever its split, so `-k clean` selects it and nothing else


class RecordError(ValueError):
    """A case record or a report is not of this schema; the message names the field."""


class Status(str, enum.Enum):
    """A case's outcome. `value` is what reports store; the order is the order of report columns."""

    PASSED = "passed"
    REGRESSED = "regressed"
    NO_BASELINE = "no-baseline"
    PROTOCOL_MISMATCH = "protocol-mismatch"
    RECORDED = "recorded"
    ERROR = "error"
    NOT_RUN = "not-run"

    @property
    def ok(self) -> bool:
        """The case neither failed the gate nor went unmeasured."""
        return self in (Status.PASSED, Status.RECORDED)

    @property
    def failing(self) -> bool:
        """The case fails a gating run (a not-run case fails the run only in release mode, --strict-data)."""
        return self in (Status.REGRESSED, Status.ERROR, Status.PROTOCOL_MISMATCH, Status.NO_BASELINE)


PROBLEMS_FIRST = (Status.REGRESSED, Status.ERROR, Status.PROTOCOL_MISMATCH, Status.NO_BASELINE, Status.NOT_RUN,
                  Status.RECORDED, Status.PASSED)


def encode_bits(values: np.ndarray) -> str:
    """bool (n,) -> base64 of the bits packed MSB first (8 samples a byte)."""
    return base64.b64encode(np.packbits(values.astype(bool)).tobytes()).decode("ascii")


def encode_values(values: np.ndarray) -> list[float | None]:
    """float (n,) -> a JSON-able list, rounded to 9 significant digits, None for +inf ("above the maximum")."""
    return [None if np.isinf(value) else float(f"{value:.9g}") for value in values.astype(np.float64)]


def decode_values(values: list[float | None], n: int) -> np.ndarray:
    """Inverse of `encode_values`: float64 (n,); ValueError unless it holds n finite numbers >= 0 or nulls."""
    if not isinstance(values, list) or len(values) != n or not all(
            value is None or isinstance(value, (int, float)) and not isinstance(value, bool)
            and np.isfinite(value) and value >= 0 for value in values):
        raise ValueError(f"expected a list of {n} finite numbers >= 0 or nulls")
    return np.array([np.inf if value is None else value for value in values], dtype=np.float64)


def decode_bits(text: str, n: int) -> np.ndarray:
    """Inverse of `encode_bits`: bool (n,); ValueError when the text does not hold exactly n samples."""
    packed = np.frombuffer(base64.b64decode(text.encode("ascii"), validate=True), dtype=np.uint8)
    if packed.size != (n + 7) // 8:
        raise ValueError(f"{packed.size} bytes encode {packed.size * 8} samples, expected n={n}")
    return np.unpackbits(packed)[:n].astype(bool)


@dataclasses.dataclass(frozen=True)
class CaseRecord:
    """One case of one model: who it is, what it measured, and what the gate decided.

    Identity: `id` is `<line>-<setting name>` (what `-k` matches), `key` is `<category>/<setting name>` (its
    entry in `baselines/<line>.json`), `setting` the measurement protocol (`Setting.as_dict`).
    Measurement (None when the case produced no result): `data` is the data's provenance (sha256, source,
    pixel recipe), `data_sha256` the hash of the pixels scored, `per_sample` the correctness bits
    (`encode_bits`), `per_sample_values` a quantity per sample where the setting measures one (a minimal
    perturbation, `encode_values`), `accuracy` = correct / n in [0, 1], `interval95` its Wilson interval,
    `metrics` what the setting adds (flip probability, attack statistics), `duration_s` wall seconds.
    Verdict (None until judged): `status`, and against the baseline its `baseline` accuracy, `threshold`, `delta`
    (accuracy minus baseline), `flips`, `mcnemar_p`, `pixel_drift`, `detectable_drop` (harness.sensitivity) and a `message`.
    Where: the xdist `worker` with its RSS in MiB, and the pytest `nodeid` once the controller merged it.
    `model_provenance` travels with the record to the controller; reports keep it once per model instead.
    """

    id: str
    key: str
    model: str
    line: str
    benchmark: str
    category: str
    setting: Mapping[str, Any]
    status: Status | None = None
    data: Mapping[str, Any] | None = None
    data_sha256: str | None = None
    seed: int | None = None
    batch_size: int | None = None
    n: int | None = None
    correct: int | None = None
    accuracy: float | None = None
    interval95: tuple[float, float] | None = None
    per_sample: str | None = None
    per_sample_values: list[float | None] | None = None
    metrics: Mapping[str, Any] | None = None
    duration_s: float | None = None
    baseline: float | None = None
    threshold: float | None = None
    delta: float | None = None
    flips: Mapping[str, int] | None = None
    mcnemar_p: float | None = None
    message: str | None = None
    pixel_drift: Mapping[str, Any] | None = None
    detectable_drop: float | None = None
    worker: str | None = None
    worker_peak_rss_mb: float | None = None
    worker_rss_mb: float | None = None
    nodeid: str | None = None
    model_provenance: Mapping[str, Any] | None = None

    @classmethod
    def unmeasured(cls, identity: Mapping[str, Any], status: Status, message: str) -> "CaseRecord":
        """The record of a case that produced no result; `identity` holds id, key, model, line, benchmark,
        category and setting."""
        return cls(**identity, status=status, message=message)

    @property
    def measured(self) -> bool:
        return self.n is not None

    def bits(self) -> np.ndarray:
        """bool (n,): sample i scored correct. Only for a measured record."""
        if self.per_sample is None or self.n is None:
            raise RecordError(f"{self.id}: has no per-sample results")
        return decode_bits(self.per_sample, self.n)

    def values(self) -> np.ndarray | None:
        """float64 (n,) of `per_sample_values` (+inf for "above the maximum"), or None when the setting has none."""
        if self.per_sample_values is None or self.n is None:
            return None
        try:
            return decode_values(list(self.per_sample_values), self.n)
        except ValueError as error:
            raise RecordError(f"{self.id}: per_sample_values: {error}") from None

    def to_json(self, with_provenance: bool = True) -> dict[str, Any]:
        """A plain JSON-able dict in field order; reports leave `model_provenance` out (with_provenance=False)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "model_provenance" and not with_provenance:
                continue
            if isinstance(value, Status):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = _plain(value)
            out[field.name] = value
        return out

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> "CaseRecord":
        """The record of `to_json`'s output. Unknown fields and unknown statuses are refused (RecordError):
        a record of another schema is never read as this one."""
        if not isinstance(document, Mapping):
            raise RecordError(f"a case record is a JSON object, not {type(document).__name__}")
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(document) - names)
        if unknown:
            raise RecordError(f"case {document.get('id')!r}: unknown field(s) {', '.join(unknown)}")
        missing = [name for name in _IDENTITY + ("status",) if name not in document]
        if missing:
            raise RecordError(f"case {document.get('id')!r}: missing field(s) {', '.join(missing)}")
        values = dict(document)
        try:
            values["status"] = Status(values["status"])
        except ValueError:
            raise RecordError(f"case {document.get('id')!r}: unknown status {values['status']!r}; known: "
                              f"{', '.join(status.value for status in Status)}") from None
        if values.get("interval95") is not None:
            values["interval95"] = tuple(values["interval95"])
        return cls(**values)

    def identity(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _IDENTITY}


_IDENTITY = ("id", "key", "model", "line", "benchmark", "category", "setting")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def summarize(cases: Iterable[CaseRecord]) -> dict[str, int]:
    """Cases per status, every status present (zero counts included), in `Status` order."""
    counts = {status.value: 0 for status in Status}
    for case in cases:
        counts[case.status.value] += 1
    return counts


@dataclasses.dataclass(frozen=True)
class Report:
    """A run report (schema_version 1): the run's record, provenance per model, case records sorted by (model, id),
    per-model aggregates (`metrics`: corruption summary, effective robustness) and the count per status."""

    run: Mapping[str, Any]
    models: Mapping[str, Any]
    cases: tuple[CaseRecord, ...]
    metrics: Mapping[str, Any]
    summary: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": REPORT_SCHEMA_VERSION, "run": _plain(self.run), "models": _plain(self.models),
                "cases": [case.to_json(with_provenance=False) for case in self.cases],
                "metrics": _plain(self.metrics), "summary": dict(self.summary)}

    @classmethod
    def from_json(cls, document: Any, source: str = "report") -> "Report":
        """The report in `document` (a parsed JSON file named `source` in errors); RecordError when it is not one."""
        if not isinstance(document, Mapping) or document.get("schema_version") != REPORT_SCHEMA_VERSION:
            raise RecordError(f"{source}: not a robustness-gate report of schema_version {REPORT_SCHEMA_VERSION}")
        for key in ("run", "models", "cases", "summary"):
            if key not in document:
                raise RecordError(f"{source}: missing key '{key}'")
        try:
            cases = tuple(CaseRecord.from_json(case) for case in document["cases"])
        except (RecordError, TypeError) as error:
            raise RecordError(f"{source}: {error}") from None
        return cls(document["run"], document["models"], cases, document.get("metrics") or {}, document["summary"])
