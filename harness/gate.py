"""The decision of one case against its baseline: passed, regressed, or not comparable (and why)."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

PROTOCOL_FIELDS = ("setting", "data_sha256", "seed")


@dataclasses.dataclass(frozen=True)
class GateDecision:
    status: str  # passed | regressed | no-baseline | protocol-mismatch
    message: str
    baseline: float | None = None
    threshold: float | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "recorded")


def _differences(record: Mapping[str, Any], entry: Mapping[str, Any]) -> list[str]:
    differ = []
    for field in PROTOCOL_FIELDS:
        ours, theirs = record[field], entry[field]
        if isinstance(ours, dict) and isinstance(theirs, dict):
            differ += [f"{field}.{key}: baseline {theirs.get(key)!r}, now {ours.get(key)!r}"
                       for key in sorted(set(ours) | set(theirs)) if ours.get(key) != theirs.get(key)]
        elif ours != theirs:
            differ.append(f"{field}: baseline {theirs!r}, now {ours!r}")
    return differ


def decide(record: Mapping[str, Any], entry: Mapping[str, Any] | None, baseline_file: str,
           record_command: str) -> GateDecision:
    """Gate a measured case record against its baseline `entry` (None when the baseline has no such case)."""
    accuracy = record["accuracy"]
    if entry is None:
        return GateDecision("no-baseline", (
            f"{record['id']}: no baseline for case {record['key']!r} in {baseline_file} "
            f"(measured accuracy {accuracy:.4f}, n={record['n']}). Record one with `{record_command}`, "
            f"review the diff and commit {baseline_file}."))
    differ = _differences(record, entry)
    if differ:
        return GateDecision("protocol-mismatch", (
            f"{record['id']}: measured under another protocol than its baseline in {baseline_file}, so the "
            f"numbers are not comparable: " + "; ".join(differ) +
            f". Run with the baseline's settings, or re-record it with `{record_command}`."),
            baseline=entry["accuracy"], threshold=entry["threshold"])
    threshold = entry["threshold"]
    lo, hi = record["interval95"]
    summary = (f"accuracy {accuracy:.4f} [95% CI {lo:.4f}, {hi:.4f}], n={record['n']}; baseline "
               f"{entry['accuracy']:.4f} (n={entry['n']}), threshold {threshold:.4f}, "
               f"delta {accuracy - entry['accuracy']:+.4f}")
    if accuracy < threshold:
        return GateDecision("regressed", f"{record['id']}: REGRESSION: {summary}", entry["accuracy"], threshold)
    return GateDecision("passed", f"{record['id']}: {summary}", entry["accuracy"], threshold)
